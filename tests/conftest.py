"""Suite-wide: one botocore data loader per process (support.sessions), so the service
models are parsed once per xdist worker rather than once per boto3 session; the install
tests scheduled first, as one xdist group."""

import pytest
from support.sessions import share_botocore_loader

share_botocore_loader()


INSTALL = "tests/install/"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """The install tests (a wheel, two venvs and a layer built once, one after the other,
    mostly waiting on pip) first and together: under ``--dist loadgroup`` (make pytest) one
    worker builds them from the start while the other runs the rest, instead of both
    waiting on each other's builds or the builds closing the run."""
    install = [item for item in items if item.nodeid.startswith(INSTALL)]
    for item in install:
        item.add_marker(pytest.mark.xdist_group("install"))
    items[:] = install + [item for item in items if not item.nodeid.startswith(INSTALL)]

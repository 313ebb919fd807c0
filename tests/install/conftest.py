"""Shared by the install tests: expensive builds (wheel, venvs, layer) made once per session.

Under pytest-xdist the tests of one module may run on both workers; each worker would then
build its own wheel, venvs and layer. ``build_once(name, build)`` builds into a directory of
the session's shared base temp instead, under a file lock: the first worker builds, the
other waits for it and reuses the result. A failed build leaves no completion mark, so the
next caller builds again (and fails the same way, with its own error).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def build_once(tmp_path_factory) -> Callable[[str, Callable[[Path], None]], Path]:
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by every worker of this session

    def build(name: str, builder: Callable[[Path], None]) -> Path:
        directory = root / f"install-{name}"
        done = directory / ".built"
        with open(root / f"install-{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not done.exists():
                shutil.rmtree(directory, ignore_errors=True)
                directory.mkdir()
                builder(directory)
                done.touch()
        return directory

    return build

"""boto3 sessions that parse botocore's service models once per process.

Every new botocore session parses the JSON models of the services it makes clients for
(a quarter of a second for EC2 alone): for a test suite that builds hundreds of sessions,
most of the time of an emulated world's set-up. ``share_botocore_loader`` (called by
tests/conftest.py for the whole suite) gives every session one data loader per search path,
as one session's clients share theirs; the models are read-only data.
"""

from __future__ import annotations

import boto3
import botocore.loaders
import botocore.session

from support.env import REGION

_LOADERS: dict[str | None, botocore.loaders.Loader] = {}


def _shared_loader(search_path_string=None):
    if search_path_string not in _LOADERS:
        _LOADERS[search_path_string] = botocore.loaders.create_loader(search_path_string)
    return _LOADERS[search_path_string]


def share_botocore_loader() -> None:
    """Every botocore session created from now on in this process shares the data loader."""
    botocore.session.create_loader = _shared_loader


def new_session():
    """A boto3 Session (a new Lambda container's) with the shared data loader."""
    share_botocore_loader()
    return boto3.session.Session(region_name=REGION)

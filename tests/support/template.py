"""Read ``template.yaml`` in tests: the helpers live in the library (fargate_audit.cli.template,
also used by ``fargate-audit invoke``); this module pins them to the repository's template.

``load_template()`` parses the SAM template with the CloudFormation short tags;
``table_create_kwargs``, ``function_policies``, ``effective_function_properties``,
``event_patterns``, ``function_events``, ``table_properties`` and ``table_ttl_attribute``
derive what tests need from it, so nothing about the table, the functions or their IAM is
retyped anywhere else.
"""

from __future__ import annotations

import copy
from pathlib import Path

from fargate_audit.cli import template as _template
from fargate_audit.cli.template import (  # noqa: F401 (re-exported for the tests)
    DEFAULT_TABLE_NAME,
    SERVERLESS_FUNCTION,
    TABLE_LOGICAL_ID,
    effective_function_properties,
    event_patterns,
    function_events,
    function_policies,
    functions,
    resources_of_type,
    table_create_kwargs,
    table_properties,
    table_ttl_attribute,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"


_PARSED: dict[tuple[Path, int], dict] = {}


def load_template(path: str | Path = TEMPLATE_PATH) -> dict:
    """The repository's template as plain data (intrinsics in their long JSON form): parsed
    once per process and file version (a quarter of a second), a fresh copy each call."""
    path = Path(path).resolve()
    key = (path, path.stat().st_mtime_ns)
    if key not in _PARSED:
        _PARSED[key] = _template.load_template(path)
    return copy.deepcopy(_PARSED[key])

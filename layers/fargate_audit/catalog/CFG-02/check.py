"""The check of CFG-02; the rule's data (title, severity, parameters, fixtures) is rule.yaml beside it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

from fargate_audit.core.checks import CheckResult, FactError, check, verdict


@lru_cache(maxsize=16)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@check(tolerates=("containers",))
def secrets_in_environment(posture: Mapping, params: Mapping) -> CheckResult:
    """CFG-02: a definition or override environment variable whose name is in
    ``secret_env_names`` or contains a match of ``secret_env_pattern``, unless its value
    was trivial. Evidence names container, variable and source; never a value. When the
    task definition could not be read, the overrides' variables (from DescribeTasks) still
    fail it; without one failing, the verdict is unknown (ERROR naming the call)."""
    names = set(params["secret_env_names"])
    pattern = _compiled(params["secret_env_pattern"])
    variables = [
        {"container": var.get("container"), "name": var.get("name"), "source": var.get("source")}
        for var in posture.get("environment") or []
        if not var.get("trivial_value")
        and (var.get("name") in names or pattern.search(var.get("name") or ""))
    ]
    if not variables and "containers" in (posture.get("errors") or {}):
        raise FactError("containers", posture["errors"]["containers"])
    return verdict(bool(variables)), {"variables": variables}

"""The check of CFG-03; the rule's data (title, severity, parameters, fixtures) is rule.yaml beside it."""

from __future__ import annotations

from collections.abc import Mapping

from fargate_audit.core.checks import CheckResult, check, verdict


@check(inputs=("containers",))
def writable_root_filesystem(posture: Mapping, params: Mapping) -> CheckResult:
    """CFG-03: some container lacks ``readonlyRootFilesystem: true``."""
    containers = [
        c.get("name")
        for c in posture.get("containers") or []
        if c.get("readonly_root_filesystem") is not True
    ]
    return verdict(bool(containers)), {"containers": containers}

"""The check of LOG-01; the rule's data (title, severity, parameters, fixtures) is rule.yaml beside it."""

from __future__ import annotations

from collections.abc import Mapping

from fargate_audit.core.checks import CheckResult, check, verdict


@check(inputs=("containers",))
def logs_not_collected(posture: Mapping, params: Mapping) -> CheckResult:
    """LOG-01: some container definition has no ``logConfiguration.logDriver``."""
    containers = [c.get("name") for c in posture.get("containers") or [] if not c.get("log_driver")]
    return verdict(bool(containers)), {"containers": containers}

"""The check of LOG-02; the rule's data (title, severity, parameters, fixtures) is rule.yaml beside it."""

from __future__ import annotations

from collections.abc import Mapping

from fargate_audit.core.checks import CheckResult, check, verdict


@check(inputs=("cluster.container_insights",))
def container_insights_off(posture: Mapping, params: Mapping) -> CheckResult:
    """LOG-02: the cluster's containerInsights is neither ``enabled`` nor ``enhanced``."""
    setting = (posture.get("cluster") or {}).get("container_insights")
    return verdict(setting not in ("enabled", "enhanced")), {"container_insights": setting}

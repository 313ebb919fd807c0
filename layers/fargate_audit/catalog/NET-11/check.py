"""The check of NET-11; the rule's data (title, severity, parameters, fixtures) is rule.yaml beside it."""

from __future__ import annotations

from collections.abc import Mapping

from fargate_audit.core.checks import (
    CheckResult,
    applicability,
    check,
    exposure_evidence,
    exposures_of,
    verdict,
)


@applicability
def exposed_through_load_balancer(posture: Mapping, params: Mapping) -> bool:
    """NET-11 applicability: the internet reaches the task through some front door."""
    return bool(exposures_of(posture))


@check(inputs=("network.exposures",))
def plaintext_ingress(posture: Mapping, params: Mapping) -> CheckResult:
    """NET-11: some exposure's listener protocol is HTTP (the forward to the task's target
    group is among that listener's own actions: a default redirect elsewhere on the
    listener does not pass it)."""
    failing = [e for e in exposures_of(posture) if str(e.get("listener_protocol")).upper() == "HTTP"]
    return verdict(bool(failing)), {"exposures": exposure_evidence(failing)}

"""The check of NET-12; the rule's data (title, severity, parameters, fixtures) is rule.yaml beside it."""

from __future__ import annotations

from collections.abc import Mapping

from fargate_audit.core.checks import (
    CheckResult,
    FactError,
    applicability,
    check,
    exposure_evidence,
    exposures_of,
    network_of,
    verdict,
)


def _through_alb(posture: Mapping) -> list[Mapping]:
    return [e for e in exposures_of(posture) if e.get("load_balancer_type") == "application"]


@applicability
def exposed_through_alb(posture: Mapping, params: Mapping) -> bool:
    """NET-12 applicability: some exposure is through an application load balancer."""
    return bool(_through_alb(posture))


@check
def no_web_acl(posture: Mapping, params: Mapping) -> CheckResult:
    """NET-12: some exposure through an application load balancer that has no AWS WAF web
    ACL. A web ACL that could not be read (``errors.web_acl``) is ERROR for the exposures
    through that load balancer, unless another exposure already fails."""
    unknown = set(network_of(posture).get("unknown_web_acls") or [])
    albs = _through_alb(posture)
    failing = [e for e in albs if e.get("web_acl_arn") is None and e.get("load_balancer_arn") not in unknown]
    if not failing and any(e.get("load_balancer_arn") in unknown for e in albs):
        message = (posture.get("errors") or {}).get("web_acl") or "web ACL not collected"
        raise FactError("web_acl", message)
    return verdict(bool(failing)), {"exposures": exposure_evidence(failing)}

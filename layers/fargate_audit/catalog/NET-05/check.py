"""The check of NET-05; the rule's data (title, severity, parameters, fixtures) is rule.yaml beside it."""

from __future__ import annotations

from collections.abc import Mapping

from fargate_audit.core.checks import FAMILIES, CheckResult, FactError, check, egress_of, is_public, verdict


@check
def uninspected_internet_egress(posture: Mapping, params: Mapping) -> CheckResult:
    """NET-05: IPv4 leaves through an internet gateway with a public IPv4, or through a NAT
    gateway whose next hop is not in ``inspected_egress_paths``; IPv6 leaves through an
    internet or egress-only internet gateway from an ENI with an IPv6 address. A NAT
    gateway's hop that could not be followed is ERROR unless the other family fails."""
    inspected = set(params["inspected_egress_paths"])
    paths = {family: egress_of(posture, family) for family in FAMILIES}
    failing: list[str] = []
    ipv4 = paths["ipv4"]["path"] or ""
    if (ipv4 == "internet-gateway" and is_public(posture, "ipv4")) or (
        ipv4.startswith("nat-gateway>") and ipv4 not in inspected
    ):
        failing.append("ipv4")
    if is_public(posture, "ipv6") and paths["ipv6"]["path"] in (
        "internet-gateway",
        "egress-only-internet-gateway",
    ):
        failing.append("ipv6")
    unknown = [family for family in FAMILIES if paths[family].get("error")]
    if unknown and not failing:  # a family that fails settles it; an unknown one leaves it open
        raise FactError("egress", paths[unknown[0]]["error"])
    return verdict(bool(failing)), {"paths": paths, "families": failing}

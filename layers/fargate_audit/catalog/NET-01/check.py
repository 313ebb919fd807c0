"""The check of NET-01; the rule's data (title, severity, parameters, fixtures) is rule.yaml beside it."""

from __future__ import annotations

from collections.abc import Mapping

from fargate_audit.core.checks import FAMILIES, CheckResult, check, is_public, network_of, verdict


@check
def public_address(posture: Mapping, params: Mapping) -> CheckResult:
    """NET-01: the ENI has an IPv4 public-IP association or any IPv6 address."""
    network = network_of(posture)
    families = [family for family in FAMILIES if is_public(posture, family)]
    addresses: list[str] = []
    if "ipv4" in families and network.get("public_ipv4"):
        addresses.append(network["public_ipv4"])
    if "ipv6" in families:
        addresses.extend(network.get("ipv6_addresses") or [])
    evidence = {"eni_id": network.get("eni_id"), "public_ip": addresses, "families": families}
    return verdict(bool(families)), evidence

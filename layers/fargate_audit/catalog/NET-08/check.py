"""The check of NET-08; the rule's data (title, severity, parameters, fixtures) is rule.yaml beside it."""

from __future__ import annotations

from collections.abc import Mapping

from fargate_audit.core.checks import FAMILIES, CheckResult, check, family_ports, network_of, verdict
from fargate_audit.core.netalgebra import contains, merge

ADMIN_PORTS = (22, 3389)


@check(inputs=("network.nacl",))
def nacl_admin_ports_open(posture: Mapping, params: Mapping) -> CheckResult:
    """NET-08: the NACL world decision allows inbound TCP 22 or TCP 3389, IPv4 or IPv6."""
    nacl = network_of(posture).get("nacl") or {}
    allowed = nacl.get("inbound_world_allowed") or {}
    open_ports: list[dict] = []
    families: list[str] = []
    for family in FAMILIES:
        ports = [p for p in ADMIN_PORTS if contains(family_ports(allowed, family), "tcp", p)]
        if ports:
            families.append(family)
            open_ports.extend({"protocol": "tcp", "from": p, "to": p} for p in ports)
    open_ports = merge(open_ports)
    return verdict(bool(open_ports)), {
        "nacl_id": nacl.get("id"),
        "open_ports": open_ports,
        "families": families,
    }

"""The check of NET-02; the rule's data (title, severity, parameters, fixtures) is rule.yaml beside it."""

from __future__ import annotations

from collections.abc import Mapping

from fargate_audit.core.checks import (
    FAMILIES,
    CheckResult,
    check,
    egress_of,
    family_ports,
    is_public,
    network_of,
    verdict,
)
from fargate_audit.core.netalgebra import intersect, union


@check
def internet_reachable(posture: Mapping, params: Mapping) -> CheckResult:
    """NET-02: for some family F, a public address of F AND the F default route's path is
    ``internet-gateway`` AND (world ingress of F) intersected with (NACL world-allowed
    inbound of F) is non-empty. ``open_ports`` is the union over both families."""
    network = network_of(posture)
    world_ingress = network.get("world_ingress") or {}
    nacl_allowed = (network.get("nacl") or {}).get("inbound_world_allowed") or {}
    open_sets: list[list[dict]] = []
    families: list[str] = []
    for family in FAMILIES:
        if not is_public(posture, family):
            continue
        if egress_of(posture, family)["path"] != "internet-gateway":
            continue
        ports = intersect(family_ports(world_ingress, family), family_ports(nacl_allowed, family))
        if ports:
            families.append(family)
            open_sets.append(ports)
    open_ports = union(*open_sets)
    return verdict(bool(open_ports)), {"open_ports": open_ports, "families": families}

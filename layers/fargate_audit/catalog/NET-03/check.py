"""The check of NET-03; the rule's data (title, severity, parameters, fixtures) is rule.yaml beside it."""

from __future__ import annotations

from collections.abc import Mapping

from fargate_audit.core.checks import CheckResult, check, network_of, verdict
from fargate_audit.core.netalgebra import merge, subtract, union


@check(inputs=("network.world_ingress_rules",))
def world_ingress_unapproved_ports(posture: Mapping, params: Mapping) -> CheckResult:
    """NET-03: a world ingress rule of an attached group covers a port outside
    ``allowed_public_ports``. Independent of public address and routing."""
    allowed = merge(params["allowed_public_ports"])
    offending_groups: set[str] = set()
    open_sets: list[list[dict]] = []
    for rule in network_of(posture).get("world_ingress_rules") or []:
        outside = subtract(rule.get("ports") or [], allowed)
        if outside:
            open_sets.append(outside)
            offending_groups.add(rule.get("group_id"))
    open_ports = union(*open_sets)
    evidence = {"open_ports": open_ports, "security_groups": sorted(g for g in offending_groups if g)}
    return verdict(bool(open_ports)), evidence

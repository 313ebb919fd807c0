"""The check of NET-04; the rule's data (title, severity, parameters, fixtures) is rule.yaml beside it."""

from __future__ import annotations

from collections.abc import Mapping

from fargate_audit.core.checks import CheckResult, check, network_of, verdict


def _covers_all_tcp(rule: Mapping) -> bool:
    protocol = str(rule.get("protocol"))
    if protocol == "-1":
        return True
    return protocol in ("tcp", "6") and rule.get("from") == 0 and rule.get("to") == 65535


@check(inputs=("network.world_egress_rules",))
def unrestricted_egress(posture: Mapping, params: Mapping) -> CheckResult:
    """NET-04: one world egress rule with protocol all, or TCP 0-65535 (a single rule;
    UDP-only rules and split TCP ranges do not fail it)."""
    offending = [
        {key: rule.get(key) for key in ("group_id", "family", "cidr", "protocol", "from", "to")}
        for rule in network_of(posture).get("world_egress_rules") or []
        if _covers_all_tcp(rule)
    ]
    return verdict(bool(offending)), {"rules": offending}

"""The check of NET-06; the rule's data (title, severity, parameters, fixtures) is rule.yaml beside it."""

from __future__ import annotations

from collections.abc import Mapping

from fargate_audit.core.checks import CheckResult, FactError, check, network_of, verdict


@check(tolerates=("security_groups",))
def default_security_group(posture: Mapping, params: Mapping) -> CheckResult:
    """NET-06: an attached security group is named ``default``. The names are the ENI's
    own (DescribeNetworkInterfaces ``Groups[].GroupName``), so the verdict stands when
    DescribeSecurityGroups failed; only a group whose name neither call gave leaves it
    unknown (ERROR, naming the security groups' error)."""
    attached = network_of(posture).get("security_groups") or []
    groups = [
        {"id": group.get("id"), "name": group.get("name")}
        for group in attached
        if group.get("name") == "default"
    ]
    unnamed = sorted(str(group.get("id")) for group in attached if not group.get("name"))
    if unnamed and not groups:
        problem = (posture.get("errors") or {}).get("security_groups") or "not reported by AWS"
        raise FactError("security_groups", f"name of {', '.join(unnamed)} not known: {problem}")
    return verdict(bool(groups)), {"security_groups": groups}

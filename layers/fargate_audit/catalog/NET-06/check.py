"""The check of NET-06; the rule's data (title, severity, parameters, fixtures) is rule.yaml beside it."""

from __future__ import annotations

from collections.abc import Mapping

from fargate_audit.core.checks import CheckResult, check, network_of, verdict


@check
def default_security_group(posture: Mapping, params: Mapping) -> CheckResult:
    """NET-06: an attached security group is named ``default``."""
    groups = [
        {"id": group.get("id"), "name": group.get("name")}
        for group in network_of(posture).get("security_groups") or []
        if group.get("name") == "default"
    ]
    return verdict(bool(groups)), {"security_groups": groups}

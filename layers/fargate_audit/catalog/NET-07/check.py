"""The check of NET-07; the rule's data (title, severity, parameters, fixtures) is rule.yaml beside it."""

from __future__ import annotations

from collections.abc import Mapping

from fargate_audit.core.checks import CheckResult, check, network_of, verdict


@check
def flow_logs_incomplete(posture: Mapping, params: Mapping) -> CheckResult:
    """NET-07: no flow log on the ENI, its subnet or its VPC with TrafficType ALL and
    FlowLogStatus ACTIVE (absent status = active; DeliverLogsStatus not considered)."""
    network = network_of(posture)
    scope = {network.get(key) for key in ("eni_id", "subnet_id", "vpc_id")} - {None}
    found = [
        {key: log.get(key) for key in ("id", "resource_id", "traffic_type", "status")}
        for log in network.get("flow_logs") or []
        if log.get("resource_id") in scope
    ]
    complete = any(log["traffic_type"] == "ALL" and log["status"] in (None, "ACTIVE") for log in found)
    return verdict(not complete), {"flow_logs": found}

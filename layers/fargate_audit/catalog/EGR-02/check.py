"""The check of EGR-02; the rule's data (title, severity, parameters, fixtures) is rule.yaml beside it."""

from __future__ import annotations

from collections.abc import Mapping

from fargate_audit.core.checks import CheckResult, check, network_of, verdict

QUERY_LOG_LIVE_STATUSES = frozenset({"ACTIVE", "CREATING"})


@check
def dns_queries_not_logged(posture: Mapping, params: Mapping) -> CheckResult:
    """EGR-02: no Resolver query-log configuration is associated with the task's VPC (an
    association counts while its status is ACTIVE or CREATING)."""
    network = network_of(posture)
    found = [
        {key: item.get(key) for key in ("id", "config_id", "status")}
        for item in network.get("query_log_configs") or []
    ]
    logged = any(str(item["status"] or "").upper() in QUERY_LOG_LIVE_STATUSES for item in found)
    return verdict(not logged), {"vpc_id": network.get("vpc_id"), "query_log_configs": found}

"""The check of EGR-03; the rule's data (title, severity, parameters, fixtures) is rule.yaml beside it."""

from __future__ import annotations

from collections.abc import Mapping

from fargate_audit.core.checks import NOT_APPLICABLE, CheckResult, FactError, check, verdict
from fargate_audit.core.egress import MAX_EVIDENCE_FLOWS, duration_seconds, unresolved_flows


@check
def unresolved_egress(discovery: Mapping, params: Mapping) -> CheckResult:
    """EGR-03 (workload-discovery): the workload's tasks sent ACCEPTed traffic to an
    internet address outside ``approved_egress_cidrs`` that no DNS answer seen in the VPC
    within ``dns_answer_lookback`` before the flow started named. No flow data for the
    workload (no flow row, no flow record): NOT_APPLICABLE, which gives no result. Evidence:
    the addresses with protocol, port and bytes (at most 20, the most bytes first) and
    their count."""
    flows = discovery.get("flows") or []
    if not flows and not discovery.get("flow_records"):
        return NOT_APPLICABLE, {}
    try:
        found = unresolved_flows(
            flows,
            str(discovery.get("workload_key") or ""),
            params["approved_egress_cidrs"],
            duration_seconds(params["dns_answer_lookback"]),
        )
    except ValueError as exc:
        raise FactError(str(exc)) from None
    evidence = {
        "unresolved_destinations": [
            {key: row[key] for key in ("address", "protocol", "port", "bytes_out")}
            for row in found[:MAX_EVIDENCE_FLOWS]
        ],
        "unresolved_count": len(found),  # (address, protocol, port) destinations
        "unresolved_addresses": len({row["address"] for row in found}),
        "unresolved_bytes_out": sum(row["bytes_out"] for row in found),
    }
    return verdict(bool(found)), evidence

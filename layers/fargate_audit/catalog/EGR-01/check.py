"""The check of EGR-01; the rule's data (title, severity, parameters, fixtures) is rule.yaml beside it."""

from __future__ import annotations

from collections.abc import Mapping

from fargate_audit.core.checks import CheckResult, check, domain_approved, normalize_domain, verdict

MAX_EVIDENCE_DOMAINS = 50


@check
def unapproved_domains(discovery: Mapping, params: Mapping) -> CheckResult:
    """EGR-01 (workload-discovery): a name the workload's tasks resolved matches no pattern
    of ``approved_domains`` nor the host of an ``approved_registries`` pattern. Evidence:
    the unapproved names (sorted, at most 50) and their count."""
    domains = list(params["approved_domains"])
    registries = list(params["approved_registries"])
    names = {normalize_domain(d.get("name")) for d in discovery.get("destinations") or []} - {""}
    unapproved = sorted(name for name in names if not domain_approved(name, domains, registries))
    evidence = {
        "unapproved_domains": unapproved[:MAX_EVIDENCE_DOMAINS],
        "unapproved_count": len(unapproved),
    }
    return verdict(bool(unapproved)), evidence

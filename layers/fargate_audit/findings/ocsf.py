"""OCSF Compliance Finding events (class_uid 2003) from postures and results: pure builders.

interface.md "HTML report and OCSF": ``scan --format ocsf`` writes a JSON array of OCSF
Compliance Finding events, one per (task, rule) result, valid against the published OCSF
schema of :data:`OCSF_VERSION` (tests/unit/test_ocsf.py checks every event against the
pinned ``pydantic-ocsf`` models, key by key).

What is shared with the ASFF builder (findings/asff.py), so both outputs say the same:
the workload-and-rule id (``asff.finding_id``), the rule's mapped standards
(``asff.related_requirements``: the ASFF ``RelatedRequirements`` lines), the finding types
and the resources a result names (``asff.task_resource``, ``workload_resources``,
``network_resources``), converted here from ASFF resource dicts to OCSF ``resource_details``.

``finding_info.uid``: the ASFF Id (one per workload and rule) plus ``/{task id}``. Each
event is one task's result, and the tasks of one workload may disagree (one FAILED, one
PASSED); a consumer keeps the latest event of a finding uid, so one shared uid would let a
passing task hide a failing one. The ASFF Id goes in ``metadata.correlation_uid``: every
task's event of one workload and rule carries it, and it is the Security Hub finding's Id.
Both are stable across scans (no clock, no counter in them).

No clock, no environment, no boto3: ``now`` comes in as an argument. No environment value
can reach an event: postures carry names only and the evidence summary drops value-like
keys (report.summarize_evidence); the raw evidence is not copied.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fargate_audit import __version__
from fargate_audit.core.report import summarize_evidence
from fargate_audit.findings import asff

if TYPE_CHECKING:
    from fargate_audit.core.rules import Catalog

OCSF_VERSION = "1.7.0"
PROFILES = ("cloud",)  # the `cloud` attribute comes from OCSF's cloud profile
PRODUCT_NAME = asff.PRODUCT_NAME
VENDOR_NAME = "fargate-audit"

CATEGORY_UID, CATEGORY_NAME = 2, "Findings"
CLASS_UID, CLASS_NAME = 2003, "Compliance Finding"
ACTIVITY_ID, ACTIVITY_NAME = 1, "Create"  # a scan has no memory of earlier scans: each event creates
TYPE_UID = CLASS_UID * 100 + ACTIVITY_ID
TYPE_NAME = f"{CLASS_NAME}: {ACTIVITY_NAME}"
PROVIDER = "AWS"
ACCOUNT_TYPE_ID, ACCOUNT_TYPE = 10, "AWS Account"
MAX_DESCRIPTION = 2048

SEVERITY = {
    "INFORMATIONAL": (1, "Informational"),
    "LOW": (2, "Low"),
    "MEDIUM": (3, "Medium"),
    "HIGH": (4, "High"),
    "CRITICAL": (5, "Critical"),
}

# Result status -> compliance.status_id / status (OCSF 1.7.0: 1 Pass, 2 Warning "did not
# yield a result due to missing information", 3 Fail, 99 Other with the source's word).
COMPLIANCE_STATUS = {
    "PASSED": (1, "Pass"),
    "FAILED": (3, "Fail"),
    "ERROR": (2, "Warning"),
    "NOT_APPLICABLE": (99, "Not Applicable"),
}

# The finding's own status is "set by the consumer" (OCSF: New, In Progress, Suppressed,
# Resolved, ...): a scan reports every finding New, as Prowler's OCSF output does; the
# result status (PASSED, FAILED, ERROR, NOT_APPLICABLE) is the event's status_code.
FINDING_STATUS_ID, FINDING_STATUS = 1, "New"

_STATUS_TEXT = {
    "PASSED": "passes this check",
    "FAILED": "fails this check",
    "ERROR": "could not be evaluated",
    "NOT_APPLICABLE": "is not subject to this check",
}


def epoch_ms(moment: datetime) -> int:
    """OCSF ``timestamp_t``: milliseconds since the epoch; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _task_id(task_arn: str) -> str:
    return task_arn.rsplit("/", 1)[-1]


def finding_uid(posture: Mapping[str, Any], rule_id: str) -> str:
    """``fargate-audit/{account}/{region}/{cluster}/{group}/{rule}/{task id}``: the ASFF Id
    of the task's workload and rule, then the task."""
    return f"{workload_uid(posture, rule_id)}/{_task_id(posture['task_arn'])}"


def workload_uid(posture: Mapping[str, Any], rule_id: str) -> str:
    """The ASFF finding Id of the task's workload and rule (``metadata.correlation_uid``)."""
    return asff.finding_id(
        posture["account_id"], posture["region"], posture["cluster_name"], posture["group"], rule_id
    )


# --------------------------------------------------------------------------- resources


def _resource_name(rtype: str, uid: str, details: Mapping[str, Any]) -> str:
    if rtype == "AwsElbv2LoadBalancer":  # ...:loadbalancer/app/NAME/ID
        parts = uid.split("/")
        return parts[-2] if len(parts) >= 3 else uid
    for key in ("Name", "GroupName"):
        if details.get(key):
            return str(details[key])
    return uid.rsplit("/", 1)[-1]


def resource_details(resource: Mapping[str, Any]) -> dict:
    """One ASFF resource (asff.task_resource & co.) as an OCSF ``resource_details``:
    ``uid`` the ARN, ``type`` the ASFF type name, ``data`` its ASFF details."""
    rtype = resource["Type"]
    details = (resource.get("Details") or {}).get(rtype) or {}
    out: dict[str, Any] = {
        "uid": resource["Id"],
        "name": _resource_name(rtype, resource["Id"], details),
        "type": rtype,
        "cloud_partition": resource["Partition"],
        "region": resource["Region"],
    }
    if details:
        out["data"] = dict(details)
    return out


def _resources(posture: dict, result: dict, requires: list[str], rule_id: str) -> list[dict]:
    """The task first, then its service (or task definition), then the network resources
    the rule evaluated or the evidence names (the same as an ASFF finding lists for it)."""
    found = [asff.task_resource(posture), *asff.workload_resources([posture])]
    found += asff.network_resources([(posture, result)], requires, rule_id)
    return [resource_details(r) for r in found]


# --------------------------------------------------------------------------- text


def _description(posture: dict, result: dict, rule: Any) -> str:
    workload = posture.get("workload") or f"{posture['cluster_name']}/{posture['group']}"
    status = result["status"]
    lead = f"Task {_task_id(posture['task_arn'])} of {workload} {_STATUS_TEXT.get(status, status)}"
    evidence = result.get("evidence") or {}
    line = summarize_evidence(evidence) if status in ("FAILED", "ERROR") else ""
    lead += f": {line}." if line else "."
    exempted = evidence.get("exempted")
    if isinstance(exempted, Mapping):
        lead += f" Exempted: {exempted.get('reason')} (until {exempted.get('expires')})."
    return asff.clip(f"{lead} {rule.description}", MAX_DESCRIPTION)


# --------------------------------------------------------------------------- builders


def build_event(
    posture: dict, result: dict, catalog: Catalog, now: datetime, version: str = __version__
) -> dict:
    """One Compliance Finding event for one task's result of one rule."""
    rule = catalog.rule(result["rule_id"])
    status = result["status"]
    if status not in COMPLIANCE_STATUS:
        raise ValueError(f"result of {rule.id} for {posture['task_arn']} has an unknown status {status!r}")
    severity_id, severity = SEVERITY[rule.severity]
    compliance_id, compliance_status = COMPLIANCE_STATUS[status]
    mapping = catalog.mappings.get(rule.id) or {}
    requirements, extra_types = asff.related_requirements(mapping)
    account, region = posture["account_id"], posture["region"]

    compliance: dict[str, Any] = {
        "control": rule.id,
        "status_id": compliance_id,
        "status": compliance_status,
        "status_code": status,
    }
    # OCSF: `standards` are the standards evaluated, `requirements` the requirements of
    # them (the ASFF RelatedRequirements lines); `status_details` (an array) replaces the
    # `status_detail` deprecated since 1.4.0
    if requirements:
        compliance["standards"] = asff.mapped_standards(mapping)
        compliance["requirements"] = requirements
    detail = summarize_evidence(result.get("evidence"))
    if detail:
        compliance["status_details"] = [detail]

    return {
        "activity_id": ACTIVITY_ID,
        "activity_name": ACTIVITY_NAME,
        "category_uid": CATEGORY_UID,
        "category_name": CATEGORY_NAME,
        "class_uid": CLASS_UID,
        "class_name": CLASS_NAME,
        "type_uid": TYPE_UID,
        "type_name": TYPE_NAME,
        "severity_id": severity_id,
        "severity": severity,
        "status_id": FINDING_STATUS_ID,
        "status": FINDING_STATUS,
        "status_code": status,
        "time": epoch_ms(now),
        "message": f"{rule.id} {status}: {rule.title}",
        "metadata": {
            "version": OCSF_VERSION,
            "profiles": list(PROFILES),
            "product": {"name": PRODUCT_NAME, "vendor_name": VENDOR_NAME, "version": version},
            "correlation_uid": workload_uid(posture, rule.id),
        },
        "cloud": {
            "provider": PROVIDER,
            "region": region,
            "cloud_partition": asff.arn_partition(posture["task_arn"]),
            "account": {"uid": account, "type_id": ACCOUNT_TYPE_ID, "type": ACCOUNT_TYPE},
        },
        "finding_info": {
            "uid": finding_uid(posture, rule.id),
            "title": asff.clip(rule.title, asff.MAX_TITLE),
            "desc": _description(posture, result, rule),
            "types": asff.finding_types(rule.id, extra_types),
        },
        "compliance": compliance,
        "remediation": {"desc": " ".join(rule.remediation.split())},
        "resources": _resources(posture, result, list(rule.requires), rule.id),
    }


def build_events(
    postures: list[dict], results: list[dict], catalog: Catalog, now: datetime, version: str = __version__
) -> list[dict]:
    """One event per (task, rule) result, sorted by finding uid (deterministic whatever the
    input order)."""
    by_task = {p["task_arn"]: p for p in postures}
    events = []
    for result in results:
        posture = by_task.get(result["task_arn"])
        if posture is None:
            raise ValueError(f"result for {result['task_arn']} has no posture")
        events.append(build_event(posture, result, catalog, now, version))
    return sorted(events, key=lambda e: e["finding_info"]["uid"])

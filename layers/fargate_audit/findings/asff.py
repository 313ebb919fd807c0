"""Security Hub findings (ASFF) from postures and results: pure builders.

interface.md "Security Hub findings" is the contract: one finding per workload
(cluster + task group) and rule, with a deterministic ``Id``; ``Compliance.Status``
aggregated over the workload's running tasks; ``Resources`` the service or task
definitions first, then the failing tasks (at most 20) and the network resources the
evidence names (32 in all). The writer that sends these to Security Hub lives elsewhere;
``finding_content_digest`` lets it re-import a finding only when its content changed.

No clock, no environment, no boto3: ``now`` and any previous findings come in as
arguments. No environment value can reach a finding: postures carry names only and the
evidence summary drops value-like keys (report.summarize_evidence).

The public helpers ``finding_id``, ``related_requirements``, ``finding_types``,
``task_resource``, ``workload_resources``, ``network_resources``, ``arn_partition`` and
``clip`` are shared with the OCSF builder (findings/ocsf.py): one place decides a
finding's id, its mapped standards and which resources a result names.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fargate_audit.core.facts import ASFF_RESOURCES
from fargate_audit.core.report import summarize_evidence
from fargate_audit.stores.keys import finding_id_prefix_for

if TYPE_CHECKING:
    from fargate_audit.core.rules import Catalog, Rule

SCHEMA_VERSION = "2018-10-08"
PRODUCT_NAME = "fargate-audit"
MAX_RESOURCES = 32
MAX_TASK_RESOURCES = 20
MAX_TITLE = 256
MAX_DESCRIPTION = 1024
MAX_REMEDIATION = 512
MAX_RELATED_REQUIREMENTS = 32
MAX_PRODUCT_FIELD_VALUE = 2048

TYPE_BEST_PRACTICES = "Software and Configuration Checks/AWS Security Best Practices"
TYPE_NETWORK_REACHABILITY = TYPE_BEST_PRACTICES + "/Network Reachability"
_STANDARDS_TYPE = "Software and Configuration Checks/Industry and Regulatory Standards/"

# rules/mappings.yaml framework keys -> (RelatedRequirements prefix, ASFF Types classifier
# under "Industry and Regulatory Standards"). Security Hub controls are related controls,
# not a standard this product reports for: they get a requirement line, no standards type.
_FRAMEWORKS = {
    "securityhub": ("AWS Security Hub control", None),
    "cis_aws_foundations": ("CIS AWS Foundations Benchmark", "CIS AWS Foundations Benchmark"),
    "nist_800_53_rev5": ("NIST.800-53.r5", "NIST 800-53 Controls (USA)"),
}

# Fields that are not "content": a finding is re-imported only when the rest changed.
# Workflow is owned by the customer once the finding exists (set only on creation).
_NOT_CONTENT = frozenset(
    {"CreatedAt", "UpdatedAt", "FirstObservedAt", "LastObservedAt", "ProcessedAt", "Workflow"}
)

_WORST_FIRST = ("FAILED", "ERROR", "PASSED")
_COMPLIANCE = {"FAILED": "FAILED", "ERROR": "NOT_AVAILABLE", "PASSED": "PASSED"}

# Posture facts (rule `requires`) -> which network resources of a failing task they
# implicate (each fact's ``asff_resources`` in core/facts.py).
_FACT_RESOURCES = ASFF_RESOURCES


# --------------------------------------------------------------------------- ids and time


def finding_id(account: str, region: str, cluster_name: str, group: str, rule_id: str) -> str:
    """``fargate-audit/{account}/{region}/{cluster_name}/{group}/{rule_id}`` (a custom task
    group's "/", "#" and "%" written %2F, %23, %25: keys.group_component)."""
    return finding_id_prefix_for(account, region, cluster_name, group) + rule_id


def generator_id(rule_id: str) -> str:
    return f"fargate-audit/{rule_id}"


def product_arn(account: str, region: str, partition: str = "aws") -> str:
    return f"arn:{partition}:securityhub:{region}:{account}:product/{account}/default"


def asff_time(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_asff_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def finding_content_digest(finding: Mapping[str, Any]) -> str:
    """sha256 over every field but the timestamps (and the customer-owned Workflow)."""
    content = {key: value for key, value in finding.items() if key not in _NOT_CONTENT}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- catalog


def related_requirements(mapping: Mapping[str, list[str]]) -> tuple[list[str], list[str]]:
    """(RelatedRequirements, extra ASFF Types) from one rule's compliance mappings
    (rules/mappings.yaml: ``{framework: [control, ...]}``)."""
    requirements: list[str] = []
    types: list[str] = []
    for framework, controls in mapping.items():
        prefix, classifier = _FRAMEWORKS.get(framework, (framework, None))
        requirements.extend(f"{prefix} {control}" for control in controls or [])
        if classifier and controls:
            types.append(_STANDARDS_TYPE + classifier)
    return requirements[:MAX_RELATED_REQUIREMENTS], types


def mapped_standards(mapping: Mapping[str, list[str]]) -> list[str]:
    """The standards a rule's compliance mappings name (one per framework with controls):
    ``AWS Security Hub control``, ``CIS AWS Foundations Benchmark``, ``NIST.800-53.r5``."""
    return [
        _FRAMEWORKS.get(framework, (framework, None))[0]
        for framework, controls in mapping.items()
        if controls
    ]


def finding_types(rule_id: str, extra: list[str]) -> list[str]:
    first = TYPE_NETWORK_REACHABILITY if rule_id.startswith("NET-") else TYPE_BEST_PRACTICES
    seen: list[str] = [first]
    for item in extra:
        if item not in seen:
            seen.append(item)
    return seen


# --------------------------------------------------------------------------- resources


def arn_partition(arn: str) -> str:
    return arn.split(":")[1] if arn.count(":") >= 5 else "aws"


def _revision(task_definition_arn: str) -> int:
    tail = task_definition_arn.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def _family(task_definition_arn: str) -> str:
    name = task_definition_arn.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0]


def _resource(rtype: str, rid: str, partition: str, region: str, details: dict | None = None) -> dict:
    resource = {"Type": rtype, "Id": rid, "Partition": partition, "Region": region}
    if details:
        resource["Details"] = {rtype: {k: v for k, v in details.items() if v not in (None, [], "")}}
    return resource


# an EC2 id: its prefix and 8 or 17 hex digits (a container named "sg-sidecar" or an image
# "subnet-router:1.4" is not one)
_EC2_ID = re.compile(r"^(sg|eni|subnet)-(?:[0-9a-f]{8}|[0-9a-f]{17})$")


def _ids_in(value: Any, prefix: str) -> set[str]:
    if isinstance(value, str):
        found = _EC2_ID.match(value)
        return {value} if found and value.startswith(prefix) else set()
    if isinstance(value, Mapping):
        return set().union(*(_ids_in(v, prefix) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_ids_in(v, prefix) for v in value)) if value else set()
    return set()


def network_resources(implicated: list[tuple[dict, dict]], requires: list[str], rule_id: str) -> list[dict]:
    """ENIs, security groups, subnets and load balancers named by the failing evidence, or
    implied by the facts the rule requires, for the implicated tasks."""
    kinds = {kind for fact in requires for kind in _FACT_RESOURCES.get(fact, ())}
    if not requires and rule_id.startswith("NET-"):
        kinds = {"eni", "subnet"}
    enis: dict[str, dict] = {}
    groups: dict[str, dict] = {}
    subnets: dict[str, dict] = {}
    load_balancers: dict[str, dict] = {}
    for posture, result in implicated:
        network = posture.get("network") or {}
        evidence = result.get("evidence") or {}
        partition = arn_partition(posture["task_arn"])
        region, account = posture["region"], posture["account_id"]
        if not kinds:  # a rule of no network fact (images, logs, configuration) names none
            evidence = {}
        named_groups = _ids_in(evidence, "sg-")
        attached = {sg.get("id"): sg.get("name") for sg in network.get("security_groups") or []}
        eni_ids = _ids_in(evidence, "eni-")
        if "eni" in kinds and network.get("eni_id"):
            eni_ids.add(network["eni_id"])
        for eni in eni_ids:
            details = {"NetworkInterfaceId": eni}
            if eni == network.get("eni_id"):
                details["SecurityGroups"] = [
                    {"GroupId": gid, "GroupName": name} if name else {"GroupId": gid}
                    for gid, name in sorted(attached.items())
                    if gid
                ]
                details["PublicIp"] = network.get("public_ipv4")
            arn = f"arn:{partition}:ec2:{region}:{account}:network-interface/{eni}"
            enis.setdefault(arn, _resource("AwsEc2NetworkInterface", arn, partition, region, details))
        group_ids = set(named_groups)
        if "security_groups" in kinds and not named_groups:
            group_ids |= {gid for gid in attached if gid}
        for gid in group_ids:
            arn = f"arn:{partition}:ec2:{region}:{account}:security-group/{gid}"
            details = {"GroupId": gid, "GroupName": attached.get(gid), "VpcId": network.get("vpc_id")}
            groups.setdefault(arn, _resource("AwsEc2SecurityGroup", arn, partition, region, details))
        subnet_ids = _ids_in(evidence, "subnet-")
        if "subnet" in kinds and network.get("subnet_id"):
            subnet_ids.add(network["subnet_id"])
        for sid in subnet_ids:
            arn = f"arn:{partition}:ec2:{region}:{account}:subnet/{sid}"
            details = {"SubnetId": sid, "VpcId": network.get("vpc_id")}
            subnets.setdefault(arn, _resource("AwsEc2Subnet", arn, partition, region, details))
        if "load_balancers" in kinds:  # those in front of the task that the evidence names
            exposures = evidence.get("exposures") or network.get("exposures") or []
            for exposure in exposures:
                arn = exposure.get("load_balancer_arn")
                details = {"Type": exposure.get("load_balancer_type"), "VpcId": network.get("vpc_id")}
                if arn:
                    load_balancers.setdefault(
                        arn, _resource("AwsElbv2LoadBalancer", arn, partition, region, details)
                    )
    return [found[k] for found in (enis, groups, subnets, load_balancers) for k in sorted(found)]


def _fit(network: list[dict], room: int) -> list[dict]:
    """At most ``room`` of the network resources, in their order: ENIs (one per task) give
    way first, so a finding of many tasks keeps the few security groups, subnets and load
    balancers its tasks share."""
    room = max(room, 0)  # a workload of many task definitions may fill the 32 itself
    if len(network) <= room:
        return network
    shared = [r for r in network if r["Type"] != "AwsEc2NetworkInterface"][:room]
    enis = [r for r in network if r["Type"] == "AwsEc2NetworkInterface"][: room - len(shared)]
    kept = {id(r) for r in shared + enis}
    return [r for r in network if id(r) in kept]


def workload_resources(postures: list[dict]) -> list[dict]:
    """The service, or for a standalone workload its distinct task definitions (newest
    revision first)."""
    first = postures[0]
    partition, region, account = arn_partition(first["task_arn"]), first["region"], first["account_id"]
    group = first["group"]
    if group.startswith("service:"):
        name = first.get("service_name") or group.split(":", 1)[1]
        arn = f"arn:{partition}:ecs:{region}:{account}:service/{first['cluster_name']}/{name}"
        details = {"Cluster": first["cluster_arn"], "Name": name}
        return [_resource("AwsEcsService", arn, partition, region, details)]
    arns = {p["task_definition_arn"] for p in postures}
    ordered = sorted(arns, key=lambda a: (-_revision(a), a))
    return [
        _resource("AwsEcsTaskDefinition", arn, partition, region, {"Family": _family(arn)}) for arn in ordered
    ]


def _normal_time(text: Any) -> str | None:
    """An ISO timestamp from a posture in ASFF's form; None when absent or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return asff_time(parse_asff_time(text))
    except ValueError:
        return None


def task_resource(posture: dict) -> dict:
    arn = posture["task_arn"]
    details = {
        "ClusterArn": posture["cluster_arn"],
        "TaskDefinitionArn": posture["task_definition_arn"],
        "Group": posture["group"],
        "StartedAt": _normal_time(posture.get("started_at")),
    }
    return _resource("AwsEcsTask", arn, arn_partition(arn), posture["region"], details)


# --------------------------------------------------------------------------- text


def clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _evidence_line(items: list[tuple[dict, dict]], limit: int = 3) -> str:
    counts = Counter(summarize_evidence(r.get("evidence")) for _, r in items)
    counts.pop("", None)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = [text if n == 1 or len(ranked) == 1 else f"{text} ({n} tasks)" for text, n in ranked[:limit]]
    more = f" (+{len(ranked) - limit} more variants)" if len(ranked) > limit else ""
    return " | ".join(shown) + more


def _description(rule: Rule, workload: str, status: str, by_status: dict[str, list], total: int) -> str:
    failed, errors, passed = by_status["FAILED"], by_status["ERROR"], by_status["PASSED"]
    if status == "FAILED":
        lead = f"{len(failed)} of {total} running tasks of {workload} fail this check"
        evidence = _evidence_line(failed)
        lead += f": {evidence}." if evidence else "."
        if errors:
            lead += f" {len(errors)} more could not be evaluated."
    elif status == "NOT_AVAILABLE":
        lead = f"{len(errors)} of {total} running tasks of {workload} could not be evaluated"
        evidence = _evidence_line(errors)
        lead += f": {evidence}." if evidence else "."
    else:  # no count: a task more or less of a compliant workload changes no content
        lead = f"Every evaluated running task of {workload} passes this check."
    exempted = [r for _, r in passed if (r.get("evidence") or {}).get("exempted")]
    if exempted:
        terms = [r["evidence"]["exempted"] for r in exempted]
        reasons = sorted({f"{t.get('reason')} (until {t.get('expires')})" for t in terms})
        # a PASSED finding names no count (a task more changes no content): the terms alone
        listed = "; ".join(reasons[:2])
        lead += f" Exempted: {listed}." if status == "PASSED" else f" {len(exempted)} exempted: {listed}."
    return clip(f"{lead} {rule.description}", MAX_DESCRIPTION)


# --------------------------------------------------------------------------- builders


def _previous_index(previous: Any) -> dict[str, dict]:
    if not previous:
        return {}
    if isinstance(previous, Mapping):
        return dict(previous)
    return {f["Id"]: f for f in previous}


def _updated_at(now: datetime, prior: dict | None) -> str:
    """``now``, but strictly after the previous UpdatedAt (interface.md)."""
    moment = now if now.tzinfo else now.replace(tzinfo=UTC)
    if prior and prior.get("UpdatedAt"):
        floor = parse_asff_time(prior["UpdatedAt"]) + timedelta(milliseconds=1)
        moment = max(moment.astimezone(UTC), floor)
    return asff_time(moment)


def archive_finding(prior: Mapping[str, Any], now: datetime) -> dict:
    """The ARCHIVED version of a finding the auditor no longer produces (its workload has
    no running task, or the rule became NOT_APPLICABLE to every task)."""
    finding = {key: value for key, value in prior.items() if key != "Workflow"}
    finding["RecordState"] = "ARCHIVED"
    finding["UpdatedAt"] = _updated_at(now, dict(prior))
    return finding


def build_finding(
    rule_id: str,
    items: list[tuple[dict, dict]],
    workload_postures: list[dict],
    catalog: Catalog,
    now: datetime,
    prior: dict | None = None,
) -> dict | None:
    """One finding for one workload and rule. ``items``: (posture, result) pairs of that
    rule for the workload's running tasks; ``workload_postures``: all its running tasks.
    None when the rule is NOT_APPLICABLE to every task."""
    by_status: dict[str, list[tuple[dict, dict]]] = {s: [] for s in (*_WORST_FIRST, "NOT_APPLICABLE")}
    for posture, result in items:
        by_status.setdefault(result["status"], []).append((posture, result))
    worst = next((s for s in _WORST_FIRST if by_status[s]), None)
    if worst is None:
        return None
    compliance = _COMPLIANCE[worst]
    first = workload_postures[0]
    workload = first.get("workload") or f"{first['cluster_name']}/{first['group']}"
    rule = catalog.rule(rule_id)

    implicated = {"FAILED": by_status["FAILED"], "NOT_AVAILABLE": by_status["ERROR"]}.get(compliance, [])
    implicated = sorted(implicated, key=lambda pr: pr[0]["task_arn"])[:MAX_TASK_RESOURCES]
    # a standalone workload's task definitions (newest first) leave room for its failing
    # tasks: 40 revisions running would otherwise fill the 32 resources and name no task
    resources = workload_resources(workload_postures)[: max(1, MAX_RESOURCES - len(implicated))]
    resources += [task_resource(p) for p, _ in implicated]
    resources += _fit(
        network_resources(implicated, list(rule.requires), rule_id), MAX_RESOURCES - len(resources)
    )

    total = len({p["task_arn"] for p, _ in items})
    # The task counts of a FAILED or NOT_AVAILABLE finding; a PASSED finding has none, so
    # that starting or stopping a task of a compliant workload changes no content and
    # re-imports nothing (each import is a billed ingestion event: aws-limits.md).
    product_fields = {}
    if compliance != "PASSED":
        product_fields = {
            "fargate-audit/TasksEvaluated": str(total),
            "fargate-audit/TasksFailed": str(len(by_status["FAILED"])),
            "fargate-audit/TasksError": str(len(by_status["ERROR"])),
            "fargate-audit/TasksPassed": str(len(by_status["PASSED"])),
            "fargate-audit/TasksNotApplicable": str(len(by_status["NOT_APPLICABLE"])),
        }
    evidence = _evidence_line(by_status["FAILED"] or by_status["ERROR"], limit=10)
    if evidence:
        product_fields["fargate-audit/Evidence"] = clip(evidence, MAX_PRODUCT_FIELD_VALUE)
    description = _description(rule, workload, compliance, by_status, total)
    return _finding(
        catalog, rule, first, workload, now, prior, description, product_fields, compliance, resources
    )


def _finding(
    catalog: Catalog,
    rule: Any,
    first: dict,
    workload: str,
    now: datetime,
    prior: dict | None,
    description: str,
    product_fields: dict[str, str],
    compliance: str,
    resources: list[dict],
) -> dict:
    """The one ASFF shape of every finding (posture and discovery rules alike): Id,
    product, types, timestamps (kept from ``prior``; UpdatedAt strictly after it),
    severity, remediation, compliance with the rule's mapped requirements, and Workflow
    NEW only on creation. ``product_fields`` are added after the identifying ones."""
    account, region, partition = first["account_id"], first["region"], arn_partition(first["task_arn"])
    requirements, extra_types = related_requirements(catalog.mappings.get(rule.id) or {})
    stamp = asff_time(now)
    compliance_field: dict[str, Any] = {"Status": compliance}
    if requirements:
        compliance_field["RelatedRequirements"] = requirements
    finding: dict[str, Any] = {
        "SchemaVersion": SCHEMA_VERSION,
        "Id": finding_id(account, region, first["cluster_name"], first["group"], rule.id),
        "ProductArn": product_arn(account, region, partition),
        "ProductName": PRODUCT_NAME,
        "GeneratorId": generator_id(rule.id),
        "AwsAccountId": account,
        "Region": region,
        "Types": finding_types(rule.id, extra_types),
        "CreatedAt": (prior or {}).get("CreatedAt") or stamp,
        "UpdatedAt": _updated_at(now, prior),
        "FirstObservedAt": (prior or {}).get("FirstObservedAt") or stamp,
        "LastObservedAt": stamp,
        "Severity": {"Label": rule.severity},
        "Title": clip(rule.title, MAX_TITLE),
        "Description": description,
        "Remediation": {"Recommendation": {"Text": clip(rule.remediation, MAX_REMEDIATION)}},
        "ProductFields": {
            "fargate-audit/RuleId": rule.id,
            "fargate-audit/Workload": workload,
            "fargate-audit/Cluster": first["cluster_arn"],
            "fargate-audit/Group": first["group"],
            **product_fields,
        },
        "Compliance": compliance_field,
        "RecordState": "ACTIVE",
        "Resources": resources[:MAX_RESOURCES],
    }
    # The provider's own severity and types (BatchImportFindings: providers update these
    # through FindingProviderFields; the top-level ones are the customer's to change with
    # BatchUpdateFindings, which Security Hub then keeps)
    finding["FindingProviderFields"] = {
        "Severity": dict(finding["Severity"]),
        "Types": list(finding["Types"]),
    }
    if prior is None:
        finding["Workflow"] = {"Status": "NEW"}
    return finding


def build_findings(
    postures: list[dict],
    results: list[dict],
    catalog: Catalog,
    now: datetime,
    previous: Mapping[str, dict] | Iterable[dict] | None = None,
) -> list[dict]:
    """Findings for the workloads of ``postures`` (their running tasks), sorted by Id.

    ``previous``: the findings last imported (``{Id: finding}`` or a list), when known.
    A finding already there keeps its CreatedAt/FirstObservedAt, gets no Workflow (the
    customer owns it) and an UpdatedAt strictly after the previous one. A previous ACTIVE
    finding of one of these workloads whose rule is now NOT_APPLICABLE to every task is
    returned ARCHIVED. Workloads absent from ``postures`` are not touched (see
    ``archive_finding``).
    """
    by_task = {p["task_arn"]: p for p in postures}
    workloads: dict[tuple, list[dict]] = {}
    for posture in postures:
        key = (posture["account_id"], posture["region"], posture["cluster_arn"], posture["group"])
        workloads.setdefault(key, []).append(posture)
    grouped: dict[tuple, dict[str, list[tuple[dict, dict]]]] = {}
    for result in results:
        posture = by_task.get(result["task_arn"])
        if posture is None:
            raise ValueError(f"result for {result['task_arn']} has no posture")
        key = (posture["account_id"], posture["region"], posture["cluster_arn"], posture["group"])
        grouped.setdefault(key, {}).setdefault(result["rule_id"], []).append((posture, result))

    prior_index = _previous_index(previous)
    findings: list[dict] = []
    for key in sorted(grouped):
        members = sorted(workloads[key], key=lambda p: p["task_arn"])
        for rule_id in sorted(grouped[key]):
            first = members[0]
            fid = finding_id(
                first["account_id"], first["region"], first["cluster_name"], first["group"], rule_id
            )
            prior = prior_index.get(fid)
            finding = build_finding(rule_id, grouped[key][rule_id], members, catalog, now, prior)
            if finding is not None:
                findings.append(finding)
            elif prior is not None and prior.get("RecordState") != "ARCHIVED":
                findings.append(archive_finding(prior, now))
    return sorted(findings, key=lambda f: f["Id"])


def _unresolved_lead(evidence: Mapping, workload: str, status: str) -> tuple[str, dict]:
    """EGR-03's lead sentence and product fields: the addresses with protocol, port and bytes."""
    count = int(evidence.get("unresolved_count") or 0)
    if status != "FAILED":
        return (
            f"Every internet address the tasks of {workload} sent traffic to in flow logs was named "
            "by a DNS answer or is approved.",
            {"fargate-audit/UnresolvedAddresses": "0"},
        )
    shown = ", ".join(
        f"{d.get('address')} {d.get('protocol')}/{d.get('port')} ({d.get('bytes_out')} bytes)"
        for d in list(evidence.get("unresolved_destinations") or [])[:10]
    )
    more = f" (+{count - 10} more)" if count > 10 else ""
    addresses = int(evidence.get("unresolved_addresses") or count)
    lead = (
        f"Tasks of {workload} sent {evidence.get('unresolved_bytes_out', 0)} bytes to {addresses} internet "
        f"address{'' if addresses == 1 else 'es'} ({count} address, protocol and port "
        f"destination{'' if count == 1 else 's'}) no DNS answer named: {shown}{more}."
    )
    return lead, {"fargate-audit/UnresolvedAddresses": str(addresses)}


def build_discovery_finding(
    result: Mapping[str, Any],
    workload_postures: list[dict],
    catalog: Catalog,
    now: datetime,
    prior: dict | None = None,
) -> dict:
    """The finding of a workload-discovery rule (EGR-01, EGR-03) for one workload.

    ``result``: :func:`engine.evaluate_discovery`'s result for the workload (PASSED,
    FAILED, or ERROR: NOT_AVAILABLE naming why; the evidence names the unapproved domains,
    or for EGR-03 the unresolved addresses); ``workload_postures``: the
    workload's running tasks (for the service / task definition resources and its ids).
    Same Id, product, types and compliance fields as a posture rule's finding; the
    resources are the workload's own (DNS logs name addresses, not ENIs or groups)."""
    rule_id = result["rule_id"]
    rule = catalog.rule(rule_id)
    first = sorted(workload_postures, key=lambda p: p["task_arn"])[0]
    workload = first.get("workload") or f"{first['cluster_name']}/{first['group']}"
    status = _COMPLIANCE.get(result["status"], "PASSED")  # ERROR: NOT_AVAILABLE, never PASSED
    evidence = result.get("evidence") or {}
    if status == "NOT_AVAILABLE":
        why = evidence.get("error") or "no reason given"
        lead = f"The tasks of {workload} could not be evaluated: {why}."
        product_fields = {}
    elif "unresolved_count" in evidence:  # EGR-03
        lead, product_fields = _unresolved_lead(evidence, workload, status)
    else:
        domains = list(evidence.get("unapproved_domains") or [])
        count = int(evidence.get("unapproved_count") or len(domains))
        if status == "FAILED":
            shown = ", ".join(domains[:10]) + (f" (+{count - 10} more)" if count > 10 else "")
            lead = (
                f"Tasks of {workload} resolved {count} domain{'' if count == 1 else 's'} "
                f"no approved pattern matches: {shown}."
            )
        else:
            lead = f"Every domain the tasks of {workload} were seen resolving is approved."
        product_fields = {"fargate-audit/UnapprovedDomains": str(count)}
    exempted = evidence.get("exempted")
    if isinstance(exempted, Mapping):
        lead += f" Exempted: {exempted.get('reason')} (until {exempted.get('expires')})."
    line = summarize_evidence(evidence, limit=MAX_PRODUCT_FIELD_VALUE)
    if line and status in ("FAILED", "NOT_AVAILABLE"):
        product_fields["fargate-audit/Evidence"] = line
    description = clip(f"{lead} {rule.description}", MAX_DESCRIPTION)
    resources = workload_resources(sorted(workload_postures, key=lambda p: p["task_arn"]))
    return _finding(
        catalog, rule, first, workload, now, prior, description, product_fields, status, resources
    )

"""OCSF Compliance Finding events (interface.md "HTML report and OCSF"): findings/ocsf.py,
validated against the published OCSF schema pinned by pydantic-ocsf (support.ocsf_check)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest
from fargate_audit import __version__
from fargate_audit.core import rules
from fargate_audit.findings import asff, ocsf
from fargate_audit.local import demo, estate
from support import ocsf_check
from support.postures import BASE_POSTURE

NOW = datetime(2025, 3, 4, 5, 6, 7, 891000, tzinfo=UTC)
CATALOG = rules.load_catalog()


@pytest.fixture(scope="module")
def demo_events():
    run = demo.build_and_scan()
    outcome = run.outcome
    events = ocsf.build_events(outcome.postures, outcome.results, CATALOG, outcome.now)
    return outcome, events


def posture(n: int = 1, group: str = "service:web") -> dict:
    p = copy.deepcopy(BASE_POSTURE)
    p["task_arn"] = p["task_arn"].rsplit("/", 1)[0] + f"/task{n:030d}"
    p["group"] = group
    p["workload"] = f"{p['cluster_name']}/{group}"
    return p


def result(p: dict, rule_id: str, status: str, **evidence) -> dict:
    rule = CATALOG.rule(rule_id)
    return {
        "task_arn": p["task_arn"],
        "rule_id": rule_id,
        "status": status,
        "severity": rule.severity,
        "title": rule.title,
        "evidence": evidence,
    }


def event_of(p: dict, rule_id: str, status: str, **evidence) -> dict:
    return ocsf.build_event(p, result(p, rule_id, status, **evidence), CATALOG, NOW)


# --------------------------------------------------------------------------- the schema


def test_every_result_of_the_demo_scan_is_one_valid_compliance_finding(demo_events):
    outcome, events = demo_events
    assert len(events) == len(outcome.results) > 100
    found = {e["compliance"]["status_code"] for e in events}
    assert {"PASSED", "FAILED", "NOT_APPLICABLE"} <= found
    for event in events:
        assert ocsf_check.problems(event) == [], event["finding_info"]["uid"]


def test_the_strict_check_catches_what_the_models_let_through():
    good = event_of(posture(), "NET-02", "FAILED", open_ports=[{"protocol": "tcp", "from": 22, "to": 22}])
    assert ocsf_check.problems(good) == []
    for change, expected in (
        (lambda e: e["finding_info"].update(bogus=1), "event.finding_info.bogus: not an attribute"),
        (lambda e: e["resources"][0].update(arn="x"), "event.resources[0].arn: not an attribute"),
        (lambda e: e["cloud"].update(acount="1"), "event.cloud.acount: not an attribute of Cloud"),
        (lambda e: e.update(cloud_account="1"), "event.cloud_account: not an attribute"),
        (lambda e: e["compliance"].update(status_id=7), "event.compliance.status_id: 7 is not"),
        (lambda e: e.update(status_id=9), "event.status_id: 9 is not"),
        (lambda e: e.update(severity="Low"), "event.severity: 'Low', the caption of severity_id"),
        (lambda e: e.update(type_uid=200399), "event.type_uid"),
        (lambda e: e["metadata"].update(version="1.1.0"), "event.metadata.version"),
        (lambda e: e["finding_info"].update(types="one"), "event.finding_info.types"),
    ):
        bad = copy.deepcopy(good)
        change(bad)
        assert any(line.startswith(expected) for line in ocsf_check.problems(bad)), expected
    without_profile = copy.deepcopy(good)
    without_profile["metadata"]["profiles"] = []
    assert any(p.startswith("event.cloud: not an attribute") for p in ocsf_check.problems(without_profile))


def test_class_category_type_time_metadata_and_cloud():
    event = event_of(posture(), "NET-01", "FAILED")
    assert (event["class_uid"], event["category_uid"], event["activity_id"], event["type_uid"]) == (
        2003,
        2,
        1,
        200301,
    )
    assert event["time"] == int(NOW.timestamp() * 1000) == 1741064767891
    assert event["metadata"]["version"] == ocsf.OCSF_VERSION == ocsf_check.OCSF_VERSION
    assert event["metadata"]["product"] == {
        "name": "fargate-audit",
        "vendor_name": "fargate-audit",
        "version": __version__,
    }
    assert "cloud" in event["metadata"]["profiles"]
    p = posture()
    assert event["cloud"]["provider"] == "AWS"
    assert event["cloud"]["region"] == p["region"]
    assert event["cloud"]["account"]["uid"] == p["account_id"]


@pytest.mark.parametrize("severity,expected", [("CRITICAL", (5, "Critical")), ("LOW", (2, "Low"))])
def test_severity_comes_from_the_rule(severity, expected):
    rule_id = next(r.id for r in CATALOG.rules if r.severity == severity)
    event = event_of(posture(), rule_id, "FAILED")
    assert (event["severity_id"], event["severity"]) == expected


# --------------------------------------------------------------------------- compliance


@pytest.mark.parametrize(
    "status,status_id,caption",
    [
        ("PASSED", 1, "Pass"),
        ("FAILED", 3, "Fail"),
        ("ERROR", 2, "Warning"),
        ("NOT_APPLICABLE", 99, "Not Applicable"),
    ],
)
def test_result_status_maps_to_the_compliance_status(status, status_id, caption):
    evidence = {"error": "eni: DescribeNetworkInterfaces: AccessDenied"} if status == "ERROR" else {}
    event = event_of(posture(), "NET-03", status, **evidence)
    assert event["compliance"]["status_id"] == status_id
    assert event["compliance"]["status"] == caption
    assert event["compliance"]["status_code"] == event["status_code"] == status
    assert (event["status_id"], event["status"]) == (1, "New")  # set by the consumer from here on
    assert ocsf_check.problems(event) == []


def test_an_unknown_status_is_refused():
    with pytest.raises(ValueError, match="unknown status"):
        event_of(posture(), "NET-03", "MAYBE")


def test_a_failed_net02_event_names_its_network_resources_and_the_rules_standards():
    p = posture()
    event = event_of(p, "NET-02", "FAILED", open_ports=[{"protocol": "tcp", "from": 22, "to": 22}])
    compliance = event["compliance"]
    assert compliance["control"] == "NET-02"
    requirements, extra_types = asff.related_requirements(CATALOG.mappings["NET-02"])
    assert compliance["requirements"] == requirements  # the requirements evaluated ...
    assert any(line.startswith("NIST.800-53.r5 ") for line in compliance["requirements"])
    assert compliance["standards"] == ["AWS Security Hub control", "NIST.800-53.r5"]  # ... of these
    assert compliance["status_details"] == ["open tcp 22"] and "status_detail" not in compliance
    assert event["finding_info"]["types"] == asff.finding_types("NET-02", extra_types)
    network = p["network"]
    by_type = {}
    for resource in event["resources"]:
        by_type.setdefault(resource["type"], []).append(resource)
    assert event["resources"][0]["type"] == "AwsEcsTask"
    assert event["resources"][0]["uid"] == p["task_arn"]
    assert [r["uid"] for r in by_type["AwsEcsService"]] == [
        f"arn:aws:ecs:{p['region']}:{p['account_id']}:service/{p['cluster_name']}/web"
    ]
    (eni,) = by_type["AwsEc2NetworkInterface"]
    assert eni["uid"].endswith(f":network-interface/{network['eni_id']}")
    assert eni["name"] == network["eni_id"]
    assert {r["data"]["GroupId"] for r in by_type["AwsEc2SecurityGroup"]} == {
        sg["id"] for sg in network["security_groups"]
    }
    (subnet,) = by_type["AwsEc2Subnet"]
    assert subnet["uid"].endswith(f":subnet/{network['subnet_id']}")
    for resource in event["resources"]:
        assert (resource["region"], resource["cloud_partition"]) == (p["region"], "aws")


def test_the_demo_net02_failures_and_load_balancer_rules_name_their_resources(demo_events):
    _, events = demo_events
    net02 = [e for e in events if e["compliance"]["control"] == "NET-02" and e["status_code"] == "FAILED"]
    assert net02
    for event in net02:
        types = {r["type"] for r in event["resources"]}
        assert {"AwsEcsTask", "AwsEc2NetworkInterface", "AwsEc2SecurityGroup", "AwsEc2Subnet"} <= types
        assert event["compliance"]["standards"]
    fronted = [
        e
        for e in events
        if e["compliance"]["control"] in ("NET-11", "NET-12") and e["status_code"] == "FAILED"
    ]
    assert fronted
    for event in fronted:
        balancers = [r for r in event["resources"] if r["type"] == "AwsElbv2LoadBalancer"]
        assert balancers and all(":loadbalancer/" in r["uid"] for r in balancers)


def test_a_rule_on_containers_names_no_network_resource():
    event = event_of(posture(), "CFG-02", "FAILED")
    assert [r["type"] for r in event["resources"]] == ["AwsEcsTask", "AwsEcsService"]


def test_a_standalone_task_names_its_task_definition():
    p = posture(group="family:batch")
    event = event_of(p, "CFG-02", "PASSED")
    assert [r["type"] for r in event["resources"]] == ["AwsEcsTask", "AwsEcsTaskDefinition"]
    assert event["resources"][1]["uid"] == p["task_definition_arn"]


# --------------------------------------------------------------------------- ids


def test_finding_uid_is_the_asff_id_of_the_workload_and_rule_then_the_task():
    p = posture(7)
    event = event_of(p, "NET-03", "FAILED")
    workload_id = asff.finding_id(p["account_id"], p["region"], p["cluster_name"], p["group"], "NET-03")
    assert event["metadata"]["correlation_uid"] == workload_id
    assert event["finding_info"]["uid"] == f"{workload_id}/{p['task_arn'].rsplit('/', 1)[1]}"


def test_uids_are_stable_across_scans_and_distinct_per_task(demo_events):
    outcome, events = demo_events
    later = ocsf.build_events(
        list(reversed(outcome.postures)),
        list(reversed(outcome.results)),
        CATALOG,
        datetime(2030, 1, 1, tzinfo=UTC),
    )
    assert [e["finding_info"]["uid"] for e in later] == [e["finding_info"]["uid"] for e in events]
    assert [e["metadata"]["correlation_uid"] for e in later] == [
        e["metadata"]["correlation_uid"] for e in events
    ]
    uids = [e["finding_info"]["uid"] for e in events]
    assert len(set(uids)) == len(uids)
    # Tasks of one workload share the correlation uid (the ASFF Id), one per workload and rule.
    correlations = {e["metadata"]["correlation_uid"] for e in events}
    assert len(correlations) < len(uids)
    asff_ids = {f["Id"] for f in asff.build_findings(outcome.postures, outcome.results, CATALOG, outcome.now)}
    applicable = {e["metadata"]["correlation_uid"] for e in events if e["status_code"] != "NOT_APPLICABLE"}
    assert applicable <= correlations
    assert applicable == asff_ids


def test_two_tasks_of_one_workload_disagreeing_stay_two_findings():
    a, b = posture(1), posture(2)
    events = ocsf.build_events(
        [a, b], [result(a, "NET-03", "FAILED"), result(b, "NET-03", "PASSED")], CATALOG, NOW
    )
    assert len({e["finding_info"]["uid"] for e in events}) == 2
    assert len({e["metadata"]["correlation_uid"] for e in events}) == 1
    assert sorted(e["compliance"]["status"] for e in events) == ["Fail", "Pass"]


def test_events_are_sorted_and_a_result_without_posture_is_an_error():
    a, b = posture(1), posture(2)
    results = [result(b, "NET-03", "PASSED"), result(a, "NET-01", "FAILED")]
    events = ocsf.build_events([b, a], results, CATALOG, NOW)
    assert [e["finding_info"]["uid"] for e in events] == sorted(e["finding_info"]["uid"] for e in events)
    with pytest.raises(ValueError, match="has no posture"):
        ocsf.build_events([a], results, CATALOG, NOW)


# --------------------------------------------------------------------------- secrets


def test_no_environment_value_reaches_an_event(demo_events):
    outcome, events = demo_events
    text = json.dumps(events)
    assert estate.CANARY_SECRET not in text
    assert "DB_PASSWORD" in text  # the name is reported (CFG-02), its value never
    # Value-like evidence keys (report.summarize_evidence) never reach an event either.
    leaky = event_of(
        posture(),
        "CFG-02",
        "FAILED",
        variables=[{"container": "app", "name": "TOKEN", "value": estate.CANARY_SECRET}],
        values=[estate.CANARY_SECRET],
    )
    assert "TOKEN" in json.dumps(leaky)
    assert estate.CANARY_SECRET not in json.dumps(leaky)

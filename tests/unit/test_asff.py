"""Security Hub findings (interface.md "Security Hub findings"): pure ASFF builders."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import botocore.session
import pytest
from botocore.validate import ParamValidator
from fargate_audit.core import posture
from fargate_audit.core.rules import Catalog, Rule, registered_checks
from fargate_audit.findings import asff

ACCOUNT = "123456789012"
REGION = "eu-west-1"
NOW = datetime(2025, 3, 4, 5, 6, 7, 891000, tzinfo=UTC)
CANARY = "CANARY-ENV-VALUE-7f3a"


def make_rule(rule_id: str, severity: str = "HIGH", requires: tuple[str, ...] = ()) -> Rule:
    return Rule(
        id=rule_id,
        title=f"Title of {rule_id}",
        severity=severity,
        description=f"Description of {rule_id}.",
        remediation=f"Fix {rule_id}.",
        requires=requires,
        check="public_address",
        applicability=None,
        parameters=(),
        fixtures={},
    )


CATALOG = Catalog(
    rules=(
        make_rule("CFG-02", "HIGH", ("containers",)),
        make_rule("NET-01", "HIGH", ("eni",)),
        make_rule("NET-03", "MEDIUM", ("security_groups",)),
        make_rule("NET-05", "HIGH", ("eni", "egress")),
        make_rule("NET-10", "LOW", ("containers", "vpc_endpoints")),
    ),
    parameters={},
    mappings={
        "NET-03": {
            "securityhub": ["EC2.18"],
            "cis_aws_foundations": ["v3.0.0/5.2"],
            "nist_800_53_rev5": ["AC-4", "SC-7"],
        }
    },
    rules_dir=Path("/nonexistent"),
)


def make_posture(n: int, group: str = "service:web", cluster: str = "prod", revision: int = 3, **net) -> dict:
    family = group.split(":", 1)[1]
    network = {
        "eni_id": f"eni-{n:04d}",
        "private_ip": f"10.0.0.{n % 250}",
        "subnet_id": f"subnet-{n % 2}",
        "vpc_id": "vpc-1",
        "public_ipv4": None,
        "ipv6_addresses": [],
        "public_address": {"ipv4": False, "ipv6": False},
        "security_groups": [{"id": "sg-web", "name": "web"}],
        "egress": {"ipv4": {"path": "none", "targets": []}, "ipv6": {"path": "none", "targets": []}},
    }
    network.update(net)
    return {
        "posture_version": 1,
        "task_arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{cluster}/{n:032x}",
        "cluster_arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{cluster}",
        "cluster_name": cluster,
        "account_id": ACCOUNT,
        "region": REGION,
        "group": group,
        "workload": f"{cluster}/{group}",
        "service_name": family if group.startswith("service:") else None,
        "task_definition_arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{revision}",
        "launch_type": "FARGATE",
        "last_status": "RUNNING",
        "started_at": "2025-03-04T04:00:00+00:00",
        "containers": [],
        "environment": [],
        "network": network,
        "errors": {},
    }


def res(p: dict, rule_id: str, status: str, **evidence) -> dict:
    rule = CATALOG.rule(rule_id)
    return {
        "task_arn": p["task_arn"],
        "rule_id": rule_id,
        "status": status,
        "severity": rule.severity,
        "title": rule.title,
        "evidence": evidence,
    }


OPEN_22 = [{"protocol": "tcp", "from": 22, "to": 22}]


def service_of_three():
    postures = [make_posture(i) for i in (1, 2, 3)]
    results = [res(p, "NET-03", "FAILED", open_ports=OPEN_22, security_groups=["sg-web"]) for p in postures]
    results += [res(p, "NET-01", "PASSED", public_ip=[]) for p in postures]
    return postures, results


@pytest.fixture(scope="module")
def finding_shape():
    model = botocore.session.get_session().get_service_model("securityhub")
    return model.operation_model("BatchImportFindings").input_shape


def assert_valid_for_boto3(findings, shape):
    report = ParamValidator().validate({"Findings": findings}, shape)
    assert not report.has_errors(), report.generate_report()


def by_rule(findings):
    return {f["ProductFields"]["fargate-audit/RuleId"]: f for f in findings}


# --------------------------------------------------------------------------- identity


def test_finding_id_generator_and_product_arn_follow_the_interface():
    postures, results = service_of_three()
    finding = by_rule(asff.build_findings(postures, results, CATALOG, NOW))["NET-03"]
    assert finding["Id"] == f"fargate-audit/{ACCOUNT}/{REGION}/prod/service:web/NET-03"
    assert finding["GeneratorId"] == "fargate-audit/NET-03"
    assert finding["ProductArn"] == f"arn:aws:securityhub:{REGION}:{ACCOUNT}:product/{ACCOUNT}/default"
    assert finding["AwsAccountId"] == ACCOUNT
    assert finding["Region"] == REGION


def test_findings_are_deterministic_whatever_the_input_order():
    postures, results = service_of_three()
    first = asff.build_findings(postures, results, CATALOG, NOW)
    again = asff.build_findings(list(reversed(postures)), list(reversed(results)), CATALOG, NOW)
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)


def test_a_three_task_service_gives_one_finding_per_rule():
    postures, results = service_of_three()
    findings = asff.build_findings(postures, results, CATALOG, NOW)
    assert sorted(f["Id"].rsplit("/", 1)[1] for f in findings) == ["NET-01", "NET-03"]
    assert len({f["Id"] for f in findings}) == 2


def test_each_workload_gets_its_own_finding():
    web = [make_posture(1), make_posture(2)]
    batch = [make_posture(3, group="family:batch")]
    other_cluster = [make_posture(4, cluster="stage")]
    postures = web + batch + other_cluster
    results = [res(p, "NET-01", "FAILED", public_ip=["54.0.0.1"]) for p in postures]
    ids = [f["Id"] for f in asff.build_findings(postures, results, CATALOG, NOW)]
    assert ids == [
        f"fargate-audit/{ACCOUNT}/{REGION}/prod/family:batch/NET-01",
        f"fargate-audit/{ACCOUNT}/{REGION}/prod/service:web/NET-01",
        f"fargate-audit/{ACCOUNT}/{REGION}/stage/service:web/NET-01",
    ]


# --------------------------------------------------------------------------- compliance


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["FAILED", "ERROR", "PASSED"], "FAILED"),
        (["PASSED", "PASSED", "FAILED"], "FAILED"),
        (["ERROR", "PASSED", "NOT_APPLICABLE"], "NOT_AVAILABLE"),
        (["PASSED", "NOT_APPLICABLE", "NOT_APPLICABLE"], "PASSED"),
        (["PASSED", "PASSED", "PASSED"], "PASSED"),
    ],
)
def test_compliance_status_aggregates_failed_over_error_over_passed(statuses, expected):
    postures = [make_posture(i) for i in range(len(statuses))]
    results = [res(p, "NET-01", s) for p, s in zip(postures, statuses, strict=True)]
    (finding,) = asff.build_findings(postures, results, CATALOG, NOW)
    assert finding["Compliance"]["Status"] == expected
    assert finding["RecordState"] == "ACTIVE"


def test_a_rule_not_applicable_to_every_task_gets_no_finding():
    postures = [make_posture(i) for i in (1, 2)]
    results = [res(p, "NET-10", "NOT_APPLICABLE") for p in postures]
    results += [res(p, "NET-01", "PASSED") for p in postures]
    findings = asff.build_findings(postures, results, CATALOG, NOW)
    assert [f["ProductFields"]["fargate-audit/RuleId"] for f in findings] == ["NET-01"]


def test_a_previous_finding_of_a_now_not_applicable_rule_is_archived():
    postures = [make_posture(1)]
    earlier = asff.build_findings(postures, [res(postures[0], "NET-10", "FAILED")], CATALOG, NOW)
    later = NOW + timedelta(hours=1)
    (archived,) = asff.build_findings(
        postures, [res(postures[0], "NET-10", "NOT_APPLICABLE")], CATALOG, later, previous=earlier
    )
    assert archived["Id"] == earlier[0]["Id"]
    assert archived["RecordState"] == "ARCHIVED"
    assert "Workflow" not in archived
    assert archived["UpdatedAt"] == asff.asff_time(later)


def test_archive_finding_marks_archived_with_a_later_updated_at():
    postures, results = service_of_three()
    finding = asff.build_findings(postures, results, CATALOG, NOW)[0]
    archived = asff.archive_finding(finding, NOW)  # same clock: still strictly later
    assert archived["RecordState"] == "ARCHIVED"
    assert archived["UpdatedAt"] > finding["UpdatedAt"]
    assert finding["RecordState"] == "ACTIVE"  # input untouched


def test_severity_title_remediation_and_product_fields_come_from_the_rule():
    postures, results = service_of_three()
    finding = by_rule(asff.build_findings(postures, results, CATALOG, NOW))["NET-03"]
    assert finding["Severity"]["Label"] == "MEDIUM"
    assert finding["Title"] == "Title of NET-03"
    assert finding["Remediation"]["Recommendation"]["Text"] == "Fix NET-03."
    assert finding["ProductFields"]["fargate-audit/RuleId"] == "NET-03"
    assert finding["ProductFields"]["fargate-audit/Workload"] == "prod/service:web"
    assert finding["ProductFields"]["fargate-audit/TasksFailed"] == "3"
    assert "3 of 3 running tasks of prod/service:web fail" in finding["Description"]
    assert "open tcp 22" in finding["Description"]
    assert "Description of NET-03." in finding["Description"]


def test_the_provider_states_severity_and_types_in_finding_provider_fields(finding_shape):
    """BatchImportFindings: providers update Severity and Types through FindingProviderFields
    (the top-level ones are the customer's, changed with BatchUpdateFindings)."""
    postures, results = service_of_three()
    findings = asff.build_findings(postures, results, CATALOG, NOW)
    for finding in findings:
        assert finding["FindingProviderFields"] == {
            "Severity": finding["Severity"],
            "Types": finding["Types"],
        }
    assert by_rule(findings)["NET-03"]["FindingProviderFields"]["Severity"] == {"Label": "MEDIUM"}
    assert_valid_for_boto3(findings, finding_shape)


def test_types_and_related_requirements_come_from_the_catalog_mappings():
    postures, results = service_of_three()
    findings = by_rule(asff.build_findings(postures, results, CATALOG, NOW))
    net03 = findings["NET-03"]
    assert (
        net03["Types"][0]
        == "Software and Configuration Checks/AWS Security Best Practices/Network Reachability"
    )
    assert (
        "Software and Configuration Checks/Industry and Regulatory Standards/NIST 800-53 Controls (USA)"
        in (net03["Types"])
    )
    assert net03["Compliance"]["RelatedRequirements"] == [
        "AWS Security Hub control EC2.18",
        "CIS AWS Foundations Benchmark v3.0.0/5.2",
        "NIST.800-53.r5 AC-4",
        "NIST.800-53.r5 SC-7",
    ]
    assert "RelatedRequirements" not in findings["NET-01"]["Compliance"]


def test_non_network_rules_are_typed_as_best_practices_only():
    p = make_posture(1)
    (finding,) = asff.build_findings([p], [res(p, "CFG-02", "FAILED")], CATALOG, NOW)
    assert finding["Types"] == ["Software and Configuration Checks/AWS Security Best Practices"]


# --------------------------------------------------------------------------- time and workflow


def test_timestamps_are_iso_utc_with_z_from_now():
    postures, results = service_of_three()
    finding = asff.build_findings(postures, results, CATALOG, NOW)[0]
    for key in ("CreatedAt", "UpdatedAt", "FirstObservedAt", "LastObservedAt"):
        assert finding[key] == "2025-03-04T05:06:07.891Z"


def test_workflow_new_is_set_only_when_the_finding_is_first_created():
    postures, results = service_of_three()
    first = asff.build_findings(postures, results, CATALOG, NOW)
    assert all(f["Workflow"] == {"Status": "NEW"} for f in first)
    later = NOW + timedelta(minutes=5)
    update = asff.build_findings(postures, results, CATALOG, later, previous={f["Id"]: f for f in first})
    assert all("Workflow" not in f for f in update)
    assert [f["CreatedAt"] for f in update] == [f["CreatedAt"] for f in first]
    assert [f["FirstObservedAt"] for f in update] == [f["FirstObservedAt"] for f in first]
    assert all(f["LastObservedAt"] == asff.asff_time(later) for f in update)


def test_updated_at_strictly_increases_even_when_the_clock_does_not():
    postures, results = service_of_three()
    first = asff.build_findings(postures, results, CATALOG, NOW)
    earlier_clock = NOW - timedelta(seconds=30)
    update = asff.build_findings(postures, results, CATALOG, earlier_clock, previous=first)
    for old, new in zip(first, update, strict=True):
        assert asff.parse_asff_time(new["UpdatedAt"]) > asff.parse_asff_time(old["UpdatedAt"])


# --------------------------------------------------------------------------- resources


def test_service_workload_resources_are_service_then_failing_tasks_then_network():
    postures = [make_posture(i) for i in (1, 2, 3)]
    results = [res(postures[0], "NET-03", "PASSED")]
    results += [
        res(p, "NET-03", "FAILED", open_ports=OPEN_22, security_groups=["sg-web"]) for p in postures[1:]
    ]
    (finding,) = asff.build_findings(postures, results, CATALOG, NOW)
    resources = finding["Resources"]
    assert [r["Type"] for r in resources] == [
        "AwsEcsService",
        "AwsEcsTask",
        "AwsEcsTask",
        "AwsEc2SecurityGroup",
    ]
    assert resources[0]["Id"] == f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/prod/web"
    assert [r["Id"] for r in resources[1:3]] == [postures[1]["task_arn"], postures[2]["task_arn"]]
    assert resources[3]["Id"] == f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/sg-web"
    assert all(r["Partition"] == "aws" and r["Region"] == REGION for r in resources)


def test_a_standalone_workload_of_many_revisions_still_names_its_failing_tasks():
    """interface.md: task definitions first (newest first), then the failing tasks (at most
    20), 32 resources at most. 40 revisions running filled the 32 with task definitions."""
    postures = [make_posture(i, group="family:etl", revision=i) for i in range(1, 41)]
    results = [res(p, "NET-03", "FAILED", open_ports=OPEN_22, security_groups=["sg-web"]) for p in postures]
    (finding,) = asff.build_findings(postures, results, CATALOG, NOW)
    types = [r["Type"] for r in finding["Resources"]]
    assert len(types) == 32
    assert types == ["AwsEcsTaskDefinition"] * 12 + ["AwsEcsTask"] * 20
    assert finding["Resources"][0]["Id"].endswith("task-definition/etl:40")  # newest first


def test_network_resources_follow_the_facts_the_rule_requires():
    p = make_posture(7, egress={"ipv4": {"path": "nat-gateway>internet-gateway", "targets": []}})
    paths = {"ipv4": {"path": "nat-gateway>internet-gateway", "targets": ["nat-1", "igw-1"]}}
    (finding,) = asff.build_findings([p], [res(p, "NET-05", "FAILED", paths=paths)], CATALOG, NOW)
    assert [(r["Type"], r["Id"].rsplit(":", 1)[1]) for r in finding["Resources"][2:]] == [
        ("AwsEc2NetworkInterface", "network-interface/eni-0007"),
        ("AwsEc2Subnet", "subnet/subnet-1"),
    ]


def test_many_failing_tasks_give_way_by_their_enis_not_by_the_subnet_they_share():
    """32 resources at most: with 25 failing tasks of one service in its subnets (NET-05
    requires the ENI and the egress path, whose subnet it names), ENIs are left out first;
    the subnet stays."""
    paths = {"ipv4": {"path": "nat-gateway>internet-gateway", "targets": ["nat-1", "igw-1"]}}
    postures = [make_posture(i, egress=paths) for i in range(25)]
    results = [res(p, "NET-05", "FAILED", paths=paths) for p in postures]
    (finding,) = asff.build_findings(postures, results, CATALOG, NOW)
    types = [r["Type"] for r in finding["Resources"]]
    assert len(types) == 32 and types.count("AwsEcsTask") == 20
    subnets = len({p["network"]["subnet_id"] for p in postures[:20]})  # the tasks listed
    assert types.count("AwsEc2Subnet") == subnets and subnets >= 1
    enis = 32 - 1 - 20 - subnets
    assert types[21:] == ["AwsEc2NetworkInterface"] * enis + ["AwsEc2Subnet"] * subnets  # order kept


def test_names_that_merely_start_like_ec2_ids_are_no_network_resources():
    """A container named sg-sidecar, an image subnet-router:1.4: not security groups or
    subnets. Only a whole EC2 id (8 or 17 hex digits) named by a network rule's evidence is."""
    p = make_posture(4)
    containers = [{"container": "sg-sidecar", "image": "subnet-router:1.4"}, {"container": "eni-exporter"}]
    results = [
        res(
            p, "NET-03", "FAILED", open_ports=OPEN_22, security_groups=["sg-0123456789abcdef0", "sg-sidecar"]
        ),
        res(p, "CFG-02", "FAILED", containers=containers, note="eni-exporter subnet-router"),
    ]
    findings = by_rule(asff.build_findings([p], results, CATALOG, NOW))
    net03 = {
        r["Id"].rsplit(":", 1)[1] for r in findings["NET-03"]["Resources"] if r["Type"].startswith("AwsEc2")
    }
    assert "security-group/sg-0123456789abcdef0" in net03
    assert not {i for i in net03 if "sg-sidecar" in i}
    other = [r["Id"] for r in findings["CFG-02"]["Resources"] if r["Type"].startswith("AwsEc2")]
    assert not [
        i for i in other if any(name in i for name in ("sg-sidecar", "eni-exporter", "subnet-router"))
    ]


def test_no_network_resource_when_the_workload_and_its_tasks_fill_the_32():
    assert asff._fit([{"Type": "AwsEc2SecurityGroup"}, {"Type": "AwsEc2NetworkInterface"}], -3) == []
    assert asff._fit([{"Type": "AwsEc2Subnet"}], 0) == []


def test_a_passed_finding_lists_only_the_workload_resource():
    p = make_posture(1)
    (finding,) = asff.build_findings([p], [res(p, "NET-01", "PASSED")], CATALOG, NOW)
    assert [r["Type"] for r in finding["Resources"]] == ["AwsEcsService"]


def test_resources_cap_tasks_at_20_and_everything_at_32():
    postures = [make_posture(i, security_groups=[{"id": f"sg-{i:02d}", "name": f"g{i}"}]) for i in range(30)]
    results = [
        res(p, "NET-03", "FAILED", open_ports=OPEN_22, security_groups=[f"sg-{i:02d}"])
        for i, p in enumerate(postures)
    ]
    (finding,) = asff.build_findings(postures, results, CATALOG, NOW)
    types = [r["Type"] for r in finding["Resources"]]
    assert len(types) == 32
    assert types[0] == "AwsEcsService"
    assert types.count("AwsEcsTask") == 20
    assert types[1:21] == ["AwsEcsTask"] * 20
    assert types[21:] == ["AwsEc2SecurityGroup"] * 11
    assert finding["ProductFields"]["fargate-audit/TasksFailed"] == "30"


def test_family_workload_lists_its_task_definitions_newest_revision_first():
    postures = [make_posture(i, group="family:batch", revision=r) for i, r in enumerate((2, 10, 9, 10))]
    results = [res(p, "NET-01", "FAILED", public_ip=["54.0.0.1"]) for p in postures]
    (finding,) = asff.build_findings(postures, results, CATALOG, NOW)
    heads = [r for r in finding["Resources"] if r["Type"] == "AwsEcsTaskDefinition"]
    assert [r["Id"].rsplit(":", 1)[1] for r in heads] == ["10", "9", "2"]
    assert finding["Resources"][: len(heads)] == heads
    assert heads[0]["Details"]["AwsEcsTaskDefinition"]["Family"] == "batch"


# --------------------------------------------------------------------------- boto3 shape


def test_findings_pass_boto3_parameter_validation_for_batch_import_findings(finding_shape):
    postures = [make_posture(i, public_ipv4="54.0.0.9") for i in range(25)]
    postures += [make_posture(100 + i, group="family:batch", revision=i + 1) for i in range(3)]
    results = []
    for i, p in enumerate(postures):
        results.append(res(p, "NET-03", "FAILED", open_ports=OPEN_22, security_groups=["sg-web"]))
        results.append(res(p, "NET-01", "ERROR" if i % 2 else "PASSED", error="eni: vanished"))
        results.append(
            res(p, "NET-05", "FAILED", paths={"ipv4": {"path": "internet-gateway", "targets": []}})
        )
        results.append(res(p, "NET-10", "NOT_APPLICABLE"))
    findings = asff.build_findings(postures, results, CATALOG, NOW)
    assert len(findings) == 6
    assert_valid_for_boto3(findings, finding_shape)
    archived = [asff.archive_finding(f, NOW) for f in findings]
    assert_valid_for_boto3(archived, finding_shape)


def test_boto3_validation_would_catch_a_malformed_finding(finding_shape):
    postures, results = service_of_three()
    finding = copy.deepcopy(asff.build_findings(postures, results, CATALOG, NOW)[0])
    finding["Severity"]["Label"] = 3
    report = ParamValidator().validate({"Findings": [finding]}, finding_shape)
    assert report.has_errors()


# --------------------------------------------------------------------------- digest


def test_digest_ignores_timestamps_and_workflow():
    postures, results = service_of_three()
    first = asff.build_findings(postures, results, CATALOG, NOW)
    later = asff.build_findings(postures, results, CATALOG, NOW + timedelta(days=1), previous=first)
    assert [asff.finding_content_digest(f) for f in first] == [asff.finding_content_digest(f) for f in later]


def test_digest_changes_when_content_changes():
    postures, results = service_of_three()
    before = by_rule(asff.build_findings(postures, results, CATALOG, NOW))["NET-03"]
    results[0] = res(postures[0], "NET-03", "PASSED")
    after = by_rule(asff.build_findings(postures, results, CATALOG, NOW))["NET-03"]
    assert asff.finding_content_digest(before) != asff.finding_content_digest(after)
    archived = asff.archive_finding(before, NOW)
    assert asff.finding_content_digest(archived) != asff.finding_content_digest(before)


# --------------------------------------------------------------------------- no env values


def raw_bundle_with_secret_env() -> dict:
    task_arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/prod/{'ab' * 16}"
    return {
        "account_id": ACCOUNT,
        "region": REGION,
        "task": {
            "taskArn": task_arn,
            "clusterArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/prod",
            "taskDefinitionArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:1",
            "group": "service:web",
            "launchType": "FARGATE",
            "lastStatus": "RUNNING",
            "platformVersion": "1.4.0",
            "attachments": [],
            "overrides": {
                "containerOverrides": [
                    {"name": "app", "environment": [{"name": "API_TOKEN", "value": CANARY}]}
                ]
            },
        },
        "task_definition": {
            "containerDefinitions": [
                {
                    "name": "app",
                    "image": "nginx:1.25",
                    "environment": [
                        {"name": "DB_PASSWORD", "value": CANARY},
                        {"name": "MODE", "value": CANARY},
                    ],
                }
            ]
        },
        "cluster": {"clusterArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/prod", "settings": []},
        "eni": None,
        "vpc": None,
        "errors": {"eni": f"DescribeNetworkInterfaces: {CANARY}-is-not-an-eni-id-but-a-test"},
    }


def test_no_environment_value_reaches_a_finding_through_posture_and_check():
    raw = raw_bundle_with_secret_env()
    raw["errors"] = {}
    built = posture.build_posture(raw)
    status, evidence = registered_checks().checks["secrets_in_environment"](
        built, {"secret_env_names": [], "secret_env_pattern": "(?i)(password|token)"}
    )
    assert status == "FAILED"
    result = {
        "task_arn": built["task_arn"],
        "rule_id": "CFG-02",
        "status": status,
        "severity": "HIGH",
        "title": "Secrets in plain environment variables",
        "evidence": evidence,
    }
    findings = asff.build_findings([built], [result], CATALOG, NOW)
    text = json.dumps(findings)
    assert "DB_PASSWORD" in text and "API_TOKEN" in text  # names are shown...
    assert CANARY not in text  # ...values never


def test_value_like_evidence_keys_never_reach_a_finding():
    p = make_posture(1)
    leaky = res(p, "CFG-02", "FAILED", variables=[{"container": "app", "name": "TOKEN", "value": CANARY}])
    leaky["evidence"]["values"] = [CANARY]
    findings = asff.build_findings([p], [leaky], CATALOG, NOW)
    text = json.dumps(findings)
    assert "TOKEN" in text
    assert CANARY not in text


# --------------------------------------------------------------------------- discovery rules


DISCOVERY = Catalog(
    rules=(make_rule("EGR-01", "MEDIUM"), make_rule("EGR-03", "HIGH")),
    parameters={},
    mappings={},
    rules_dir=Path("/nonexistent"),
)


@pytest.mark.parametrize("rule_id", ["EGR-01", "EGR-03"])
def test_a_discovery_rule_that_could_not_be_evaluated_is_not_available_never_passed(rule_id, finding_shape):
    """rules.md: ERROR is never reported as PASSED; interface.md: NOT_AVAILABLE. Before, a
    workload-discovery ERROR became PASSED with EGR-01's "every domain is approved"."""
    why = f"{rule_id}: check unresolved_egress could not judge this task's facts (TypeError)"
    result = {"workload": "w", "rule_id": rule_id, "status": "ERROR", "evidence": {"error": why}}
    finding = asff.build_discovery_finding(result, [make_posture(1)], DISCOVERY, NOW)
    assert finding["Compliance"]["Status"] == "NOT_AVAILABLE"
    assert finding["Description"].startswith(f"The tasks of prod/service:web could not be evaluated: {why}.")
    assert "approved" not in finding["Description"].split(why)[0]
    assert_valid_for_boto3([finding], finding_shape)


def test_a_discovery_rule_passed_or_failed_keeps_its_own_lead():
    passed = {"workload": "w", "rule_id": "EGR-03", "status": "PASSED", "evidence": {"unresolved_count": 0}}
    finding = asff.build_discovery_finding(passed, [make_posture(1)], DISCOVERY, NOW)
    assert finding["Compliance"]["Status"] == "PASSED"
    assert finding["Description"].startswith("Every internet address the tasks of prod/service:web sent")
    failed = {
        "workload": "w",
        "rule_id": "EGR-01",
        "status": "FAILED",
        "evidence": {"unapproved_domains": ["evil.example"], "unapproved_count": 1},
    }
    finding = asff.build_discovery_finding(failed, [make_posture(1)], DISCOVERY, NOW)
    assert finding["Compliance"]["Status"] == "FAILED"
    assert "resolved 1 domain no approved pattern matches: evil.example" in finding["Description"]


def test_an_exempted_passed_finding_names_the_terms_not_a_count():
    """A task more of a workload whose failures are exempted changes no content of its
    PASSED finding (no re-import); a FAILED finding still counts its exempted tasks."""
    exempted = {"reason": "legacy ssh bastion", "expires": "2027-01-31"}

    def finding_of(n: int, fail_one: bool = False) -> dict:
        postures = [make_posture(i) for i in range(1, n + 1)]
        results = [res(p, "NET-03", "PASSED", open_ports=OPEN_22, exempted=exempted) for p in postures]
        if fail_one:
            results[0] = res(postures[0], "NET-03", "FAILED", open_ports=OPEN_22, security_groups=["sg-web"])
        (finding,) = asff.build_findings(postures, results, CATALOG, NOW)
        return finding

    two, three = finding_of(2), finding_of(3)
    assert "Exempted: legacy ssh bastion (until 2027-01-31)." in two["Description"]
    assert two["Description"] == three["Description"] and two["ProductFields"] == three["ProductFields"]
    failing = finding_of(3, fail_one=True)
    assert failing["Compliance"]["Status"] == "FAILED"
    assert "2 exempted: legacy ssh bastion (until 2027-01-31)." in failing["Description"]

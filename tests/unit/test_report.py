"""The scan report (scan-report.schema.json) and the scan's exit code."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from pathlib import Path

import jsonschema
import pytest
from fargate_audit.core import report

REPO = Path(__file__).resolve().parents[2]
SHARED_SCHEMA = REPO.parent / "shared" / "spec" / "scan-report.schema.json"
SHIPPED_SCHEMA = REPO / "layers" / "fargate_audit" / "schemas" / "scan-report.schema.json"
NOW = datetime(2025, 3, 4, 5, 6, 7, 891000, tzinfo=UTC)
ACCOUNT = "123456789012"
REGION = "eu-west-1"


def posture(n: int, group: str = "service:web", cluster: str = "prod", **network) -> dict:
    task_arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{cluster}/{n:032x}"
    net = {
        "eni_id": f"eni-{n:08x}",
        "private_ip": f"10.0.0.{n}",
        "subnet_id": "subnet-1",
        "vpc_id": "vpc-1",
        "public_ipv4": None,
        "ipv6_addresses": [],
        "public_address": {"ipv4": False, "ipv6": False},
        "security_groups": [{"id": "sg-2", "name": "web"}, {"id": "sg-1", "name": "default"}],
        "egress": {
            "ipv4": {"path": "nat-gateway>internet-gateway", "targets": ["nat-1", "igw-1"]},
            "ipv6": {"path": "none", "targets": []},
        },
    }
    net.update(network)
    return {
        "posture_version": 1,
        "task_arn": task_arn,
        "cluster_arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{cluster}",
        "cluster_name": cluster,
        "account_id": ACCOUNT,
        "region": REGION,
        "group": group,
        "workload": f"{cluster}/{group}",
        "service_name": group.split(":", 1)[1] if group.startswith("service:") else None,
        "task_definition_arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:3",
        "launch_type": "FARGATE",
        "last_status": "RUNNING",
        "network": net,
        "errors": {},
    }


def result(p: dict, rule_id: str, status: str, severity: str = "HIGH", **evidence) -> dict:
    return {
        "task_arn": p["task_arn"],
        "rule_id": rule_id,
        "status": status,
        "severity": severity,
        "title": f"title of {rule_id}",
        "evidence": evidence,
    }


@pytest.fixture(scope="module")
def validator():
    return jsonschema.Draft202012Validator(
        report.load_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def sample_inputs(**kwargs) -> tuple[list, list, dict]:
    p1, p2 = posture(1), posture(2, public_ipv4="54.1.2.3")
    p3 = posture(3, group="family:batch", cluster="jobs", eni_id=None, subnet_id=None, vpc_id=None, egress={})
    results = [
        result(p1, "NET-03", "FAILED", "MEDIUM", open_ports=[{"protocol": "tcp", "from": 22, "to": 22}]),
        result(p2, "NET-03", "FAILED", "MEDIUM", open_ports=[{"protocol": "tcp", "from": 22, "to": 22}]),
        result(p1, "NET-01", "PASSED"),
        result(p2, "NET-01", "FAILED", public_ip=["54.1.2.3"]),
        result(p3, "NET-01", "ERROR", error="eni: DescribeNetworkInterfaces: vanished"),
        result(p3, "NET-10", "NOT_APPLICABLE", "LOW"),
    ]
    defaults = dict(
        now=NOW,
        scope={"accounts": [ACCOUNT], "regions": [REGION], "clusters": []},
        skipped=[{"task_arn": "arn:aws:ecs:eu-west-1:123456789012:task/prod/x", "reason": "launch type EC2"}],
        api_calls={"ecs.DescribeTasks": 2, "ec2.DescribeSubnets": 1},
        duration_s=1.23456,
        errors=[{"call": "ListTasks", "region": REGION, "resource": "cluster/x", "message": "AccessDenied"}],
        expired_exemptions=[
            {"rule": "NET-03", "workload": "prod/*", "expires": date(2024, 1, 1), "reason": "r"}
        ],
    )
    defaults.update(kwargs)
    return [p3, p2, p1], results, defaults


def sample_report(**kwargs) -> dict:
    postures, results, args = sample_inputs(**kwargs)
    return report.build_report(postures, results, **args)


def test_streamed_report_parses_to_exactly_the_built_report(validator):
    postures, results, args = sample_inputs()
    # evidence as the engine leaves it: an exemption's date, a tuple, a set
    results[0]["evidence"]["exempted"] = {"reason": "r", "expires": date(2030, 1, 2)}
    results[1]["evidence"]["families"] = ("ipv4",)
    results[2]["evidence"]["seen"] = {"b", "a"}
    out = io.StringIO()
    report.write_report(out, postures, results, **args)
    streamed = json.loads(out.getvalue())
    assert streamed == report.build_report(postures, results, **args)
    exempted = [r["evidence"]["exempted"] for r in streamed["results"] if "exempted" in r["evidence"]]
    assert exempted == [{"reason": "r", "expires": "2030-01-02"}]
    validator.validate(streamed)
    # the very text of the standard library's indented encoding of the built report
    built = report.build_report(postures, results, **args)
    assert out.getvalue() == json.dumps(built, indent=2, ensure_ascii=False) + "\n"


def test_streamed_report_chunks_join_into_the_same_text(monkeypatch):
    postures, results, args = sample_inputs()
    results[0]["evidence"]["note"] = 'd\u00e9j\u00e0 vu \u2603, a "quote" and a \u0007 bell'
    expected = json.dumps(report.build_report(postures, results, **args), indent=2, ensure_ascii=False) + "\n"
    for chunk in (1, 2, 1000):
        monkeypatch.setattr(report, "_CHUNK", chunk)
        out = io.StringIO()
        report.write_report(out, postures, results, **args)
        assert out.getvalue() == expected, chunk
    out = io.StringIO()
    report.write_report(out, [], [], now=NOW)
    assert out.getvalue() == json.dumps(report.build_report([], [], now=NOW), indent=2) + "\n"


def test_streamed_report_leaves_the_results_as_they_were():
    postures, results, args = sample_inputs()
    results[0]["evidence"]["exempted"] = {"expires": date(2030, 1, 2)}
    report.write_report(io.StringIO(), postures, results, **args)
    assert results[0]["evidence"]["exempted"]["expires"] == date(2030, 1, 2)


def test_shipped_schema_is_byte_identical_to_the_shared_spec():
    if not SHARED_SCHEMA.exists():
        pytest.skip("shared spec not present on this machine")
    assert SHIPPED_SCHEMA.read_bytes() == SHARED_SCHEMA.read_bytes()


def test_load_schema_returns_the_shipped_copy():
    assert report.load_schema() == json.loads(SHIPPED_SCHEMA.read_text())


def test_report_validates_against_the_schema(validator):
    doc = sample_report()
    errors = sorted(validator.iter_errors(json.loads(json.dumps(doc))), key=str)
    assert errors == []


def test_report_of_no_task_validates_and_counts_zero(validator):
    doc = report.build_report([], [], now=NOW, scope={"regions": [REGION]})
    validator.validate(doc)
    assert doc["summary"]["tasks"] == 0
    assert doc["summary"]["by_status"] == {"FAILED": 0, "ERROR": 0, "PASSED": 0, "NOT_APPLICABLE": 0}


def test_schema_rejects_a_report_with_a_bad_status(validator):
    doc = sample_report()
    doc["results"][0]["status"] = "WARNING"
    assert list(validator.iter_errors(doc))


def test_generated_at_is_iso_utc_from_now():
    assert sample_report()["generated_at"] == "2025-03-04T05:06:07Z"
    naive = report.build_report([], [], now=datetime(2025, 3, 4, 5, 6, 7))
    assert naive["generated_at"] == "2025-03-04T05:06:07Z"


def test_tasks_carry_the_network_facts_of_their_posture():
    doc = sample_report()
    task = next(t for t in doc["tasks"] if t["task_arn"].endswith(f"{2:032x}"))
    assert task["eni_id"] == "eni-00000002"
    assert task["public_ip"] == "54.1.2.3"
    assert task["private_ip"] == "10.0.0.2"
    assert task["subnet_id"] == "subnet-1" and task["vpc_id"] == "vpc-1"
    assert task["security_group_ids"] == ["sg-1", "sg-2"]
    assert task["egress_paths"] == {"ipv4": "nat-gateway>internet-gateway", "ipv6": "none"}
    assert task["group"] == "service:web"


def test_task_without_eni_reports_null_network_ids_and_no_paths():
    doc = sample_report()
    task = next(t for t in doc["tasks"] if t["group"] == "family:batch")
    assert task["eni_id"] is None and task["subnet_id"] is None
    assert task["egress_paths"] == {}


def test_summary_counts_tasks_skipped_statuses_and_rules():
    summary = sample_report()["summary"]
    assert summary["tasks"] == 3
    assert summary["skipped_tasks"] == 1
    assert summary["by_status"] == {"FAILED": 3, "ERROR": 1, "PASSED": 1, "NOT_APPLICABLE": 1}
    assert summary["by_rule"] == {
        "NET-01": {"PASSED": 1, "FAILED": 1, "ERROR": 1},
        "NET-03": {"FAILED": 2},
        "NET-10": {"NOT_APPLICABLE": 1},
    }


def test_results_are_sorted_by_task_then_rule():
    keys = [(r["task_arn"], r["rule_id"]) for r in sample_report()["results"]]
    assert keys == sorted(keys)


def test_scope_adds_accounts_regions_and_clusters_seen_on_tasks():
    scope = sample_report(scope={"regions": ["us-east-1"]})["scope"]
    assert scope["regions"] == ["eu-west-1", "us-east-1"]
    assert scope["accounts"] == [ACCOUNT]
    assert scope["clusters"] == [
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/jobs",
        f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/prod",
    ]


def test_stats_errors_and_expired_exemptions_are_reported_json_ready():
    doc = sample_report()
    assert doc["stats"] == {
        "api_calls": {"ec2.DescribeSubnets": 1, "ecs.DescribeTasks": 2},
        "duration_s": 1.235,
    }
    assert doc["errors"][0]["call"] == "ListTasks"
    assert doc["expired_exemptions"][0]["expires"] == "2024-01-01"
    assert doc["skipped"][0]["reason"] == "launch type EC2"
    json.dumps(doc)  # no date object left


@pytest.mark.parametrize(
    ("severities", "fail_on", "expected"),
    [
        ([], "LOW", 0),
        (["INFORMATIONAL"], "LOW", 0),
        (["INFORMATIONAL"], "INFORMATIONAL", 1),
        (["LOW"], "LOW", 1),
        (["MEDIUM"], "HIGH", 0),
        (["MEDIUM", "HIGH"], "HIGH", 1),
        (["HIGH"], "CRITICAL", 0),
        (["CRITICAL"], "CRITICAL", 1),
        (["LOW"], "low", 1),
    ],
)
def test_exit_code_is_1_only_for_failed_results_at_or_above_fail_on(severities, fail_on, expected):
    results = [{"status": "FAILED", "severity": s} for s in severities]
    assert report.exit_code(results, fail_on) == expected


def test_exit_code_ignores_error_and_passed_results_whatever_their_severity():
    results = [
        {"status": "ERROR", "severity": "CRITICAL"},
        {"status": "PASSED", "severity": "CRITICAL"},
        {"status": "NOT_APPLICABLE", "severity": "CRITICAL"},
    ]
    assert report.exit_code(results, "INFORMATIONAL") == 0


def test_exit_code_default_threshold_is_low():
    assert report.exit_code([{"status": "FAILED", "severity": "LOW"}]) == 1
    assert report.exit_code([{"status": "FAILED", "severity": "INFORMATIONAL"}]) == 0


def test_severity_rank_orders_labels_and_rejects_unknown_ones():
    ranks = [report.severity_rank(s) for s in ("INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL")]
    assert ranks == sorted(ranks) and len(set(ranks)) == 5
    with pytest.raises(ValueError, match="SEVERE"):
        report.severity_rank("SEVERE")


@pytest.mark.parametrize(
    ("evidence", "expected"),
    [
        (
            {
                "open_ports": [
                    {"protocol": "tcp", "from": 22, "to": 22},
                    {"protocol": "tcp", "from": 3389, "to": 3389},
                ]
            },
            "open tcp 22, 3389",
        ),
        (
            {
                "paths": {
                    "ipv4": {"path": "nat-gateway>internet-gateway", "targets": ["nat-1"]},
                    "ipv6": {"path": "none", "targets": []},
                },
                "families": ["ipv4"],
            },
            "path nat-gateway>internet-gateway",
        ),
        (
            {"error": "eni: DescribeNetworkInterfaces: vanished"},
            "error: eni: DescribeNetworkInterfaces: vanished",
        ),
        ({"eni_id": "eni-1", "public_ip": ["54.1.2.3"], "families": ["ipv4"]}, "public ip 54.1.2.3"),
        ({"eni_id": "eni-1", "public_ip": [], "families": []}, ""),  # NET-01 PASSED: nothing to say
        (
            {
                "rules": [
                    {
                        "group_id": "sg-1",
                        "family": "ipv4",
                        "cidr": "0.0.0.0/0",
                        "protocol": "-1",
                        "from": None,
                        "to": None,
                    }
                ]
            },
            "egress all to 0.0.0.0/0 (sg-1)",
        ),
        ({"security_groups": [{"id": "sg-1", "name": "default"}]}, "security groups sg-1 (default)"),
        ({"flow_logs": []}, "no flow log"),
        (
            {"variables": [{"container": "app", "name": "DB_PASSWORD", "source": "definition"}]},
            "variables app:DB_PASSWORD",
        ),
        ({"open_ports": [{"protocol": "udp", "from": 0, "to": 65535}]}, "open udp all"),
        (
            {"platform_version": "1.3.0", "platform_family": "LINUX", "minimum": "1.4.0"},
            "platform version 1.3.0 (minimum 1.4.0)",
        ),
        (
            {
                "platform_version": "0.9.0",
                "platform_family": None,
                "minimums": {"LINUX": "1.4.0", "WINDOWS": "1.0.0"},
            },
            "platform version 0.9.0 (family unknown; minimum linux 1.4.0, windows 1.0.0)",
        ),
    ],
)
def test_summarize_evidence_gives_a_short_human_line(evidence, expected):
    assert report.summarize_evidence(evidence) == expected


def test_summarize_evidence_never_shows_value_like_keys_at_any_depth():
    evidence = {
        "variables": [{"name": "TOKEN", "value": "s3cr3t-VALUE"}],
        "extra": {"values": ["s3cr3t-VALUE"]},
    }
    assert "s3cr3t" not in report.summarize_evidence(evidence)


def test_summarize_evidence_shows_unknown_keys_and_is_bounded():
    line = report.summarize_evidence({"new_fact": ["a" * 50] * 10}, limit=40)
    assert line.startswith("new fact aaa") and len(line) == 40 and line.endswith("...")


def test_network_views_share_their_parts_across_a_report_and_equal_views_built_alone():
    """The parts of tasks[].network derived from a subnet's, groups' or VPC's facts are
    built once per report (the postures of a scan share those objects) and equal what each
    task's own view would be."""
    import copy

    from support.postures import BASE_POSTURE as BASE

    first = copy.deepcopy(BASE)
    second = copy.deepcopy(first)
    second["task_arn"] = first["task_arn"][:-1] + "0"
    second["network"] = dict(first["network"], eni_id="eni-0fedcba9876543210")  # shares its parts
    memo: dict = {}
    shared = [report.task_entry(p, memo) for p in (first, second)]
    assert shared == [report.task_entry(p) for p in (first, second)]
    assert shared[0]["network"]["world_ports"] is shared[1]["network"]["world_ports"]
    assert shared[0]["network"]["egress"] is shared[1]["network"]["egress"]
    other = copy.deepcopy(first)  # its own objects: its own parts
    assert report.task_entry(other, memo)["network"]["world_ports"] is not shared[0]["network"]["world_ports"]


def test_an_exempted_net02_task_is_still_counted_reachable_at_its_own_address():
    """interface.md: the summary counts the tasks reachable from the internet. An exemption
    turns NET-02 FAILED into PASSED (accepted), but the task is as reachable as before (the
    load-balancer count never looked at exemptions either)."""
    arn = "arn:aws:ecs:eu-west-1:123456789012:task/prod/" + "a" * 32
    other = "arn:aws:ecs:eu-west-1:123456789012:task/prod/" + "b" * 32
    exempted = {
        "open_ports": [{"protocol": "tcp", "from": 22, "to": 22}],
        "exempted": {"reason": "r", "expires": "2099-01-01"},
    }
    results = [
        {"task_arn": arn, "rule_id": "NET-02", "status": "PASSED", "evidence": exempted},
        {"task_arn": other, "rule_id": "NET-02", "status": "PASSED", "evidence": {"open_ports": []}},
    ]
    tasks = [{"task_arn": arn, "exposures": []}, {"task_arn": other, "exposures": []}]
    assert report.internet_reachable(tasks, results) == {
        "direct": 1,
        "through_load_balancers": 0,
        "direct_unknown": 0,
        "through_load_balancers_unknown": 0,
    }

"""End to end: `fargate-audit demo` builds its estate, runs the real scan and shows it.

One demo run is shared by the module (about 4 s): it is made with a real-looking AWS
endpoint and profile in the environment, which the demo must ignore.
"""

from __future__ import annotations

import io
import json
import os
from collections import defaultdict
from types import SimpleNamespace

import boto3
import pytest
from fargate_audit.core import rules
from fargate_audit.local import demo, estate

# The demo is designed to produce no ERROR result: every fact the rules need is collected.
EXPECTED_ERROR_RESULTS: list = []

# The estate's design (estate.build_demo_estate), checked on every task of the workload.
EXPECTED = {
    "prod-web/service:storefront": {
        "NET-01": "FAILED",
        "NET-02": "FAILED",
        "NET-03": "PASSED",
        "NET-04": "FAILED",
        "NET-05": "FAILED",
        "NET-07": "PASSED",
        "NET-08": "PASSED",
        "NET-09": "FAILED",
        "NET-10": "FAILED",
        "IMG-01": "PASSED",
        "IMG-02": "PASSED",
        "LOG-01": "PASSED",
        "LOG-02": "PASSED",
        "CFG-01": "PASSED",
        "CFG-02": "PASSED",
        "CFG-03": "PASSED",
    },
    "prod-web/service:checkout-api": {
        "NET-01": "PASSED",
        "NET-02": "PASSED",
        "NET-04": "PASSED",
        "NET-05": "PASSED",
        "NET-09": "PASSED",
        "NET-10": "PASSED",
        "CFG-01": "PASSED",
        "CFG-02": "FAILED",
    },
    "prod-web/service:edge-proxy": {
        "NET-02": "FAILED",
        "NET-03": "FAILED",
        "NET-10": "NOT_APPLICABLE",
        "IMG-01": "FAILED",
        "IMG-02": "FAILED",
        "LOG-01": "FAILED",
        "CFG-03": "FAILED",
    },
    "batch/service:etl": {"NET-04": "FAILED", "NET-05": "PASSED", "NET-09": "PASSED", "LOG-02": "FAILED"},
    "batch/family:etl": {"CFG-02": "FAILED"},
    "batch/family:report-worker": {"NET-05": "FAILED", "NET-09": "FAILED", "IMG-01": "FAILED"},
    "legacy/service:billing": {"NET-06": "FAILED", "CFG-01": "FAILED", "LOG-02": "FAILED"},
    "legacy/family:windows-agent": {
        "NET-01": "PASSED",
        "NET-02": "PASSED",
        "NET-03": "FAILED",
        "CFG-01": "PASSED",
    },
    "platform/service:edge-gateway": {
        "NET-01": "FAILED",
        "NET-02": "FAILED",
        "NET-05": "FAILED",
        "NET-07": "FAILED",
        "NET-08": "FAILED",
        "NET-10": "FAILED",
        "LOG-02": "PASSED",
    },
    "platform/service:internal-tools": {
        "NET-04": "PASSED",
        "NET-05": "PASSED",
        "NET-07": "PASSED",
        "NET-08": "PASSED",
        "IMG-01": "FAILED",
    },
    "platform/family:log-shipper": {
        "NET-01": "FAILED",
        "NET-02": "PASSED",
        "NET-05": "FAILED",
        "NET-06": "FAILED",
        "EGR-02": "FAILED",  # shared-services has no Resolver query logging
    },
}
EXPECTED["prod-web/service:checkout-api"]["EGR-02"] = "PASSED"  # prod logs its DNS queries


@pytest.fixture(scope="module")
def demo_run():
    with pytest.MonkeyPatch.context() as patch:
        # Whatever points at a real account must be ignored (nothing listens on port 9).
        patch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        patch.setenv("AWS_PROFILE", "production-admin")
        patch.delenv("AWS_ACCESS_KEY_ID", raising=False)
        environment_before = dict(os.environ)
        run = demo.build_and_scan()
        environment_after = dict(os.environ)
    table_out = io.StringIO()
    demo.render_demo(run, table_out, io.StringIO(), fmt="table")
    json_out, json_err = io.StringIO(), io.StringIO()
    demo.render_demo(run, json_out, json_err, fmt="json")
    return SimpleNamespace(
        run=run,
        table=table_out.getvalue(),
        json=json_out.getvalue(),
        json_narrative=json_err.getvalue(),
        environment_before=environment_before,
        environment_after=environment_after,
    )


def _statuses_by_rule(results) -> dict[str, set[str]]:
    seen = defaultdict(set)
    for result in results:
        seen[result["rule_id"]].add(result["status"])
    return seen


def test_every_posture_rule_is_both_failed_and_passed_somewhere_in_the_demo(demo_run):
    # EGR-01 reads DNS query logs, not postures: the demo's DNS story shows it both ways
    # (tests/e2e/test_demo_dns.py).
    catalog_ids = [rule.id for rule in rules.load_catalog().posture_rules]
    seen = _statuses_by_rule(demo_run.run.outcome.results)
    lacking = {rule_id: sorted(seen.get(rule_id, ())) for rule_id in catalog_ids}
    lacking = {rule_id: got for rule_id, got in lacking.items() if not {"FAILED", "PASSED"} <= set(got)}
    assert catalog_ids
    assert lacking == {}, f"rules not both FAILED and PASSED (statuses seen): {lacking}"


def test_demo_audits_at_least_25_running_fargate_tasks_in_two_vpcs_and_skips_the_others(demo_run):
    report = demo_run.run.outcome.report
    assert report["summary"]["tasks"] >= 25
    assert report["summary"]["tasks"] == len(demo_run.run.estate.running_fargate_tasks)
    assert len({task["vpc_id"] for task in report["tasks"]}) >= 2
    skipped = {entry["task_arn"] for entry in report["skipped"]}
    assert skipped == set(demo_run.run.estate.skipped_tasks)  # an EC2 task and a PENDING one


def test_demo_workloads_get_the_results_the_estate_was_designed_for(demo_run):
    workload_of = {p["task_arn"]: p["workload"] for p in demo_run.run.outcome.postures}
    got: dict[tuple[str, str], set[str]] = defaultdict(set)
    for result in demo_run.run.outcome.results:
        got[(workload_of[result["task_arn"]], result["rule_id"])].add(result["status"])
    wrong = {
        f"{workload} {rule_id}": sorted(got[(workload, rule_id)])
        for workload, expected in EXPECTED.items()
        for rule_id, status in expected.items()
        if got[(workload, rule_id)] != {status}
    }
    assert set(EXPECTED) == set(demo_run.run.estate.workloads)
    assert wrong == {}, "workload rule: statuses seen, where EXPECTED says otherwise"


def test_demo_has_no_error_results(demo_run):
    errors = [
        (r["task_arn"].rsplit("/", 1)[-1], r["rule_id"], r["evidence"].get("error"))
        for r in demo_run.run.outcome.results
        if r["status"] == "ERROR"
    ]
    assert errors == EXPECTED_ERROR_RESULTS
    assert demo_run.run.outcome.report["errors"] == []


def test_canary_secret_value_never_appears_in_output_report_or_postures(demo_run):
    canary = estate.CANARY_SECRET
    outcome = demo_run.run.outcome
    # The canary is really in the estate: the secret variables it sits in are reported by name.
    secret_names = {
        (p["workload"], e["name"], e["source"])
        for p in outcome.postures
        for e in p["environment"]
        if not e["trivial_value"]
    }
    assert ("prod-web/service:checkout-api", "DB_PASSWORD", "definition") in secret_names
    assert ("batch/family:etl", "DB_PASSWORD", "override") in secret_names
    for text in (
        demo_run.table,
        demo_run.json,
        demo_run.json_narrative,
        json.dumps(outcome.report),
        json.dumps(outcome.postures),
        json.dumps(outcome.results),
    ):
        assert canary not in text
    assert "DB_PASSWORD" in demo_run.table or "DB_PASSWORD" in json.dumps(outcome.report)


def test_demo_table_shows_narrative_every_workload_and_what_to_look_at(demo_run):
    text = demo_run.table
    assert text.startswith("fargate-audit demo:")
    for workload in demo_run.run.estate.workloads:
        assert workload in text
    footer = text[text.index("What to look at:") :]
    reachable = footer[: footer.index("through load balancers")]
    doors = footer[footer.index("through load balancers") : footer.index("rules fail on at least one task")]
    assert "prod-web/service:checkout-api  alb shop :443 -> :8080 (HTTPS, web ACL)" in doors
    assert "legacy/service:billing  alb billing-legacy :80 -> :80 (HTTP, no web ACL)" in doors
    assert "platform/service:internal-tools" not in doors  # behind an internal load balancer
    for workload in (
        "prod-web/service:storefront",
        "prod-web/service:edge-proxy",
        "platform/service:edge-gateway",
    ):
        assert workload in reachable
    assert "prod-web/service:checkout-api" not in reachable
    assert "\033[" not in text  # a StringIO is no terminal: no colour


def test_demo_json_output_is_the_scan_report(demo_run):
    assert json.loads(demo_run.json) == demo_run.run.outcome.report
    assert demo_run.json_narrative.startswith("fargate-audit demo:")


def test_run_demo_writes_the_rendered_run_and_returns_zero(demo_run, monkeypatch):
    monkeypatch.setattr(demo, "build_and_scan", lambda: demo_run.run)
    monkeypatch.setattr(demo, "run_event_story", lambda out: out.write("(event story)\n"))
    monkeypatch.setattr(demo, "run_dns_story", lambda out: out.write("(dns story)\n"))
    out = io.StringIO()
    assert demo.run_demo(out=out, err=io.StringIO()) == 0
    assert out.getvalue() == demo_run.table + "(event story)\n(dns story)\n"


def test_demo_restores_the_environment_and_task_state_transitions(demo_run):
    from moto.moto_api import state_manager

    assert demo_run.environment_after == demo_run.environment_before
    assert state_manager.get_transition(estate.TASK_STATE_MODEL) != estate.FROZEN


def test_estate_builder_refuses_to_run_against_real_aws(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    session = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="example", region_name="eu-west-1"
    )
    with pytest.raises(RuntimeError, match="refusing to build an emulated estate"):
        estate.build_demo_estate(session, "eu-west-1")

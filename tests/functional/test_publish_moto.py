"""Security Hub lifecycle (publish.py) on moto Security Hub + DynamoDB.

moto's get_findings ignores filters (filtered here, client-side) and moto never refuses a
finding, so refusals come from a wrapper that still validates every finding with boto3's
own parameter validation. Findings are the real ones: asff.build_findings over the real
catalog's results for postures recorded with record.Recorder."""

from __future__ import annotations

import copy
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError, ParamValidationError
from botocore.validate import validate_parameters
from fargate_audit.core import engine, rules
from fargate_audit.core.rules import Catalog, Rule
from fargate_audit.findings import asff, publish
from fargate_audit.findings.publish import Publisher
from fargate_audit.findings.state import FindingStore, finding_rule_id, finding_state
from fargate_audit.stores.record import Recorder
from fargate_audit.stores.table import Table
from moto import mock_aws
from support.postures import BASE_POSTURE as BASE
from support.postures import open_port_22
from support.template import load_template, table_create_kwargs

REGION = "eu-west-1"
ACCOUNT = "123456789012"
WL = f"WL#{ACCOUNT}#{REGION}#prod#service:web"
T0 = datetime(2026, 3, 4, 5, 0, 0, tzinfo=UTC)
CATALOG = rules.load_catalog()
RULE_COUNT = len(CATALOG.posture_rules)  # EGR-01 comes from DNS logs, not postures
POSTURE_IDS = {rule.id for rule in CATALOG.posture_rules}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def make_posture(n: int = 1) -> dict:
    p = copy.deepcopy(BASE)
    p["task_arn"] = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/prod/{n:032x}"
    p["network"]["eni_id"] = f"eni-{n:017x}"
    return p


def from_docker_hub(posture: dict) -> dict:
    changed = copy.deepcopy(posture)
    changed["containers"][0].update(image="nginx:1.27", registry="docker.io", private_ecr=False, digest=None)
    return changed


def findings_for(postures: list[dict], now: datetime, catalog: Catalog = CATALOG) -> list[dict]:
    results = engine.evaluate(catalog, postures).results if catalog is CATALOG else []
    return asff.build_findings(postures, results, catalog, now)


def by_rule(findings) -> dict[str, dict]:
    return {finding_rule_id(f): f for f in findings}


@pytest.fixture
def env():
    """Fresh emulated account: the template's table, a Recorder and a FindingStore on it, a
    Security Hub client counting its BatchImportFindings calls (``env.calls``: the findings of each call)."""
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        name = f"posture-{uuid.uuid4().hex[:8]}"
        ddb.create_table(**table_create_kwargs(load_template(), name))
        hub = boto3.client("securityhub", region_name=REGION)
        calls: list[list[dict]] = []
        hub.meta.events.register(
            "before-parameter-build.securityhub.BatchImportFindings",
            lambda params, **_: calls.append(copy.deepcopy(params["Findings"])),
        )
        table = Table(name, ddb, sleep=lambda _: None)
        rec, store = Recorder(table), FindingStore(table)
        yield type(
            "Env", (), {"rec": rec, "store": store, "hub": hub, "calls": calls, "ddb": ddb, "table": name}
        )


def publisher(env, hub=None, **kwargs) -> Publisher:
    kwargs.setdefault("sleep", lambda _: None)
    return Publisher(hub or env.hub, env.store, **kwargs)


def hub_findings(hub) -> dict[str, dict]:
    """Security Hub's findings by Id (moto ignores filters: filter client-side)."""
    found = [f for page in hub.get_paginator("get_findings").paginate() for f in page["Findings"]]
    return {f["Id"]: f for f in found if f["Id"].startswith("fargate-audit/")}


class FlakyHub:
    """Security Hub that refuses the given Ids ``times`` times each (FailedFindings), after
    validating the whole request as boto3 would; the rest goes to the real (moto) client."""

    def __init__(self, real, refuse: set[str], times: int = 10**6):
        self.real = real
        self.left = dict.fromkeys(refuse, times)
        self.shape = real.meta.service_model.operation_model("BatchImportFindings").input_shape

    def batch_import_findings(self, **params):
        validate_parameters(params, self.shape)
        refused = [f for f in params["Findings"] if self.left.get(f["Id"], 0) > 0]
        for f in refused:
            self.left[f["Id"]] -= 1
        accepted = [f for f in params["Findings"] if f not in refused]
        response = {"FailedCount": 0, "SuccessCount": 0, "FailedFindings": []}
        if accepted:
            response = self.real.batch_import_findings(Findings=accepted)
        response["FailedCount"] += len(refused)
        response["FailedFindings"] += [
            {"Id": f["Id"], "ErrorCode": "InternalException", "ErrorMessage": "try again"} for f in refused
        ]
        return response


def record_running(env, postures: list[dict], now: datetime) -> list[dict]:
    """Record the tasks, then assemble the workload's findings from the running set the way
    the event pipeline does."""
    for p in postures:
        env.rec.record_audit(p, engine.evaluate(CATALOG, [p]).results, {"type": "sweep", "id": "s"}, now)
    running = env.rec.running_tasks(WL)
    results = [r for task in running for r in task["results"]]
    return asff.build_findings([t["posture"] for t in running], results, CATALOG, now)


# --------------------------------------------------------------------------- imports only what changed


def test_first_sync_imports_every_finding_of_the_workload(env):
    findings = record_running(env, [make_posture(1), open_port_22(make_posture(2))], at(0))
    outcome = publisher(env).sync_workload(WL, findings, at(0))
    assert (outcome.imported, outcome.archived, outcome.unchanged, outcome.failed) == (RULE_COUNT, 0, 0, 0)
    assert set(hub_findings(env.hub)) == {f["Id"] for f in findings}
    assert [len(c) for c in env.calls] == [RULE_COUNT]
    assert set(env.store.finding_states(WL)) == POSTURE_IDS
    assert env.store.pending_outbox() == []
    held = by_rule(hub_findings(env.hub).values())["NET-03"]  # task 2's port 22 is open
    assert held["Compliance"]["Status"] == "FAILED"
    assert held["ProductFields"]["fargate-audit/TasksEvaluated"] == "2"
    assert held["ProductFields"]["fargate-audit/TasksFailed"] == "1"


def test_an_unchanged_estate_resynced_later_imports_nothing(env):
    tasks = [make_posture(1), make_posture(2)]
    publisher(env).sync_workload(WL, findings_for(tasks, at(0)), at(0))
    outcome = publisher(env).sync_workload(WL, findings_for(tasks, at(360)), at(360))
    assert (outcome.imported, outcome.archived, outcome.unchanged) == (0, 0, RULE_COUNT)
    assert len(env.calls) == 1


def test_another_task_of_a_compliant_workload_reimports_only_the_findings_naming_tasks(env):
    """A PASSED finding carries no task count: a task more (a deployment, a scale-out)
    re-imports only the findings whose failing or unevaluated tasks it names. Before, every
    PASSED finding changed its "All N evaluated running tasks" and counts, and was
    re-imported (each import is a billed ingestion event)."""
    one = findings_for([make_posture(1)], at(0))
    publisher(env).sync_workload(WL, one, at(0))
    two = findings_for([make_posture(1), make_posture(2)], at(5))
    naming_tasks = [f for f in two if f["Compliance"]["Status"] != "PASSED"]
    passed = [f for f in two if f["Compliance"]["Status"] == "PASSED"]
    assert passed and not any(k.startswith("fargate-audit/Tasks") for f in passed for k in f["ProductFields"])
    outcome = publisher(env).sync_workload(WL, two, at(5))
    assert (outcome.imported, outcome.unchanged) == (len(naming_tasks), len(passed))


def test_a_changed_finding_is_reimported_alone_with_a_strictly_greater_updated_at(env):
    task = make_posture(1)
    publisher(env).sync_workload(WL, findings_for([task], at(0)), at(0))
    first = by_rule(hub_findings(env.hub).values())["NET-03"]
    # the clock has not moved (same millisecond): UpdatedAt must still increase
    outcome = publisher(env).sync_workload(WL, findings_for([open_port_22(task)], at(0)), at(0))
    assert (outcome.imported, outcome.unchanged) == (1, RULE_COUNT - 1)
    [sent] = env.calls[-1]
    assert sent["Compliance"]["Status"] == "FAILED"
    assert asff.parse_asff_time(sent["UpdatedAt"]) == asff.parse_asff_time(first["UpdatedAt"]) + timedelta(
        milliseconds=1
    )
    assert sent["CreatedAt"] == first["CreatedAt"] and sent["FirstObservedAt"] == first["FirstObservedAt"]
    assert "Workflow" not in sent  # the customer owns it once the finding exists
    held = by_rule(hub_findings(env.hub).values())["NET-03"]
    assert held["UpdatedAt"] == sent["UpdatedAt"] and held["Compliance"]["Status"] == "FAILED"


def test_a_workload_without_running_tasks_is_archived_once(env):
    task = make_posture(1)
    publisher(env).sync_workload(WL, record_running(env, [task], at(0)), at(0))
    env.rec.retire(task["task_arn"], 9, None, {"type": "ecs-event", "id": "stop", "task_version": 9}, at(5))
    assert env.rec.running_tasks(WL) == []
    outcome = publisher(env).sync_workload(WL, [], at(5))
    assert (outcome.imported, outcome.archived) == (0, RULE_COUNT)
    assert {f["RecordState"] for f in hub_findings(env.hub).values()} == {"ARCHIVED"}
    assert env.store.active_findings() == []
    again = publisher(env).sync_workload(WL, [], at(10))
    assert (again.imported, again.archived) == (0, 0)
    assert len(env.calls) == 2


def test_a_rule_not_applicable_to_every_task_archives_only_its_finding(env):
    task = make_posture(1)
    publisher(env).sync_workload(WL, findings_for([task], at(0)), at(0))
    outcome = publisher(env).sync_workload(WL, findings_for([from_docker_hub(task)], at(1)), at(1))
    assert (outcome.imported, outcome.archived) == (2, 1)  # IMG-01/02 now FAILED, NET-10 N/A
    held = by_rule(hub_findings(env.hub).values())
    assert held["NET-10"]["RecordState"] == "ARCHIVED"
    assert held["IMG-01"]["Compliance"]["Status"] == "FAILED" and held["IMG-01"]["RecordState"] == "ACTIVE"


def test_an_archived_finding_that_comes_back_is_active_again(env):
    task = make_posture(1)
    publisher(env).sync_workload(WL, findings_for([task], at(0)), at(0))
    publisher(env).sync_workload(WL, [], at(1))
    archived = by_rule(hub_findings(env.hub).values())["NET-03"]["UpdatedAt"]
    outcome = publisher(env).sync_workload(WL, findings_for([task], at(2)), at(2))
    assert outcome.imported == RULE_COUNT
    held = by_rule(hub_findings(env.hub).values())["NET-03"]
    assert held["RecordState"] == "ACTIVE" and held["UpdatedAt"] > archived
    assert len(env.store.active_findings()) == RULE_COUNT


def test_active_findings_name_their_workload_and_status(env):
    publisher(env).sync_workload(WL, findings_for([open_port_22(make_posture(1))], at(0)), at(0))
    active = {f["rule_id"]: f for f in env.store.active_findings()}
    assert active["NET-03"]["status"] == "FAILED" and active["NET-03"]["workload"] == "prod/service:web"
    assert active["NET-01"]["status"] == "PASSED"


# --------------------------------------------------------------------------- batching


def synthetic_catalog(count: int) -> Catalog:
    rules_ = tuple(
        Rule(
            id=f"NET-{i:03d}",
            title=f"Synthetic rule {i}",
            severity="LOW",
            description="A synthetic rule.",
            remediation="Nothing to do.",
            requires=(),
            check="public_address",
            applicability=None,
            parameters=(),
            fixtures={},
        )
        for i in range(count)
    )
    return Catalog(rules=rules_, parameters={}, mappings={}, rules_dir=Path("/nonexistent"))


def test_more_than_100_findings_are_imported_in_batches_of_at_most_100(env):
    catalog = synthetic_catalog(230)
    task = make_posture(1)
    results = [
        {"task_arn": task["task_arn"], "rule_id": r.id, "status": "FAILED", "evidence": {}}
        for r in catalog.rules
    ]
    findings = asff.build_findings([task], results, catalog, at(0))
    outcome = publisher(env).sync_workload(WL, findings, at(0))
    assert [len(c) for c in env.calls] == [100, 100, 30]
    assert outcome.imported == 230 and len(hub_findings(env.hub)) == 230


def test_batches_also_stay_under_6_mb():
    big = [{"Id": f"x{i}", "Description": "d" * 200_000} for i in range(70)]
    batches = publish.import_batches(big)
    assert [len(b) for b in batches] == [31, 31, 8]
    assert all(len(json.dumps(b).encode()) < 6 * 1024 * 1024 for b in batches)
    assert [f for b in batches for f in b] == big


# --------------------------------------------------------------------------- failures


def test_refused_findings_are_retried_then_left_in_the_outbox_and_flushed_later(env, caplog):
    findings = findings_for([make_posture(1)], at(0))
    refused = {by_rule(findings)["NET-01"]["Id"], by_rule(findings)["NET-03"]["Id"]}
    flaky = FlakyHub(env.hub, refused)
    sleeps: list[float] = []
    with caplog.at_level(logging.WARNING, logger="fargate_audit.findings.publish"):
        outcome = publisher(env, flaky, sleep=sleeps.append).sync_workload(WL, findings, at(0))
    assert (outcome.imported, outcome.failed, outcome.pending) == (RULE_COUNT - 2, 2, 2)
    assert set(outcome.errors) == refused and "InternalException" in outcome.errors[min(refused)]
    assert len(sleeps) == 2  # three attempts in all
    assert sorted(f["Id"] for f in env.store.pending_outbox()) == sorted(refused)
    assert set(env.store.finding_states(WL)) == POSTURE_IDS - {"NET-01", "NET-03"}
    assert set(hub_findings(env.hub)) == {f["Id"] for f in findings} - refused
    assert sum("left in the outbox" in r.getMessage() for r in caplog.records) == 2

    flushed = publisher(env).flush_outbox(at(5))
    assert (flushed.imported, flushed.failed, flushed.pending) == (2, 0, 0)
    assert env.store.pending_outbox() == []
    assert set(env.store.finding_states(WL)) == POSTURE_IDS
    assert set(hub_findings(env.hub)) == {f["Id"] for f in findings}
    # delivered and recorded: the same estate re-synced imports nothing
    assert (
        publisher(env).sync_workload(WL, findings_for([make_posture(1)], at(9)), at(9)).unchanged
        == RULE_COUNT
    )


def test_a_finding_refused_once_is_delivered_by_the_retry(env):
    findings = findings_for([make_posture(1)], at(0))
    target = by_rule(findings)["NET-03"]["Id"]
    outcome = publisher(env, FlakyHub(env.hub, {target}, times=1)).sync_workload(WL, findings, at(0))
    assert (outcome.imported, outcome.failed, outcome.pending) == (RULE_COUNT, 0, 0)
    assert env.store.pending_outbox() == []


def test_a_failed_call_leaves_every_finding_pending_instead_of_raising(env):
    class Unsubscribed:
        def batch_import_findings(self, **_):
            error = {
                "Code": "InvalidAccessException",
                "Message": "Account is not subscribed to AWS Security Hub",
            }
            raise ClientError({"Error": error}, "BatchImportFindings")

    findings = findings_for([make_posture(1)], at(0))
    outcome = publisher(env, Unsubscribed()).sync_workload(WL, findings, at(0))
    assert (outcome.imported, outcome.failed, outcome.pending) == (0, RULE_COUNT, RULE_COUNT)
    assert "InvalidAccessException" in next(iter(outcome.errors.values()))
    assert len(env.store.pending_outbox()) == RULE_COUNT
    assert env.store.finding_states(WL) == {}


def test_a_pending_version_is_superseded_by_the_next_sync(env):
    task = make_posture(1)
    publisher(env).sync_workload(WL, findings_for([task], at(0)), at(0))
    changed = findings_for([open_port_22(task)], at(1))
    net03 = by_rule(changed)["NET-03"]["Id"]
    publisher(env, FlakyHub(env.hub, {net03})).sync_workload(WL, changed, at(1))
    [waiting] = env.store.pending_outbox()
    assert waiting["Compliance"]["Status"] == "FAILED"
    # the port is closed again before the failed version was delivered: Security Hub must
    # end with the current (PASSED) content, not the stale pending one
    outcome = publisher(env).sync_workload(WL, findings_for([task], at(2)), at(2))
    assert outcome.imported == 1
    assert env.store.pending_outbox() == []
    held = hub_findings(env.hub)[net03]
    assert held["Compliance"]["Status"] == "PASSED" and held["UpdatedAt"] > waiting["UpdatedAt"]
    assert publisher(env).flush_outbox(at(3)).imported == 0


def test_flush_delivers_only_the_newest_version_of_a_finding(env):
    v1 = findings_for([make_posture(1)], at(0))
    env.store.put_outbox(v1)
    v2 = publish.plan_workload_findings(findings_for([open_port_22(make_posture(1))], at(1)), {}, at(1))[0]
    env.store.put_outbox(v2)
    outcome = publisher(env).flush_outbox(at(2))
    assert outcome.imported == RULE_COUNT and [len(c) for c in env.calls] == [RULE_COUNT]
    assert by_rule(hub_findings(env.hub).values())["NET-03"]["Compliance"]["Status"] == "FAILED"
    assert env.store.pending_outbox() == []


def test_entries_that_always_fail_do_not_hold_back_those_after_them_in_the_outbox(env):
    """Each flush read the first ``limit`` entries: with that many refused on every
    delivery (here the first workloads' findings), a finding sorted after them was never
    delivered by a flush. Flushes now go on from where the previous one stopped."""

    def of_service(n: int, name: str) -> dict:
        posture = make_posture(n)
        posture.update(group=f"service:{name}", service_name=name, workload=f"prod/service:{name}")
        return posture

    stuck = findings_for([of_service(1, "api"), of_service(2, "batch")], at(0))
    waiting = findings_for([of_service(3, "web")], at(0))
    env.store.put_outbox(stuck + waiting)
    assert max(f["Id"] for f in stuck) < min(f["Id"] for f in waiting)
    flaky = FlakyHub(env.hub, {f["Id"] for f in stuck})
    delivered = 0
    for minutes in (10, 20, 30):  # each flush a new container's (a sweep's, every 6 hours)
        delivered += publisher(env, hub=flaky).flush_outbox(at(minutes), limit=len(stuck)).imported
    assert delivered == len(waiting)
    assert set(hub_findings(env.hub)) == {f["Id"] for f in waiting}
    assert {f["Id"] for f in env.store.pending_outbox()} == {f["Id"] for f in stuck}


def test_boto3_client_side_validation_stays_on(env):
    findings = findings_for([make_posture(1)], at(0))
    findings[0]["Resources"] = "not a list"
    with pytest.raises(ParamValidationError):
        publisher(env).sync_workload(WL, findings, at(0))


def test_findings_of_another_workload_are_refused(env):
    findings = findings_for([make_posture(1)], at(0))
    with pytest.raises(ValueError, match="not of workload"):
        publisher(env).sync_workload(f"WL#{ACCOUNT}#{REGION}#prod#service:api", findings, at(0))


# --------------------------------------------------------------------------- the pure plan


def state_of(finding: dict) -> dict:
    return finding_state(finding)


def test_plan_updated_at_increases_even_when_the_clock_goes_back():
    [finding] = [f for f in findings_for([make_posture(1)], at(10)) if f["Id"].endswith("NET-03")]
    changed = by_rule(findings_for([open_port_22(make_posture(1))], at(0)))["NET-03"]
    to_import, new_states = publish.plan_workload_findings([changed], {"NET-03": state_of(finding)}, at(0))
    [sent] = to_import
    assert sent["UpdatedAt"] == asff.asff_time(at(10) + timedelta(milliseconds=1))
    assert sent["CreatedAt"] == finding["CreatedAt"]
    assert new_states["NET-03"]["updated_at"] == sent["UpdatedAt"]


def test_plan_archives_a_vanished_finding_once():
    finding = by_rule(findings_for([make_posture(1)], at(0)))["NET-03"]
    [archived], states = publish.plan_workload_findings([], {"NET-03": state_of(finding)}, at(1))
    assert archived["RecordState"] == "ARCHIVED" and archived["UpdatedAt"] > finding["UpdatedAt"]
    assert publish.plan_workload_findings([], states, at(2)) == ([], {})


def test_plan_archives_a_finding_only_the_outbox_holds_when_it_is_no_longer_produced():
    """Its first import was refused (it waits in the outbox, no state saved), then the
    workload stopped: it is archived now, else a later flush would deliver it ACTIVE and
    nothing would ever archive it."""
    finding = by_rule(findings_for([make_posture(1)], at(0)))["NET-03"]

    [archived], states = publish.plan_workload_findings([], {}, at(1), pending={finding["Id"]: finding})

    assert archived["Id"] == finding["Id"] and archived["RecordState"] == "ARCHIVED"
    assert archived["UpdatedAt"] > finding["UpdatedAt"] and states["NET-03"]["record_state"] == "ARCHIVED"
    pending_archive = {finding["Id"]: archived}  # an archive waiting is delivered as it is
    assert publish.plan_workload_findings([], {}, at(2), pending=pending_archive) == ([], {})


def test_plan_reimports_an_unchanged_active_finding_before_security_hub_deletes_it():
    """Security Hub deletes a finding whose UpdatedAt is 90 days old: an unchanged ACTIVE
    finding (a long-running workload whose posture never changes) is imported again once
    publish.REFRESH_AFTER has passed, its first times kept; an archived one is not."""
    finding = by_rule(findings_for([make_posture(1)], at(0)))["NET-03"]
    states = {"NET-03": state_of(finding)}
    day = timedelta(days=1)
    later = by_rule(findings_for([make_posture(1)], at(0) + 29 * day))["NET-03"]
    assert publish.plan_workload_findings([later], states, at(0) + 29 * day) == ([], {})
    due = at(0) + publish.REFRESH_AFTER
    [sent], new_states = publish.plan_workload_findings(
        [by_rule(findings_for([make_posture(1)], due))["NET-03"]], states, due
    )
    assert sent["UpdatedAt"] == asff.asff_time(due) and sent["CreatedAt"] == finding["CreatedAt"]
    assert timedelta(days=90) > publish.REFRESH_AFTER
    archived = {"NET-03": {**state_of(finding), "record_state": "ARCHIVED"}}
    assert publish.plan_workload_findings([], archived, at(0) + 200 * day) == ([], {})


def test_plan_keeps_the_first_times_of_a_first_import_still_pending():
    """The first import was refused (or its fate is unknown) and waits in the outbox: the
    next sync keeps that finding's CreatedAt and FirstObservedAt, not its own moment."""
    first = by_rule(findings_for([make_posture(1)], at(0)))["NET-03"]
    again = by_rule(findings_for([open_port_22(make_posture(1))], at(5)))["NET-03"]
    [sent], _ = publish.plan_workload_findings([again], {}, at(5), pending={first["Id"]: first})
    assert (sent["CreatedAt"], sent["FirstObservedAt"]) == (first["CreatedAt"], first["FirstObservedAt"])
    assert sent["UpdatedAt"] > first["UpdatedAt"]


def test_plan_refuses_two_findings_for_one_rule():
    finding = by_rule(findings_for([make_posture(1)], at(0)))["NET-03"]
    with pytest.raises(ValueError, match="two findings"):
        publish.plan_workload_findings([finding, dict(finding)], {}, at(0))


def test_a_sync_scoped_to_some_rules_leaves_the_other_findings_alone(env):
    findings = record_running(env, [make_posture(1)], at(0))
    publisher(env).sync_workload(WL, findings, at(0))
    only = [f for f in findings if f["Id"].endswith("/NET-01")]
    outcome = publisher(env).sync_workload(WL, [], at(1), rules=["NET-03"])
    assert (outcome.imported, outcome.archived) == (0, 1)  # NET-03 only: no longer produced
    assert env.store.finding_states(WL)["NET-01"]["record_state"] == "ACTIVE"
    assert env.store.finding_states(WL)["NET-03"]["record_state"] == "ARCHIVED"
    with pytest.raises(ValueError, match="outside the rules"):
        publisher(env).sync_workload(WL, only, at(2), rules=["NET-03"])

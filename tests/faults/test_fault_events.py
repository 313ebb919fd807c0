"""Event faults: duplicates, disorder, lifecycle surprises, other launch types, and events
from outside the configured accounts and regions, through the real handlers on moto."""

from __future__ import annotations

import json

from fault_harness import (
    ACCOUNT,
    EVENTS,
    FOREIGN_ACCOUNT,
    FOREIGN_REGION,
    config_event,
    sqs_record,
    sweep_body,
)
from reliability import scenario

FACTS = ("ecs", "ec2")

DUPLICATE = scenario(
    "Duplicate RUNNING event",
    "event",
    "stale: decided from the table alone (no AWS read), no new history, nothing re-imported",
)
OLDER_AFTER_NEWER = scenario(
    "Out-of-order versions: v4 after v5",
    "event",
    "v4 stale (older than the recorded version); v5's audit kept",
)
REDELIVERED = scenario(
    "Same version redelivered under a new event id, later",
    "event",
    "stale (that task version is already audited): no AWS read, no history entry, nothing re-imported",
)
STOPPED_FIRST = scenario(
    "STOPPED before RUNNING",
    "event",
    "tombstone written; the late RUNNING is stale; no finding imported",
)
STOPPED_LAST = scenario(
    "STOPPED of the last running task of a workload",
    "event",
    "task retired, its workload's findings archived; a second STOPPED is stale",
)
EC2 = scenario(
    "EC2 launch-type task event",
    "event",
    "ignored and counted (IgnoredEvents); no AWS call, nothing recorded",
)
FOREIGN_ACCOUNT_TASK = scenario(
    "Task event from an account outside the allowlist",
    "event",
    "rejected and counted (ForeignEvents), one log line; no AWS call, nothing recorded",
)
FOREIGN_REGION_TASK = scenario(
    "Task event from a region outside the allowlist",
    "event",
    "rejected and counted (ForeignEvents), one log line; no AWS call, nothing recorded",
)
FOREIGN_CONFIG = scenario(
    "Config event from an account outside the allowlist",
    "event",
    "rejected and counted (ForeignEvents); no dependent task re-audited",
)
FOREIGN_SWEEP = scenario(
    "Sweep message for a region outside the allowlist",
    "event",
    "rejected and counted (ForeignEvents); the message is consumed, not retried",
)
ALLOWLISTED = scenario(
    "Event of an account added to ALLOWED_ACCOUNTS",
    "event",
    "accepted and audited like the function's own account's",
)


def _no_fact_reads(run) -> bool:
    return not run.calls.operations(FACTS)


def test_duplicate_running_event(run, report):
    task = run.world.web[0]
    event = run.running(task)
    first = run.task_events(event)
    findings = run.findings()
    run.calls.reset()

    again = run.task_events(json.loads(json.dumps(event)))

    assert first["status"] == "audited" and again["status"] == "stale" and "duplicate" in again["reason"]
    assert not run.calls.operations(("ecs", "ec2", "securityhub"))
    assert len(run.history(task)) == 1 and run.findings() == findings
    assert run.spy.metrics["StaleEvents"] == 1
    report(DUPLICATE, run.tasks_lost(running=[task]) + run.findings_lost())


def test_older_version_after_newer(run, report):
    task = run.world.web[0]
    run.task_events(run.running(task, version=5))

    older = run.task_events(run.running(task, version=4))

    assert older["status"] == "stale" and "older" in older["reason"]
    assert run.latest(task)["task_version"] == 5 and len(run.history(task)) == 1
    report(OLDER_AFTER_NEWER, run.tasks_lost(running=[task]) + run.findings_lost())


def test_same_version_redelivered_later(run, report):
    task = run.world.web[0]
    run.task_events(run.running(task, event_id="first-delivery"))
    findings = run.findings()
    run.clock.advance(30)

    again = run.task_events(run.running(task, event_id="second-delivery"))

    assert again["status"] == "stale" and "already audited" in again["reason"]
    assert run.findings() == findings
    assert len(run.history(task)) == 1
    report(REDELIVERED, run.tasks_lost(running=[task]) + run.findings_lost())


def test_stopped_before_running(run, report):
    task = run.world.web[0]

    stopped = run.task_events(run.stopped(task))
    running = run.task_events(run.running(task))

    assert stopped["status"] == "stopped"
    assert running["status"] == "stale" and running["reason"] == "task already recorded STOPPED"
    assert run.findings() == {}
    report(STOPPED_FIRST, run.tasks_lost(stopped=[task]) + run.findings_lost())


def test_stopped_of_the_last_task_archives_the_workload(run, report):
    (task,) = run.world.etl
    run.task_events(run.running(task))
    assert {f["RecordState"] for f in run.findings().values()} == {"ACTIVE"}

    stopped = run.task_events(run.stopped(task))
    again = run.task_events(run.stopped(task))

    assert stopped["status"] == "stopped" and stopped["findings"]["archived"] > 0
    assert again["status"] == "stale"
    assert {f["RecordState"] for f in run.findings().values()} == {"ARCHIVED"}
    assert run.rt.findings.active_findings() == []
    report(STOPPED_LAST, run.tasks_lost(stopped=[task]) + run.findings_lost())


def test_ec2_launch_type_event_is_ignored(run, report):
    event = json.loads((EVENTS / "ecs-task-ec2.json").read_text(encoding="utf-8"))

    outcome = run.task_events(event)

    assert outcome["status"] == "ignored" and outcome["reason"] == "not on Fargate (EC2)"
    assert run.spy.metrics == {"IgnoredEvents": 1}
    assert run.calls.calls == [] and run.table_items() == []
    report(EC2)


def _assert_foreign(run, outcome, event_id) -> None:
    assert outcome["status"] == "rejected" and outcome["event_id"] == event_id
    (line,) = run.spy.lines("warning")
    assert line[1] == "event from outside the allowed accounts and regions rejected"
    assert set(line[2]) == {"error", "event_id", "account", "region"}
    assert run.spy.metrics["ForeignEvents"] == 1
    assert run.calls.calls == [] and run.table_items() == []
    assert run.dead_letters() == []  # not malformed: nothing to replay


def test_task_event_from_a_foreign_account(run, report):
    event = run.running(run.world.web[0], account=FOREIGN_ACCOUNT)

    outcome = run.task_events(event)

    _assert_foreign(run, outcome, event["id"])
    assert f"account {FOREIGN_ACCOUNT} is not in the allowed accounts" in outcome["reason"]
    report(FOREIGN_ACCOUNT_TASK)


def test_task_event_from_a_foreign_region(run, report):
    event = run.running(run.world.web[0], region=FOREIGN_REGION)

    outcome = run.task_events(event)

    _assert_foreign(run, outcome, event["id"])
    assert f"region {FOREIGN_REGION} is not in the allowed regions" in outcome["reason"]
    report(FOREIGN_REGION_TASK)


def test_config_event_from_a_foreign_account(run, report):
    task = run.world.web[0]
    run.task_events(run.running(task))  # a task depends on the security group
    run.calls.reset()
    run.spy.logs.clear()
    run.spy.metrics.clear()
    event = config_event(run.world, account=FOREIGN_ACCOUNT)

    outcome = run.config_events(event)

    assert outcome["status"] == "rejected" and run.spy.metrics["ForeignEvents"] == 1
    assert not run.calls.operations()  # not even the dependency index is read
    assert len(run.history(task)) == 1
    report(FOREIGN_CONFIG, run.tasks_lost(running=[task]) + run.findings_lost())


def test_sweep_message_for_a_foreign_region(run, report):
    body = sweep_body(run.world, "prod-web", region=FOREIGN_REGION)

    result = run.sweep_worker([sqs_record("foreign-1", body)])

    assert result == {"batchItemFailures": []}  # consumed: retrying cannot make it allowed
    assert run.spy.metrics["ForeignEvents"] == 1 and run.calls.calls == []
    report(FOREIGN_SWEEP)


def test_event_of_an_allowlisted_account(run, report):
    # the own account listed explicitly with another one: both accepted (the other's
    # would be read through AuditRoleArn in a real deployment)
    run.use({"ALLOWED_ACCOUNTS": f"{FOREIGN_ACCOUNT},{ACCOUNT}"})
    task = run.world.web[0]

    outcome = run.task_events(run.running(task))

    assert outcome["status"] == "audited"
    assert run.rt.allowed_accounts == frozenset({FOREIGN_ACCOUNT, ACCOUNT})
    report(ALLOWLISTED, run.tasks_lost(running=[task]) + run.findings_lost())

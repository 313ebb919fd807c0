"""AWS faults injected into the runtime's own clients: denied reads, throttling (recovered,
past retries, near the Lambda deadline), a vanished ENI, Security Hub refusing findings,
DynamoDB leaving items unprocessed or throttling writes, concurrent audits of one task,
SQS partial batches and a sweep running out of time. Every scenario ends with the
suite's checks (conftest ``report``): no ERROR reported as PASSED, nothing leaked, and
nothing lost once the fault has passed (every task recorded, every finding delivered,
the outbox empty)."""

from __future__ import annotations

import json

import pytest
from fault_harness import (
    API_FACTS,
    NETWORK_FACTS,
    config_event,
    expected_statuses,
    facts_of,
    sqs_record,
    sweep_body,
)
from reliability import scenario

DENIED_APIS = [
    ("ec2", "DescribeNetworkInterfaces", "every network rule ERROR (the ENI is the key to all of them)"),
    ("ec2", "DescribeSecurityGroups", "NET-02/03/04/06 ERROR"),
    ("ec2", "DescribeRouteTables", "NET-02/05/09/10 ERROR (route table, egress path)"),
    ("ec2", "DescribeNetworkAcls", "NET-02/08 ERROR"),
    ("ec2", "DescribeFlowLogs", "NET-07 ERROR"),
    ("ec2", "DescribeVpcEndpoints", "NET-09/10 ERROR"),
    (
        "ec2",
        "DescribeNatGateways",
        "NET-05 ERROR for the NAT-routed task only (NET-02 is decided without the NAT's own hop: "
        "its first hop is no internet gateway); the IGW-routed task unaffected",
    ),
    ("ecs", "DescribeTaskDefinition", "IMG-01/02, LOG-01, CFG-02/03, NET-10 ERROR (container facts)"),
    ("ecs", "DescribeClusters", "LOG-02 ERROR"),
]
ACCESS_DENIED = {
    op: scenario(
        f"AccessDenied on {service}:{op}",
        "aws-fault",
        f"exactly the dependent rules: {effect}; evidence names the call; the rest as without the fault",
    )
    for service, op, effect in DENIED_APIS
}
ENI_VANISHED = scenario(
    "Task ENI vanished before the audit",
    "aws-fault",
    "every network rule ERROR (evidence: vanished); container and cluster rules as without the fault",
)
ECS_THROTTLED = scenario(
    "ECS throttling (ThrottlingException x3 on DescribeTaskDefinition)",
    "aws-fault",
    "retried with backoff, then the same results as without the fault",
)
EC2_THROTTLED = scenario(
    "EC2 throttling (RequestLimitExceeded x3 on DescribeSecurityGroups)",
    "aws-fault",
    "retried with backoff, then the same results as without the fault",
)
THROTTLED_OUT = scenario(
    "EC2 throttled past every retry (DescribeRouteTables)",
    "aws-fault",
    "9 attempts, then the dependent rules ERROR, never PASSED; the audit is recorded",
)
NEAR_DEADLINE = scenario(
    "Throttled with 20 s left in the invocation",
    "aws-fault",
    "retries stop while the 10 s reserve is left (RetriesStoppedByDeadline); dependent rules ERROR",
)
HUB_DOWN = scenario(
    "Security Hub refuses BatchImportFindings",
    "aws-fault",
    "findings kept in the DynamoDB outbox; the next invocation (another task's event) delivers them",
)
HUB_PARTIAL = scenario(
    "Security Hub FailedFindings for part of a batch",
    "aws-fault",
    "the refused findings stay in the outbox, the others are saved; the next sweep delivers the rest",
)
UNPROCESSED = scenario(
    "DynamoDB UnprocessedItems on BatchWriteItem (x2)",
    "aws-fault",
    "unprocessed items retried with backoff until written; every finding delivered",
)
UNPROCESSED_OUT = scenario(
    "DynamoDB BatchWriteItem unprocessed past every retry",
    "aws-fault",
    "the invocation fails (Lambda retries it); the retried event re-syncs its workload: nothing lost",
)
DDB_THROTTLED = scenario(
    "DynamoDB throttled writes (ProvisionedThroughputExceeded x2 on TransactWriteItems)",
    "aws-fault",
    "retried by the SDK; the audit recorded once, history intact",
)
RACE_NEWER_FIRST = scenario(
    "Concurrent audits of one task: the newer version lands first",
    "aws-fault",
    "the older writer's conditional write fails, it re-reads and stands down (stale); the newer state kept",
)
RACE_OLDER_FIRST = scenario(
    "Concurrent audits of one task: the older version lands first",
    "aws-fault",
    "the newer writer's conditional write fails, it re-reads and records over it; both in order",
)
CONFIG_DENIED = scenario(
    "Config event while DescribeTasks is denied",
    "aws-fault",
    "the dependent task keeps its recorded audit; the failure is reported (DescribeFailures)",
)
CONFIG_THROTTLED = scenario(
    "Config event while DescribeTasks is throttled past the SDK's retries",
    "aws-fault",
    "the invocation fails (FailedEvents) so that Lambda retries the event; the retry re-audits the "
    "dependent tasks, whose old verdicts do not stand until the next sweep",
)
PARTIAL_BATCH = scenario(
    "Sweep batch with one cluster unreadable (ListTasks denied)",
    "aws-fault",
    "only that message is a batch item failure; redelivered once readable, everything recorded",
)
SWEEP_DEADLINE = scenario(
    "Sweep batch running out of Lambda time",
    "aws-fault",
    "messages not started with < 60 s left are batch item failures (SweepsDeferred); redelivered and swept",
)


def _evidence_errors(run, task) -> dict[str, str]:
    return {r["rule_id"]: r["evidence"].get("error", "") for r in run.latest(task)["results"]}


@pytest.mark.parametrize(("service", "operation"), [(s, o) for s, o, _ in DENIED_APIS], ids=lambda v: v)
def test_access_denied_on_one_api(run, report, service, operation):
    web, etl = run.world.web[0], run.world.etl[0]
    run.faults.deny(service, operation)

    for task in (web, etl):
        outcome = run.task_events(run.running(task))
        assert outcome["status"] == "audited", outcome

    touched = 0
    for task in (web, etl):
        facts = facts_of(run.world, task, service, operation)
        expected = expected_statuses(run.world, task, facts)
        if operation == "DescribeNatGateways" and facts:
            # only the class after the NAT is unknown: NET-02 needs an internet gateway as
            # the first hop, which a NAT-routed path is not (rules.md), so it keeps its verdict
            expected["NET-02"] = run.world.baseline[task.arn]["statuses"]["NET-02"]
            assert expected["NET-05"] == "ERROR"
        assert run.statuses(task) == expected, (task.group, facts)
        newly = {r for r, s in expected.items() if s == "ERROR"} - {
            r for r, s in run.world.baseline[task.arn]["statuses"].items() if s == "ERROR"
        }
        errors = _evidence_errors(run, task)
        assert all(operation in errors[rule] for rule in newly), errors
        touched += len(newly)
    assert touched > 0  # the fault mattered to some task
    assert facts_of(run.world, web, service, operation) <= API_FACTS[(service, operation)]
    report(ACCESS_DENIED[operation], run.tasks_lost(running=[web, etl]) + run.findings_lost())


def test_eni_vanished(run, report):
    task = run.world.web[0]
    event = run.running(task)
    for attachment in event["detail"]["attachments"]:
        for item in attachment["details"]:
            if item["name"] == "networkInterfaceId":
                item["value"] = "eni-0000000000000dead"

    outcome = run.task_events(event)

    assert outcome["status"] == "audited"
    assert run.statuses(task) == expected_statuses(run.world, task, set(NETWORK_FACTS))
    assert "vanished" in _evidence_errors(run, task)["NET-01"]
    report(ENI_VANISHED, run.tasks_lost(running=[task]) + run.findings_lost())


@pytest.mark.parametrize(
    ("service", "operation", "case"),
    [("ecs", "DescribeTaskDefinition", ECS_THROTTLED), ("ec2", "DescribeSecurityGroups", EC2_THROTTLED)],
    ids=["ecs", "ec2"],
)
def test_throttling_recovers(run, report, service, operation, case):
    task = run.world.web[0]
    run.faults.throttle(service, operation, times=3)

    outcome = run.task_events(run.running(task))

    assert outcome["status"] == "audited" and outcome["errors"] == {}
    assert run.calls.attempts[f"{service}.{operation}"] == 4 and len(run.clock.slept) == 3
    assert run.statuses(task) == run.world.baseline[task.arn]["statuses"]
    report(case, run.tasks_lost(running=[task]) + run.findings_lost())


def test_throttled_past_every_retry(run, report):
    task = run.world.web[0]
    run.faults.throttle("ec2", "DescribeRouteTables")

    outcome = run.task_events(run.running(task), context=run.context(timeout_s=900))

    assert run.calls.attempts["ec2.DescribeRouteTables"] == 9  # aws.CLIENT_CONFIG: 8 retries
    assert outcome["status"] == "audited" and "RequestLimitExceeded" in outcome["errors"]["route_tables"]
    assert run.statuses(task) == expected_statuses(run.world, task, {"route_table", "egress"})
    report(THROTTLED_OUT, run.tasks_lost(running=[task]) + run.findings_lost())


def test_throttled_near_the_lambda_deadline(run, report):
    task = run.world.web[0]
    run.faults.throttle("ec2", "DescribeSecurityGroups")
    context = run.context(timeout_s=20)

    outcome = run.task_events(run.running(task), context=context)

    attempts = run.calls.attempts["ec2.DescribeSecurityGroups"]
    assert 1 <= attempts < 9 and run.rt.clients.retries_stopped == 1
    assert run.spy.metrics["RetriesStoppedByDeadline"] == 1
    assert context.get_remaining_time_in_millis() >= 10_000  # the reserve is left for the writes
    assert outcome["status"] == "audited" and "RequestLimitExceeded" in outcome["errors"]["security_groups"]
    assert run.statuses(task) == expected_statuses(run.world, task, {"security_groups"})
    report(NEAR_DEADLINE, run.tasks_lost(running=[task]) + run.findings_lost())


def test_security_hub_down_then_delivered_by_the_next_invocation(run, report):
    web, etl = run.world.web[0], run.world.etl[0]
    run.faults.fail("securityhub", "BatchImportFindings", "AccessDeniedException", 403)

    first = run.task_events(run.running(web))

    assert first["status"] == "audited" and first["findings"]["imported"] == 0
    pending = first["findings"]["failed"]
    assert pending > 0 and len(run.outbox()) == pending and run.findings() == {}
    assert run.spy.metrics["FindingsNotDelivered"] == pending
    run.faults.clear()
    run.clock.advance(120)  # the outbox entries are no longer their writer's

    second = run.task_events(run.running(etl))  # another workload: only the flush delivers web's

    assert second["flushed"]["imported"] == pending and second["flushed"]["pending"] == 0
    assert run.outbox() == []
    report(HUB_DOWN, run.tasks_lost(running=[web, etl]) + run.findings_lost())


def test_security_hub_refuses_part_of_a_batch(run, report):
    web = run.world.web[0]
    hub = run.world.client("securityhub")  # the emulator's own, unhooked
    refused: set[str] = set()

    def partly(request):
        """Import all but three findings (the same three on every retry) and report those
        three in FailedFindings, as Security Hub answers a partly refused batch."""
        findings = json.loads(request.body)["Findings"]
        if not refused:
            refused.update(f["Id"] for f in findings[:3])
        accepted = [f for f in findings if f["Id"] not in refused]
        if accepted:
            hub.batch_import_findings(Findings=accepted)
        failed = [
            {"Id": f["Id"], "ErrorCode": "InvalidInput", "ErrorMessage": "injected"}
            for f in findings
            if f["Id"] in refused
        ]
        return 200, {"FailedCount": len(failed), "SuccessCount": len(accepted), "FailedFindings": failed}

    run.faults.respond("securityhub", "BatchImportFindings", partly)

    first = run.task_events(run.running(web))

    assert first["findings"]["failed"] == 3 and len(run.outbox()) == 3
    assert not set(refused) & set(run.findings())
    run.faults.clear()
    run.clock.advance(120)

    swept = run.sweep_worker([sqs_record("sweep-1", sweep_body(run.world, "prod-web"))])

    assert swept == {"batchItemFailures": []} and run.outbox() == []
    assert set(refused) <= set(run.findings())
    report(HUB_PARTIAL, run.tasks_lost(running=run.world.web) + run.findings_lost())


def _leave_unprocessed(times: int | None):
    calls = [0]

    def on_params(params):
        calls[0] += 1
        if times is not None and calls[0] > times:
            return None
        ((table, requests),) = params["RequestItems"].items()
        keep, left = requests[: len(requests) // 2], requests[len(requests) // 2 :]
        if not keep:  # a single item: leave it all unprocessed (the call still needs one)
            return None
        params["RequestItems"][table] = keep
        return table, left

    def on_parsed(parsed, state):
        if state is not None:
            table, left = state
            parsed["UnprocessedItems"] = {table: left}

    return on_params, on_parsed, calls


def test_dynamodb_unprocessed_items_are_retried(run, report):
    task = run.world.web[0]
    on_params, on_parsed, _ = _leave_unprocessed(times=2)
    run.faults.rewrite("dynamodb", "BatchWriteItem", on_params, on_parsed)

    outcome = run.task_events(run.running(task))

    assert outcome["status"] == "audited" and outcome["findings"]["failed"] == 0
    assert run.clock.slept  # the recorder backed off before each retry
    report(UNPROCESSED, run.tasks_lost(running=[task]) + run.findings_lost())


def test_dynamodb_unprocessed_past_every_retry_then_the_event_is_retried(run, report):
    from fargate_audit.stores.table import RecordError

    task = run.world.web[0]
    event = run.running(task)
    _, on_parsed, _ = _leave_unprocessed(times=None)

    def always(params):
        ((table, requests),) = params["RequestItems"].items()
        params["RequestItems"][table] = requests[:1]
        return table, requests[1:]

    run.faults.rewrite("dynamodb", "BatchWriteItem", always, on_parsed)

    with pytest.raises(RecordError):  # Lambda retries the asynchronous invocation
        run.task_events(event)
    assert run.latest(task)["lifecycle"] == "RUNNING" and run.findings() == {}
    run.faults.clear()
    run.clock.advance(60)

    retried = run.task_events(event)  # the same event, as Lambda's retry delivers it

    assert retried["status"] == "stale" and "duplicate" in retried["reason"]
    assert retried["findings"]["imported"] > 0
    report(UNPROCESSED_OUT, run.tasks_lost(running=[task]) + run.findings_lost())


def test_dynamodb_throttled_writes_are_retried(run, report):
    task = run.world.web[0]
    run.faults.fail(
        "dynamodb",
        "TransactWriteItems",
        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        400,
        times=2,
    )

    outcome = run.task_events(run.running(task))

    assert outcome["status"] == "audited" and outcome["record"] == "created"
    assert run.calls.attempts["dynamodb.TransactWriteItems"] == 3
    assert len(run.history(task)) == 1
    report(DDB_THROTTLED, run.tasks_lost(running=[task]) + run.findings_lost())


def _latest_writes(run) -> int:
    """Writes of a task's LATEST item by the scenario's main runtime (a transaction whose
    first action puts it, or a single conditional PutItem)."""
    count = 0
    for service, operation, params in run.calls.calls:
        if (service, operation) == ("dynamodb", "TransactWriteItems"):
            first = params["TransactItems"][0].get("Put", {}).get("Item", {})
            count += first.get("sk", {}).get("S") == "LATEST"
        elif (service, operation) == ("dynamodb", "PutItem"):
            count += params["Item"].get("sk", {}).get("S") == "LATEST"
    return count


def _race(run, first_version: int, second_version: int, first_env=None):
    """Invocation A (first_version) is writing when invocation B (another container,
    second_version) audits the same task from start to end."""
    task = run.world.web[0]
    rt_b, spy_b, _ = run.new_runtime()
    outcome_b = {}

    def b_runs():
        outcome_b.update(run.task_events(run.running(task, version=second_version), rt=rt_b, spy=spy_b))

    run.faults.on_call("dynamodb", "TransactWriteItems", b_runs)
    outcome_a = run.task_events(run.running(task, version=first_version, override_env=first_env))
    return task, outcome_a, outcome_b


def test_concurrent_audits_newer_lands_first(run, report):
    task, older, newer = _race(run, first_version=4, second_version=5)

    assert newer["status"] == "audited" and newer["record"] == "created"
    assert older["status"] == "stale" and "older" in older["reason"]
    assert _latest_writes(run) == 1  # A's one attempt failed; it re-read and stood down
    assert run.latest(task)["task_version"] == 5 and len(run.history(task)) == 1
    report(RACE_NEWER_FIRST, run.tasks_lost(running=[task]) + run.findings_lost())


def test_concurrent_audits_older_lands_first(run, report):
    from fault_harness import CANARY_OVERRIDE

    task, newer, older = _race(
        run, first_version=5, second_version=4, first_env={"API_TOKEN": CANARY_OVERRIDE}
    )

    assert older["status"] == "audited" and older["record"] == "created"
    assert newer["status"] == "audited" and newer["record"] == "changed"
    assert _latest_writes(run) == 2  # conflict, re-read, write again
    latest = run.latest(task)
    assert latest["task_version"] == 5 and latest["rev"] == 2
    overrides = [e for e in latest["posture"]["environment"] if e["source"] == "override"]
    assert [e["name"] for e in overrides] == ["API_TOKEN"]  # the newer facts, names only
    report(RACE_OLDER_FIRST, run.tasks_lost(running=[task]) + run.findings_lost())


def test_config_event_while_describe_tasks_is_denied(run, report):
    task = run.world.web[0]
    run.task_events(run.running(task))
    before = run.latest(task)
    run.faults.deny("ecs", "DescribeTasks")

    outcome = run.config_events(config_event(run.world))

    assert outcome["status"] == "audited" and outcome["audited"] == outcome["stopped"] == 0
    (error,) = outcome["errors"]
    assert error["task_arn"] == task.arn and "AccessDenied" in error["message"]
    assert run.spy.metrics["DescribeFailures"] == 1
    assert run.latest(task) == before
    report(CONFIG_DENIED, run.tasks_lost(running=[task]) + run.findings_lost())


def test_config_event_while_describe_tasks_is_throttled_is_retried(run, report):
    """Config sends no second event for a change: a dependent task not described for a
    transient reason must not keep its old verdicts (an SG opened to the world, NET-03
    still PASSED) until the next sweep."""
    from fargate_audit.app.service import RetryLater

    task = run.world.web[0]
    run.task_events(run.running(task))
    before = run.latest(task)
    event = config_event(run.world)
    run.faults.throttle("ecs", "DescribeTasks")

    with pytest.raises(
        RetryLater, match=r"dependent tasks failed for now \(DescribeTasks: ThrottlingException"
    ):
        run.config_events(event)
    assert run.spy.metrics["FailedEvents"] == 1
    assert run.latest(task) == before
    run.faults.clear()

    retried = run.config_events(event)  # Lambda's retry of the same event

    assert retried["status"] == "audited" and retried["errors"] == [] and retried["audited"] >= 1
    assert run.latest(task)["cause"]["type"] == "config-event"
    report(CONFIG_THROTTLED, run.tasks_lost(running=[task]) + run.findings_lost())


def test_sweep_batch_with_one_unreadable_cluster(run, report):
    world = run.world
    prod = world.clusters["prod-web"]
    run.faults.deny("ecs", "ListTasks", when=lambda params: params.get("cluster") == prod)
    records = [
        sqs_record("m-prod", sweep_body(world, "prod-web")),
        sqs_record("m-batch", sweep_body(world, "batch")),
        sqs_record("m-idle", sweep_body(world, "idle")),
    ]

    result = run.sweep_worker(records)

    assert result == {"batchItemFailures": [{"itemIdentifier": "m-prod"}]}
    assert run.spy.metrics["SweepFailures"] == 1
    assert run.tasks_lost(running=world.etl) == 0 and run.tasks_lost(running=world.web) == 2
    run.faults.clear()

    again = run.sweep_worker([records[0]])  # SQS redelivers the failed message

    assert again == {"batchItemFailures": []}
    report(PARTIAL_BATCH, run.tasks_lost(running=world.tasks) + run.findings_lost())


def test_sweep_batch_running_out_of_time(run, report):
    world = run.world
    run.faults.on_call("ecs", "ListTasks", lambda: run.clock.advance(30))  # a slow cluster
    records = [
        sqs_record("m-prod", sweep_body(world, "prod-web")),
        sqs_record("m-batch", sweep_body(world, "batch")),
    ]

    result = run.sweep_worker(records, context=run.context(timeout_s=80))

    assert result == {"batchItemFailures": [{"itemIdentifier": "m-batch"}]}
    assert run.spy.metrics["SweepsDeferred"] == 1
    assert run.tasks_lost(running=world.web) == 0 and run.tasks_lost(running=world.etl) == 1
    run.faults.clear()

    again = run.sweep_worker([records[1]], context=run.context(timeout_s=300))

    assert again == {"batchItemFailures": []}
    report(SWEEP_DEADLINE, run.tasks_lost(running=world.tasks) + run.findings_lost())

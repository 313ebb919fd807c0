"""The sweep's cleanup of scopes the stack no longer audits (service._SweepPlan.
no_longer_audited) must never touch a scope it audits: an account added to
ALLOWED_ACCOUNTS of a one-account stack, and a planner message that arrives after its
scope was audited again (SQS keeps it a day; a redeploy re-added the account)."""

from __future__ import annotations

import json
import os

from fargate_audit.app import events, service
from fault_harness import ACCOUNT, FOREIGN_ACCOUNT, REGION, scheduled_event, sqs_record


def _drain(run) -> list[dict]:
    messages = run.queue_messages(run.world.sweep_queue)
    sqs = run.world.client("sqs")
    for message in messages:
        sqs.delete_message(QueueUrl=run.world.sweep_queue, ReceiptHandle=message["ReceiptHandle"])
    return [sqs_record(m["MessageId"], m["Body"]) for m in messages]


def test_an_account_of_allowed_accounts_is_audited_not_retired_by_the_sweep(run, monkeypatch):
    monkeypatch.setitem(os.environ, "SWEEP_QUEUE_URL", run.world.sweep_queue)
    run.use({"ALLOWED_ACCOUNTS": f"{FOREIGN_ACCOUNT},{ACCOUNT}", "PUBLISH_FINDINGS": "true"})
    task = run.world.web[0]
    assert run.task_events(run.running(task, account=FOREIGN_ACCOUNT))["status"] == "audited"
    arn = task.arn.replace(ACCOUNT, FOREIGN_ACCOUNT)

    planned = run.sweep_planner(scheduled_event())
    assert planned["no_longer_audited_workloads"] == 0
    assert not [r for r in _drain(run) if json.loads(r["body"]).get("no_longer_audited")]
    assert run.rt.recorder.latest(arn)["lifecycle"] == "RUNNING"
    foreign = {f["RecordState"] for k, f in run.findings().items() if f"/{FOREIGN_ACCOUNT}/" in k}
    assert foreign == {"ACTIVE"}


def test_a_no_longer_audited_message_for_a_scope_audited_again_is_ignored(run, monkeypatch):
    monkeypatch.setitem(os.environ, "SWEEP_QUEUE_URL", run.world.sweep_queue)
    (task,) = run.world.etl
    assert run.task_events(run.running(task))["status"] == "audited"
    key = run.rt.recorder.latest(task.arn)["workload_key"]
    body = events.sweep_message(
        ACCOUNT, REGION, run.world.clusters[task.cluster], workloads=[key], no_longer_audited=True
    )
    assert service.origin_error(run.rt, ACCOUNT, REGION) is None  # the scope is audited

    assert run.sweep_worker([sqs_record("late-1", body)]) == {"batchItemFailures": []}
    assert run.rt.recorder.latest(task.arn)["lifecycle"] == "RUNNING"
    assert {f["RecordState"] for f in run.findings().values()} == {"ACTIVE"}
    assert run.task_events(run.running(task, version=5))["status"] == "audited"

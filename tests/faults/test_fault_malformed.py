"""Malformed inputs: each is rejected with one structured log line and a MalformedEvents
metric, never retried forever and never failing anything else. The asynchronous
functions (EventBridge) return normally and send the input, environment values redacted,
to the events dead-letter queue; the sweep worker reports the message as a batch item
failure (SQS redrives it to its DLQ after maxReceiveCount receives)."""

from __future__ import annotations

import copy
import json

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from fargate_audit.app import events
from fault_harness import (
    CANARY_DEFINITION,
    CANARY_OVERRIDE,
    EVENTS,
    FOREIGN_ACCOUNT,
    config_event,
    running_event,
    scheduled_event,
    sqs_record,
    sweep_body,
)
from reliability import scenario

DEAD_LETTERED = (
    "rejected: one log line, MalformedEvents, dead-lettered with values redacted; nothing recorded"
)
BATCH_FAILURE = "a batch item failure of that message only (SQS redrives it); the rest of the batch swept"


def _set(path: str, value):
    def mutate(event):
        *parents, last = path.split(".")
        node = event
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is _DELETE:
            del node[last]
        else:
            node[int(last) if isinstance(node, list) else last] = value
        return event

    return mutate


_DELETE = object()
_ENV = [{"name": "DB_PASSWORD", "value": CANARY_OVERRIDE}]


def _with_env(event: dict) -> dict:
    """The event with an environment value in its first container override."""
    event["detail"]["overrides"]["containerOverrides"][0]["environment"] = copy.deepcopy(_ENV)
    return event


ECS_CASES = {
    "detail missing": _set("detail", _DELETE),
    "detail not an object": _set("detail", "RUNNING"),
    "detail.taskArn missing": _set("detail.taskArn", _DELETE),
    "detail.version a string": _set("detail.version", "4"),
    "detail.version negative": _set("detail.version", -1),
    "detail.lastStatus a number": _set("detail.lastStatus", 3),
    "detail.attachments not an array": _set("detail.attachments", {"type": "eni"}),
    "attachment detail without a name": _set("detail.attachments.0.details.0", {"value": "subnet-1"}),
    "detail.group empty": _set("detail.group", ""),
    "unknown detail-type": _set("detail-type", "ECS Service Action"),
    "source not aws.ecs": _set("source", "custom.ecs"),
    "time not a timestamp": _set("time", "yesterday"),
    "task ARN in another account than the envelope": lambda e: _set(
        "detail.taskArn", e["detail"]["taskArn"].replace(e["account"], FOREIGN_ACCOUNT)
    )(e),
    "not a JSON object (an array)": lambda e: [e],
    "empty object": lambda e: {},
    "overrides not an object, carrying environment values": _set(
        "detail.overrides", [{"name": "web", "environment": _ENV}]
    ),
    "containerOverrides environment a map, not name/value pairs": _set(
        "detail.overrides",
        {"containerOverrides": [{"name": "web", "environment": {"DB_PASSWORD": CANARY_OVERRIDE}}]},
    ),
    "containerOverrides not an array": _set("detail.overrides", {"containerOverrides": "web"}),
    "detail a JSON string carrying environment values": lambda e: _set(
        "detail", json.dumps(_with_env(e)["detail"], separators=(",", ":"))
    )(e),
    "detail a short JSON string whose first characters are a value": _set(
        "detail",
        json.dumps({"overrides": {"containerOverrides": [{"environment": [{"value": CANARY_OVERRIDE}]}]}}),
    ),
    "overrides a JSON string carrying environment values": lambda e: _set(
        "detail.overrides", json.dumps(_with_env(e)["detail"]["overrides"])
    )(e),
    "containerOverrides a JSON string cut short, carrying environment values": lambda e: _set(
        "detail.overrides.containerOverrides",
        json.dumps(_with_env(e)["detail"]["overrides"]["containerOverrides"])[:-2],
    )(e),
    "the whole event a JSON string carrying environment values": lambda e: json.dumps(_with_env(e)),
    "platformVersion a number": _set("detail.platformVersion", 1.4),
    "startedAt a number (epoch milliseconds)": _set("detail.startedAt", 1795168711062),
    "connectivityAt beyond any date (1e308)": _set("detail.connectivityAt", 1e308),
    "platformVersion of 400,000 characters": _set("detail.platformVersion", "1." + "4" * 400_000),
    "attachment detail value of 300,000 characters": _set(
        "detail.attachments.0.details.0.value", "A" * 300_000
    ),
}
CONFIG_CASES = {
    "detail missing": _set("detail", _DELETE),
    "unknown messageType": _set("detail.messageType", "ScheduledNotification"),
    "configurationItem missing": _set("detail.configurationItem", _DELETE),
    "awsAccountId malformed": _set("detail.configurationItem.awsAccountId", "12345"),
    "resourceType a number": _set("detail.configurationItem.resourceType", 7),
    "unknown detail-type": _set("detail-type", "Config Rules Compliance Change"),
    "configurationItemCaptureTime not a timestamp": _set(
        "detail.configurationItem.configurationItemCaptureTime", "now"
    ),
    "a task definition item with environment values, resourceId missing": lambda e: _set(
        "detail.configurationItem",
        {
            "resourceType": "AWS::ECS::TaskDefinition",
            "awsAccountId": e["account"],
            "awsRegion": e["region"],
            "configurationItemCaptureTime": e["time"],
            "configuration": {"containerDefinitions": [{"name": "web", "environment": _ENV}]},
        },
    )(e),
}
OVERSIZED_CASES = {
    "oversized: configurationItemSummary.resourceId missing": _set(
        "detail.configurationItemSummary.resourceId", _DELETE
    ),
}
SCHEDULED_CASES = {
    "unknown detail-type": _set("detail-type", "Something Else"),
    "account missing": _set("account", _DELETE),
}
SQS_BODIES = {
    "truncated JSON body": '{"account_id": "123456789012", "region": "eu-we',
    "body a JSON array": "[]",
    "empty body": "",
    "body null": "null",
    "cluster_arn missing": '{"account_id": "123456789012", "region": "eu-west-1"}',
    "unknown key": None,  # filled below from a valid body
    "cluster of another account than account_id": None,
    "task_arns not an array": None,
    "record without a body": None,  # the body key itself removed from the SQS record
    "cluster_arn of 200,000 characters": json.dumps(
        {
            "account_id": "123456789012",
            "region": "eu-west-1",
            "cluster_arn": "arn:aws:ecs:eu-west-1:123456789012:cluster/" + "c" * 200_000,
        }
    ),
}

CASES = (
    [("ECS event", name, mutate, "task_events") for name, mutate in ECS_CASES.items()]
    + [("Config event", name, mutate, "config_events") for name, mutate in CONFIG_CASES.items()]
    + [("Config event", name, mutate, "config_events-oversized") for name, mutate in OVERSIZED_CASES.items()]
    + [("Scheduled event", name, mutate, "sweep_planner") for name, mutate in SCHEDULED_CASES.items()]
)
SCENARIOS = {
    (kind, name): scenario(f"{kind}: {name}", "malformed-input", DEAD_LETTERED) for kind, name, _, _ in CASES
}
SQS_SCENARIOS = {
    name: scenario(f"Sweep message: {name}", "malformed-input", BATCH_FAILURE) for name in SQS_BODIES
}
REDRIVE = scenario(
    "Sweep message never valid, through the real queue",
    "malformed-input",
    "failed on each of 5 receives (maxReceiveCount), then moved by SQS to the sweep DLQ; "
    "the valid message swept and deleted",
)


def _input(run, handler: str) -> dict:
    if handler == "task_events":
        return running_event(run.world, run.world.web[0])
    if handler == "config_events":
        return config_event(run.world)
    if handler == "config_events-oversized":
        event = json.loads((EVENTS / "config-oversized-change.json").read_text(encoding="utf-8"))
        return event
    return scheduled_event()


@pytest.mark.parametrize(("kind", "name", "mutate", "handler"), CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_malformed_event_is_dead_lettered_with_values_redacted(run, report, kind, name, mutate, handler):
    event = mutate(_input(run, handler))
    original = copy.deepcopy(event)

    outcome = getattr(run, handler.split("-")[0])(event)

    assert outcome["status"] == "rejected" and outcome["dead_lettered"] is True, outcome
    assert outcome["error"].lower().startswith(f"{kind.lower()}: ") and "\n" not in outcome["error"]
    (line,) = run.spy.lines("error")
    assert line[1] == "malformed event rejected" and set(line[2]) <= {"error", "event_id"}
    assert run.spy.metrics["MalformedEvents"] == run.spy.metrics["DeadLetteredEvents"] == 1
    assert run.calls.operations() == {"sqs.SendMessage": 1}  # nothing read, nothing recorded
    (letter,) = run.dead_letters()
    assert letter["fargate_audit"] == {
        "rejected": "malformed",
        "function": handler.split("-")[0],
        "error": outcome["error"],
    }
    # the event redacted; too large for one SQS message: its envelope only
    whole = len(json.dumps(events.redact(original))) < events.MAX_DEAD_LETTER_BYTES
    assert letter["event"] == (events.redact(original) if whole else letter["event"] | {"truncated": True})
    assert whole or set(letter["event"]) < set(original) | {"truncated"}
    assert CANARY_OVERRIDE not in json.dumps(letter) and CANARY_DEFINITION not in json.dumps(letter)
    assert CANARY_OVERRIDE not in json.dumps(outcome) and CANARY_OVERRIDE not in json.dumps(line)
    assert run.table_items() == []
    report(SCENARIOS[(kind, name)])


def _sqs_body(run, name: str) -> str:
    valid = json.loads(sweep_body(run.world, "idle"))
    if name == "unknown key":
        return json.dumps(valid | {"cluster": "idle"})
    if name == "cluster of another account than account_id":
        return json.dumps(valid | {"account_id": FOREIGN_ACCOUNT})
    if name == "task_arns not an array":
        return json.dumps(valid | {"task_arns": "arn:aws:ecs:eu-west-1:123456789012:task/idle/1"})
    return SQS_BODIES[name]


@pytest.mark.parametrize("name", list(SQS_BODIES))
def test_malformed_sweep_message_is_a_batch_item_failure(run, report, name):
    records = [sqs_record("bad-1", _sqs_body(run, name)), sqs_record("good-1", sweep_body(run.world, "idle"))]
    if name == "record without a body":
        del records[0]["body"]

    result = run.sweep_worker(records)

    assert result == {"batchItemFailures": [{"itemIdentifier": "bad-1"}]}
    (line,) = run.spy.lines("error")
    assert line[1] == "malformed sweep message" and line[2]["message_id"] == "bad-1"
    assert line[2]["error"].startswith("sweep message: ") and len(line[2]["error"]) < 500  # no echo of it all
    assert run.spy.metrics["MalformedEvents"] == 1
    assert run.dead_letters() == []  # SQS's own redrive keeps it, not the events DLQ
    report(SQS_SCENARIOS[name])


def test_malformed_sweep_message_is_redriven_to_the_dlq(run, report):
    world = run.world
    sqs = world.client("sqs")
    bad = '{"account_id": "123456789012", "region": "eu-we'
    sqs.send_message(QueueUrl=world.sweep_queue, MessageBody=bad)
    sqs.send_message(QueueUrl=world.sweep_queue, MessageBody=sweep_body(world, "batch"))
    handled: dict[str, int] = {}
    for _ in range(6):  # the event source mapping: receive, invoke, delete what succeeded
        got = sqs.receive_message(
            QueueUrl=world.sweep_queue, MaxNumberOfMessages=10, VisibilityTimeout=0, AttributeNames=["All"]
        ).get("Messages", [])
        if not got:
            break
        records = [
            sqs_record(m["MessageId"], m["Body"], int(m["Attributes"]["ApproximateReceiveCount"]))
            for m in got
        ]
        for m in got:
            handled[m["Body"]] = handled.get(m["Body"], 0) + 1
        try:
            failed = {f["itemIdentifier"] for f in run.sweep_worker(records)["batchItemFailures"]}
        except BatchProcessingError:  # every record failed: the whole batch stays
            failed = {m["MessageId"] for m in got}
        done = [m for m in got if m["MessageId"] not in failed]
        for m in done:
            sqs.delete_message(QueueUrl=world.sweep_queue, ReceiptHandle=m["ReceiptHandle"])
    run.changed()

    assert handled[bad] == 5 and handled[sweep_body(world, "batch")] == 1  # maxReceiveCount
    assert [m["Body"] for m in run.queue_messages(world.sweep_dlq)] == [bad]
    assert run.queue_messages(world.sweep_queue) == []
    assert run.spy.metrics["MalformedEvents"] == 5  # one per receive
    report(REDRIVE, run.tasks_lost(running=world.etl) + run.findings_lost())


def test_redact_keeps_names_and_drops_values_at_any_depth():
    event = {
        "detail": {
            "overrides": {"containerOverrides": [{"name": "web", "environment": _ENV + ["odd"]}]},
            "deeper": [{"environment": {"DB_PASSWORD": CANARY_OVERRIDE}}, {"environment": CANARY_OVERRIDE}],
        },
        "environmentFiles": [{"value": "arn:aws:s3:::bucket/app.env", "type": "s3"}],
    }

    redacted = events.redact(event)

    assert redacted["detail"]["overrides"]["containerOverrides"][0]["environment"] == [
        {"name": "DB_PASSWORD", "value": "(redacted)"},
        "(redacted)",
    ]
    assert redacted["detail"]["deeper"] == [{"environment": "(redacted)"}, {"environment": "(redacted)"}]
    assert redacted["environmentFiles"] == event["environmentFiles"]  # references, not values
    assert CANARY_OVERRIDE not in json.dumps(redacted) and CANARY_OVERRIDE in json.dumps(event)


def test_redact_reads_a_document_sent_as_text_and_replaces_other_text_where_values_are_held():
    overrides = {"containerOverrides": [{"name": "web", "environment": _ENV}]}
    event = {
        "detail": {"overrides": json.dumps(overrides), "stoppedReason": "Essential container exited"},
        "resources": ["arn:aws:ecs:eu-west-1:123456789012:task/c/1"],
        "note": json.dumps([{"environment": _ENV}]),
    }

    redacted = events.redact(event)

    assert json.loads(redacted["detail"]["overrides"]) == {
        "containerOverrides": [
            {"name": "web", "environment": [{"name": "DB_PASSWORD", "value": "(redacted)"}]}
        ]
    }
    assert json.loads(redacted["note"]) == [{"environment": [{"name": "DB_PASSWORD", "value": "(redacted)"}]}]
    assert redacted["detail"]["stoppedReason"] == "Essential container exited"  # plain text elsewhere kept
    assert redacted["resources"] == event["resources"]
    assert events.redact({"detail": "RUNNING " + CANARY_OVERRIDE}) == {"detail": "(redacted)"}
    assert events.redact(json.dumps(event)[:-5]) == "(redacted)"  # the input itself, cut short
    assert CANARY_OVERRIDE not in json.dumps(redacted)


def test_redact_knows_every_casing_and_a_config_diffs_property_paths():
    """A Config item of a task definition in CloudFormation's casing
    (``ContainerDefinitions[].Environment[].{Name,Value}``) and its
    ``configurationItemDiff``, whose keys are property paths through ``environment``."""
    item = {
        "configuration": {
            "ContainerDefinitions": [{"Environment": [{"Name": "DB_PASSWORD", "Value": CANARY_OVERRIDE}]}]
        },
        "configurationItemDiff": {
            "changedProperties": {
                "Configuration.containerDefinitions.0.environment.0": {
                    "previousValue": {"name": "DB_PASSWORD", "value": CANARY_OVERRIDE},
                    "updatedValue": {"name": "DB_PASSWORD", "value": CANARY_OVERRIDE + "-new"},
                    "changeType": "UPDATE",
                },
                "Configuration.ContainerDefinitions.0.Environment": {
                    "updatedValue": [{"Value": CANARY_OVERRIDE}]
                },
                "Configuration.containerDefinitions.0.environmentFiles.0": {
                    "updatedValue": {"value": "arn:x"}
                },
            }
        },
    }

    redacted = events.redact(item)

    assert redacted["configuration"]["ContainerDefinitions"][0]["Environment"] == [
        {"Name": "DB_PASSWORD", "Value": "(redacted)"}
    ]
    changed = redacted["configurationItemDiff"]["changedProperties"]
    assert changed["Configuration.containerDefinitions.0.environment.0"] == "(redacted)"
    assert changed["Configuration.ContainerDefinitions.0.Environment"] == "(redacted)"
    assert changed["Configuration.containerDefinitions.0.environmentFiles.0"] == {
        "updatedValue": {"value": "arn:x"}
    }
    assert CANARY_OVERRIDE not in json.dumps(redacted)


def test_a_dead_letter_too_large_for_sqs_keeps_the_envelope_only():
    event = json.loads((EVENTS / "ecs-task-running.json").read_text(encoding="utf-8"))
    event["detail"]["padding"] = "x" * (events.MAX_DEAD_LETTER_BYTES + 1)

    letter = json.loads(events.dead_letter_body(event, "ECS event: too big", "task_events"))

    assert letter["event"] == {
        key: event[key]
        for key in ("version", "id", "detail-type", "source", "account", "time", "region", "resources")
    } | {"truncated": True}
    assert letter["event_id"] == event["id"] and letter["fargate_audit"]["error"] == "ECS event: too big"

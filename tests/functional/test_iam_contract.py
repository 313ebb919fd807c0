"""Least privilege holds in practice: every AWS call a handler makes in the handler
scenarios is allowed by THAT function's own policy in template.yaml.

Calls are recorded by botocore's ``before-parameter-build`` event on the runtime's
session (test_handlers.build_world), filed by the function whose handler made them,
mapped to IAM actions (the service's signing name + the operation; DynamoDB transactions
to their item actions, SQS batch calls to the single action that authorises them) and
checked against the function's inline policy statements (tests/template_util
.function_policies). DynamoDB index reads must be granted on the table's ``/index/*``.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from fargate_audit import estate, lambda_handlers
from moto import mock_aws

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from template_util import function_policies, load_template  # noqa: E402
from test_handlers import EVENTS, WORLD4, _sqs_record, build_world  # noqa: E402

# Batch operations authorised by another action (IAM has no action of their own name).
AUTHORISED_BY = {
    ("sqs", "SendMessageBatch"): "SendMessage",
    ("sqs", "DeleteMessageBatch"): "DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "ChangeMessageVisibility",
}
TRANSACT_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Delete": "DeleteItem",
    "Update": "UpdateItem",
    "ConditionCheck": "ConditionCheckItem",
}


class IamCallLog:
    """(IAM action, needs the DynamoDB index resource) per function, from a world's CallLog."""

    def __init__(self, calls) -> None:
        self.calls = calls  # test_handlers.CallLog of the runtime's session
        self.actions: dict[str, set[tuple[str, bool]]] = defaultdict(set)

    def take(self, function: str) -> None:
        """File the calls made since the last take under ``function``."""
        for prefix, operation, params in self.calls.calls:
            for action in iam_actions(prefix, operation, params):
                self.actions[function].add((action, bool(params.get("IndexName"))))
        self.calls.reset()


def iam_actions(prefix: str, operation: str, params: dict) -> list[str]:
    if (prefix, operation) == ("dynamodb", "TransactWriteItems"):
        kinds = {kind for item in params["TransactItems"] for kind in item}
        assert kinds, "a transaction without items"
        return sorted(f"dynamodb:{TRANSACT_ITEM_ACTIONS[kind]}" for kind in kinds)
    return [f"{prefix}:{AUTHORISED_BY.get((prefix, operation), operation)}"]


def _mentions_index(resource) -> bool:
    return "/index/" in json.dumps(resource)


def denied(actions: set[tuple[str, bool]], statements) -> list[str]:
    """The recorded actions no statement allows (an index read needs an index resource)."""
    refused = []
    for action, on_index in sorted(actions):
        allowed = False
        for statement_actions, resources in statements:
            if action not in statement_actions:
                continue
            if on_index and not any(_mentions_index(r) or r == "*" for r in resources):
                continue
            allowed = True
        if not allowed:
            refused.append(action + (" (on an index)" if on_index else ""))
    return refused


@pytest.fixture(scope="module")
def recorded():
    """Drive every handler through its scenarios once; the actions each function used."""
    with pytest.MonkeyPatch.context() as monkeypatch, mock_aws():
        world = build_world(monkeypatch)
        log = IamCallLog(world.calls)
        try:
            first, second = world.web
            world.task_events(world.running(first))
            world.task_events(world.running(first))  # duplicate
            world.task_events(world.running(second, event_id="other"))
            world.task_events(json.loads((EVENTS / "ecs-task-ec2.json").read_text()))
            malformed = world.running(first)
            del malformed["detail"]["version"]
            world.task_events(malformed)
            log.take("TaskEventsFunction")

            world.client("ec2").authorize_security_group_ingress(
                GroupId=world.sg, IpPermissions=[estate._ports("tcp", 22, 22, cidrs4=[WORLD4])]
            )
            world.config_events(world.config("config-security-group-change.json"))
            world.config_events(world.config("config-oversized-change.json"))
            world.config_events(world.config("config-route-table-change.json"))
            world.client("ecs").stop_task(cluster="prod-web", task=second.arn, reason="scale in")
            world.config_events(world.config("config-security-group-change.json"))
            log.take("ConfigEventsFunction")

            world.task_events(world.stopped(first))
            log.take("TaskEventsFunction")

            world.sweep_planner(json.loads((EVENTS / "scheduled-event.json").read_text()))
            log.take("SweepPlannerFunction")

            event = world.sweep_records()
            event["Records"].append(_sqs_record("bad", "{}"))
            world.sweep_worker(event)
            world.sweep("batch")
            world.client("ecs").stop_task(cluster="batch", task=world.etl[0].arn, reason="done")
            world.sweep("batch")
            log.take("SweepWorkerFunction")
        finally:
            estate.release_task_states(world.client("ecs"))
            lambda_handlers.reset_runtime()
    return dict(log.actions)


@pytest.fixture(scope="module")
def policies():
    return function_policies(load_template())


FUNCTIONS = ["TaskEventsFunction", "ConfigEventsFunction", "SweepPlannerFunction", "SweepWorkerFunction"]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_call_of_the_function_is_allowed_by_its_own_policy(recorded, policies, function):
    assert recorded.get(function), f"{function} made no AWS call in its scenarios"
    assert denied(recorded[function], policies[function]) == []


def test_the_scenarios_exercise_reads_writes_and_imports(recorded):
    actions = {action for used in recorded.values() for action, _ in used}
    assert {
        "ecs:DescribeTasks",
        "ecs:DescribeClusters",
        "ecs:DescribeTaskDefinition",
        "ecs:ListClusters",
        "ecs:ListTasks",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSecurityGroups",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "securityhub:BatchImportFindings",
        "sqs:SendMessage",
    } <= actions
    assert ("dynamodb:Query", True) in recorded["TaskEventsFunction"]  # the workload index


def test_the_event_functions_never_list_or_queue(recorded):
    event_actions = {a for f in ("TaskEventsFunction", "ConfigEventsFunction") for a, _ in recorded[f]}
    assert not {"ecs:ListClusters", "ecs:ListTasks", "sqs:SendMessage"} & event_actions


def test_the_checker_refuses_an_action_the_policy_lacks(policies):
    assert denied({("ecs:ListTasks", False)}, policies["TaskEventsFunction"]) == ["ecs:ListTasks"]
    assert denied({("sqs:SendMessage", False)}, policies["SweepWorkerFunction"]) == ["sqs:SendMessage"]
    index_only = [(("dynamodb:Query",), ({"Fn::GetAtt": ["PostureTable", "Arn"]},))]
    assert denied({("dynamodb:Query", True)}, index_only) == ["dynamodb:Query (on an index)"]


def test_transactions_and_batches_map_to_the_actions_that_authorise_them():
    params = {"TransactItems": [{"Put": {}}, {"Delete": {}}, {"ConditionCheck": {}}]}
    assert iam_actions("dynamodb", "TransactWriteItems", params) == [
        "dynamodb:ConditionCheckItem",
        "dynamodb:DeleteItem",
        "dynamodb:PutItem",
    ]
    assert iam_actions("sqs", "SendMessageBatch", {}) == ["sqs:SendMessage"]
    assert iam_actions("ec2", "DescribeFlowLogs", {}) == ["ec2:DescribeFlowLogs"]

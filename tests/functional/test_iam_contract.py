"""Least privilege holds in practice: every AWS call a handler makes in the handler
scenarios is allowed by THAT function's own policy in template.yaml.

Calls are recorded by botocore's ``before-parameter-build`` event on the runtime's
session (test_handlers.build_world), filed by the function whose handler made them,
mapped to IAM actions (the service's signing name + the operation; DynamoDB transactions
to their item actions, SQS batch calls to the single action that authorises them) and
checked against the function's inline policy statements (tests/template_util
.function_policies). DynamoDB index reads must be granted on the table's ``/index/*``.
SQS sends are checked against the queue too (the events DLQ only, for the asynchronous
functions' dead letters); sts:AssumeRole is exercised by a runtime reading through an audit
role (the reads made with the role's credentials are the role's, not the function's).
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections import defaultdict
from datetime import UTC, datetime

import pytest
from fargate_audit.app import dnslogs, lambda_handlers
from fargate_audit.local import estate
from moto import mock_aws
from support.env import ACCOUNT, REGION, WORLD4
from support.spies import LambdaContext, sqs_record
from support.template import function_policies, load_template
from support.world import EVENTS, build_world

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
        self.calls = calls  # support.spies.CallLog of the runtime's session
        self.actions: dict[str, set[tuple[str, bool]]] = defaultdict(set)
        self.queues: dict[str, set[str]] = defaultdict(set)  # function -> QueueUrls sent to

    def take(self, function: str) -> None:
        """File the calls made since the last take under ``function``."""
        for prefix, operation, params in self.calls.calls:
            for action in iam_actions(prefix, operation, params):
                self.actions[function].add((action, bool(params.get("IndexName"))))
            if prefix == "sqs" and operation.startswith("SendMessage"):
                self.queues[function].add(params["QueueUrl"])
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
            world.task_events(malformed)  # dead-lettered
            log.take("TaskEventsFunction")

            # Resolver query logs while both web tasks run (attributed, unattributed, a
            # malformed record), the same batch again, an undecodable event
            dns_event = _query_log_batch(world, [first.private_ip, second.private_ip, "10.20.9.250"])
            for event in (dns_event, dns_event, {"awslogs": {"data": "bm90IGd6aXA="}}):
                lambda_handlers.dns_logs(event, LambdaContext(), logger=world.spy, metrics=world.spy)
            log.take("DnsLogsFunction")

            # flow-log records of the first web task's ENI (egress, ingress, another ENI, a
            # malformed record), the same batch again, an undecodable event
            flow_event = _flow_log_batch(first)
            for event in (flow_event, flow_event, {"awslogs": {"data": "bm90IGd6aXA="}}):
                lambda_handlers.flow_logs(event, LambdaContext(), logger=world.spy, metrics=world.spy)
            log.take("FlowLogsFunction")

            world.client("ec2").authorize_security_group_ingress(
                GroupId=world.sg, IpPermissions=[estate._ports("tcp", 22, 22, cidrs4=[WORLD4])]
            )
            world.config_events(world.config("config-security-group-change.json"))
            world.config_events(world.config("config-oversized-change.json"))
            world.config_events(world.config("config-route-table-change.json"))
            world.client("ecs").stop_task(cluster="prod-web", task=second.arn, reason="scale in")
            world.config_events(world.config("config-security-group-change.json"))
            malformed = world.config("config-security-group-change.json")
            del malformed["detail"]["configurationItem"]
            world.config_events(malformed)  # dead-lettered
            log.take("ConfigEventsFunction")

            world.task_events(world.stopped(first))
            log.take("TaskEventsFunction")

            world.sweep_planner(json.loads((EVENTS / "scheduled-event.json").read_text()))
            malformed = json.loads((EVENTS / "scheduled-event.json").read_text())
            malformed["detail-type"] = "Something Else"
            world.sweep_planner(malformed)  # dead-lettered
            # with PublishFindings false the planner reads the listed tasks' workloads instead
            monkeypatch.setenv("PUBLISH_FINDINGS", "false")
            lambda_handlers.set_runtime(
                lambda_handlers.build_runtime(session=world.rt.clients.session, logger=world.spy)
            )
            world.sweep_planner(json.loads((EVENTS / "scheduled-event.json").read_text()))
            monkeypatch.setenv("PUBLISH_FINDINGS", "true")
            lambda_handlers.set_runtime(world.rt)
            log.take("SweepPlannerFunction")

            event = world.sweep_records()
            event["Records"].append(sqs_record("bad", "{}"))
            world.sweep_worker(event)
            world.sweep("batch")
            world.client("ecs").stop_task(cluster="batch", task=world.etl[0].arn, reason="done")
            world.sweep("batch")
            log.take("SweepWorkerFunction")
            queues = {"sweep": world.queue_url, "dlq": world.dlq_url}
        finally:
            estate.release_task_states(world.client("ecs"))
            lambda_handlers.reset_runtime()
    return Recorded(log.actions, queues=dict(log.queues), urls=queues)


def _query_log_batch(world, addresses: list[str]) -> dict:
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    messages = [
        json.dumps(
            {
                "version": "1.100000",
                "account_id": ACCOUNT,
                "region": REGION,
                "vpc_id": world.vpc,
                "query_timestamp": at,
                "query_name": f"{name}.",
                "query_type": "A",
                "query_class": "IN",
                "rcode": "NOERROR",
                "answers": [],
                "srcaddr": ip,
                "srcport": "53111",
                "transport": "UDP",
                "srcids": {},
            }
        )
        for ip in addresses
        for name in ("registry-1.docker.io", "sts.amazonaws.com")
    ] + ["not a record"]
    return dnslogs.encode_subscription(
        {
            "messageType": "DATA_MESSAGE",
            "owner": ACCOUNT,
            "logGroup": "/aws/route53resolver/prod",
            "logStream": "iam-contract",
            "subscriptionFilters": ["fargate-audit-dns-logs"],
            "logEvents": [{"id": str(i), "timestamp": 0, "message": m} for i, m in enumerate(messages)],
        }
    )


def _flow_log_batch(task) -> dict:
    """Flow-log records (flowlogs.DOCUMENTED_FORMAT) of ``task``'s ENI and of another one."""
    start = int(datetime.now(UTC).timestamp())
    lines = [
        f"5 {ACCOUNT} {task.eni} {task.private_ip} 52.94.1.1 49152 443 6 10 900 {start} {start + 9} "
        "ACCEPT OK vpc-1 egress",
        f"5 {ACCOUNT} {task.eni} 203.0.113.9 {task.private_ip} 40000 8080 6 2 120 {start} {start + 9} "
        "REJECT OK vpc-1 ingress",
        f"5 {ACCOUNT} eni-0000000000000000f 10.20.9.9 52.94.1.1 49152 443 6 1 60 {start} {start} "
        "ACCEPT OK vpc-1 egress",
        "not a record",
    ]
    return dnslogs.encode_subscription(
        {
            "messageType": "DATA_MESSAGE",
            "owner": ACCOUNT,
            "logGroup": "/vpc/flow-logs/prod",
            "logStream": "iam-contract",
            "subscriptionFilters": ["fargate-audit-flow-logs"],
            "logEvents": [{"id": str(i), "timestamp": 0, "message": m} for i, m in enumerate(lines)],
        }
    )


class Recorded(dict):
    """{function: {(action, on_index)}}, plus ``queues`` {function: QueueUrls sent to} and
    ``urls`` {"sweep", "dlq"}."""

    def __init__(self, actions, queues, urls) -> None:
        super().__init__(actions)
        self.queues, self.urls = queues, urls


AUDIT_ROLE = f"arn:aws:iam::{ACCOUNT}:role/fargate-audit-reader"


@pytest.fixture(scope="module")
def through_audit_role():
    """A task event handled by a runtime that reads through AUDIT_ROLE_ARN: the actions
    the function itself used, and the AssumeRole parameters."""
    env = {"AUDIT_ROLE_ARN": AUDIT_ROLE, "AUDIT_ROLE_EXTERNAL_ID": "fargate-audit-4711"}
    with pytest.MonkeyPatch.context() as monkeypatch, mock_aws():
        world = build_world(monkeypatch, env)
        log = IamCallLog(world.calls)
        try:
            outcome = world.task_events(world.running(world.web[0]))
            assume = [params for s, op, params in world.calls.calls if (s, op) == ("sts", "AssumeRole")]
            log.take("TaskEventsFunction")
        finally:
            estate.release_task_states(world.client("ecs"))
            lambda_handlers.reset_runtime()
    return outcome, dict(log.actions), assume


@pytest.fixture(scope="module")
def policies():
    return function_policies(load_template())


FUNCTIONS = [
    "TaskEventsFunction",
    "ConfigEventsFunction",
    "SweepPlannerFunction",
    "SweepWorkerFunction",
    "DnsLogsFunction",
    "FlowLogsFunction",
]


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
    # the sweep planner: each cluster's workloads (findings, else its listed tasks') and running sets
    assert {("dynamodb:Query", True), ("dynamodb:BatchGetItem", False)} <= recorded["SweepPlannerFunction"]


def test_the_dns_function_writes_transactions_and_imports_but_reads_no_ecs_or_ec2(recorded):
    used = {action for action, _ in recorded["DnsLogsFunction"]}
    assert {"dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:Query"} <= used
    assert "securityhub:BatchImportFindings" in used
    assert not {a for a in used if a.startswith(("ecs:", "ec2:", "route53resolver:"))}


def test_the_flow_function_writes_transactions_imports_and_reads_only_its_groups_flow_logs(recorded):
    used = {action for action, _ in recorded["FlowLogsFunction"]}
    assert {"dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:Query"} <= used
    assert "securityhub:BatchImportFindings" in used  # EGR-03
    reads = {a for a in used if a.startswith(("ecs:", "ec2:", "route53resolver:"))}
    # the LogFormat of the batch's log group, the CIDRs of its ENIs' VPCs
    assert reads == {"ec2:DescribeFlowLogs", "ec2:DescribeVpcs"}


def test_the_event_functions_never_list_and_queue_only_dead_letters(recorded):
    event_actions = {a for f in ("TaskEventsFunction", "ConfigEventsFunction") for a, _ in recorded[f]}
    assert not {"ecs:ListClusters", "ecs:ListTasks"} & event_actions
    urls = recorded.urls
    assert recorded.queues == {
        "TaskEventsFunction": {urls["dlq"]},
        "ConfigEventsFunction": {urls["dlq"]},
        "SweepPlannerFunction": {urls["sweep"], urls["dlq"]},
        "DnsLogsFunction": {urls["dlq"]},
        "FlowLogsFunction": {urls["dlq"]},
    }


def test_sqs_statements_name_exactly_the_queues_sent_to(policies):
    sent_to = {
        "TaskEventsFunction": ["EventsDeadLetterQueue"],
        "ConfigEventsFunction": ["EventsDeadLetterQueue", "SweepQueue"],  # pages of many dependents
        "SweepPlannerFunction": ["SweepQueue", "EventsDeadLetterQueue"],
        "SweepWorkerFunction": ["SweepQueue"],  # consumed (its event source mapping's poller)
    }
    for function, statements in policies.items():
        queues = [
            resource["Fn::GetAtt"][0]
            for actions, resources in statements
            if any(a.startswith("sqs:") for a in actions)
            for resource in resources
        ]
        if function in sent_to:
            assert queues == sent_to[function], function
        else:  # a later function may dead-letter too, but send nowhere else
            assert set(queues) <= {"EventsDeadLetterQueue"}, function


def test_no_wildcard_action_but_ec2_describe(policies):
    for function, statements in policies.items():
        for actions, _ in statements:
            for action in actions:
                assert "*" not in action or re.fullmatch(r"ec2:Describe\*", action), f"{function}: {action}"
                assert action.count(":") == 1 and action.split(":")[1], f"{function}: {action}"


def test_reading_through_the_audit_role_needs_only_sts_assume_role_on_it(through_audit_role, policies):
    outcome, actions, assume = through_audit_role
    assert outcome["status"] == "audited"
    assert assume == [
        {"RoleArn": AUDIT_ROLE, "RoleSessionName": "fargate-audit", "ExternalId": "fargate-audit-4711"}
    ]
    used = {action for action, _ in actions["TaskEventsFunction"]}
    assert "sts:AssumeRole" in used
    assert not {a for a in used if a.startswith(("ecs:", "ec2:", "securityhub:"))}  # the role's, not ours
    assert denied(actions["TaskEventsFunction"], policies["TaskEventsFunction"]) == []
    for function, statements in policies.items():
        resources = [r for acts, res in statements if "sts:AssumeRole" in acts for r in res]
        assert resources == [{"Ref": "AuditRoleArn"}, MEMBER_ROLES, {"Ref": "OrganizationsRoleArn"}], function


# Organization scale: any account's member role, by name (template.yaml AssumeMemberRole).
MEMBER_ROLES = {"Fn::Sub": "arn:${AWS::Partition}:iam::*:role/${MemberRoleName}"}


@pytest.mark.parametrize(
    ("role_arn", "allowed"),
    [
        ("arn:aws:iam::222222222222:role/fargate-audit-member", True),
        ("arn:aws-us-gov:iam::222222222222:role/fargate-audit-member", False),  # another partition
        ("arn:aws:iam::222222222222:role/fargate-audit-member-admin", False),
        ("arn:aws:iam::222222222222:role/OrganizationAccountAccessRole", False),
        ("arn:aws:iam::222222222222:role/path/fargate-audit-member", False),
    ],
)
def test_the_member_statement_admits_only_the_member_role_of_each_account(role_arn, allowed):
    template = load_template()
    name = template["Parameters"]["MemberRoleName"]["Default"]
    pattern = MEMBER_ROLES["Fn::Sub"].replace("${AWS::Partition}", "aws").replace("${MemberRoleName}", name)
    # IAM resource matching: * spans any characters (here: the account id), case-sensitive.
    assert fnmatch.fnmatchcase(role_arn, pattern) is allowed


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

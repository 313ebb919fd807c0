"""fargate_audit.app.events: every events/ sample parses into the small dict the pipeline reads,
and a malformed variant is refused with one line naming the input and the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from fargate_audit.app import events
from fargate_audit.app.events import EventError
from fargate_audit.core.errors import FargateAuditError

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
TASK_ARN = "arn:aws:ecs:eu-west-1:123456789012:task/prod-web/7f3c2a1b9d8e4f60a1b2c3d4e5f60718"
CLUSTER_ARN = "arn:aws:ecs:eu-west-1:123456789012:cluster/prod-web"


def sample(name: str) -> dict:
    return json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- samples parse


def test_running_sample_parses_to_the_task_facts():
    parsed = events.parse_task_event(sample("ecs-task-running.json"))
    assert {k: v for k, v in parsed.items() if k != "detail"} == {
        "event_id": "5d2a7c1e-9f3b-4e8d-a6c0-1b7f2e9d4a58",
        "event_time": "2026-11-20T09:58:31Z",
        "account": "123456789012",
        "region": "eu-west-1",
        "task_arn": TASK_ARN,
        "cluster_arn": CLUSTER_ARN,
        "group": "service:web",
        "last_status": "RUNNING",
        "launch_type": "FARGATE",
        "capacity_provider": "FARGATE",
        "fargate": True,
        "version": 4,
        "updated_at": "2026-11-20T09:58:31.062Z",
        "stopped_at": None,
    }
    assert parsed["detail"]["attachments"][0]["type"] == "eni"


def test_parsed_detail_is_a_copy_not_the_event():
    event = sample("ecs-task-running.json")
    parsed = events.parse_task_event(event)
    parsed["detail"]["attachments"].clear()
    assert event["detail"]["attachments"]


def test_stopped_sample_carries_its_stop_time_and_higher_version():
    parsed = events.parse_task_event(sample("ecs-task-stopped.json"))
    assert parsed["last_status"] == "STOPPED"
    assert parsed["stopped_at"] == "2026-11-20T14:31:02.947Z"
    assert parsed["version"] == 7


def test_ec2_sample_parses_and_is_not_fargate():
    parsed = events.parse_task_event(sample("ecs-task-ec2.json"))
    assert parsed["launch_type"] == "EC2" and parsed["fargate"] is False


@pytest.mark.parametrize(
    ("launch_type", "provider", "fargate"),
    [
        (None, "FARGATE_SPOT", True),
        (None, "my-asg-provider", False),
        ("FARGATE", None, True),
        ("EXTERNAL", "FARGATE", False),
        (None, None, False),
    ],
)
def test_fargate_is_the_launch_type_else_the_capacity_provider(launch_type, provider, fargate):
    event = sample("ecs-task-running.json")
    event["detail"].pop("launchType")
    event["detail"].pop("capacityProviderName")
    if launch_type:
        event["detail"]["launchType"] = launch_type
    if provider:
        event["detail"]["capacityProviderName"] = provider
    assert events.parse_task_event(event)["fargate"] is fargate


@pytest.mark.parametrize(
    ("name", "resource_type", "resource_id", "oversized"),
    [
        ("config-security-group-change.json", "AWS::EC2::SecurityGroup", "sg-0abc1234def567890", False),
        ("config-route-table-change.json", "AWS::EC2::RouteTable", "rtb-0aa11bb22cc33dd44", False),
        ("config-oversized-change.json", "AWS::EC2::SecurityGroup", "sg-0abc1234def567890", True),
        (
            "config-listener-change.json",
            "AWS::ElasticLoadBalancingV2::Listener",
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/web-prod/50dc6c495c0c9188/0467ef3c8400ae65",
            False,
        ),
    ],
)
def test_config_samples_parse_to_the_changed_resource(name, resource_type, resource_id, oversized):
    parsed = events.parse_config_event(sample(name))
    assert parsed["resource_type"] == resource_type
    assert parsed["resource_id"] == resource_id
    assert parsed["oversized"] is oversized
    assert (parsed["account_id"], parsed["region"]) == ("123456789012", "eu-west-1")
    assert parsed["change_type"] == "UPDATE"
    assert parsed["capture_time"].startswith("2026-11-20T")


def test_config_change_type_falls_back_to_the_item_status():
    event = sample("config-security-group-change.json")
    event["detail"]["configurationItemDiff"] = None
    event["detail"]["configurationItem"]["configurationItemStatus"] = "ResourceDeleted"
    assert events.parse_config_event(event)["change_type"] == "DELETE"


def test_a_network_acl_or_route_table_names_its_associated_subnets_not_its_vpc():
    """The subnets a NACL or route table is associated with find the tasks that do not
    depend on it yet (a subnet moved to it); its VPC would re-audit every task there."""
    event = sample("config-route-table-change.json")
    item = event["detail"]["configurationItem"]
    item["resourceType"], item["resourceId"] = "AWS::EC2::NetworkAcl", "acl-0123456789abcdef0"
    item["configuration"] = {
        "networkAclId": "acl-0123456789abcdef0",
        "associations": [
            {"networkAclAssociationId": "aclassoc-1", "subnetId": "subnet-bbbb"},
            {"subnetId": None},
        ],
    }
    item["relationships"] = [
        {"resourceId": "subnet-aaaa", "resourceType": "AWS::EC2::Subnet", "name": "Is attached to Subnet"},
        {
            "resourceId": "vpc-0a1b2c3d4e5f67890",
            "resourceType": "AWS::EC2::VPC",
            "name": "Is contained in Vpc",
        },
    ]
    assert events.parse_config_event(event)["related_ids"] == ["subnet-aaaa", "subnet-bbbb"]
    item["resourceType"] = "AWS::EC2::SecurityGroup"  # a group's relationships find nothing more
    assert events.parse_config_event(event)["related_ids"] == []


@pytest.mark.parametrize(
    "group, expected",
    [
        ("service:web", "service:web"),
        ("family:etl", "family:etl"),
        ("team/etl#nightly", "family:etl"),  # a custom group (RunTask group): its family's
    ],
)
def test_a_task_event_names_the_workload_by_service_or_family(group, expected):
    event = sample("ecs-task-stopped.json")
    event["detail"]["group"] = group
    event["detail"]["taskDefinitionArn"] = "arn:aws:ecs:eu-west-1:123456789012:task-definition/etl:7"
    assert events.parse_task_event(event)["group"] == expected


@pytest.mark.parametrize("group", ["service:" + "s" * 255, "family:" + "f" * 255])
def test_a_group_of_a_longest_service_or_family_name_is_a_valid_event(group):
    """CreateService and RegisterTaskDefinition allow names of 255 characters, so ECS's
    group ("service:NAME", "family:NAME") reaches 263: such a task's events are audited
    (the schema stopped them at 255 as malformed, while the sweep audited the task)."""
    event = sample("ecs-task-running.json")
    event["detail"]["group"] = group
    assert events.parse_task_event(event)["group"] == group


def test_scheduled_sample_parses():
    assert events.parse_scheduled_event(sample("scheduled-event.json")) == {
        "event_id": "d41f7b2e-3a9c-4c58-8e16-0b7a5f2d9c33",
        "event_time": "2026-11-20T12:00:00Z",
        "account": "123456789012",
        "region": "eu-west-1",
    }


def test_sweep_sample_bodies_parse_with_and_without_task_arns():
    first, second = (events.parse_sweep_message(r["body"]) for r in sample("sweep-message.json")["Records"])
    assert first == {
        "account_id": "123456789012",
        "region": "eu-west-1",
        "cluster_arn": CLUSTER_ARN,
        "task_arns": [TASK_ARN],
        "workloads": None,
        "no_longer_audited": False,
        "cause": None,
    }
    assert second["task_arns"] is None and second["cluster_arn"] == CLUSTER_ARN


def test_planner_message_round_trips():
    body = events.sweep_message("123456789012", "eu-west-1", CLUSTER_ARN)
    assert events.parse_sweep_message(body) == {
        "account_id": "123456789012",
        "region": "eu-west-1",
        "cluster_arn": CLUSTER_ARN,
        "task_arns": None,
        "workloads": None,
        "no_longer_audited": False,
        "cause": None,
    }
    key = "WL#123456789012#eu-west-1#prod-web#service:web"
    body = events.sweep_message(
        "123456789012", "eu-west-1", CLUSTER_ARN, workloads=[key], no_longer_audited=True
    )
    assert events.parse_sweep_message(body)["no_longer_audited"] is True
    with pytest.raises(EventError, match="no_longer_audited names workloads"):
        events.parse_sweep_message(json.dumps(_body(no_longer_audited=True)))


def test_a_config_events_page_names_its_cause_and_only_a_page_may():
    cause = {"type": "config-event", "id": "6f0a2c4e", "event_time": "2026-11-20T12:19:06Z"}
    body = events.sweep_message("123456789012", "eu-west-1", CLUSTER_ARN, [TASK_ARN], cause=cause)
    assert events.parse_sweep_message(body)["cause"] == cause
    with pytest.raises(EventError, match="cause goes with task_arns"):
        events.parse_sweep_message(json.dumps(_body(cause=cause)))
    with pytest.raises(EventError, match="cause"):
        events.parse_sweep_message(json.dumps(_body(task_arns=[TASK_ARN], cause=cause | {"type": "sweep"})))


def test_planner_page_round_trips_and_holds_at_most_one_describe_call():
    arns = [f"{TASK_ARN[:-32]}{n:032x}" for n in range(events.SWEEP_PAGE_TASKS)]
    body = events.sweep_message("123456789012", "eu-west-1", CLUSTER_ARN, arns)
    assert events.parse_sweep_message(body)["task_arns"] == arns
    with pytest.raises(ValueError, match="at most 100 tasks"):
        events.sweep_message("123456789012", "eu-west-1", CLUSTER_ARN, [*arns, TASK_ARN])
    with pytest.raises(EventError, match="task_arns"):  # the schema's bound too
        events.parse_sweep_message(json.dumps(_body(task_arns=[*arns, TASK_ARN])))


def test_a_page_of_the_longest_task_arns_fits_an_sqs_message():
    # the longest ARNs: a 255-character cluster name, the longest partition and region names
    cluster = "c" * 255
    cluster_arn = f"arn:aws-iso-b:ecs:us-isob-east-1:123456789012:cluster/{cluster}"
    arns = [f"arn:aws-iso-b:ecs:us-isob-east-1:123456789012:task/{cluster}/{n:032x}" for n in range(100)]
    body = events.sweep_message("123456789012", "us-isob-east-1", cluster_arn, arns)
    assert len(events.parse_sweep_message(body)["task_arns"]) == 100
    assert len(body.encode("utf-8")) < 40 * 1024 < 256 * 1024  # SQS: 256 KiB per message


def decode_query_log_batch(event):
    """The dns_logs function's input: a CloudWatch Logs subscription batch (dnslogs.py)."""
    from fargate_audit.app import dnslogs

    records, malformed = dnslogs.parse_records(dnslogs.decode_subscription(event))
    assert records and not malformed


def decode_flow_log_batch(event):
    """The flow_logs function's input: a subscription batch of flow-log records (flowlogs.py)."""
    from fargate_audit.app import dnslogs, flowlogs

    fields = flowlogs.parse_format(flowlogs.DOCUMENTED_FORMAT)
    records, skipped, malformed = flowlogs.parse_records(dnslogs.decode_subscription(event), fields)
    assert records and skipped and not malformed
    assert {r.action for r in records} == {"ACCEPT", "REJECT"} and any(":" in r.dstaddr for r in records)


def test_every_sample_file_is_covered_by_a_parser():
    parsers = {
        "ecs-task-running.json": events.parse_task_event,
        "ecs-task-stopped.json": events.parse_task_event,
        "ecs-task-ec2.json": events.parse_task_event,
        "config-security-group-change.json": events.parse_config_event,
        "config-route-table-change.json": events.parse_config_event,
        "config-oversized-change.json": events.parse_config_event,
        "config-listener-change.json": events.parse_config_event,
        "scheduled-event.json": events.parse_scheduled_event,
        "resolver-query-logs.json": decode_query_log_batch,
        "flow-log-records.json": decode_flow_log_batch,
    }
    for name, parse in parsers.items():
        parse(sample(name))
    assert {p.name for p in EVENTS_DIR.glob("*.json")} == set(parsers) | {"sweep-message.json"}


# --------------------------------------------------------------------------- malformed variants


def _del(path):
    def mutate(event):
        target = event
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]

    return mutate


def _set(path, value):
    def mutate(event):
        target = event
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return mutate


TASK_CASES = [
    (_del(["detail", "taskArn"]), "ECS event: detail.taskArn missing"),
    (_del(["detail", "clusterArn"]), "ECS event: detail.clusterArn missing"),
    (_del(["detail", "version"]), "ECS event: detail.version missing"),
    (_del(["detail", "group"]), "ECS event: detail.group missing"),
    (_del(["detail", "lastStatus"]), "ECS event: detail.lastStatus missing"),
    (_del(["detail"]), "ECS event: detail missing"),
    (_del(["id"]), "ECS event: id missing"),
    (_set(["detail", "version"], "4"), 'ECS event: detail.version must be an integer (got "4")'),
    (_set(["detail", "version"], -1), "ECS event: detail.version must be >= 0 (got -1)"),
    (_set(["detail", "taskArn"], "task-1"), 'ECS event: detail.taskArn is malformed (got "task-1")'),
    (_set(["detail", "group"], ""), "ECS event: detail.group is empty"),
    (
        _set(["detail", "group"], "g" * 264),
        "ECS event: detail.group is longer than 263 characters",
    ),  # ECS's limit: "service:" and a service name of up to 255 characters
    (_set(["detail-type"], "ECS Container"), 'ECS event: detail-type must be "ECS Task State Change"'),
    (_set(["source"], "my.app"), 'ECS event: source must be "aws.ecs" (got "my.app")'),
    (_set(["account"], "12"), 'ECS event: account is malformed (got "12")'),
    (_set(["detail", "attachments"], {}), "ECS event: detail.attachments must be an array (got object)"),
    (_del(["detail", "attachments", 0, "type"]), "ECS event: detail.attachments[0].type missing"),
    (
        _set(["detail", "taskArn"], TASK_ARN.replace("123456789012", "210987654321")),
        "ECS event: detail.taskArn is not in the event's account and region",
    ),
    (
        _set(["detail", "clusterArn"], CLUSTER_ARN.replace("eu-west-1", "us-east-1")),
        "ECS event: detail.clusterArn is not in the task's account and region",
    ),
]


@pytest.mark.parametrize(("mutate", "message"), TASK_CASES)
def test_malformed_task_event_names_the_field(mutate, message):
    event = sample("ecs-task-running.json")
    mutate(event)
    with pytest.raises(EventError) as raised:
        events.parse_task_event(event)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_event_error_is_a_fargate_audit_error():
    assert issubclass(EventError, FargateAuditError)


@pytest.mark.parametrize("not_an_object", [[], "text", None, 3])
def test_a_non_object_event_is_refused(not_an_object):
    with pytest.raises(EventError, match=r"^ECS event: not a JSON object"):
        events.parse_task_event(not_an_object)


def test_error_messages_never_echo_override_values():
    event = sample("ecs-task-running.json")
    event["detail"]["overrides"] = "DB_PASSWORD=CANARY-SECRET"
    with pytest.raises(EventError) as raised:
        events.parse_task_event(event)
    assert str(raised.value) == "ECS event: detail.overrides must be an object"


CONFIG_CASES = [
    (
        "config-security-group-change.json",
        _del(["detail", "configurationItem"]),
        "detail.configurationItem missing",
    ),
    (
        "config-security-group-change.json",
        _del(["detail", "configurationItem", "resourceId"]),
        "detail.configurationItem.resourceId missing",
    ),
    (
        "config-route-table-change.json",
        _del(["detail", "configurationItem", "awsRegion"]),
        "detail.configurationItem.awsRegion missing",
    ),
    (
        "config-oversized-change.json",
        _del(["detail", "configurationItemSummary", "resourceType"]),
        "detail.configurationItemSummary.resourceType missing",
    ),
    (
        "config-oversized-change.json",
        _del(["detail", "configurationItemSummary"]),
        "detail.configurationItemSummary missing",
    ),
    ("config-security-group-change.json", _del(["detail", "messageType"]), "detail.messageType missing"),
    (
        "config-security-group-change.json",
        _set(["detail", "messageType"], "ComplianceChangeNotification"),
        "detail.messageType must be one of ConfigurationItemChangeNotification, "
        "OversizedConfigurationItemChangeNotification",
    ),
    (
        "config-security-group-change.json",
        _set(["detail", "configurationItem", "configurationItemCaptureTime"], "yesterday"),
        "detail.configurationItem.configurationItemCaptureTime is malformed",
    ),
]


@pytest.mark.parametrize(("name", "mutate", "message"), CONFIG_CASES)
def test_malformed_config_event_names_the_field(name, mutate, message):
    event = sample(name)
    mutate(event)
    with pytest.raises(EventError) as raised:
        events.parse_config_event(event)
    assert str(raised.value).startswith(f"Config event: {message}")


def test_malformed_scheduled_event_names_the_field():
    event = sample("scheduled-event.json")
    del event["time"]
    with pytest.raises(EventError, match=r"^scheduled event: time missing$"):
        events.parse_scheduled_event(event)


def _body(**changes) -> dict:
    body = {"account_id": "123456789012", "region": "eu-west-1", "cluster_arn": CLUSTER_ARN}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


SWEEP_CASES = [
    ("{not json", "sweep message: body is not JSON"),
    ("[]", "sweep message: not a JSON object (got array)"),
    (json.dumps(_body(cluster_arn=None)), "sweep message: cluster_arn missing"),
    (json.dumps(_body(account_id=None)), "sweep message: account_id missing"),
    (json.dumps(_body(region="Ireland")), 'sweep message: region is malformed (got "Ireland")'),
    (json.dumps(_body(extra=1)), "sweep message: extra: unknown key"),
    (json.dumps(_body(task_arns=[])), "sweep message: task_arns must have at least 1 items"),
    (
        json.dumps(_body(account_id="210987654321")),
        "sweep message: cluster_arn is not in account_id 210987654321",
    ),
    (
        json.dumps(_body(task_arns=[TASK_ARN.replace("eu-west-1", "us-east-1")])),
        "sweep message: task_arns must be in the cluster's account and region",
    ),
    (  # another cluster's task: described there, it would be audited (or retired) as this one's
        json.dumps(_body(task_arns=[TASK_ARN.replace(":task/prod-web/", ":task/batch/")])),
        "sweep message: task_arns must be tasks of cluster_arn (prod-web)",
    ),
]


@pytest.mark.parametrize(("body", "message"), SWEEP_CASES)
def test_malformed_sweep_message_names_the_field(body, message):
    with pytest.raises(EventError) as raised:
        events.parse_sweep_message(body)
    assert str(raised.value).startswith(message)


def test_event_id_reads_events_and_sqs_records_without_validating():
    assert events.event_id({"id": "e-1"}) == "e-1"
    assert events.event_id({"messageId": "m-1"}) == "m-1"
    assert events.event_id(["not", "an", "event"]) is None
    assert events.event_id({"id": 3}) is None


def test_schemas_are_shipped_in_the_package_and_allow_unknown_aws_fields():
    event = copy.deepcopy(sample("ecs-task-running.json"))
    event["detail"]["newFieldAwsAddedLater"] = {"x": 1}
    event["extra-envelope-field"] = True
    assert events.parse_task_event(event)["task_arn"] == TASK_ARN
    assert events.schema(events.SWEEP_MESSAGE)["additionalProperties"] is False

"""The four Lambda handlers on moto, in-process, with the documented-shape samples of events/.

Each test gets a fresh emulated account (support.world): the posture table created from template.yaml's
definition, Security Hub enabled, the sweep queue, and a small estate: VPC 10.20.0.0/16
with a public subnet (default route to an internet gateway), security group
``prod-web-tasks`` open to the world on TCP 443, cluster ``prod-web`` running two tasks of
service ``web`` with public IPs, cluster ``batch`` running one ``etl`` task. Samples are
rewritten to the emulator's ids (task, ENI, subnet, security group, ...) by plain text
substitution, so their documented shape is kept. Handlers are called through
``fargate_audit.app.lambda_handlers`` with a spy logger/metrics (and through each
``functions/<name>/app.py`` once); the runtime's own session records every AWS call.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError
from fargate_audit.app import lambda_handlers
from fargate_audit.core.errors import ConfigError
from fargate_audit.local import estate
from support.env import ACCOUNT, REGION, WORLD4
from support.spies import LambdaContext, Spy, sqs_record
from support.world import EVENTS, emulated_world, list_tasks_as_aws, load_app, task_of

FACT_SERVICES = ("ecs", "ec2")


@pytest.fixture
def world(monkeypatch):
    with emulated_world(monkeypatch) as built:
        yield built


# --------------------------------------------------------------------------- task events


def test_running_event_audits_records_and_publishes_the_workload_findings(world):
    task = world.web[0]

    outcome = world.task_events(world.running(task))

    assert outcome["status"] == "audited" and outcome["record"] == "created"
    assert outcome["workload"] == "prod-web/service:web" and outcome["errors"] == {}
    latest = world.rt.recorder.latest(task.arn)
    assert latest["lifecycle"] == "RUNNING" and latest["task_version"] == 4
    assert latest["posture"]["network"]["eni_id"] == task.eni
    (first,) = world.rt.recorder.history(task.arn)
    assert first["cause"]["type"] == "ecs-event" and first["cause"]["task_version"] == 4
    assert all(before is None for before, _ in first["rules"].values())
    findings = world.findings()
    # every posture rule but NET-11 and NET-12, NOT_APPLICABLE: no load balancer fronts this task
    assert {f["GeneratorId"].split("/")[-1] for f in findings.values()} == {
        rule.id for rule in world.rt.catalog.posture_rules
    } - {"NET-11", "NET-12"}
    assert len(findings) == len(world.rt.catalog.posture_rules) - 2 == outcome["findings"]["imported"]
    assert {f["RecordState"] for f in findings.values()} == {"ACTIVE"}
    assert world.finding("NET-02")["Compliance"]["Status"] == "FAILED"  # public IP, IGW, 443 open
    assert world.finding("NET-03")["Compliance"]["Status"] == "PASSED"  # 443 is an approved port
    assert world.spy.metrics["AuditedTasks"] == 1
    assert world.spy.metrics["FindingsImported"] == len(findings)


def test_running_event_is_audited_from_its_own_detail_without_describe_tasks(world):
    world.task_events(world.running(world.web[0]))

    operations = world.calls.operations(FACT_SERVICES)
    assert "ecs.DescribeTasks" not in operations
    assert "ec2.DescribeSubnets" not in operations  # no posture fact comes from the subnet list
    assert sum(operations.values()) <= 10


def test_an_audit_of_one_task_event_reads_its_latest_item_once(world):
    # DynamoDB reads of a RUNNING event (first audit, publishing on): LATEST once (the
    # order test and the recorder's plan share it), when the account's and region's last
    # Config change was handled (a first audit reads no VPC fact cached before it), the
    # workload's running set, its finding states, its outbox entries, and the outbox
    # flush: 6 (7 before the LATEST read was shared)
    outcome = world.task_events(world.running(world.web[0]))

    reads = world.calls.operations(("dynamodb",))
    assert outcome["status"] == "audited" and outcome["record"] == "created"
    assert reads["dynamodb.GetItem"] == 2
    assert reads["dynamodb.GetItem"] + reads["dynamodb.Query"] == 6, reads

    world.calls.reset()
    assert world.task_events(world.stopped(world.web[0]))["status"] == "stopped"
    assert world.calls.operations(("dynamodb",))["dynamodb.GetItem"] == 1


def test_a_warm_container_reads_at_most_three_facts_for_the_next_task_event(world):
    world.task_events(world.running(world.web[0]))
    world.calls.reset()

    outcome = world.task_events(world.running(world.web[1]))

    assert outcome["status"] == "audited"
    operations = world.calls.operations(FACT_SERVICES)
    assert sum(operations.values()) <= 3, operations
    assert set(operations) == {"ec2.DescribeNetworkInterfaces", "ec2.DescribeFlowLogs"}


def test_a_zero_cache_ttl_reads_the_vpc_facts_for_every_event(monkeypatch):
    with emulated_world(monkeypatch, {"VPC_CACHE_TTL_SECONDS": "0"}) as world:
        world.task_events(world.running(world.web[0]))
        world.calls.reset()
        world.task_events(world.running(world.web[1]))
    operations = world.calls.operations(FACT_SERVICES)
    assert operations["ec2.DescribeSecurityGroups"] == 1 and operations["ecs.DescribeClusters"] == 1
    assert "ecs.DescribeTaskDefinition" not in operations  # immutable per ARN: kept whatever the TTL


def test_fact_cache_expires_clusters_and_vpcs_after_the_ttl_but_keeps_task_definitions():
    from fargate_audit.edge.collect import FactCache

    clock = [100.0]
    cache = FactCache(ttl_seconds=300, clock=lambda: clock[0])
    cache.put_vpc(REGION, "vpc-1", {"vpc_id": "vpc-1"})
    cache.put_cluster("arn:cluster", {"clusterArn": "arn:cluster"})
    cache.put_task_definition("arn:td:1", {"family": "web"})
    clock[0] += 299
    assert cache.vpc(REGION, "vpc-1") and cache.cluster("arn:cluster")
    clock[0] += 1
    assert cache.vpc(REGION, "vpc-1") is None and cache.cluster("arn:cluster") is None
    assert cache.task_definition("arn:td:1") == {"family": "web"}


def test_fact_cache_tells_vpc_facts_fetched_before_a_moment():
    from fargate_audit.edge.collect import FactCache

    clock = [100.0]
    cache = FactCache(ttl_seconds=300, clock=lambda: clock[0])
    cache.put_vpc(REGION, "vpc-1", {"vpc_id": "vpc-1"})
    clock[0] += 5
    mark = cache.now()
    assert cache.vpc(REGION, "vpc-1", fetched_since=mark) is None  # taken before the mark
    assert cache.vpc(REGION, "vpc-1") == {"vpc_id": "vpc-1"}  # still within the TTL
    cache.put_vpc(REGION, "vpc-1", {"vpc_id": "vpc-1", "again": True})
    assert cache.vpc(REGION, "vpc-1", fetched_since=mark) == {"vpc_id": "vpc-1", "again": True}


def test_duplicate_running_event_adds_no_history_and_imports_nothing(world):
    event = world.running(world.web[0])
    world.task_events(event)
    before = world.findings()
    world.calls.reset()

    outcome = world.task_events(json.loads(json.dumps(event)))

    assert outcome["status"] == "stale" and "duplicate" in outcome["reason"]
    assert len(world.rt.recorder.history(world.web[0].arn)) == 1
    assert world.findings() == before
    assert not world.calls.operations(("ecs", "ec2", "securityhub"))  # decided from the table alone
    assert world.spy.metrics["StaleEvents"] == 1


def test_same_version_redelivered_under_a_new_id_is_stale_and_imports_nothing(world):
    task = world.web[0]
    world.task_events(world.running(task, event_id="first-delivery"))
    before = world.findings()
    world.calls.reset()

    outcome = world.task_events(world.running(task, event_id="second-delivery"))

    assert outcome["status"] == "stale" and "already audited" in outcome["reason"]
    assert not world.calls.operations(("ecs", "ec2", "securityhub"))  # decided from the table alone
    assert len(world.rt.recorder.history(task.arn)) == 1
    assert world.findings() == before


def test_a_late_running_event_never_undoes_a_newer_config_re_audit(world):
    """The task's RUNNING event was audited from its container's cached VPC facts; SSH was
    then opened to the world and the Config event re-audited the task from fresh facts
    (NET-03 FAILED). The same RUNNING event delivered again (or late, under another id)
    tells nothing new of the task: it is stale, read from the table alone, and never
    audits the task back from an older cache (another container's, in AWS)."""
    task = world.web[0]
    event = world.running(task)
    world.task_events(event)
    _open_ssh(world)
    assert world.config_events(world.config("config-security-group-change.json"))["audited"] == 1
    assert world.finding("NET-03")["Compliance"]["Status"] == "FAILED"
    world.calls.reset()

    for late in (json.loads(json.dumps(event)), world.running(task, event_id="late-delivery")):
        outcome = world.task_events(late)
        assert outcome["status"] == "stale", outcome
    assert not world.calls.operations(("ecs", "ec2"))
    assert world.rt.recorder.history(task.arn)[-1]["cause"]["type"] == "config-event"
    assert world.finding("NET-03")["Compliance"]["Status"] == "FAILED"


def test_older_running_event_after_a_newer_one_is_stale(world):
    task = world.web[0]
    world.task_events(world.running(task, version=5))

    outcome = world.task_events(world.running(task, version=4))

    assert outcome["status"] == "stale" and "older" in outcome["reason"]
    assert world.rt.recorder.latest(task.arn)["task_version"] == 5


def test_stopped_event_archives_the_findings_when_no_task_of_the_workload_runs(world):
    task = world.web[0]
    world.task_events(world.running(task))
    world.calls.reset()

    outcome = world.task_events(world.stopped(task))

    assert outcome["status"] == "stopped" and outcome["workload"] == "prod-web/service:web"
    assert {f["RecordState"] for f in world.findings().values()} == {"ARCHIVED"}
    assert world.rt.findings.active_findings() == []
    assert world.rt.recorder.latest(task.arn)["lifecycle"] == "STOPPED"
    assert world.rt.recorder.history(task.arn)[-1]["facts"] == [
        {"path": "lifecycle", "before": "RUNNING", "after": "STOPPED"}
    ]
    assert not world.calls.operations(FACT_SERVICES)  # its ENI is gone: nothing is described
    assert world.spy.metrics["FindingsArchived"] == outcome["findings"]["archived"] > 0


@pytest.mark.parametrize("path", ["stopped event", "sweep"])
def test_a_rule_gone_from_the_catalog_has_its_finding_archived_while_the_workload_runs(world, path):
    """A release retires a rule, or a custom catalog leaves it out: the recorded results of
    the workload's other tasks still name it. Publishing neither fails on them (it raised
    KeyError, on every retry) nor leaves the rule's finding ACTIVE for ever: it is no longer
    produced, so it is archived once; the other rules' findings are unchanged."""
    import dataclasses

    for task in world.web:
        world.task_events(world.running(task))
    assert world.finding("NET-02")["RecordState"] == "ACTIVE"
    catalog = world.rt.catalog
    smaller = dataclasses.replace(catalog, rules=tuple(r for r in catalog.rules if r.id != "NET-02"))
    world.rt = dataclasses.replace(world.rt, catalog=smaller)  # a new container after the update
    lambda_handlers.set_runtime(world.rt)

    if path == "stopped event":
        outcome = world.task_events(world.stopped(world.web[1]))
        assert outcome["status"] == "stopped" and outcome["findings"]["archived"] == 1
    else:
        assert world.sweep() == {"batchItemFailures": []}

    assert world.finding("NET-02")["RecordState"] == "ARCHIVED"
    assert {f["RecordState"] for i, f in world.findings().items() if not i.endswith("/NET-02")} == {"ACTIVE"}
    assert "NET-02" not in {s["rule_id"] for s in world.rt.findings.active_findings()}


def test_stopped_event_keeps_the_findings_active_while_another_task_runs(world):
    first, second = world.web
    world.task_events(world.running(first))
    world.task_events(world.running(second))

    world.task_events(world.stopped(first))

    net02 = world.finding("NET-02")
    assert net02["RecordState"] == "ACTIVE"
    assert net02["ProductFields"]["fargate-audit/TasksEvaluated"] == "1"
    assert [r["Id"] for r in net02["Resources"] if r["Type"] == "AwsEcsTask"] == [second.arn]


def test_stopped_before_running_leaves_a_tombstone_and_the_late_running_is_stale(world):
    task = world.web[0]

    stopped = world.task_events(world.stopped(task))
    running = world.task_events(world.running(task))

    assert stopped["status"] == "stopped"
    assert running["status"] == "stale" and running["reason"] == "task already recorded STOPPED"
    assert world.findings() == {}
    assert world.rt.recorder.latest(task.arn)["lifecycle"] == "STOPPED"


def test_a_second_stopped_event_is_stale(world):
    task = world.web[0]
    world.task_events(world.running(task))
    world.task_events(world.stopped(task))

    outcome = world.task_events(world.stopped(task))

    assert outcome["status"] == "stale"


def test_ec2_task_event_is_ignored_and_counted(world):
    event = json.loads((EVENTS / "ecs-task-ec2.json").read_text(encoding="utf-8"))

    outcome = world.task_events(event)

    assert outcome["status"] == "ignored" and outcome["reason"] == "not on Fargate (EC2)"
    assert world.spy.metrics == {"IgnoredEvents": 1}
    assert world.calls.calls == []


def test_pending_task_event_is_ignored(world):
    event = world.running(world.web[0])
    event["detail"]["lastStatus"] = "PENDING"

    assert world.task_events(event)["status"] == "ignored"
    assert world.rt.recorder.latest(world.web[0].arn) is None


def test_malformed_event_is_rejected_with_one_log_line_and_a_metric(world):
    event = world.running(world.web[0])
    del event["detail"]["taskArn"]

    outcome = world.task_events(event)

    assert outcome == {
        "status": "rejected",
        "event_id": event["id"],
        "error": "ECS event: detail.taskArn missing",
        "dead_lettered": True,
    }
    (line,) = [log for log in world.spy.logs if log[0] == "error"]
    assert line[2] == {"error": "ECS event: detail.taskArn missing", "event_id": event["id"]}
    assert world.spy.metrics["MalformedEvents"] == world.spy.metrics["DeadLetteredEvents"] == 1
    assert world.calls.operations() == Counter({"sqs.SendMessage": 1})  # the dead letter only
    (message,) = world.client("sqs").receive_message(QueueUrl=world.dlq_url)["Messages"]
    letter = json.loads(message["Body"])
    assert letter["fargate_audit"] == {
        "rejected": "malformed",
        "function": "task_events",
        "error": "ECS event: detail.taskArn missing",
    }
    assert letter["event"] == event  # no environment in this one: nothing to redact


def test_logs_carry_no_environment_value_from_the_event(world):
    event = world.running(world.web[0])
    event["detail"]["overrides"]["containerOverrides"][1]["environment"] = [
        {"name": "DB_PASSWORD", "value": estate.CANARY_SECRET}
    ]

    outcome = world.task_events(event)

    assert estate.CANARY_SECRET not in json.dumps(world.spy.logs, default=str)
    assert estate.CANARY_SECRET not in json.dumps(outcome, default=str)
    assert world.finding("CFG-02")["Compliance"]["Status"] == "FAILED"
    assert estate.CANARY_SECRET not in json.dumps(world.findings())


# --------------------------------------------------------------------------- config events


def _open_ssh(world) -> None:
    world.client("ec2").authorize_security_group_ingress(
        GroupId=world.sg, IpPermissions=[estate._ports("tcp", 22, 22, cidrs4=[WORLD4])]
    )


@pytest.mark.parametrize("sample", ["config-security-group-change.json", "config-oversized-change.json"])
def test_security_group_change_reaudits_the_dependent_task_and_its_history_shows_the_rule_change(
    world, sample
):
    task = world.web[0]
    world.task_events(world.running(task))  # also warms the VPC cache with the old rules
    before = world.finding("NET-03")
    _open_ssh(world)

    outcome = world.config_events(world.config(sample))

    assert outcome["status"] == "audited" and outcome["oversized"] is (
        sample == "config-oversized-change.json"
    )
    assert outcome["tasks"] == 1 and outcome["audited"] == 1 and outcome["changed"] == 1
    last = world.rt.recorder.history(task.arn)[-1]
    assert last["cause"]["type"] == "config-event" and last["cause"]["id"] == outcome["event_id"]
    assert last["rules"] == {"NET-03": ["PASSED", "FAILED"]}
    (ingress,) = [f for f in last["facts"] if f["path"] == "network.world_ingress"]
    assert {"protocol": "tcp", "from": 22, "to": 22} in ingress["after"]["ipv4"]
    after = world.finding("NET-03")
    assert after["Compliance"]["Status"] == "FAILED"
    assert after["UpdatedAt"] > before["UpdatedAt"] and after["CreatedAt"] == before["CreatedAt"]
    assert world.calls.operations(FACT_SERVICES)["ec2.DescribeSecurityGroups"] == 2  # cache bypassed


def test_route_table_change_reaudits_the_tasks_of_its_subnet(world):
    task = world.web[0]
    world.task_events(world.running(task))
    world.client("ec2").delete_route(RouteTableId=world.route_table, DestinationCidrBlock=WORLD4)

    outcome = world.config_events(world.config("config-route-table-change.json"))

    assert outcome["audited"] == 1
    last = world.rt.recorder.history(task.arn)[-1]
    assert last["rules"]["NET-02"] == ["FAILED", "PASSED"]  # no internet gateway path any more
    assert any(f["path"] == "network.egress.ipv4" for f in last["facts"])
    assert world.finding("NET-02")["Compliance"]["Status"] == "PASSED"


@pytest.mark.parametrize("named_by", ["relationships", "associations", "oversized"])
def test_a_route_table_newly_associated_with_the_subnet_reaudits_its_tasks(world, named_by):
    """The task's subnet moves to another route table (here one without the internet
    route): no task depended on that table, but its Config item names the subnet (as a
    relationship "Is associated with Subnet", and in configuration.associations), which
    finds the subnet's tasks."""
    task = world.web[0]
    world.task_events(world.running(task))
    assert world.finding("NET-02")["Compliance"]["Status"] == "FAILED"
    ec2 = world.client("ec2")
    private = ec2.create_route_table(VpcId=world.vpc)["RouteTable"]["RouteTableId"]
    (association,) = [
        a["RouteTableAssociationId"]
        for a in ec2.describe_route_tables(RouteTableIds=[world.route_table])["RouteTables"][0][
            "Associations"
        ]
        if a.get("SubnetId") == task.subnet
    ]
    ec2.replace_route_table_association(AssociationId=association, RouteTableId=private)
    event = world.config("config-route-table-change.json", task)
    item = event["detail"]["configurationItem"]
    item["resourceId"] = item["configuration"]["routeTableId"] = private
    item["ARN"] = item["ARN"].replace(world.route_table, private)
    item["configuration"]["routes"] = [
        r for r in item["configuration"]["routes"] if r.get("gatewayId") == "local"
    ]
    for entry in item["configuration"]["associations"]:
        entry["routeTableId"] = private
    if named_by == "relationships":
        item["configuration"]["associations"] = []
    elif named_by == "associations":
        item["relationships"] = [r for r in item["relationships"] if r["resourceType"] != "AWS::EC2::Subnet"]
    else:  # an oversized notification names the table only: its associations are described
        summary = {k: item[k] for k in ("resourceType", "resourceId", "ARN", "awsAccountId", "awsRegion")}
        summary |= {
            "changeType": "UPDATE",
            "configurationItemCaptureTime": item["configurationItemCaptureTime"],
            "configurationItemStatus": "OK",
        }
        event["detail"] = {
            "configurationItemSummary": summary,
            "s3DeliverySummary": {"s3BucketLocation": "bucket/key"},
            "notificationCreationTime": item["configurationItemCaptureTime"],
            "messageType": "OversizedConfigurationItemChangeNotification",
            "recordVersion": "1.0",
        }

    outcome = world.config_events(event)

    assert outcome["status"] == "audited" and outcome["audited"] == 1, outcome
    assert world.rt.recorder.history(task.arn)[-1]["rules"]["NET-02"] == ["FAILED", "PASSED"]
    assert world.finding("NET-02")["Compliance"]["Status"] == "PASSED"


def test_config_change_of_a_resource_no_task_depends_on_is_ignored(world):
    world.task_events(world.running(world.web[0]))
    event = world.config("config-security-group-change.json")
    event["detail"]["configurationItem"]["resourceId"] = "sg-0123456789abcdef0"
    world.calls.reset()

    outcome = world.config_events(event)

    assert outcome["status"] == "ignored" and outcome["tasks"] == 0
    assert not world.calls.operations(("ecs", "ec2", "securityhub"))
    assert world.spy.metrics["IgnoredEvents"] == 1
    (line,) = [fields for _, message, fields in world.spy.lines("info") if message == "config event ignored"]
    assert line["reason"] == "no running task depends on it"  # the log says why, not only the return value


def _flow_log_item_event(world, flow_log_id: str, configuration, status: str) -> dict:
    """A Config change of an AWS::EC2::FlowLog in the documented shape: configuration as
    EC2 describes the flow log, or null once it is deleted."""
    event = world.config("config-security-group-change.json")
    item = event["detail"]["configurationItem"]
    item |= {
        "resourceType": "AWS::EC2::FlowLog",
        "resourceId": flow_log_id,
        "ARN": f"arn:aws:ec2:{REGION}:{ACCOUNT}:vpc-flow-log/{flow_log_id}",
        "configuration": configuration,
        "configurationItemStatus": status,
        "relationships": [],
    }
    event["detail"].pop("configurationItemDiff", None)
    event["id"] = f"flow-log-{status}"
    return event


def test_a_flow_log_created_or_deleted_reaudits_the_tasks_of_its_vpc(world):
    """NET-07 follows the VPC's flow logs as they change (AWS::EC2::FlowLog Config items):
    a new flow log names the VPC, which the task depends on; a deleted one's item has no
    configuration, and its id, which the task's posture lists, finds the task."""
    task, other = world.web
    world.task_events(world.running(task))
    world.task_events(world.running(other))
    assert world.finding("NET-07")["Compliance"]["Status"] == "FAILED"
    ec2 = world.client("ec2")
    (flow_log_id,) = ec2.create_flow_logs(
        ResourceIds=[world.vpc],
        ResourceType="VPC",
        TrafficType="ALL",
        LogDestinationType="cloud-watch-logs",
        LogGroupName="vpc-flow-logs",
        DeliverLogsPermissionArn=f"arn:aws:iam::{ACCOUNT}:role/flow-logs",
    )["FlowLogIds"]
    configuration = {"flowLogId": flow_log_id, "resourceId": world.vpc, "trafficType": "ALL"}

    created = world.config_events(
        _flow_log_item_event(world, flow_log_id, configuration, "ResourceDiscovered")
    )

    assert created["status"] == "audited" and created["tasks"] == 2  # both web tasks, same VPC
    assert world.rt.recorder.history(task.arn)[-1]["rules"]["NET-07"] == ["FAILED", "PASSED"]
    assert world.finding("NET-07")["Compliance"]["Status"] == "PASSED"

    ec2.delete_flow_logs(FlowLogIds=[flow_log_id])
    deleted = world.config_events(_flow_log_item_event(world, flow_log_id, None, "ResourceDeleted"))

    assert deleted["status"] == "audited" and deleted["tasks"] == 2
    assert world.rt.recorder.history(task.arn)[-1]["rules"]["NET-07"] == ["PASSED", "FAILED"]
    assert world.finding("NET-07")["Compliance"]["Status"] == "FAILED"


def test_a_flow_log_item_in_cloudformation_spelling_finds_its_vpc_too():
    from fargate_audit.app.events import related_ids

    item = {"resourceType": "AWS::EC2::FlowLog", "configuration": {"ResourceId": "vpc-1", "Id": "fl-1"}}
    related = {
        "resourceType": "AWS::EC2::FlowLog",
        "configuration": None,
        "relationships": [{"resourceId": "subnet-1"}],
    }
    other = {"resourceType": "AWS::EC2::SecurityGroup", "configuration": {"resourceId": "vpc-1"}}

    assert related_ids(item) == ["vpc-1"]
    assert related_ids(related) == ["subnet-1"]
    assert related_ids(other) == []  # only a flow log's change concerns the resource it names


def test_config_change_retires_a_dependent_task_that_has_stopped(world):
    first, second = world.web
    world.task_events(world.running(first))
    world.task_events(world.running(second))
    world.client("ecs").stop_task(cluster="prod-web", task=first.arn, reason="scale in")

    outcome = world.config_events(world.config("config-security-group-change.json"))

    assert outcome["stopped"] == 1 and outcome["audited"] == 1
    assert world.rt.recorder.latest(first.arn)["lifecycle"] == "STOPPED"
    assert world.rt.recorder.latest(second.arn)["lifecycle"] == "RUNNING"
    assert world.finding("NET-02")["ProductFields"]["fargate-audit/TasksEvaluated"] == "1"


def test_a_change_with_more_dependent_tasks_than_a_page_is_handed_to_the_sweep_workers(world, monkeypatch):
    """A security group shared by a whole VPC: its dependents are not audited within the
    config event's one minute but queued, a page of one DescribeTasks call per message, and
    the workers' audits name the Config change as their cause. (The page threshold, 100
    tasks, is lowered here to the world's two.)"""
    from fargate_audit.app import service

    monkeypatch.setattr(service, "CONFIG_INLINE_TASKS", 1)
    for task in world.web:
        world.task_events(world.running(task))
    event = world.config("config-security-group-change.json")
    world.calls.reset()

    outcome = world.config_events(event)

    assert outcome["status"] == "queued" and outcome["tasks"] == 2 and outcome["messages"] == 1, outcome
    assert outcome["errors"] == [] and world.spy.metrics["SweepMessagesSent"] == 1
    assert not world.calls.operations(("ecs", "ec2", "securityhub"))  # nothing described inline
    (message,) = world.client("sqs").receive_message(QueueUrl=world.queue_url, MaxNumberOfMessages=10)[
        "Messages"
    ]
    body = json.loads(message["Body"])
    assert sorted(body["task_arns"]) == sorted(task.arn for task in world.web)
    assert body["cluster_arn"] == world.clusters["prod-web"]
    assert (body["cause"]["type"], body["cause"]["id"]) == ("config-event", event["id"])

    result = world.sweep_worker({"Records": [sqs_record("page-1", message["Body"])]})

    assert result == {"batchItemFailures": []}
    for task in world.web:
        cause = world.rt.recorder.latest(task.arn)["cause"]
        assert (cause["type"], cause["id"]) == ("config-event", event["id"])
    assert world.finding("NET-02")["ProductFields"]["fargate-audit/TasksEvaluated"] == "2"


def test_malformed_config_event_is_rejected(world):
    event = world.config("config-oversized-change.json")
    del event["detail"]["configurationItemSummary"]["resourceId"]

    outcome = world.config_events(event)

    assert outcome["status"] == "rejected"
    assert outcome["error"] == "Config event: detail.configurationItemSummary.resourceId missing"


# --------------------------------------------------------------------------- sweep


def test_planner_sends_one_message_per_page_of_tasks(world):
    event = json.loads((EVENTS / "scheduled-event.json").read_text(encoding="utf-8"))

    outcome = world.sweep_planner(event)

    # two clusters of fewer than 100 tasks: one page each
    assert outcome["clusters"] == outcome["messages"] == 2
    assert outcome["tasks"] == 3 and outcome["retiring"] == 0 and outcome["unreachable"] == []
    sqs = world.client("sqs")
    bodies = []
    while True:
        got = sqs.receive_message(QueueUrl=world.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            break
        bodies += [json.loads(m["Body"]) for m in got]
        sqs.delete_message_batch(
            QueueUrl=world.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)],
        )
    assert sorted(b["cluster_arn"] for b in bodies) == sorted(world.clusters.values())
    tasks = {world.clusters["prod-web"]: world.web, world.clusters["batch"]: world.etl}
    for b in bodies:
        arns = [task.arn for task in tasks[b["cluster_arn"]]]
        assert set(b) == {"account_id", "region", "cluster_arn", "task_arns"}
        assert (b["account_id"], b["region"]) == (ACCOUNT, REGION) and sorted(b["task_arns"]) == sorted(arns)
    # per cluster one ListTasks page; one Query for the region's workloads (none recorded yet)
    assert world.calls.operations() == Counter(
        {"ecs.ListClusters": 1, "ecs.ListTasks": 2, "dynamodb.Query": 1, "sqs.SendMessageBatch": 1}
    )
    assert outcome["api_calls"] == dict(world.calls.operations())
    assert world.spy.metrics["SweepMessagesSent"] == 2


def test_worker_sweeps_the_sample_messages(world):
    result = world.sweep_worker(world.sweep_records())

    assert result == {"batchItemFailures": []}
    for task in world.web:
        assert world.rt.recorder.latest(task.arn)["lifecycle"] == "RUNNING"
    assert world.rt.recorder.history(world.web[0].arn)[0]["cause"]["type"] == "sweep"
    assert world.finding("NET-02")["ProductFields"]["fargate-audit/TasksEvaluated"] == "2"


def test_worker_reports_only_the_malformed_message_as_a_batch_failure(world):
    event = world.sweep_records()
    event["Records"].append(sqs_record("malformed-1", '{"account_id": "123456789012"}'))

    result = world.sweep_worker(event)

    assert result == {"batchItemFailures": [{"itemIdentifier": "malformed-1"}]}
    (line,) = [log for log in world.spy.logs if log[0] == "error"]
    assert line[2]["message_id"] == "malformed-1"
    assert line[2]["error"] in ("sweep message: region missing", "sweep message: cluster_arn missing")
    assert world.spy.metrics["MalformedEvents"] == 1
    assert world.rt.recorder.latest(world.web[1].arn)["lifecycle"] == "RUNNING"  # the others were swept


def test_a_message_that_fails_on_dynamodb_is_named_and_counted_and_the_others_swept(world, monkeypatch):
    """A failure past the SDK's retries (DynamoDB throttled) left no log line and no metric:
    the page was retried, then dead-lettered without a trace of why."""
    from botocore.exceptions import ClientError
    from fargate_audit.app import service

    event = world.sweep_records()
    first = event["Records"][0]["messageId"]
    sweep = service.sweep_cluster

    def throttled_once(body, rt, now, message_id=None, **kwargs):
        if message_id == first:
            error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "DB_PASSWORD=x"}}
            raise ClientError(error, "TransactWriteItems")
        return sweep(body, rt, now, message_id=message_id, **kwargs)

    monkeypatch.setattr(service, "sweep_cluster", throttled_once)
    result = world.sweep_worker(event)

    assert result == {"batchItemFailures": [{"itemIdentifier": first}]}
    (line,) = [log for log in world.spy.logs if log[0] == "error"]
    assert line[2]["event_id"] == first
    assert line[2]["error"] == "ClientError ProvisionedThroughputExceededException"
    assert "DB_PASSWORD" not in json.dumps(world.spy.logs)  # never the error's text
    assert world.spy.metrics["FailedEvents"] == 1


def test_unchanged_resweep_imports_nothing(world):
    world.sweep()
    before = world.findings()
    history = world.rt.recorder.history(world.web[0].arn)
    world.calls.reset()

    world.sweep()

    assert world.findings() == before
    assert world.rt.recorder.history(world.web[0].arn) == history
    assert "securityhub.BatchImportFindings" not in world.calls.operations()
    assert world.spy.metrics["PostureChanges"] == 2  # from the first sweep only


def test_sweep_retires_tasks_that_no_longer_run(world):
    first, second = world.web
    world.task_events(world.running(first))
    world.task_events(world.running(second))
    world.client("ecs").stop_task(cluster="prod-web", task=first.arn, reason="scale in")

    world.sweep()

    assert world.rt.recorder.latest(first.arn)["lifecycle"] == "STOPPED"
    assert world.rt.recorder.latest(second.arn)["lifecycle"] == "RUNNING"
    assert world.spy.metrics["StoppedTasks"] == 1


def test_sweep_archives_a_workload_whose_last_task_stopped_unseen(world):
    (etl,) = world.etl
    world.sweep("batch")
    assert world.finding("NET-02", "batch/family:etl")["RecordState"] == "ACTIVE"
    world.client("ecs").stop_task(cluster="batch", task=etl.arn, reason="job done")  # no event arrives

    world.sweep("batch")

    assert world.rt.recorder.latest(etl.arn)["lifecycle"] == "STOPPED"
    etl_findings = [f for f in world.findings().values() if "/batch/family:etl/" in f["Id"]]
    assert etl_findings and {f["RecordState"] for f in etl_findings} == {"ARCHIVED"}


def planned_pages(world) -> tuple[dict, list[dict]]:
    """The planner's outcome and the SQS records of the pages it queued (taken off the queue)."""
    planned = world.sweep_planner(json.loads((EVENTS / "scheduled-event.json").read_text(encoding="utf-8")))
    sqs, records = world.client("sqs"), []
    while got := sqs.receive_message(QueueUrl=world.queue_url, MaxNumberOfMessages=10).get("Messages"):
        for message in got:
            records.append(sqs_record(message["MessageId"], message["Body"]))
            sqs.delete_message(QueueUrl=world.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return planned, records


def test_a_sweep_of_pages_retires_a_task_that_stopped_unseen(world, monkeypatch):
    list_tasks_as_aws(monkeypatch)
    first, second = world.web
    world.task_events(world.running(first))
    world.task_events(world.running(second))
    world.client("ecs").stop_task(cluster="prod-web", task=first.arn, reason="scale in")  # no event arrives
    world.calls.reset()

    planned, records = planned_pages(world)

    # the listing lacks the stopped task the recorder holds as running: it goes in the page
    assert planned["tasks"] == 2 and planned["retiring"] == 1 and planned["messages"] == 2
    (page,) = [json.loads(r["body"]) for r in records if "prod-web" in json.loads(r["body"])["cluster_arn"]]
    assert page["task_arns"] == [second.arn, first.arn]
    # what the decision cost: one Query for the account and region's workloads (not one per
    # cluster), one per workload found (prod-web's web service; batch has none recorded)
    assert world.calls.operations(("dynamodb",)) == Counter({"dynamodb.Query": 2})
    assert world.sweep_worker({"Records": records}) == {"batchItemFailures": []}
    assert world.rt.recorder.latest(first.arn)["lifecycle"] == "STOPPED"
    assert world.rt.recorder.history(first.arn)[-1]["cause"]["type"] == "sweep"
    assert world.rt.recorder.latest(second.arn)["lifecycle"] == "RUNNING"
    assert world.spy.metrics["StoppedTasks"] == 1
    assert world.finding("NET-02")["ProductFields"]["fargate-audit/TasksEvaluated"] == "1"
    # retired once: the next sweep has nothing left to retire
    assert planned_pages(world)[0]["retiring"] == 0


def test_a_page_delivered_again_does_not_count_its_retired_task_twice(world, monkeypatch):
    """SQS delivers at least once: the second delivery finds the task recorded STOPPED
    already: stale, not stopped again (StoppedTasks counted it twice)."""
    list_tasks_as_aws(monkeypatch)
    first, second = world.web
    world.task_events(world.running(first))
    world.task_events(world.running(second))
    world.client("ecs").stop_task(cluster="prod-web", task=first.arn, reason="scale in")  # no event arrives
    _, records = planned_pages(world)

    assert world.sweep_worker({"Records": records}) == {"batchItemFailures": []}
    assert world.sweep_worker({"Records": records}) == {"batchItemFailures": []}

    assert world.spy.metrics["StoppedTasks"] == 1
    assert len(world.rt.recorder.history(first.arn)) == 2  # the audit, the stop: once each


@pytest.mark.parametrize("listed", ["inactive", "not-found", "no-longer"])
def test_a_sweep_retires_the_tasks_of_a_deleted_cluster(world, monkeypatch, listed):
    """Its tasks stopped unseen and the cluster was deleted: ECS may still list it INACTIVE
    (the emulator does, with an empty ListTasks), list it while ListTasks answers
    ClusterNotFoundException, or no longer list it (AWS, after a while); each way the
    planner queues the recorded tasks and the worker retires them, so its findings are
    archived instead of staying ACTIVE for ever."""
    list_tasks_as_aws(monkeypatch)
    (etl,) = world.etl
    world.sweep("batch")
    assert world.finding("NET-02", "batch/family:etl")["RecordState"] == "ACTIVE"
    ecs = world.client("ecs")
    ecs.stop_task(cluster="batch", task=etl.arn, reason="done")  # no event arrives
    ecs.delete_cluster(cluster="batch")
    from fargate_audit.edge import collect

    if listed == "no-longer":
        list_clusters = collect.list_clusters
        monkeypatch.setattr(
            collect,
            "list_clusters",
            lambda clients, region: [
                arn for arn in list_clusters(clients, region) if not arn.endswith("/batch")
            ],
        )
    elif listed == "not-found":
        list_tasks = collect.list_tasks

        def refusing(clients, region, cluster):
            if cluster.endswith("/batch"):
                error = {"Error": {"Code": "ClusterNotFoundException", "Message": "Cluster not found."}}
                raise ClientError(error, "ListTasks")
            return list_tasks(clients, region, cluster)

        monkeypatch.setattr(collect, "list_tasks", refusing)

    planned, records = planned_pages(world)

    assert planned["retiring"] == 1
    (page,) = [
        json.loads(r["body"]) for r in records if json.loads(r["body"])["cluster_arn"].endswith("/batch")
    ]
    assert page == {
        "account_id": ACCOUNT,
        "region": REGION,
        "cluster_arn": world.clusters["batch"],
        "task_arns": [etl.arn],
    }
    assert world.sweep_worker({"Records": records}) == {"batchItemFailures": []}
    assert world.rt.recorder.latest(etl.arn)["lifecycle"] == "STOPPED"
    etl_findings = [f for f in world.findings().values() if "/batch/family:etl/" in f["Id"]]
    assert etl_findings and {f["RecordState"] for f in etl_findings} == {"ARCHIVED"}
    assert planned_pages(world)[0]["retiring"] == 0


@pytest.mark.parametrize("known", ["inactive", "forgotten"])
def test_a_whole_cluster_message_of_a_cluster_deleted_since_retires_its_tasks(world, monkeypatch, known):
    """The planner queues a whole cluster (no task_arns) when its ListTasks was refused; the
    cluster deleted before a worker took the message failed it on every receive ("no
    cluster in scope could be listed") until SQS moved it to the DLQ, its tasks never
    retired. It is confirmed deleted, and its recorded tasks are described and retired.
    ECS lists a deleted cluster INACTIVE for a while, then no longer knows it (MISSING)."""
    list_tasks_as_aws(monkeypatch)
    (etl,) = world.etl
    world.sweep("batch")
    ecs = world.client("ecs")
    ecs.stop_task(cluster="batch", task=etl.arn, reason="done")  # no event arrives
    ecs.delete_cluster(cluster="batch")
    if known == "forgotten":
        from moto.ecs.models import ecs_backends

        del ecs_backends[ACCOUNT][REGION].clusters["batch"]

    assert world.sweep("batch") == {"batchItemFailures": []}

    assert world.rt.recorder.latest(etl.arn)["lifecycle"] == "STOPPED"
    etl_findings = [f for f in world.findings().values() if "/batch/family:etl/" in f["Id"]]
    assert etl_findings and {f["RecordState"] for f in etl_findings} == {"ARCHIVED"}


def publishing_off_with_two_web_tasks(world, monkeypatch):
    """The world's runtime rebuilt with PUBLISH_FINDINGS=false (no finding state names the
    workloads), ListTasks as AWS answers it, both web tasks recorded: (first, second)."""
    monkeypatch.setenv("PUBLISH_FINDINGS", "false")
    lambda_handlers.set_runtime(
        lambda_handlers.build_runtime(session=world.rt.clients.session, logger=world.spy)
    )
    list_tasks_as_aws(monkeypatch)
    first, second = world.web
    world.task_events(world.running(first))
    world.task_events(world.running(second))
    return first, second


def test_with_publishing_off_a_sweep_of_pages_retires_in_the_workloads_it_lists(world, monkeypatch):
    first, second = publishing_off_with_two_web_tasks(world, monkeypatch)
    world.client("ecs").stop_task(cluster="prod-web", task=first.arn, reason="scale in")  # no event arrives
    world.calls.reset()

    planned, records = planned_pages(world)

    # the workloads recorded for the listed tasks: one BatchGetItem per cluster that lists
    # any; the account and region's registered workloads: one Query; one per workload found
    assert world.calls.operations(("dynamodb",)) == Counter({"dynamodb.BatchGetItem": 2, "dynamodb.Query": 2})
    assert planned["retiring"] == 1
    assert world.sweep_worker({"Records": records}) == {"batchItemFailures": []}
    assert world.rt.recorder.latest(first.arn)["lifecycle"] == "STOPPED"
    assert world.rt.recorder.latest(second.arn)["lifecycle"] == "RUNNING"
    assert world.findings() == {}


def test_with_publishing_off_a_workload_whose_tasks_all_stopped_unseen_is_retired(world, monkeypatch):
    """No finding state names the workload and none of its tasks is listed any more: the
    recorder's registry of the workloads its tasks were recorded in does (one PutItem with
    a task's first audit), so the sweep still retires them (they stayed RUNNING for ever)."""
    first, second = publishing_off_with_two_web_tasks(world, monkeypatch)
    ecs = world.client("ecs")
    for task in (first, second):
        ecs.stop_task(cluster="prod-web", task=task.arn, reason="scaled to zero")  # no event arrives

    planned, records = planned_pages(world)

    assert planned["retiring"] == 2
    assert world.sweep_worker({"Records": records}) == {"batchItemFailures": []}
    assert {world.rt.recorder.latest(t.arn)["lifecycle"] for t in (first, second)} == {"STOPPED"}
    assert planned_pages(world)[0]["retiring"] == 0


def test_the_pages_of_one_worker_invocation_refresh_each_vpc_once(world):
    first, second = world.web
    world.task_events(world.running(first))  # the VPC facts are in the cache from before
    cluster = world.clusters["prod-web"]
    pages = [
        sqs_record(
            f"page-{n}",
            json.dumps(
                {"account_id": ACCOUNT, "region": REGION, "cluster_arn": cluster, "task_arns": [task.arn]}
            ),
        )
        for n, task in enumerate(world.web)
    ]
    world.calls.reset()

    assert world.sweep_worker({"Records": pages}) == {"batchItemFailures": []}

    # read afresh by the first page (not from the cache of before), reused by the second
    operations = world.calls.operations(FACT_SERVICES)
    assert operations["ecs.DescribeTasks"] == 2 and operations["ec2.DescribeNetworkInterfaces"] == 2
    assert operations["ec2.DescribeSecurityGroups"] == operations["ec2.DescribeRouteTables"] == 1
    assert operations["ec2.DescribeFlowLogs"] == 2  # never cached: a flow log may name a new ENI
    world.calls.reset()

    assert world.sweep_worker({"Records": pages[:1]}) == {"batchItemFailures": []}

    assert (
        world.calls.operations(FACT_SERVICES)["ec2.DescribeSecurityGroups"] == 1
    )  # the next invocation reads again


def test_a_sweep_of_pages_retires_the_tasks_of_a_cluster_now_empty(world, monkeypatch):
    list_tasks_as_aws(monkeypatch)
    (etl,) = world.etl
    world.sweep_worker({"Records": planned_pages(world)[1]})
    assert world.finding("NET-02", "batch/family:etl")["RecordState"] == "ACTIVE"
    world.client("ecs").stop_task(cluster="batch", task=etl.arn, reason="job done")  # no event arrives

    planned, records = planned_pages(world)

    pages = [json.loads(r["body"]) for r in records]
    assert {p["cluster_arn"]: p["task_arns"] for p in pages}[world.clusters["batch"]] == [etl.arn]
    assert planned["retiring"] == 1
    assert world.sweep_worker({"Records": records}) == {"batchItemFailures": []}
    assert world.rt.recorder.latest(etl.arn)["lifecycle"] == "STOPPED"
    etl_findings = [f for f in world.findings().values() if "/batch/family:etl/" in f["Id"]]
    assert etl_findings and {f["RecordState"] for f in etl_findings} == {"ARCHIVED"}
    # an empty cluster with nothing left to retire queues nothing
    planned, records = planned_pages(world)
    assert planned["messages"] == 1 and [json.loads(r["body"])["cluster_arn"] for r in records] == [
        world.clusters["prod-web"]
    ]


# --------------------------------------------------------------------------- runtime and app handlers


def test_bad_rule_params_fail_the_runtime_with_one_clear_error(world, monkeypatch):
    monkeypatch.setenv("RULE_PARAMS", '{"allowed_public_ports": "443"}')
    lambda_handlers.reset_runtime()
    spy = Spy()

    with pytest.raises(ConfigError) as raised:
        lambda_handlers.task_events(world.running(world.web[0]), LambdaContext(), logger=spy, metrics=spy)

    assert str(raised.value).startswith("RULE_PARAMS: allowed_public_ports:")
    assert [(level, message) for level, message, _ in spy.logs] == [("error", "configuration error")]
    assert "443" not in spy.logs[0][2]["error"].split(":", 1)[0]


def test_rule_params_apply_to_event_audits(world, monkeypatch):
    monkeypatch.setenv("RULE_PARAMS", json.dumps({"allowed_public_ports": []}))
    lambda_handlers.reset_runtime()

    outcome = lambda_handlers.task_events(world.running(world.web[0]), LambdaContext())

    assert outcome["status"] == "audited"
    assert world.finding("NET-03")["Compliance"]["Status"] == "FAILED"  # 443 no longer approved


def test_publish_findings_false_records_without_importing(world, monkeypatch):
    monkeypatch.setenv("PUBLISH_FINDINGS", "false")
    lambda_handlers.reset_runtime()

    outcome = lambda_handlers.task_events(world.running(world.web[0]), LambdaContext())

    assert outcome["status"] == "audited" and outcome["findings"]["workloads"] == 0
    assert world.rt.recorder.latest(world.web[0].arn)["lifecycle"] == "RUNNING"
    assert world.findings() == {}


@pytest.mark.parametrize(
    ("folder", "sample", "metric"),
    [
        ("task_events", "ecs-task-ec2.json", "IgnoredEvents"),
        ("config_events", "config-security-group-change.json", "IgnoredEvents"),
        ("sweep_planner", "scheduled-event.json", "SweepMessagesSent"),
        ("sweep_worker", "sweep-message.json", "AuditedTasks"),
    ],
)
def test_each_app_handler_runs_with_powertools_and_emits_its_metric(world, capsys, folder, sample, metric):
    handler = load_app(folder, f"app_under_test_{folder}")
    event = world.sweep_records() if folder == "sweep_worker" else json.loads((EVENTS / sample).read_text())
    lambda_handlers.reset_runtime()  # the app builds its own runtime from the environment

    result = handler(event, LambdaContext())

    assert result.get("status") != "rejected"
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(metric in doc for doc in emitted), emitted


def test_importing_the_handlers_module_makes_no_client():
    import importlib
    import subprocess

    code = (
        "import sys, fargate_audit.app.lambda_handlers as h; "
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, sorted(sys.modules); "
        "assert h._RUNTIME is None"
    )
    importlib.import_module("fargate_audit.app.lambda_handlers")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_task_with_a_custom_group_is_a_standalone_task_of_its_family(world):
    """A standalone task may carry any group name of up to 255 characters (RunTask
    `group`; ECS guide "Group related Amazon ECS tasks"). interface.md names a standalone
    task's workload by `family:NAME`: the task is audited in its family's workload (one
    finding with the family's other tasks), its own group kept beside it, and findings,
    keys and report keep the form the contract gives."""
    group = "team/etl#nightly"
    ecs = world.client("ecs")
    (run,) = ecs.run_task(
        cluster="batch",
        taskDefinition=world.etl[0].task_definition_arn,
        launchType="FARGATE",
        group=group,
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": [world.subnet], "securityGroups": [world.sg]}
        },
    )["tasks"]
    task = task_of(ecs, run["taskArn"], "batch")
    assert task.group == group
    running = world.running(task)
    running["detail"] |= {"clusterArn": world.clusters["batch"], "group": group}

    outcome = world.task_events(running)

    assert outcome["status"] == "audited" and outcome["workload"] == "batch/family:etl"
    posture = world.rt.recorder.latest(task.arn)["posture"]
    assert (posture["group"], posture["task_group"]) == ("family:etl", group)
    swept = world.sweep("batch")  # the whole cluster: the family's other task, and this one
    assert swept["batchItemFailures"] == []
    prefix = f"fargate-audit/{ACCOUNT}/{REGION}/batch/family:etl/"
    ours = {i: f for i, f in world.findings().items() if i.startswith(prefix)}
    assert ours and not [i for i in world.findings() if "team" in i]
    failed = sorted(i for i, f in ours.items() if f["Compliance"]["Status"] == "FAILED")
    assert failed and {ours[i]["ProductFields"]["fargate-audit/TasksEvaluated"] for i in failed} == {"2"}

    stopped = world.stopped(task)
    stopped["detail"] |= {"clusterArn": world.clusters["batch"], "group": group}
    # named as its RUNNING event's audit names it (the table key, WL#..., before)
    assert world.task_events(stopped)["workload"] == "batch/family:etl"
    after = world.findings()
    assert {after[i]["RecordState"] for i in ours} == {"ACTIVE"}  # its family's other task runs
    assert {after[i]["ProductFields"]["fargate-audit/TasksEvaluated"] for i in failed} == {"1"}


def test_a_task_recorded_under_its_custom_group_before_moves_to_its_familys_workload(world, monkeypatch):
    """Upgrading from a release that named a custom group's workload by the group: the
    task's next audit records it in its family's workload and retires it from the old one,
    whose findings are archived (they stayed ACTIVE for ever)."""
    from fargate_audit.core import posture as posture_module

    ecs = world.client("ecs")
    (run,) = ecs.run_task(
        cluster="batch",
        taskDefinition=world.etl[0].task_definition_arn,
        launchType="FARGATE",
        group="nightly",
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": [world.subnet], "securityGroups": [world.sg]}
        },
    )["tasks"]
    task = task_of(ecs, run["taskArn"], "batch")
    running = world.running(task)
    running["detail"] |= {"clusterArn": world.clusters["batch"], "group": "nightly"}
    with monkeypatch.context() as before:  # the old release: the group as it is
        before.setattr(posture_module, "workload_group", lambda group, arn: group)
        assert world.task_events(running)["workload"] == "batch/nightly"
    old = f"fargate-audit/{ACCOUNT}/{REGION}/batch/nightly/"
    assert {f["RecordState"] for i, f in world.findings().items() if i.startswith(old)} == {"ACTIVE"}

    assert world.sweep("batch")["batchItemFailures"] == []

    states = {i: f["RecordState"] for i, f in world.findings().items()}
    assert {s for i, s in states.items() if i.startswith(old)} == {"ARCHIVED"}
    new = f"fargate-audit/{ACCOUNT}/{REGION}/batch/family:etl/"
    assert {s for i, s in states.items() if i.startswith(new)} == {"ACTIVE"}
    assert world.rt.recorder.latest(task.arn)["workload_key"] == f"WL#{ACCOUNT}#{REGION}#batch#family:etl"
    assert world.rt.recorder.running_task_arns(f"WL#{ACCOUNT}#{REGION}#batch#nightly") == []


def _schedule() -> dict:
    return json.loads((EVENTS / "scheduled-event.json").read_text(encoding="utf-8"))


def test_the_planner_takes_its_own_schedule_when_it_reads_another_account(monkeypatch):
    """AUDIT_ROLE_ARN: the stack reads account B, but the schedule is its own rule in its
    own account (A): it is taken, and B is swept through the role (it was refused as an
    event of an account not allowed, so no sweep ever ran)."""
    other = "210987654321"
    env = {
        "AUDIT_ROLE_ARN": f"arn:aws:iam::{other}:role/fargate-audit-reader",
        "AUDIT_ROLE_EXTERNAL_ID": "ext-1234",
    }
    with emulated_world(monkeypatch, env) as world:
        outcome = world.sweep_planner(_schedule())
        assert outcome["status"] == "planned" and outcome["api_calls"]["ecs.ListClusters"] == 1
        assert world.rt.audit_role_account == other

        forged = _schedule() | {"account": other}  # a schedule of the audited account is not ours
        assert world.sweep_planner(forged)["status"] == "rejected"


def test_through_audit_role_arn_every_fact_is_read_in_the_audited_account(monkeypatch):
    """AUDIT_ROLE_ARN: every fact service is read with the role's credentials, the load
    balancers and web ACLs too (read with the stack's own, they found none of account B's
    target groups: NET-11/NET-12 NOT_APPLICABLE, exposures empty); the table stays the
    stack's."""
    from fargate_audit.edge import aws

    other = "210987654321"
    env = {"AUDIT_ROLE_ARN": f"arn:aws:iam::{other}:role/fargate-audit-reader"}
    with emulated_world(monkeypatch, env) as world:
        own = world.rt.clients.session.get_credentials().get_frozen_credentials().access_key

        def signer(service: str) -> str:
            client = world.rt.clients.get(service, REGION)
            return client._request_signer._credentials.get_frozen_credentials().access_key

        assert {"ecs", "ec2", "elbv2", "wafv2", "route53resolver"} <= aws.FACT_READ_SERVICES
        for service in sorted(aws.FACT_READ_SERVICES | {"securityhub"}):
            assert signer(service) != own, service
        assert signer("dynamodb") == own and signer("sqs") == own


def test_the_planner_sweeps_every_region_whose_events_it_audits(monkeypatch):
    """ALLOWED_REGIONS of one account: the tasks of each region are audited on their events,
    so each region is swept too; the schedule itself is the stack region's."""
    with emulated_world(monkeypatch, {"ALLOWED_REGIONS": f"us-east-1,{REGION}"}) as world:
        outcome = world.sweep_planner(_schedule())

        assert outcome["status"] == "planned" and outcome["clusters"] == 2  # the estate's, in REGION
        assert outcome["api_calls"]["ecs.ListClusters"] == 2  # REGION and us-east-1
        elsewhere = _schedule() | {"region": "us-east-1"}  # the rule lives in the stack's region
        assert world.sweep_planner(elsewhere)["status"] == "rejected"


def test_findings_of_another_allowed_region_are_imported_in_that_regions_security_hub(monkeypatch):
    """ALLOWED_REGIONS of one account: a task of us-east-1 gets its findings in us-east-1's
    Security Hub (product ARNs and findings are regional: AWS refuses another Region's
    finding). Before, every finding went through the stack region's client."""
    from support.world import web_and_etl

    other = "us-east-1"
    with emulated_world(monkeypatch, {"ALLOWED_REGIONS": f"{other},{REGION}"}) as world:
        world.session.client("securityhub", region_name=other).enable_security_hub()
        b = estate._Builder(world.session, other)
        vpc = b.vpc("prod", "10.20.0.0/16")
        igw = b.internet_gateway(vpc, "prod-igw")
        subnet = b.subnet("prod-web-public-a", vpc, "10.20.1.0/24", "a")
        b.route_table("prod-web-public", vpc, [subnet], [{"DestinationCidrBlock": WORLD4, "GatewayId": igw}])
        web_and_etl(b, subnet, subnet)
        cluster = b.info.clusters["prod-web"]
        body = json.dumps({"account_id": ACCOUNT, "region": other, "cluster_arn": cluster})

        outcome = world.sweep_worker({"Records": [sqs_record("sweep-other", body)]})

        assert outcome == {"batchItemFailures": []}
        hub = world.session.client("securityhub", region_name=other)
        found = [f for page in hub.get_paginator("get_findings").paginate() for f in page["Findings"]]
        assert found and {f["Region"] for f in found} == {other}
        assert all(f["ProductArn"].startswith(f"arn:aws:securityhub:{other}:") for f in found)
        assert world.findings() == {}  # nothing of us-east-1 in the stack region's hub


def test_a_task_too_large_to_record_costs_its_page_neighbours_nothing(world, monkeypatch):
    """DynamoDB's 400 KB item: a task whose record would exceed it is not recorded, and its
    message fails (retried, then dead-lettered), but the other tasks of the page are
    recorded and their findings published. Before, the first such task ended the page:
    the tasks after it were never recorded and nothing was published."""
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
    from fargate_audit.stores import record

    first, second = sorted(world.web, key=lambda t: t.arn)
    made = record.latest_item

    def too_large_for_first(posture, results, **kwargs):
        if posture["task_arn"] == first.arn:
            raise record.ItemTooLarge(f"{first.arn}: LATEST item of 421000 bytes exceeds 389120")
        return made(posture, results, **kwargs)

    monkeypatch.setattr(record, "latest_item", too_large_for_first)
    with pytest.raises(BatchProcessingError, match="exceeds 389120"):  # the batch's one record failed
        world.sweep("prod-web")

    assert world.rt.recorder.latest(first.arn) is None
    assert world.rt.recorder.latest(second.arn)["lifecycle"] == "RUNNING"
    assert world.finding("NET-01")["Compliance"]["Status"] in ("PASSED", "FAILED")
    # the task's own event fails naming the task and the size, as before
    with pytest.raises(record.ItemTooLarge, match=f"{first.arn}: LATEST item of 421000 bytes"):
        world.task_events(world.running(first))


def test_a_page_of_short_format_task_arns_is_described_in_the_pages_cluster(world):
    """ListTasks gives ``task/ID`` ARNs for tasks of the old ARN format; DescribeTasks takes
    them with the cluster. A page's task not recorded yet was "DescribeTasks: the task's
    cluster is unknown", and the message failed on every receive."""
    task = world.web[0]
    short = task.arn.replace("/prod-web/", "/")
    body = {"account_id": ACCOUNT, "region": REGION, "cluster_arn": world.clusters["prod-web"]}
    body["task_arns"] = [short]

    outcome = world.sweep_worker({"Records": [sqs_record("page-short", json.dumps(body))]})

    assert outcome == {"batchItemFailures": []}
    # moto answers with the long form of the ARN (AWS, with the short one it was asked)
    assert world.rt.recorder.latest(task.arn)["lifecycle"] == "RUNNING"


def test_a_whole_cluster_message_never_retires_a_task_its_listing_missed_that_still_runs(world, monkeypatch):
    """A whole-cluster message (planners before pages): a task started and recorded after
    the worker's listing is described before anything is decided: still RUNNING, it is
    audited, not retired (STOPPED is terminal: its later events would be refused)."""
    from fargate_audit.edge import collect

    list_tasks_as_aws(monkeypatch)
    first, second = world.web
    world.task_events(world.running(first))
    world.task_events(world.running(second))
    listed = collect._task_pages

    def listing_taken_before_second_started(ecs, cluster):
        for page in listed(ecs, cluster):
            yield {**page, "taskArns": [a for a in page.get("taskArns", []) if a != second.arn]}

    monkeypatch.setattr(collect, "_task_pages", listing_taken_before_second_started)
    outcome = world.sweep("prod-web")  # no task_arns: the worker lists the cluster itself

    assert (
        outcome["batchItemFailures"] == [] and world.rt.recorder.latest(second.arn)["lifecycle"] == "RUNNING"
    )
    assert "StoppedTasks" not in world.spy.metrics
    later = world.task_events(world.running(second, version=9, event_id="later"))
    assert later["status"] != "rejected" and later.get("reason") != "stale"


def test_a_dependent_task_of_an_account_the_stack_does_not_read_is_an_error_never_retired(world):
    """A shared VPC's resource is a dependency of every account's tasks (the index names no
    account): a task of another account is not described with this account's clients, whose
    'cluster not found' would have retired it while it runs."""
    from fargate_audit.app import service

    foreign = "arn:aws:ecs:eu-west-1:222222222222:task/shared/" + "b" * 32
    batch = service._Batch(world.rt, datetime.now(UTC))
    outcome = service._audit_described(
        world.rt, batch, ACCOUNT, REGION, [foreign], lambda raw: {"type": "config-event"}, True
    )
    assert [e["task_arn"] for e in outcome["errors"]] == [foreign]
    assert "not read by this stack" in outcome["errors"][0]["message"]
    assert batch.counts.get("stopped", 0) == 0 and not world.calls.operations(("ecs",))


def two_containers(world):
    """(the task events container's runtime, with a 300 s VPC cache on a clock of its
    own; the config events function's, another container; ``tick(seconds)`` that moves
    the clock and gives the moment)."""
    from datetime import timedelta

    from fargate_audit.edge.collect import FactCache
    from support.sessions import new_session

    moment = [datetime(2026, 6, 2, 8, 0, tzinfo=UTC)]

    def tick(seconds: float) -> datetime:
        moment[0] += timedelta(seconds=seconds)
        return moment[0]

    tasks_rt = world.rt
    tasks_rt.cache = FactCache(300, clock=lambda: moment[0].timestamp())  # the container's clock
    config_rt = lambda_handlers.build_runtime(session=new_session())
    config_rt.own_account = tasks_rt.own_account = ACCOUNT
    return tasks_rt, config_rt, tick


def test_a_newer_running_event_is_audited_on_facts_no_older_than_the_recorded_audit(world):
    """The task events container cached the VPC's facts at v4 (443 open to the world:
    NET-02 FAILED). The rule is revoked and the config events function, another container,
    re-audits from fresh facts (PASSED). ECS then sends RUNNING v5 (desiredStatus STOPPED,
    or a health change) within the cache's 300 s: audited from the cache it moved NET-02
    back to FAILED, which no fact supports. Facts older than the recorded audit are read
    again."""
    from fargate_audit.app import service

    tasks_rt, config_rt, tick = two_containers(world)
    task = world.web[0]

    def net02() -> str:
        (result,) = [r for r in world.rt.recorder.latest(task.arn)["results"] if r["rule_id"] == "NET-02"]
        return result["status"]

    assert service.handle_task_event(world.running(task, 4), tasks_rt, tick(1))["status"] == "audited"
    assert net02() == "FAILED"
    world.client("ec2").revoke_security_group_ingress(
        GroupId=world.sg,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": WORLD4}]}
        ],
    )
    outcome = service.handle_config_event(
        world.config("config-security-group-change.json", task), config_rt, tick(30)
    )
    assert outcome["status"] == "audited" and net02() == "PASSED"
    later = world.running(task, 5)
    later["detail"]["desiredStatus"] = "STOPPED"

    outcome = service.handle_task_event(later, tasks_rt, tick(90))

    assert outcome["status"] == "audited" and net02() == "PASSED"
    assert outcome["api_calls"].get("ec2.DescribeSecurityGroups") == 1  # read again, not the cache's
    assert world.rt.recorder.history(task.arn)[-1]["cause"]["type"] == "config-event"  # v5 changed nothing


PARTICIPANT = "999988887777"


@pytest.mark.parametrize("account", [ACCOUNT, PARTICIPANT], ids=["own", "shared-vpc-participant"])
def test_a_tasks_first_audit_after_a_config_change_reads_no_facts_cached_before_it(monkeypatch, account):
    """ECS events are unordered and Config is minutes late: the change's event can be
    handled (by the config events function) before a new task's first RUNNING. The task
    events container, its cache taken before the change, audited that task on the old
    facts, and once the older tasks stopped the workload's finding said PASSED for an
    exposure that was there. A first audit reads no VPC fact cached before the region's
    last Config change. A shared VPC's security group is its owner's (the Config item's
    account) while the task may run in a participant account: marked per account, the
    change was the owner's alone."""
    from fargate_audit.app import service

    def of_account(event):
        event = json.loads(json.dumps(event).replace(f":{ACCOUNT}:", f":{account}:"))
        return event | {"account": account}

    with emulated_world(monkeypatch, {"ALLOWED_ACCOUNTS": f"{ACCOUNT},{PARTICIPANT}"}) as world:
        tasks_rt, config_rt, tick = two_containers(world)
        first, second = (
            of_account(world.running(task, version)) for task, version in zip(world.web, (4, 2), strict=True)
        )

        def net03(event) -> str:
            results = world.rt.recorder.latest(event["detail"]["taskArn"])["results"]
            (result,) = [r for r in results if r["rule_id"] == "NET-03"]
            return result["status"]

        assert service.handle_task_event(first, tasks_rt, tick(1))["status"] == "audited"
        assert net03(first) == "PASSED"
        world.client("ec2").authorize_security_group_ingress(
            GroupId=world.sg,
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": WORLD4}]}
            ],
        )
        outcome = service.handle_config_event(
            world.config("config-security-group-change.json", world.web[0]), config_rt, tick(30)
        )
        assert outcome["status"] == "audited"
        if account == ACCOUNT:  # the emulator holds the tasks in the owner's account alone:
            assert net03(first) == "FAILED"  # a participant's ARN cannot be described again

        outcome = service.handle_task_event(second, tasks_rt, tick(60))

        assert outcome["status"] == "audited" and net03(second) == "FAILED"
        assert outcome["api_calls"].get("ec2.DescribeSecurityGroups") == 1  # read again, not the cache's


def test_a_sweep_archives_the_findings_of_a_workload_left_active_with_no_task_running(world, monkeypatch):
    """The last task's STOPPED was recorded, but its publishing failed on every Lambda retry
    (or raced another STOPPED's): the findings stayed ACTIVE with no task recorded running,
    and no sweep page named the workload, so they stayed so for ever. The planner queues
    such workloads (a message naming them); the worker publishes them, archiving."""
    list_tasks_as_aws(monkeypatch)
    first, second = world.web
    for task in (first, second):
        world.task_events(world.running(task))
    for task in (first, second):
        world.client("ecs").stop_task(cluster="prod-web", task=task.arn, reason="scale to zero")
    world.task_events(world.stopped(first))
    publisher = world.rt.publisher

    def throttled(*_, **__):
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "x"}}, "Query"
        )

    original = publisher.sync_workload
    monkeypatch.setattr(publisher, "sync_workload", throttled)
    for _ in range(3):  # the first delivery and Lambda's two retries
        with pytest.raises(ClientError):
            world.task_events(world.stopped(second))
    monkeypatch.setattr(publisher, "sync_workload", original)
    assert world.rt.recorder.latest(second.arn)["lifecycle"] == "STOPPED"
    assert world.finding("NET-02")["RecordState"] == "ACTIVE"

    planned, records = planned_pages(world)
    assert planned["orphaned_workloads"] == 1
    bodies = [json.loads(r["body"]) for r in records]
    assert {"workloads": [f"WL#{ACCOUNT}#{REGION}#prod-web#service:web"]}.items() <= next(
        b for b in bodies if "workloads" in b
    ).items()
    assert world.sweep_worker({"Records": records}) == {"batchItemFailures": []}

    web = [f for f in world.findings().values() if "/prod-web/service:web/" in f["Id"]]
    assert web and {f["RecordState"] for f in web} == {"ARCHIVED"}
    assert planned_pages(world)[0]["orphaned_workloads"] == 0  # once archived, no more messages


def test_a_workloads_message_names_only_workloads_of_its_cluster():
    from fargate_audit.app import events

    cluster = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/prod-web"
    ok = events.sweep_message(
        ACCOUNT, REGION, cluster, workloads=[f"WL#{ACCOUNT}#{REGION}#prod-web#service:web"]
    )
    assert events.parse_sweep_message(ok)["workloads"] == [f"WL#{ACCOUNT}#{REGION}#prod-web#service:web"]
    for key in (f"WL#{ACCOUNT}#{REGION}#other#service:web", f"WL#210987654321#{REGION}#prod-web#service:web"):
        with pytest.raises(events.EventError, match="workloads must be workload keys of cluster_arn"):
            events.parse_sweep_message(events.sweep_message(ACCOUNT, REGION, cluster, workloads=[key]))

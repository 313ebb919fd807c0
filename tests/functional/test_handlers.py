"""The four Lambda handlers on moto, in-process, with the documented-shape samples of events/.

Each test gets a fresh emulated account: the posture table created from template.yaml's
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
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
from fargate_audit.app import lambda_handlers
from fargate_audit.core.errors import ConfigError
from fargate_audit.local import estate
from fargate_audit.local import invoke as local
from moto import mock_aws

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: shared helpers
from template_util import REPO_ROOT, load_template, table_create_kwargs, table_ttl_attribute  # noqa: E402

REGION, ACCOUNT = "eu-west-1", "123456789012"
EVENTS = REPO_ROOT / "events"
TABLE = "fargate-audit-posture"
WORLD4 = "0.0.0.0/0"
# ids in the samples, replaced by the emulator's
SAMPLE_TASK = "arn:aws:ecs:eu-west-1:123456789012:task/prod-web/7f3c2a1b9d8e4f60a1b2c3d4e5f60718"
SAMPLE_TASK_DEFINITION = "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:42"
SAMPLE_ENI, SAMPLE_SUBNET, SAMPLE_IP = "eni-0f1e2d3c4b5a69788", "subnet-0123456789abcdef0", "10.20.1.37"
SAMPLE_SG, SAMPLE_VPC, SAMPLE_RTB = "sg-0abc1234def567890", "vpc-0a1b2c3d4e5f67890", "rtb-0aa11bb22cc33dd44"
SAMPLE_IGW = "igw-0d1c2b3a49586f7e0"
ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "TABLE_NAME": TABLE,
    "RULE_PARAMS": "{}",
    "PUBLISH_FINDINGS": "true",
    "VPC_CACHE_TTL_SECONDS": "300",
    "POWERTOOLS_SERVICE_NAME": "fargate-audit",
    "POWERTOOLS_METRICS_NAMESPACE": "FargateAudit",
    "POWERTOOLS_TRACE_DISABLED": "true",
}
FACT_SERVICES = ("ecs", "ec2")


# --------------------------------------------------------------------------- spies


class Spy:
    """A Powertools-like logger and metrics recorder."""

    def __init__(self) -> None:
        self.logs: list[tuple[str, str, dict]] = []
        self.metrics: Counter[str] = Counter()

    def _log(self, level, message, *args, extra=None, **_):
        self.logs.append((level, message % args if args else message, dict(extra or {})))

    def debug(self, *a, **k):
        self._log("debug", *a, **k)

    def info(self, *a, **k):
        self._log("info", *a, **k)

    def warning(self, *a, **k):
        self._log("warning", *a, **k)

    def error(self, *a, **k):
        self._log("error", *a, **k)

    def add_metric(self, name, unit, value, **_):
        assert unit == "Count"
        self.metrics[name] += value


class CallLog:
    """Every AWS call of the runtime's clients: (service, operation, API params), by
    botocore's before-parameter-build event (once per call, not per retry; before-call
    would give the serialised request instead of the parameters)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict]] = []

    def hook(self, params=None, model=None, **_):
        # the signing name is the IAM service prefix (dynamodb, ec2, ecs, securityhub, sqs)
        self.calls.append((model.service_model.signing_name, model.name, params or {}))

    def reset(self) -> None:
        self.calls.clear()

    def operations(self, services=None) -> Counter:
        return Counter(f"{s}.{op}" for s, op, _ in self.calls if services is None or s in services)


class LambdaContext:
    function_name = "fargate-audit-test"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fargate-audit-test"
    aws_request_id = "00000000-0000-4000-8000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


# --------------------------------------------------------------------------- the world


@dataclass
class Task:
    arn: str
    eni: str
    subnet: str
    private_ip: str
    task_definition_arn: str


@dataclass
class World:
    session: object  # the test's own session (set-up and assertions)
    rt: object
    spy: Spy
    calls: CallLog
    queue_url: str
    dlq_url: str
    vpc: str
    subnet: str
    route_table: str
    igw: str
    sg: str
    clusters: dict[str, str]
    web: list[Task] = field(default_factory=list)
    etl: list[Task] = field(default_factory=list)

    def client(self, service: str):
        return self.session.client(service, region_name=REGION)

    # -- events

    def _rewrite(self, name: str, task: Task | None = None) -> dict:
        text = (EVENTS / name).read_text(encoding="utf-8")
        replacements = {
            SAMPLE_SG: self.sg,
            SAMPLE_VPC: self.vpc,
            SAMPLE_RTB: self.route_table,
            SAMPLE_IGW: self.igw,
        }
        if task is not None:
            replacements |= {
                SAMPLE_TASK: task.arn,
                SAMPLE_TASK_DEFINITION: task.task_definition_arn,
                SAMPLE_ENI: task.eni,
                SAMPLE_SUBNET: task.subnet,
                SAMPLE_IP: task.private_ip,
            }
        else:
            replacements[SAMPLE_SUBNET] = self.subnet
        for old, new in replacements.items():
            text = text.replace(old, new)
        return json.loads(text)

    def running(self, task: Task, version: int = 4, event_id: str | None = None) -> dict:
        event = self._rewrite("ecs-task-running.json", task)
        event["detail"]["version"] = version
        event["id"] = event_id or f"running-{task.arn.rsplit('/', 1)[-1]}-{version}"
        return event

    def stopped(self, task: Task, version: int = 7) -> dict:
        event = self._rewrite("ecs-task-stopped.json", task)
        event["detail"]["version"] = version
        event["id"] = f"stopped-{task.arn.rsplit('/', 1)[-1]}-{version}"
        return event

    def config(self, name: str, task: Task | None = None) -> dict:
        return self._rewrite(name, task or self.web[0])

    def sweep_records(self) -> dict:
        event = json.loads((EVENTS / "sweep-message.json").read_text(encoding="utf-8"))
        for item in event["Records"]:
            body = json.loads(item["body"])
            if "task_arns" in body:
                body["task_arns"] = [self.web[0].arn]
            item["body"] = json.dumps(body)
        return event

    # -- handlers

    def task_events(self, event):
        return lambda_handlers.task_events(event, LambdaContext(), logger=self.spy, metrics=self.spy)

    def config_events(self, event):
        return lambda_handlers.config_events(event, LambdaContext(), logger=self.spy, metrics=self.spy)

    def sweep_planner(self, event):
        return lambda_handlers.sweep_planner(event, LambdaContext(), logger=self.spy, metrics=self.spy)

    def sweep_worker(self, event):
        return lambda_handlers.sweep_worker(event, LambdaContext(), logger=self.spy, metrics=self.spy)

    def sweep(self, cluster: str = "prod-web") -> dict:
        body = json.dumps({"account_id": ACCOUNT, "region": REGION, "cluster_arn": self.clusters[cluster]})
        event = {"Records": [_sqs_record("sweep-1", body)]}
        return self.sweep_worker(event)

    # -- state

    def findings(self) -> dict[str, dict]:
        """Security Hub's findings by Id (moto ignores filters)."""
        found = {}
        for page in self.client("securityhub").get_paginator("get_findings").paginate():
            found.update({f["Id"]: f for f in page["Findings"]})
        return found

    def finding(self, rule_id: str, workload: str = "prod-web/service:web") -> dict:
        return self.findings()[f"fargate-audit/{ACCOUNT}/{REGION}/{workload}/{rule_id}"]


def _sqs_record(message_id: str, body: str) -> dict:
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795176001204"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:fargate-audit-SweepQueue",
        "awsRegion": REGION,
    }


def create_table(session, template=None) -> None:
    template = template or load_template()
    dynamodb = session.client("dynamodb", region_name=REGION)
    dynamodb.create_table(**table_create_kwargs(template, TABLE))
    dynamodb.update_time_to_live(
        TableName=TABLE,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": table_ttl_attribute(template)},
    )


def _task(ecs, arn: str) -> Task:
    (described,) = ecs.describe_tasks(cluster=arn.split("/")[1], tasks=[arn])["tasks"]
    (attachment,) = described["attachments"]
    details = {d["name"]: d["value"] for d in attachment["details"]}
    return Task(
        arn=arn,
        eni=details["networkInterfaceId"],
        subnet=details["subnetId"],
        private_ip=details["privateIPv4Address"],
        task_definition_arn=described["taskDefinitionArn"],
    )


def build_world(monkeypatch, env: dict | None = None) -> World:
    """The estate and a runtime whose clients record every call (inside mock_aws)."""
    for name, value in (ENV | (env or {})).items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "SWEEP_QUEUE_URL", "EVENTS_DLQ_URL"):
        monkeypatch.delenv(name, raising=False)
    session = boto3.session.Session(region_name=REGION)
    create_table(session)
    session.client("securityhub", region_name=REGION).enable_security_hub()
    queue_url = session.client("sqs", region_name=REGION).create_queue(QueueName="sweep")["QueueUrl"]
    monkeypatch.setenv("SWEEP_QUEUE_URL", queue_url)
    dlq_url = session.client("sqs", region_name=REGION).create_queue(QueueName="events-dlq")["QueueUrl"]
    monkeypatch.setenv("EVENTS_DLQ_URL", dlq_url)  # as the template gives the asynchronous functions

    b = estate._Builder(session, REGION)
    vpc = b.vpc("prod", "10.20.0.0/16")
    igw = b.internet_gateway(vpc, "prod-igw")
    subnet = b.subnet("prod-web-public-a", vpc, "10.20.1.0/24", "a")
    rtb = b.route_table(
        "prod-web-public", vpc, [subnet], [{"DestinationCidrBlock": WORLD4, "GatewayId": igw}]
    )
    sg = b.security_group(
        "prod",
        "prod-web-tasks",
        "web service tasks",
        ingress=[estate._ports("tcp", 443, 443, cidrs4=[WORLD4])],
    )
    ecr = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
    b.task_definition(
        "web",
        [
            estate._container("log-router", "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.4"),
            estate._container("web", f"{ecr}/web:1.8.3", ports=[443]),
        ],
    )
    b.task_definition("etl", [estate._container("etl", f"{ecr}/etl:2.0")])
    b.cluster("prod-web", "enabled")
    b.cluster("batch", "disabled")
    web = b.run_tasks("prod-web", "web", [subnet], [sg], 2, "1.4.0", service="web", public_ip=True)
    etl = b.run_tasks("batch", "etl", [subnet], [sg], 1, "1.4.0", started_by="ops/etl")

    calls = CallLog()
    rt_session = boto3.session.Session(region_name=REGION)
    rt_session.events.register("before-parameter-build", calls.hook)
    spy = Spy()
    rt = lambda_handlers.build_runtime(session=rt_session, logger=spy)
    lambda_handlers.set_runtime(rt)
    return World(
        session=session,
        rt=rt,
        spy=spy,
        calls=calls,
        queue_url=queue_url,
        dlq_url=dlq_url,
        vpc=vpc,
        subnet=subnet,
        route_table=rtb,
        igw=igw,
        sg=sg,
        clusters=dict(b.info.clusters),
        web=[_task(b.ecs, arn) for arn in web],
        etl=[_task(b.ecs, arn) for arn in etl],
    )


@pytest.fixture
def world(monkeypatch):
    with mock_aws():
        built = build_world(monkeypatch)
        try:
            yield built
        finally:
            estate.release_task_states(built.client("ecs"))
            lambda_handlers.reset_runtime()


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
    assert len(findings) == len(world.rt.catalog.posture_rules) == outcome["findings"]["imported"]
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
    # order test and the recorder's plan share it), the workload's running set, its finding
    # states, its outbox entries, and the outbox flush: 5 (6 before the read was shared)
    outcome = world.task_events(world.running(world.web[0]))

    reads = world.calls.operations(("dynamodb",))
    assert outcome["status"] == "audited" and outcome["record"] == "created"
    assert reads["dynamodb.GetItem"] == 1
    assert reads["dynamodb.GetItem"] + reads["dynamodb.Query"] == 5, reads

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
    with mock_aws():
        world = build_world(monkeypatch, {"VPC_CACHE_TTL_SECONDS": "0"})
        try:
            world.task_events(world.running(world.web[0]))
            world.calls.reset()
            world.task_events(world.running(world.web[1]))
        finally:
            estate.release_task_states(world.client("ecs"))
            lambda_handlers.reset_runtime()
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


def test_same_version_redelivered_under_a_new_id_is_unchanged_and_imports_nothing(world):
    task = world.web[0]
    world.task_events(world.running(task, event_id="first-delivery"))
    before = world.findings()

    outcome = world.task_events(world.running(task, event_id="second-delivery"))

    assert outcome["status"] == "audited" and outcome["record"] == "unchanged"
    assert outcome["findings"]["imported"] == 0
    assert len(world.rt.recorder.history(task.arn)) == 1
    assert world.findings() == before


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

    assert outcome["status"] == "stopped" and outcome["workload"].endswith("#prod-web#service:web")
    assert {f["RecordState"] for f in world.findings().values()} == {"ARCHIVED"}
    assert world.rt.findings.active_findings() == []
    assert world.rt.recorder.latest(task.arn)["lifecycle"] == "STOPPED"
    assert world.rt.recorder.history(task.arn)[-1]["facts"] == [
        {"path": "lifecycle", "before": "RUNNING", "after": "STOPPED"}
    ]
    assert not world.calls.operations(FACT_SERVICES)  # its ENI is gone: nothing is described
    assert world.spy.metrics["FindingsArchived"] == outcome["findings"]["archived"] > 0


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


def test_config_change_of_a_resource_no_task_depends_on_is_ignored(world):
    world.task_events(world.running(world.web[0]))
    event = world.config("config-security-group-change.json")
    event["detail"]["configurationItem"]["resourceId"] = "sg-0123456789abcdef0"
    world.calls.reset()

    outcome = world.config_events(event)

    assert outcome["status"] == "ignored" and outcome["tasks"] == 0
    assert not world.calls.operations(("ecs", "ec2", "securityhub"))
    assert world.spy.metrics["IgnoredEvents"] == 1


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


def test_malformed_config_event_is_rejected(world):
    event = world.config("config-oversized-change.json")
    del event["detail"]["configurationItemSummary"]["resourceId"]

    outcome = world.config_events(event)

    assert outcome["status"] == "rejected"
    assert outcome["error"] == "Config event: detail.configurationItemSummary.resourceId missing"


# --------------------------------------------------------------------------- sweep


def test_planner_sends_one_message_per_cluster(world):
    event = json.loads((EVENTS / "scheduled-event.json").read_text(encoding="utf-8"))

    outcome = world.sweep_planner(event)

    assert outcome["clusters"] == outcome["messages"] == 2
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
    assert all(
        b == {"account_id": ACCOUNT, "region": REGION, "cluster_arn": b["cluster_arn"]} for b in bodies
    )
    assert world.calls.operations() == Counter({"ecs.ListClusters": 1, "sqs.SendMessageBatch": 1})
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
    event["Records"].append(_sqs_record("malformed-1", '{"account_id": "123456789012"}'))

    result = world.sweep_worker(event)

    assert result == {"batchItemFailures": [{"itemIdentifier": "malformed-1"}]}
    (line,) = [log for log in world.spy.logs if log[0] == "error"]
    assert line[2]["message_id"] == "malformed-1"
    assert line[2]["error"] in ("sweep message: region missing", "sweep message: cluster_arn missing")
    assert world.spy.metrics["MalformedEvents"] == 1
    assert world.rt.recorder.latest(world.web[1].arn)["lifecycle"] == "RUNNING"  # the others were swept


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
    handler = local.load_handler(REPO_ROOT / "functions" / folder / "app.py", f"app_under_test_{folder}")
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

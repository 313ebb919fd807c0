"""The handlers' emulated account (moto, in-process), shared by the functional tests.

``build_world`` (inside ``mock_aws``) creates the posture table from template.yaml's
definition, enables Security Hub, the sweep queue and the events DLQ, and a small estate:
VPC 10.20.0.0/16 with a public subnet (default route to an internet gateway), security
group ``prod-web-tasks`` open to the world on TCP 443, cluster ``prod-web`` running two
tasks of service ``web`` with public IPs, cluster ``batch`` running one ``etl`` task; then a
runtime whose own session records every AWS call (``World.calls``) and logs to a ``Spy``.
``emulated_world`` wraps it in ``mock_aws`` and releases it after. A test that only reads
a world may share one (a module-scoped fixture); one that changes it needs its own.

``web_and_etl`` and ``task_of`` are shared with the fault harness's estate;
``list_tasks_as_aws`` makes moto's ListTasks leave stopped tasks out, as AWS's does.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from fargate_audit.app import lambda_handlers
from fargate_audit.local import estate

from support import env as environment
from support.env import ACCOUNT, ENV, REGION, TABLE, WORLD4
from support.sessions import new_session
from support.spies import CallLog, LambdaContext, Spy, sqs_record
from support.template import REPO_ROOT, load_template, table_create_kwargs, table_ttl_attribute

EVENTS = REPO_ROOT / "events"
# ids in the samples, replaced by the emulator's
SAMPLE_TASK = "arn:aws:ecs:eu-west-1:123456789012:task/prod-web/7f3c2a1b9d8e4f60a1b2c3d4e5f60718"
SAMPLE_TASK_DEFINITION = "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:42"
SAMPLE_ENI, SAMPLE_SUBNET, SAMPLE_IP = "eni-0f1e2d3c4b5a69788", "subnet-0123456789abcdef0", "10.20.1.37"
SAMPLE_SG, SAMPLE_VPC, SAMPLE_RTB = "sg-0abc1234def567890", "vpc-0a1b2c3d4e5f67890", "rtb-0aa11bb22cc33dd44"
SAMPLE_IGW = "igw-0d1c2b3a49586f7e0"


@dataclass
class Task:
    arn: str
    eni: str
    subnet: str
    private_ip: str
    task_definition_arn: str
    cluster: str = ""
    group: str = ""


def task_of(ecs, arn: str, cluster: str | None = None) -> Task:
    """A running task's ids, as DescribeTasks gives them."""
    cluster = cluster or arn.split("/")[1]
    (described,) = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"]
    (attachment,) = described["attachments"]
    details = {d["name"]: d["value"] for d in attachment["details"]}
    return Task(
        arn=arn,
        eni=details["networkInterfaceId"],
        subnet=details["subnetId"],
        private_ip=details["privateIPv4Address"],
        task_definition_arn=described["taskDefinitionArn"],
        cluster=cluster,
        group=described["group"],
    )


def web_and_etl(b, web_subnet: str, etl_subnet: str, web_environment: dict | None = None):
    """The estate's security group and workloads: ``prod-web-tasks`` (TCP 443 from the
    world), cluster ``prod-web`` with two ``web`` service tasks (public IPs, private ECR
    image behind a fluent-bit log router) in ``web_subnet``, cluster ``batch`` with one
    ``etl`` task in ``etl_subnet``. Returns (security group, web task ARNs, etl task ARNs)."""
    sg = b.security_group(
        "prod",
        "prod-web-tasks",
        "web service tasks",
        ingress=[estate._ports("tcp", 443, 443, cidrs4=[WORLD4])],
    )
    ecr = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
    web_container = estate._container("web", f"{ecr}/web:1.8.3", ports=[443], environment=web_environment)
    b.task_definition(
        "web",
        [
            estate._container("log-router", "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.4"),
            web_container,
        ],
    )
    b.task_definition("etl", [estate._container("etl", f"{ecr}/etl:2.0")])
    b.cluster("prod-web", "enabled")
    b.cluster("batch", "disabled")
    web = b.run_tasks("prod-web", "web", [web_subnet], [sg], 2, "1.4.0", service="web", public_ip=True)
    etl = b.run_tasks("batch", "etl", [etl_subnet], [sg], 1, "1.4.0", started_by="ops/etl")
    return sg, web, etl


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

    def dns_logs(self, event):
        return lambda_handlers.dns_logs(event, LambdaContext(), logger=self.spy, metrics=self.spy)

    def flow_logs(self, event):
        return lambda_handlers.flow_logs(event, LambdaContext(), logger=self.spy, metrics=self.spy)

    def sweep(self, cluster: str = "prod-web") -> dict:
        body = json.dumps({"account_id": ACCOUNT, "region": REGION, "cluster_arn": self.clusters[cluster]})
        event = {"Records": [sqs_record("sweep-1", body)]}
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


def create_table(session, template=None) -> None:
    template = template or load_template()
    dynamodb = session.client("dynamodb", region_name=REGION)
    dynamodb.create_table(**table_create_kwargs(template, TABLE))
    dynamodb.update_time_to_live(
        TableName=TABLE,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": table_ttl_attribute(template)},
    )


def build_world(monkeypatch, env: dict | None = None) -> World:
    """The estate and a runtime whose clients record every call (inside mock_aws)."""
    environment.apply(monkeypatch, env)
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")  # no task uses an AMI
    session = new_session()
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
    sg, web, etl = web_and_etl(b, subnet, subnet)

    calls = CallLog()
    rt_session = new_session()
    calls.attach(rt_session)
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
        web=[task_of(b.ecs, arn) for arn in web],
        etl=[task_of(b.ecs, arn) for arn in etl],
    )


@contextmanager
def emulated_world(monkeypatch, env: dict | None = None) -> Iterator[World]:
    """``build_world`` inside its own ``mock_aws``; task states and the runtime released after."""
    from moto import mock_aws

    with mock_aws():
        built = build_world(monkeypatch, env)
        try:
            yield built
        finally:
            estate.release_task_states(built.client("ecs"))
            lambda_handlers.reset_runtime()


def list_tasks_as_aws(monkeypatch) -> None:
    """ListTasks as AWS answers it: without ``desiredStatus`` only the tasks meant to run
    (the API's default, RUNNING); moto lists stopped tasks too. For one test (every
    account of the emulator)."""
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend.list_tasks

    def list_tasks(
        self, cluster_str=None, instance=None, family=None, started_by=None, service=None, status=None
    ):
        return original(self, cluster_str, instance, family, started_by, service, status or "RUNNING")

    monkeypatch.setattr(EC2ContainerServiceBackend, "list_tasks", list_tasks)


def load_app(folder: str, module_name: str):
    """``functions/<folder>/app.py``'s handler, as a new Lambda container imports it: its
    Powertools logger writes to today's ``sys.stdout``. (Powertools configures the service's
    logger once per process, on the stdout of that moment: a capsys buffer of an earlier
    test, otherwise, and the logs would not reach this test's capsys.)"""
    from fargate_audit.local import invoke

    handler = invoke.load_handler(REPO_ROOT / "functions" / folder / "app.py", module_name)
    for stream_handler in logging.getLogger(ENV["POWERTOOLS_SERVICE_NAME"]).handlers:
        if isinstance(stream_handler, logging.StreamHandler):
            stream_handler.stream = sys.stdout  # not setStream: it flushes the old, closed one
    return handler

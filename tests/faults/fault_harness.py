"""The fault-injection harness: an emulated account (moto, in-process), the real handlers,
faults injected into the runtime's own boto3 clients, and the checks every scenario ends
with (nothing lost, nothing leaked, no ERROR turned into PASS).

The estate is built once per test module (``build_estate``) and each scenario gets a fresh
table, an empty Security Hub, empty queues and a new runtime (``Run``), so one module pays
the emulator's start-up once. Estate: VPC 10.30.0.0/16 with a public subnet (default route
to an internet gateway, NAT gateway) and a private one (default route to the NAT gateway),
security group ``prod-web-tasks`` open to the world on TCP 443, clusters ``prod-web``
(two ``web`` service tasks with public IPs, private ECR image, a plain-text
``DB_PASSWORD`` whose value is the canary ``CANARY_DEFINITION``) and ``batch`` (one
``etl`` task in the private subnet, egress through the NAT gateway). With
``front_doors=True`` (a module overriding the ``world`` fixture: test_fault_ingress.py) it
also has load balancers in front of some tasks: ``_front_doors``.

Time is virtual: botocore's retry sleeps, the recorder's and the publisher's backoffs and
the handlers' clock all move one ``Clock``; a scenario's Lambda context counts its
remaining time on that clock. Faults are botocore event hooks on the runtime's clients:

- ``Faults.fail(service, operation, code, times)`` (``deny`` / ``throttle``: with the
  service's own code: ec2, ecs, elbv2, wafv2): the call is answered with AWS's error
  (the protocol's own wire format) at ``before-send`` (the request never reaches the
  emulator), so botocore's standard retries see it exactly as a real throttle or denial;
- ``Faults.drop_items`` / ``Faults.on_call``: a call's parameters and parsed response
  rewritten (FailedFindings, UnprocessedItems) or a callback run inside a call (two
  concurrent audits interleaved).
"""

from __future__ import annotations

import copy
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.endpoint
from botocore.awsrequest import AWSResponse
from fargate_audit.app import lambda_handlers, scan
from fargate_audit.cli.template import DEFAULT_TABLE_NAME, load_template, table_create_kwargs
from fargate_audit.core import engine, facts, rules
from fargate_audit.core import params as params_module
from fargate_audit.edge import collect
from fargate_audit.edge.aws import Clients
from fargate_audit.findings.state import OUTBOX_PK
from fargate_audit.local import estate
from fargate_audit.stores import record
from fargate_audit.stores import table as dynamo
from moto.core.botocore_stubber import MockRawResponse
from moto.securityhub.models import securityhub_backends
from moto.sqs.models import sqs_backends
from support import env
from support.env import ACCOUNT, REGION, WORLD4
from support.sessions import new_session
from support.spies import CallLog, Spy, sqs_record  # noqa: F401 (sqs_record: for the scenarios)
from support.wire import error_response
from support.world import Task, task_of, web_and_etl

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENTS = REPO_ROOT / "events"
FOREIGN_ACCOUNT, FOREIGN_REGION = "999988887777", "us-west-2"
TABLE = DEFAULT_TABLE_NAME  # the CLI's history / findings / invoke read it by default
T0 = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)

# Canaries: a task definition's environment value and an event's containerOverrides value.
CANARY_DEFINITION = estate.CANARY_SECRET
CANARY_OVERRIDE = "CANARY-OVERRIDE-VALUE-DO-NOT-LEAK"  # noqa: S105 (a canary, not a secret)
CANARIES = (CANARY_DEFINITION, CANARY_OVERRIDE)

# The functions' environment (support.env.ENV) with what the scenarios add, and what they
# must not inherit from the shell.
EXTRA_ENV = {"AWS_EC2_METADATA_DISABLED": "true", "LOG_LEVEL": "INFO"}
UNSET = (
    *env.UNSET,
    "FARGATE_AUDIT_TABLE",
    "ALLOWED_ACCOUNTS",
    "ALLOWED_REGIONS",
    "AUDIT_ROLE_ARN",
    "AUDIT_ROLE_EXTERNAL_ID",
)

# Each API the event path reads -> the posture facts it produces (core/facts.py declares
# each fact's calls; DescribeNatGateways matters only when the path goes through a NAT
# gateway, DescribeTaskDefinition spoils platform_family too: moto's tasks report no
# platformFamily, rules.md "Platform family"; the VPC reads spoil load_balancers only for a
# task registered in some target group).
NETWORK_FACTS = facts.NETWORK_FACTS
API_FACTS = {
    tuple(action.split(":")): {fact.name for fact in facts.FACTS if action in fact.actions}
    for action in facts.read_actions()
}


_CATALOG = None


def catalog():
    """The rule catalog, loaded once per process."""
    global _CATALOG
    if _CATALOG is None:
        _CATALOG = rules.load_catalog()
    return _CATALOG


# --------------------------------------------------------------------------- time


class Clock:
    """Virtual seconds since T0, moved only by sleeps and by ``advance``."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def datetime(self) -> datetime:
        return T0 + timedelta(seconds=self.now)


class Context:
    """A Lambda context whose remaining time runs on the virtual clock."""

    function_name = "fargate-audit-faults"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    aws_request_id = "00000000-0000-4000-8000-00000000fa17"
    log_group_name = "/aws/lambda/fargate-audit-faults"
    log_stream_name = "2026/11/20/[$LATEST]faults"

    def __init__(self, clock: Clock, timeout_s: float = 60, account: str = ACCOUNT) -> None:
        self.clock = clock
        self.deadline = clock.now + timeout_s
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{account}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - self.clock.now) * 1000))


# --------------------------------------------------------------------------- faults


THROTTLING = {
    "ec2": ("RequestLimitExceeded", 503),
    "ecs": ("ThrottlingException", 400),
    "elbv2": ("Throttling", 400),
    "wafv2": ("ThrottlingException", 400),
}
DENIED = {
    "ec2": ("UnauthorizedOperation", 403),
    "ecs": ("AccessDeniedException", 400),
    "elbv2": ("AccessDenied", 403),
    "wafv2": ("AccessDeniedException", 400),
}


class Faults:
    """Faults injected into one runtime's clients (``Clients``), removed by ``clear``."""

    def __init__(self, clients: Clients, region: str = REGION) -> None:
        self.clients = clients
        self.region = region
        self._hooks: list[tuple[Any, str, Callable]] = []
        self.injected: Counter[str] = Counter()

    def _register(self, service: str, event: str, handler: Callable, first: bool = True) -> None:
        events = self.clients.get(service, self.region).meta.events
        (events.register_first if first else events.register)(event, handler)
        self._hooks.append((events, event, handler))

    def fail(
        self,
        service: str,
        operation: str,
        code: str,
        status: int = 400,
        times: int | None = None,
        when: Callable[[dict], bool] | None = None,
    ):
        """Answer ``operation`` with AWS error ``code`` (``times`` attempts; None: always;
        ``when(api_params)``: only the calls it selects)."""
        aws_client = self.clients.get(service, self.region)
        key = f"{service}.{operation}"
        selected = [True]

        def before_send(request=None, **_):
            if not selected[0] or (times is not None and self.injected[key] >= times):
                return None
            self.injected[key] += 1
            request.url = "https://fault-injected.invalid/"  # the emulator never sees it
            protocol = aws_client.meta.service_model.protocol
            return error_response(protocol, request.url, code, f"injected {code}", status)

        name = aws_client.meta.service_model.service_id.hyphenize()
        if when is not None:

            def select(params=None, **_):
                selected[0] = bool(when(params or {}))

            self._register(service, f"before-parameter-build.{name}.{operation}", select, first=False)
        self._register(service, f"before-send.{name}.{operation}", before_send)

    def respond(self, service: str, operation: str, responder: Callable[[Any], tuple[int, dict] | None]):
        """Answer ``operation`` with ``responder(request) -> (status, JSON body)`` (None:
        let the emulator answer)."""
        aws_client = self.clients.get(service, self.region)
        name = aws_client.meta.service_model.service_id.hyphenize()

        def before_send(request=None, **_):
            answer = responder(request)
            if answer is None:
                return None
            status, body = answer
            request.url = "https://fault-injected.invalid/"
            headers = {"content-type": "application/json"}
            return AWSResponse(request.url, status, headers, MockRawResponse(json.dumps(body).encode()))

        self._register(service, f"before-send.{name}.{operation}", before_send)

    def throttle(self, service: str, operation: str, times: int | None = None) -> None:
        code, status = THROTTLING[service]
        self.fail(service, operation, code, status, times)

    def deny(self, service: str, operation: str, when: Callable[[dict], bool] | None = None) -> None:
        code, status = DENIED[service]
        self.fail(service, operation, code, status, when=when)

    def rewrite(
        self,
        service: str,
        operation: str,
        on_params: Callable[[dict], Any] | None = None,
        on_parsed: Callable[[dict, Any], None] | None = None,
    ) -> None:
        """``on_params(api_params) -> state`` before the call (may mutate them);
        ``on_parsed(response, state)`` after it (may mutate the parsed response)."""
        aws_client = self.clients.get(service, self.region)
        name = aws_client.meta.service_model.service_id.hyphenize()
        pending: list[Any] = []

        def before(params=None, **_):
            pending.append(on_params(params) if on_params else None)

        def after(parsed=None, **_):
            state = pending.pop() if pending else None
            if on_parsed is not None and parsed is not None:
                on_parsed(parsed, state)

        self._register(service, f"before-parameter-build.{name}.{operation}", before, first=False)
        self._register(service, f"after-call.{name}.{operation}", after, first=False)

    def on_call(self, service: str, operation: str, callback: Callable[[], None], times: int = 1) -> None:
        """Run ``callback`` inside the next ``times`` calls of ``operation`` (before they
        reach AWS): what another invocation does meanwhile."""
        aws_client = self.clients.get(service, self.region)
        name = aws_client.meta.service_model.service_id.hyphenize()
        left = [times]

        def before_call(**_):
            if left[0] > 0:
                left[0] -= 1
                callback()

        self._register(service, f"before-call.{name}.{operation}", before_call)

    def clear(self) -> None:
        for events, event, handler in self._hooks:
            events.unregister(event, handler)
        self._hooks.clear()


# --------------------------------------------------------------------------- estate


@dataclass
class Estate:
    session: Any
    sweep_queue: str
    sweep_dlq: str
    events_dlq: str
    clusters: dict[str, str]
    vpc: str
    security_group: str
    web: list[Task]
    etl: list[Task]
    # build_estate(front_doors=True) only: the api services behind the network load
    # balancer, and the load-balancing resources by role (see _front_doors)
    api: list[Task] = field(default_factory=list)
    api_open: list[Task] = field(default_factory=list)
    front: dict[str, str] = field(default_factory=dict)
    baseline: dict[str, dict] = field(default_factory=dict)  # task ARN -> {"statuses", "errors", "posture"}
    table_kwargs: dict = field(default_factory=dict)  # create_table arguments of the template's table
    _clients: dict = field(default_factory=dict)

    def client(self, service: str):
        """The test's own client (set-up and assertions; no fault, no spy)."""
        if service not in self._clients:
            self._clients[service] = self.session.client(service, region_name=REGION)
        return self._clients[service]

    @property
    def tasks(self) -> list[Task]:
        return self.web + self.etl + self.api + self.api_open


def build_estate(monkeypatch, front_doors: bool = False) -> Estate:
    """The emulated account (call inside ``mock_aws``); ``front_doors``: with the load
    balancers of :func:`_front_doors` (a second public subnet, in zone b, for the ALB)."""
    env.apply(monkeypatch, EXTRA_ENV, UNSET)
    monkeypatch.setattr(botocore.endpoint, "time", _VirtualTime)  # retry sleeps: virtual
    session = new_session()
    session.client("securityhub", region_name=REGION).enable_security_hub(EnableDefaultStandards=False)
    sqs = session.client("sqs", region_name=REGION)
    sweep_dlq = sqs.create_queue(QueueName="fargate-audit-SweepDeadLetterQueue")["QueueUrl"]
    sweep_dlq_arn = sqs.get_queue_attributes(QueueUrl=sweep_dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    template = load_template(REPO_ROOT / "template.yaml")
    max_receive = template["Resources"]["SweepQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
    sweep_queue = sqs.create_queue(
        QueueName="fargate-audit-SweepQueue",
        Attributes={
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": sweep_dlq_arn, "maxReceiveCount": max_receive}
            )
        },
    )["QueueUrl"]
    events_dlq = sqs.create_queue(QueueName="fargate-audit-EventsDeadLetterQueue")["QueueUrl"]

    b = estate._Builder(session, REGION)
    vpc = b.vpc("prod", "10.30.0.0/16")
    igw = b.internet_gateway(vpc, "prod-igw")
    public = b.subnet("prod-public-a", vpc, "10.30.1.0/24", "a")
    publics = [public, b.subnet("prod-public-b", vpc, "10.30.3.0/24", "b")] if front_doors else [public]
    private = b.subnet("prod-private-a", vpc, "10.30.2.0/24", "a")
    b.route_table("prod-public", vpc, publics, [{"DestinationCidrBlock": WORLD4, "GatewayId": igw}])
    nat = b.nat_gateway("prod-nat-a", public)
    b.route_table("prod-private", vpc, [private], [{"DestinationCidrBlock": WORLD4, "NatGatewayId": nat}])
    sg, web, etl = web_and_etl(b, public, private, web_environment={"DB_PASSWORD": CANARY_DEFINITION})
    b.cluster("idle", "enabled")  # no task: a cheap valid sweep message
    front, api, api_open = _front_doors(b, vpc, publics, private, web) if front_doors else ({}, [], [])
    world = Estate(
        session=session,
        sweep_queue=sweep_queue,
        sweep_dlq=sweep_dlq,
        events_dlq=events_dlq,
        clusters=dict(b.info.clusters),
        vpc=vpc,
        security_group=sg,
        web=[task_of(b.ecs, arn, "prod-web") for arn in web],
        etl=[task_of(b.ecs, arn, "batch") for arn in etl],
        api=[task_of(b.ecs, arn, "prod-web") for arn in api],
        api_open=[task_of(b.ecs, arn, "prod-web") for arn in api_open],
        front=front,
        table_kwargs=table_create_kwargs(template, TABLE),
    )
    # the baseline: each task audited from its RUNNING event with no fault
    clients = Clients(session)
    for task in world.tasks:
        detail = running_event(world, task)["detail"]
        collected = collect.collect_tasks(clients, REGION, world.clusters[task.cluster], [detail])
        evaluation = scan.evaluate_raw(collected.raw_tasks, catalog(), None, T0)
        (posture,) = evaluation.postures
        world.baseline[task.arn] = {
            "statuses": {r["rule_id"]: r["status"] for r in evaluation.results},
            "errors": set(posture["errors"]),
            "posture": posture,
        }
    return world


VPC_CIDR = "10.30.0.0/16"
CONTAINERS = {"service:web": ["log-router", "web"], "service:api": ["api"], "service:api-open": ["api"]}


def _front_doors(b, vpc: str, publics: list[str], private: str, web: list[str]):
    """The load balancers of ``build_estate(front_doors=True)``: returns (resources by role,
    api task ARNs, api-open task ARNs).

    - ``alb`` "web-alb", internet-facing in both public subnets, security group
      ``alb_sg`` (TCP 443 and 80 from the world), web ACL ``web_acl``, in front of the
      ``web`` tasks (group ``web_group``, HTTP, registered at 443): listener ``https``
      (HTTPS 443, forward) and ``http`` (HTTP 80, default redirect to HTTPS, and rule
      ``weighted_rule`` forwarding /api/* to the web group with weight 0 and to the empty
      ``canary_group`` with weight 1: no front door while the weight is 0);
    - ``nlb`` "edge", internet-facing in the first public subnet, no security group,
      listener ``tcp`` (TCP 443) forwarding to ``api_group`` (TCP, client addresses
      preserved) where two services of cluster prod-web, in the private subnet, are
      registered at 8443: ``api`` (group ``api_sg``: TCP 8443 from the VPC's CIDR only,
      so not reached through the NLB) and ``api-open`` (``api_open_sg``: from the world).
    """
    alb_sg = b.security_group(
        "prod",
        "alb-public",
        "web load balancer",
        ingress=[
            estate._ports("tcp", 443, 443, cidrs4=[WORLD4]),
            estate._ports("tcp", 80, 80, cidrs4=[WORLD4]),
        ],
    )
    alb = b.load_balancer("web-alb", "application", "internet-facing", publics, [alb_sg])
    web_group = b.target_group("web", "HTTP", 443, vpc)
    canary_group = b.target_group("web-canary", "HTTP", 443, vpc)
    b.register(web_group, "prod-web", web, 443)
    https = b.listener(alb, "HTTPS", 443, estate._forward(web_group), domain="web.example.com")
    redirect = {
        "Type": "redirect",
        "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"},
    }
    http = b.listener(alb, "HTTP", 80, redirect)
    weighted_rule = b.elbv2.create_rule(
        ListenerArn=http,
        Priority=10,
        Conditions=[{"Field": "path-pattern", "Values": ["/api/*"]}],
        Actions=[weighted_forward({web_group: 0, canary_group: 1})],
    )["Rules"][0]["RuleArn"]
    web_acl = b.web_acl("web-waf", alb)

    api_sg = b.security_group(
        "prod",
        "api-vpc-only",
        "api tasks: the VPC only",
        ingress=[estate._ports("tcp", 8443, 8443, cidrs4=[VPC_CIDR])],
    )
    api_open_sg = b.security_group(
        "prod",
        "api-world",
        "api tasks: the world",
        ingress=[estate._ports("tcp", 8443, 8443, cidrs4=[WORLD4])],
    )
    ecr = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
    b.task_definition("api", [estate._container("api", f"{ecr}/api:3.1", ports=[8443])])
    api = b.run_tasks("prod-web", "api", [private], [api_sg], 1, "1.4.0", service="api")
    api_open = b.run_tasks("prod-web", "api", [private], [api_open_sg], 1, "1.4.0", service="api-open")
    nlb = b.load_balancer("edge", "network", "internet-facing", publics[:1], [])
    api_group = b.target_group("api", "TCP", 8443, vpc)
    b.elbv2.modify_target_group_attributes(
        TargetGroupArn=api_group, Attributes=[{"Key": "preserve_client_ip.enabled", "Value": "true"}]
    )
    b.register(api_group, "prod-web", api + api_open, 8443)
    tcp = b.listener(nlb, "TCP", 443, estate._forward(api_group))
    front = {
        "alb": alb,
        "alb_sg": alb_sg,
        "web_group": web_group,
        "canary_group": canary_group,
        "https": https,
        "http": http,
        "weighted_rule": weighted_rule,
        "web_acl": web_acl,
        "nlb": nlb,
        "api_group": api_group,
        "tcp": tcp,
        "api_sg": api_sg,
        "api_open_sg": api_open_sg,
    }
    return front, api, api_open


def weighted_forward(weights: dict[str, int]) -> dict:
    """A forward action over target groups with weights (``ForwardConfig``)."""
    groups = [{"TargetGroupArn": arn, "Weight": weight} for arn, weight in weights.items()]
    return {"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}


class _VirtualTime:
    """Stands in for ``time`` in botocore.endpoint (its only use: the retry sleep)."""

    clock: Clock | None = None

    @classmethod
    def sleep(cls, seconds: float) -> None:
        if cls.clock is not None:
            cls.clock.sleep(seconds)


# --------------------------------------------------------------------------- events


def _sample(name: str) -> dict:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def running_event(
    world: Estate,
    task: Task,
    version: int = 4,
    event_id: str | None = None,
    override_env: dict[str, str] | None = None,
    account: str = ACCOUNT,
    region: str = REGION,
    last_status: str = "RUNNING",
) -> dict:
    """An "ECS Task State Change" of ``task`` in the documented shape (events/ sample)."""
    event = _sample("ecs-task-running.json" if last_status != "STOPPED" else "ecs-task-stopped.json")
    sample_task = event["detail"]["taskArn"]
    text = json.dumps(event)
    for old, new in (
        (sample_task, task.arn),
        (event["detail"]["clusterArn"], world.clusters[task.cluster]),
        (event["detail"]["taskDefinitionArn"], task.task_definition_arn),
    ):
        text = text.replace(old, new)
    event = json.loads(text)
    detail = event["detail"]
    detail["group"] = task.group
    detail["lastStatus"] = last_status
    detail["version"] = version
    for attachment in detail.get("attachments", []):
        for item in attachment.get("details", []):
            item["value"] = {
                "subnetId": task.subnet,
                "networkInterfaceId": task.eni,
                "privateIPv4Address": task.private_ip,
            }.get(item["name"], item["value"])
    container_names = CONTAINERS.get(task.group, ["etl"])
    detail["overrides"] = {"containerOverrides": [{"name": n} for n in container_names]}
    if override_env:
        detail["overrides"]["containerOverrides"][-1]["environment"] = [
            {"name": k, "value": v} for k, v in override_env.items()
        ]
    if account != ACCOUNT or region != REGION:
        text = json.dumps(event).replace(f":{REGION}:{ACCOUNT}:", f":{region}:{account}:")
        event = json.loads(text)
    event["account"], event["region"] = account, region
    event["id"] = event_id or f"{last_status.lower()}-{task.arn.rsplit('/', 1)[-1][:12]}-v{version}"
    return event


def config_event(world: Estate, resource_id: str | None = None, account: str = ACCOUNT) -> dict:
    """A "Config Configuration Item Change" of the tasks' security group."""
    event = _sample("config-security-group-change.json")
    item = event["detail"]["configurationItem"]
    text = json.dumps(event).replace(item["resourceId"], resource_id or world.security_group)
    event = json.loads(text)
    item = event["detail"]["configurationItem"]
    if account != ACCOUNT:
        text = json.dumps(event).replace(ACCOUNT, account)
        event = json.loads(text)
    return event


def scheduled_event() -> dict:
    return _sample("scheduled-event.json")


def sweep_body(world: Estate, cluster: str, account: str = ACCOUNT, region: str = REGION) -> str:
    arn = world.clusters[cluster]
    if account != ACCOUNT or region != REGION:
        arn = arn.replace(f":{REGION}:{ACCOUNT}:", f":{region}:{account}:")
    return json.dumps({"account_id": account, "region": region, "cluster_arn": arn})


# --------------------------------------------------------------------------- one scenario's run


class Run:
    """One scenario: a fresh table, Security Hub and queues, a new runtime (a new Lambda
    container) on the module's estate, and the checks that end every scenario."""

    def __init__(self, world: Estate, monkeypatch, capsys, caplog, env: dict | None = None) -> None:
        self.world = world
        self.capsys = capsys
        self.caplog = caplog
        self.clock = Clock()
        self.outcomes: list[Any] = []
        self.texts: list[str] = []  # other outputs to scan (CLI output, reports, ...)
        self._snapshot: dict[str, Any] = {}  # table scan / findings, until the next change
        _VirtualTime.clock = self.clock
        monkeypatch.setattr(lambda_handlers, "_now", self.clock.datetime)
        caplog.set_level(logging.INFO)
        self._reset_state()
        self.runtimes: list[Any] = []
        self.rt, self.spy, self.calls = self.new_runtime(env)
        lambda_handlers.set_runtime(self.rt)
        self.faults = Faults(self.rt.clients)

    # -- set-up

    def _reset_state(self) -> None:
        dynamodb = self.world.client("dynamodb")
        if TABLE in dynamodb.list_tables()["TableNames"]:
            dynamodb.delete_table(TableName=TABLE)
        dynamodb.create_table(**self.world.table_kwargs)
        securityhub_backends[ACCOUNT][REGION].findings.clear()
        for url in (self.world.sweep_queue, self.world.sweep_dlq, self.world.events_dlq):
            queue = sqs_backends[ACCOUNT][REGION].queues[url.rsplit("/", 1)[-1]]
            queue._messages.clear()  # PurgeQueue: once a minute only
            queue._pending_messages.clear()

    def environment(self, env: dict | None = None) -> dict:
        import os

        return dict(os.environ) | {"EVENTS_DLQ_URL": self.world.events_dlq} | (env or {})

    def new_runtime(self, env: dict | None = None, session=None):
        """A runtime as a new Lambda container builds it, with its own call log and spy."""
        calls = CallLog()
        rt_session = session or new_session()
        calls.attach(rt_session)
        spy = Spy()
        rt = lambda_handlers.build_runtime(environ=self.environment(env), session=rt_session, logger=spy)
        rt.recorder.sleep = self.clock.sleep
        if rt.publisher is not None:
            rt.publisher.sleep = self.clock.sleep
        self.runtimes.append((rt, spy, calls))
        return rt, spy, calls

    def use(self, env: dict) -> None:
        """From now on, a runtime built with ``env`` over the defaults (a redeployed stack)."""
        self.faults.clear()
        self.rt, self.spy, self.calls = self.new_runtime(env)
        lambda_handlers.set_runtime(self.rt)
        self.faults = Faults(self.rt.clients)

    def context(self, timeout_s: float = 60) -> Context:
        return Context(self.clock, timeout_s)

    # -- handlers (through fargate_audit.app.lambda_handlers, with the spy)

    def changed(self) -> None:
        """Forget the cached table scan and findings (call after changing AWS state)."""
        self._snapshot.clear()

    def _call(self, handler, event, context=None, rt=None, spy=None):
        self.changed()
        previous = lambda_handlers._RUNTIME
        if rt is not None:
            lambda_handlers.set_runtime(rt)
        try:
            outcome = handler(
                event, context or self.context(), logger=spy or self.spy, metrics=spy or self.spy
            )
        finally:
            lambda_handlers.set_runtime(previous)
            self.changed()
        self.outcomes.append(outcome)
        return outcome

    def task_events(self, event, context=None, rt=None, spy=None):
        return self._call(lambda_handlers.task_events, event, context, rt, spy)

    def config_events(self, event, context=None):
        return self._call(lambda_handlers.config_events, event, context)

    def sweep_planner(self, event, context=None):
        return self._call(lambda_handlers.sweep_planner, event, context)

    def sweep_worker(self, records: list[dict], context=None):
        """The worker, by default with its template timeout (300 s) ahead of it."""
        return self._call(lambda_handlers.sweep_worker, {"Records": records}, context or self.context(300))

    # -- events

    def running(self, task: Task, **kwargs) -> dict:
        return running_event(self.world, task, **kwargs)

    def stopped(self, task: Task, version: int = 7, **kwargs) -> dict:
        return running_event(self.world, task, version=version, last_status="STOPPED", **kwargs)

    # -- state

    def table_items(self) -> list[dict]:
        if "items" not in self._snapshot:
            self._snapshot["items"] = self._scan()
        return self._snapshot["items"]

    def _scan(self) -> list[dict]:
        dynamodb = self.world.client("dynamodb")
        items, start = [], None
        while True:
            kwargs = {"TableName": TABLE} | ({"ExclusiveStartKey": start} if start else {})
            page = dynamodb.scan(**kwargs)
            items += [dynamo.from_attributes(i) for i in page["Items"]]
            start = page.get("LastEvaluatedKey")
            if not start:
                return items

    def latest(self, task: Task) -> dict | None:
        return self.rt.recorder.latest(task.arn)

    def statuses(self, task: Task) -> dict[str, str]:
        return (self.latest(task) or {}).get("statuses") or {}

    def history(self, task: Task) -> list[dict]:
        return self.rt.recorder.history(task.arn)

    def outbox(self) -> list[dict]:
        return [i for i in self.table_items() if i["pk"] == OUTBOX_PK]

    def findings(self) -> dict[str, dict]:
        """Security Hub's fargate-audit findings by Id."""
        if "findings" not in self._snapshot:
            self._snapshot["findings"] = self._findings()
        return copy.deepcopy(self._snapshot["findings"])

    def _findings(self) -> dict[str, dict]:
        hub = self.world.client("securityhub")
        found = [f for page in hub.get_paginator("get_findings").paginate() for f in page["Findings"]]
        return {f["Id"]: f for f in found if f["Id"].startswith("fargate-audit/")}

    def queue_messages(self, url: str) -> list[dict]:
        """Every message of a queue, left in it (received with a zero visibility timeout)."""
        sqs = self.world.client("sqs")
        seen: dict[str, dict] = {}
        for _ in range(20):
            got = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, MessageAttributeNames=["All"]
            ).get("Messages", [])
            new = [m for m in got if m["MessageId"] not in seen]
            if not got or not new:
                break
            seen.update({m["MessageId"]: m for m in new})
        return list(seen.values())

    def dead_letters(self) -> list[dict]:
        return [json.loads(m["Body"]) for m in self.queue_messages(self.world.events_dlq)]

    # -- the checks every scenario ends with

    def leaks(self) -> int:
        """Occurrences of a canary in every output: logs (spies, stdout/stderr, logging),
        handler outcomes, the table, Security Hub, every queue, other texts given."""
        captured = self.capsys.readouterr()
        self.texts += [captured.out, captured.err]
        parts = [
            json.dumps([spy.logs for _, spy, _ in self.runtimes], default=str),
            json.dumps(self.outcomes, default=str),
            self.caplog.text,
            json.dumps(self.table_items(), default=str),
            json.dumps(self.findings(), default=str),
            *(
                json.dumps(self.queue_messages(url), default=str)
                for url in (self.world.events_dlq, self.world.sweep_queue, self.world.sweep_dlq)
            ),
            *self.texts,
        ]
        return sum(part.count(canary) for part in parts for canary in CANARIES)

    def passed_on_failed_facts(self) -> list[str]:
        """Results recorded PASSED although a fact their rule needs is in error, and
        Security Hub findings PASSED although a running task of the workload is ERROR."""
        rules_by_id = {rule.id: rule for rule in catalog().rules}
        wrong: list[str] = []
        compliance: dict[str, set[str]] = {}
        for item in self.table_items():
            if item.get("sk") != record.LATEST_SK or item.get("lifecycle") != record.RUNNING:
                continue
            latest = record.decode_latest(item)
            errors = set((latest["posture"] or {}).get("errors") or {})
            posture = latest["posture"] or {}
            for result in latest["results"]:
                rule = rules_by_id.get(result["rule_id"])
                # a fact the rule tolerates is its check's to judge (NET-06 reads the names
                # the ENI gives when DescribeSecurityGroups fails): its fixtures hold it
                needs = set(rule.gating) if rule else set()
                if rule is not None and rule.applicability:
                    needs |= set(rule.applicability.requires)
                if result["status"] == "PASSED" and needs & errors:
                    wrong.append(f"{latest['task_arn']} {result['rule_id']} PASSED with {needs & errors}")
                finding_id = "fargate-audit/{}/{}/{}/{}/{}".format(
                    posture.get("account_id"),
                    posture.get("region"),
                    posture.get("cluster_name"),
                    posture.get("group"),
                    result["rule_id"],
                )
                compliance.setdefault(finding_id, set()).add(result["status"])
        for finding_id, finding in self.findings().items():
            statuses = compliance.get(finding_id, set())
            active_pass = (
                finding.get("RecordState") == "ACTIVE" and finding["Compliance"]["Status"] == "PASSED"
            )
            if active_pass and statuses & {"ERROR", "FAILED"}:
                wrong.append(f"{finding_id} PASSED over {sorted(statuses)}")
        return wrong

    def findings_lost(self) -> int:
        """Findings the recorded running tasks call for that Security Hub does not hold with
        that compliance (interface.md: FAILED > NOT_AVAILABLE (ERROR) > PASSED), plus
        findings still waiting in the outbox."""
        expected: dict[str, str] = {}
        by_finding: dict[str, set[str]] = {}
        for item in self.table_items():
            if item.get("sk") != record.LATEST_SK or item.get("lifecycle") != record.RUNNING:
                continue
            latest = record.decode_latest(item)
            posture = latest["posture"] or {}
            prefix = "fargate-audit/{}/{}/{}/{}/".format(
                *(posture.get(key) for key in ("account_id", "region", "cluster_name", "group"))
            )
            for result in latest["results"]:
                by_finding.setdefault(prefix + result["rule_id"], set()).add(result["status"])
        for finding_id, statuses in by_finding.items():
            if "FAILED" in statuses:
                expected[finding_id] = "FAILED"
            elif "ERROR" in statuses:
                expected[finding_id] = "NOT_AVAILABLE"
            elif "PASSED" in statuses:
                expected[finding_id] = "PASSED"
        held = {
            finding_id: f["Compliance"]["Status"]
            for finding_id, f in self.findings().items()
            if f.get("RecordState") == "ACTIVE"
        }
        missing = sum(1 for finding_id, status in expected.items() if held.get(finding_id) != status)
        return missing + len(self.outbox())

    def tasks_lost(self, running: Iterable[Task] = (), stopped: Iterable[Task] = ()) -> int:
        """Tasks not recorded in the lifecycle they must have."""
        lost = 0
        for task in running:
            latest = self.latest(task)
            lost += latest is None or latest["lifecycle"] != record.RUNNING or latest["posture"] is None
        for task in stopped:
            latest = self.latest(task)
            lost += latest is None or latest["lifecycle"] != record.STOPPED
        return lost

    def close(self) -> None:
        self.faults.clear()
        for rt, _, _ in self.runtimes:
            rt.clients.deadline = None
        _VirtualTime.clock = None
        lambda_handlers.reset_runtime()


def expected_statuses(world: Estate, task: Task, failed_facts: set[str]) -> dict[str, str]:
    """The statuses ``task`` must show when ``failed_facts`` (posture facts) could not be
    collected: every rule needing one of them ERROR (a rule whose applicability needs one:
    ERROR; one not applicable by its container facts: unchanged; one that only
    ``tolerates`` them: what its check gives on the baseline posture without them), the
    others as in the fault-free baseline."""
    baseline = world.baseline[task.arn]["statuses"]
    by_id = {rule.id: rule for rule in catalog().rules}
    expected = {}
    for rule_id, status in baseline.items():
        rule = by_id[rule_id]
        applicability = set(rule.applicability.requires) if rule.applicability else set()
        if applicability & failed_facts:
            expected[rule_id] = "ERROR"
        elif rule.applicability and status == "NOT_APPLICABLE":
            expected[rule_id] = status
        elif set(rule.gating) & failed_facts:
            expected[rule_id] = "ERROR"
        elif set(rule.tolerates) & failed_facts:
            expected[rule_id] = _without(world.baseline[task.arn]["posture"], rule, failed_facts)
        else:
            expected[rule_id] = status
    return expected


def _without(posture: dict, rule: rules.Rule, failed_facts: set[str]) -> str:
    """The status ``rule`` gives on ``posture`` when ``failed_facts`` could not be collected:
    their errors set and what they held emptied as the posture builder leaves it (the
    definition's containers and environment, the route table's id; the security groups'
    names stay, the ENI gives them)."""
    spoiled = copy.deepcopy(posture)
    spoiled["errors"] = dict(spoiled.get("errors") or {}, **dict.fromkeys(failed_facts, "spoiled"))
    if "containers" in failed_facts:
        spoiled["containers"] = []
        spoiled["environment"] = [v for v in spoiled["environment"] if v["source"] == "override"]
    if "route_table" in failed_facts:
        spoiled["network"]["route_table_id"] = None
    return engine.evaluate_rule(rule, spoiled, params_module.effective_params(catalog(), {}))[0]


def facts_of(world: Estate, task: Task, service: str, operation: str) -> set[str]:
    """The posture facts a failed ``service.operation`` spoils for ``task``."""
    facts = set(API_FACTS[(service, operation)])
    network = world.baseline[task.arn]["posture"]["network"]
    if service == "ec2" and "load_balancers" in facts and not network["load_balancer_resources"]:
        facts.discard("load_balancers")  # the VPC reads spoil front doors only of a registered task
    if operation == "DescribeNatGateways":
        egress = world.baseline[task.arn]["posture"]["network"]["egress"]
        through_nat = any(str(path.get("path", "")).startswith("nat-gateway") for path in egress.values())
        return facts if through_nat else set()
    return facts

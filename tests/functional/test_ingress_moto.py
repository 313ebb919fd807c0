"""Ingress through load balancers through the scan (``app.scan.run_scan``) on moto
(in-process): what one scan of an account with load balancers reports per task, with
faults injected into every client the scan makes (botocore handlers on the session).

World (one per module, read only: a fault is a handler removed after its test): two VPCs
with the same CIDR, 10.50.0.0/16, each with two public subnets routed to an internet
gateway and a private one where the tasks run.

- blue: cluster "blue", service ``shop`` (2 tasks) behind the internet-facing ALB
  "blue-shop" (HTTP 80, no web ACL; the tasks admit TCP 8080 from the ALB's security
  group), service ``lonely`` (1 task) registered nowhere in its own VPC;
- green: cluster "green", service ``web`` (1 task) behind the internet-facing ALB
  "green-web" (HTTP 80, web ACL "green-waf"; the task admits TCP 8080 from the world),
  whose target group also holds the address of blue's ``lonely`` task.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest
from fargate_audit.app import scan
from fargate_audit.cli import table
from fargate_audit.edge import collect
from fargate_audit.local import estate
from moto import mock_aws
from support import env
from support.env import REGION, WORLD4
from support.sessions import new_session
from support.wire import error_response

OTHER_REGION = "us-east-1"
CIDR = "10.50.0.0/16"
PORT = 8080
ELBV2 = "elastic-load-balancing-v2"  # botocore's event name of the service


@dataclass
class World:
    session: object
    info: estate.EstateInfo
    addresses: dict[str, list[str]] = field(default_factory=dict)  # workload -> private IPs

    def client(self, service: str):
        return self.session.client(service, region_name=REGION)


def _vpc(b: estate._Builder, name: str) -> tuple[str, list[str], str]:
    vpc = b.vpc(name, CIDR)
    igw = b.internet_gateway(vpc, f"{name}-igw")
    publics = [
        b.subnet(f"{name}-public-a", vpc, "10.50.1.0/24", "a"),
        b.subnet(f"{name}-public-b", vpc, "10.50.2.0/24", "b"),
    ]
    b.route_table(f"{name}-public", vpc, publics, [{"DestinationCidrBlock": WORLD4, "GatewayId": igw}])
    private = b.subnet(f"{name}-private-a", vpc, "10.50.10.0/24", "a")
    return vpc, publics, private


def _addresses(b: estate._Builder, cluster: str, arns: list[str]) -> list[str]:
    tasks = b.ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
    enis = b.ec2.describe_network_interfaces(NetworkInterfaceIds=[estate._eni_of(t) for t in tasks])
    return [eni["PrivateIpAddress"] for eni in enis["NetworkInterfaces"]]


@pytest.fixture(scope="module")
def world():
    with pytest.MonkeyPatch.context() as monkeypatch, mock_aws():
        env.apply(monkeypatch)
        session = new_session()
        b = estate._Builder(session, REGION)
        app = [estate._container("app", "public.ecr.aws/nginx/nginx:1.25", ports=[PORT])]
        for family in ("shop", "lonely", "web"):
            b.task_definition(family, app)

        blue, blue_publics, blue_private = _vpc(b, "blue")
        b.cluster("blue", "enabled")
        alb_sg = b.security_group(
            "blue", "blue-alb", "ALB", ingress=[estate._ports("tcp", 80, 80, cidrs4=[WORLD4])]
        )
        shop_sg = b.security_group(
            "blue", "blue-shop", "from the ALB", ingress=[estate._ports("tcp", PORT, PORT, groups=[alb_sg])]
        )
        shop = b.run_tasks("blue", "shop", [blue_private], [shop_sg], 2, "1.4.0", service="shop")
        # a subnet of its own: the emulator picks addresses at random, and lonely's could be a
        # shop task's (registered in the shop group) in their shared subnet
        lonely_subnet = b.subnet("blue-private-lonely", blue, "10.50.11.0/24", "a")
        lonely = b.run_tasks("blue", "lonely", [lonely_subnet], [shop_sg], 1, "1.4.0", service="lonely")
        blue_alb = b.load_balancer("blue-shop", "application", "internet-facing", blue_publics, [alb_sg])
        shop_group = b.target_group("shop", "HTTP", PORT, blue)
        b.register(shop_group, "blue", shop, PORT)
        b.listener(blue_alb, "HTTP", 80, estate._forward(shop_group))

        green, green_publics, green_private = _vpc(b, "green")
        b.cluster("green", "enabled")
        green_alb_sg = b.security_group(
            "green", "green-alb", "ALB", ingress=[estate._ports("tcp", 80, 80, cidrs4=[WORLD4])]
        )
        web_sg = b.security_group(
            "green", "green-web", "world", ingress=[estate._ports("tcp", PORT, PORT, cidrs4=[WORLD4])]
        )
        web = b.run_tasks("green", "web", [green_private], [web_sg], 1, "1.4.0", service="web")
        green_alb = b.load_balancer(
            "green-web", "application", "internet-facing", green_publics, [green_alb_sg]
        )
        web_group = b.target_group("green-web", "HTTP", PORT, green)
        b.register(web_group, "green", web, PORT)
        addresses = {
            "blue/service:shop": _addresses(b, "blue", shop),
            "blue/service:lonely": _addresses(b, "blue", lonely),
            "green/service:web": _addresses(b, "green", web),
        }
        # the green group also holds blue's lonely address (the same CIDR): not blue's
        b.elbv2.register_targets(
            TargetGroupArn=web_group,
            Targets=[{"Id": ip, "Port": PORT} for ip in addresses["blue/service:lonely"]],
        )
        b.listener(green_alb, "HTTP", 80, estate._forward(web_group))
        b.web_acl("green-waf", green_alb)
        try:
            yield World(session=session, info=b.info, addresses=addresses)
        finally:
            estate.release_task_states(b.ecs)


# --------------------------------------------------------------------------- helpers


def _scan(world: World, regions: list[str] | None = None) -> dict:
    return scan.run_scan(world.session, regions=regions or [REGION]).report


def _by_workload(report: dict) -> dict[str, list[dict]]:
    tasks: dict[str, list[dict]] = {}
    for entry in report["tasks"]:
        tasks.setdefault(f"{entry['cluster_name']}/{entry['group']}", []).append(entry)
    return tasks


def _verdicts(report: dict, *rules: str) -> dict[str, set[str]]:
    """{workload: {rule: status}} as sets over its tasks."""
    workloads = {e["task_arn"]: f"{e['cluster_name']}/{e['group']}" for e in report["tasks"]}
    found: dict[str, dict[str, set[str]]] = {}
    for result in report["results"]:
        if result["rule_id"] in rules:
            found.setdefault(workloads[result["task_arn"]], {}).setdefault(result["rule_id"], set()).add(
                result["status"]
            )
    return found


def _evidence(report: dict, workload: str, rule: str) -> list[dict]:
    arns = {e["task_arn"] for e in _by_workload(report)[workload]}
    return [r["evidence"] for r in report["results"] if r["task_arn"] in arns and r["rule_id"] == rule]


def _other_statuses(report: dict) -> dict[tuple[str, str], str]:
    """Every result's status but NET-11's and NET-12's."""
    return {
        (r["task_arn"], r["rule_id"]): r["status"]
        for r in report["results"]
        if r["rule_id"] not in ("NET-11", "NET-12")
    }


class _Hooks:
    """botocore handlers on the world's session (so on every client a scan makes), removed
    after the test."""

    def __init__(self, session) -> None:
        self.events = session.events
        self.added: list[tuple[str, object]] = []

    def deny(self, service_event: str, operation: str, protocol: str, code: str, status: int) -> None:
        def answer(request=None, **_):
            return error_response(protocol, request.url, code, f"injected {code}", status)

        self._add(f"before-send.{service_event}.{operation}", answer)

    def rewrite(self, service_event: str, operation: str, on_parsed) -> None:
        def after(parsed=None, **_):
            if parsed is not None:
                on_parsed(parsed)

        self._add(f"after-call.{service_event}.{operation}", after)

    def _add(self, event: str, handler) -> None:
        self.events.register_first(event, handler)  # before moto's own before-send answer
        self.added.append((event, handler))

    def clear(self) -> None:
        for event, handler in self.added:
            self.events.unregister(event, handler)


@pytest.fixture
def hooks(world):
    added = _Hooks(world.session)
    yield added
    added.clear()


@pytest.fixture(scope="module")
def baseline(world) -> dict:
    return _scan(world)


# --------------------------------------------------------------------------- without faults


def test_the_scan_lists_the_front_doors_of_each_task(world, baseline):
    tasks = _by_workload(baseline)
    alb = world.info.load_balancers
    shop = [entry["exposures"] for entry in tasks["blue/service:shop"]]
    assert len(shop) == 2 and all(
        [
            (e["load_balancer_arn"], e["listener_protocol"], e["target_port"], e["web_acl_arn"])
            for e in exposures
        ]
        == [(alb["blue-shop"], "HTTP", PORT, None)]
        for exposures in shop
    )
    ((web,),) = [entry["exposures"] for entry in tasks["green/service:web"]]
    assert (web["load_balancer_arn"], web["web_acl_arn"]) == (
        alb["green-web"],
        world.info.web_acls["green-waf"],
    )
    assert _verdicts(baseline, "NET-11", "NET-12") == {
        "blue/service:shop": {"NET-11": {"FAILED"}, "NET-12": {"FAILED"}},
        "blue/service:lonely": {"NET-11": {"NOT_APPLICABLE"}, "NET-12": {"NOT_APPLICABLE"}},
        "green/service:web": {"NET-11": {"FAILED"}, "NET-12": {"PASSED"}},
    }
    assert baseline["summary"]["internet_reachable"]["through_load_balancers"] == 3


def test_a_target_group_in_another_vpc_holding_the_same_address_is_not_the_tasks(world, baseline):
    lonely_ip = world.addresses["blue/service:lonely"]
    held = world.client("elbv2").describe_target_health(TargetGroupArn=world.info.target_groups["green-web"])
    assert set(lonely_ip) <= {d["Target"]["Id"] for d in held["TargetHealthDescriptions"]}

    (lonely,) = _by_workload(baseline)["blue/service:lonely"]

    assert lonely["private_ip"] in lonely_ip and lonely["exposures"] == []
    # both VPCs were audited by the one scan, so the green group was read
    assert baseline["stats"]["api_calls"]["elasticloadbalancing.DescribeTargetHealth"] == 2


# --------------------------------------------------------------------------- faults


def test_describe_target_health_denied_nulls_every_tasks_exposures(world, hooks, baseline):
    hooks.deny(ELBV2, "DescribeTargetHealth", "query", "AccessDenied", 403)

    report = _scan(world)

    assert {e["task_arn"]: e["exposures"] for e in report["tasks"]} == {
        e["task_arn"]: None for e in baseline["tasks"]
    }
    for workload in _by_workload(report):
        assert _verdicts(report, "NET-11", "NET-12")[workload] == {"NET-11": {"ERROR"}, "NET-12": {"ERROR"}}
        for evidence in _evidence(report, workload, "NET-11") + _evidence(report, workload, "NET-12"):
            assert "DescribeTargetHealth: AccessDenied" in evidence["error"]
    assert _other_statuses(report) == _other_statuses(baseline)
    # not read is unknown, not unreachable: counted apart, in the summary and the table
    reach = report["summary"]["internet_reachable"]
    assert reach["through_load_balancers"] == 0
    assert reach["through_load_balancers_unknown"] == len(report["tasks"])
    text = table.render(report)
    assert f"unknown (facts not read): {len(report['tasks'])} through load balancers" in text


def test_web_acl_denied_is_net_12_error_only_where_an_alb_exposure_exists(world, hooks, baseline):
    hooks.deny("wafv2", "GetWebACLForResource", "json", "AccessDeniedException", 400)

    report = _scan(world)

    verdicts = _verdicts(report, "NET-11", "NET-12")
    # shop: its only exposure's web ACL unknown, none failing otherwise; web: the same
    assert verdicts["blue/service:shop"] == {"NET-11": {"FAILED"}, "NET-12": {"ERROR"}}
    assert verdicts["green/service:web"] == {"NET-11": {"FAILED"}, "NET-12": {"ERROR"}}
    assert verdicts["blue/service:lonely"] == {"NET-11": {"NOT_APPLICABLE"}, "NET-12": {"NOT_APPLICABLE"}}
    for workload, entries in _by_workload(report).items():
        expected = [] if workload == "blue/service:lonely" else None
        assert [e["exposures"] for e in entries] == [expected] * len(entries), workload
    assert all(
        "GetWebACLForResource: AccessDeniedException" in e["error"]
        for e in _evidence(report, "green/service:web", "NET-12")
    )
    assert report["stats"]["api_calls"]["wafv2.GetWebACLForResource"] == 2  # one per ALB
    # the exposures are known all the same (NET-11 judged): still reachable through load
    # balancers, and the table names the web ACL, not the load balancer facts, as unknown
    assert report["summary"]["internet_reachable"] == baseline["summary"]["internet_reachable"]
    text = table.render(report)
    assert "reached through a load balancer whose web ACL could not be read (2 tasks; NET-12)" in text
    assert "load balancer facts not collected" not in text
    assert "Reachable from the internet:" in text and "3 through load balancers" in text


def test_an_alb_in_state_failed_is_no_front_door(world, hooks, baseline):
    failed_arn = world.info.load_balancers["blue-shop"]

    def failed(parsed):  # moto cannot put a load balancer in "failed"
        for item in parsed.get("LoadBalancers", []):
            if item["LoadBalancerArn"] == failed_arn:
                item["State"] = {"Code": "failed", "Reason": "injected"}

    hooks.rewrite(ELBV2, "DescribeLoadBalancers", failed)

    report = _scan(world)

    assert [e["exposures"] for e in _by_workload(report)["blue/service:shop"]] == [[], []]
    verdicts = _verdicts(report, "NET-11", "NET-12")
    assert verdicts["blue/service:shop"] == {"NET-11": {"NOT_APPLICABLE"}, "NET-12": {"NOT_APPLICABLE"}}
    assert verdicts["green/service:web"] == _verdicts(baseline, "NET-11", "NET-12")["green/service:web"]
    calls = report["stats"]["api_calls"]
    assert calls["elasticloadbalancing.DescribeListeners"] == 1  # green's only
    assert calls["wafv2.GetWebACLForResource"] == 1


# --------------------------------------------------------------------------- cost


def _plain_region(b: estate._Builder, name: str) -> None:
    vpc = b.vpc(name, "10.60.0.0/16")
    subnet = b.subnet(f"{name}-a", vpc, "10.60.1.0/24", "a")
    group = b.security_group(name, f"{name}-tasks", "tasks")
    b.task_definition("worker", [estate._container("worker", "public.ecr.aws/docker/library/busybox:1")])
    b.cluster(name, "enabled")
    b.run_tasks(name, "worker", [subnet], [group], 3, "1.4.0", service="worker")


def test_an_estate_without_load_balancers_costs_one_request_per_region(world, monkeypatch):
    """Two regions the world leaves empty, each with one cluster of three tasks and no load
    balancer: the scan's requests with the load-balancer reads, and without them."""
    regions = ["eu-central-1", OTHER_REGION]
    for number, region in enumerate(regions):  # task states: released with the world's
        _plain_region(estate._Builder(world.session, region), f"plain-{number}")
    with_reads = Counter(_scan(world, regions)["stats"]["api_calls"])
    monkeypatch.setattr(collect._LoadBalancing, "collect", lambda self: None)
    without = Counter(_scan(world, regions)["stats"]["api_calls"])

    assert with_reads - without == Counter({"elasticloadbalancing.DescribeTargetGroups": 2})
    assert without - with_reads == Counter()

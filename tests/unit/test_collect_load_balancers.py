"""The collector's Elastic Load Balancing and WAF reads (edge/collect.py ``_LoadBalancing``)
against botocore's Stubber: which calls, batch and page sizes, when, and where each
failure lands in a VPC's ``load_balancing`` facts.

The Stubber checks every request's parameters and the order of the calls on each client;
a call nobody stubbed, or stubbed with other parameters, fails inside the collector, which
records it as an error: so every test also proves that no error was recorded where none
is expected, and ``verify()`` that every stubbed call was made.
"""

from __future__ import annotations

import copy
from collections import Counter

import boto3
import pytest
from botocore.stub import Stubber
from test_collect_paging import (
    ACCOUNT,
    OTHER_REGION,
    REGION,
    Stubs,
    eni_id,
    make_eni,
    one_cluster_world,
)

PAGE = 400  # DescribeTargetGroups / DescribeListeners / DescribeRules page size
TASK_IP = "10.0.0.1"  # one_cluster_world's task 0 (make_eni(0)), in vpc-a
OTHER_TASK_IP = "10.0.0.2"  # its task 1


# --------------------------------------------------------------------------- shapes


def tg_arn(name: str, region: str = REGION) -> str:
    return f"arn:aws:elasticloadbalancing:{region}:{ACCOUNT}:targetgroup/{name}/0123456789abcdef"


def lb_arn(name: str, kind: str = "application", region: str = REGION) -> str:
    short = {"application": "app", "network": "net"}[kind]
    return f"arn:aws:elasticloadbalancing:{region}:{ACCOUNT}:loadbalancer/{short}/{name}/0123456789abcdef"


def listener_arn(lb: dict, port: int) -> str:
    return lb["LoadBalancerArn"].replace(":loadbalancer/", ":listener/") + f"/{port:016x}"


def group(
    name: str,
    *,
    protocol: str | None = "HTTP",
    vpc: str | None = "vpc-a",
    kind: str = "ip",
    lbs: tuple[dict, ...] = (),
    region: str = REGION,
) -> dict:
    item = {
        "TargetGroupArn": tg_arn(name, region),
        "TargetGroupName": name,
        "TargetType": kind,
        "LoadBalancerArns": [lb["LoadBalancerArn"] for lb in lbs],
    }
    if protocol:
        item |= {"Protocol": protocol, "Port": 8080}
    if vpc:
        item["VpcId"] = vpc
    return item


def balancer(
    name: str,
    *,
    kind: str = "application",
    scheme: str = "internet-facing",
    state: str = "active",
    subnets: tuple[str, ...] = ("subnet-pub-a", "subnet-pub-b"),
    vpc: str = "vpc-a",
) -> dict:
    item = {
        "LoadBalancerArn": lb_arn(name, kind),
        "LoadBalancerName": name,
        "DNSName": f"{name}.{REGION}.elb.amazonaws.com",
        "Scheme": scheme,
        "VpcId": vpc,
        "State": {"Code": state},
        "Type": kind,
        "IpAddressType": "ipv4",
        "AvailabilityZones": [
            {"ZoneName": f"{REGION}{'abc'[n]}", "SubnetId": subnet} for n, subnet in enumerate(subnets)
        ],
    }
    if kind == "application":
        item["SecurityGroups"] = ["sg-vpc-a-0"]
    return item


def forward(target: dict) -> dict:
    return {"Type": "forward", "TargetGroupArn": target["TargetGroupArn"]}


def weighted(*pairs: tuple[dict, int]) -> dict:
    return {
        "Type": "forward",
        "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": g["TargetGroupArn"], "Weight": w} for g, w in pairs]
        },
    }


def listener(lb: dict, port: int, protocol: str, *actions: dict) -> dict:
    return {
        "ListenerArn": listener_arn(lb, port),
        "LoadBalancerArn": lb["LoadBalancerArn"],
        "Port": port,
        "Protocol": protocol,
        "DefaultActions": list(actions) or [{"Type": "fixed-response"}],
    }


def rule(item: dict, priority: str, *actions: dict, default: bool = False) -> dict:
    return {
        "RuleArn": item["ListenerArn"].replace(":listener/", ":listener-rule/") + f"/{priority}",
        "Priority": priority,
        "Conditions": [] if default else [{"Field": "path-pattern", "Values": ["/api/*"]}],
        "Actions": list(actions),
        "IsDefault": default,
    }


def default_rule(item: dict) -> dict:
    return rule(item, "default", *item["DefaultActions"], default=True)


def targets(*ips: str, port: int = 8080, state: str = "healthy") -> list[dict]:
    return [{"Target": {"Id": ip, "Port": port}, "TargetHealth": {"State": state}} for ip in ips]


def subnet(subnet_id: str, n: int = 0) -> dict:
    return {
        "SubnetId": subnet_id,
        "VpcId": "vpc-a",
        "CidrBlock": f"10.0.{100 + n}.0/24",
        "State": "available",
    }


def web_acl(name: str) -> dict:
    return {
        "Name": name,
        "Id": f"{name}-id",
        "ARN": f"arn:aws:wafv2:{REGION}:{ACCOUNT}:regional/webacl/{name}/{name}-id",
        "DefaultAction": {"Allow": {}},
        "VisibilityConfig": {
            "SampledRequestsEnabled": True,
            "CloudWatchMetricsEnabled": True,
            "MetricName": name,
        },
    }


# --------------------------------------------------------------------------- stubs


class _Discard:
    """Stands in for a stubber while Stubs.vpc_facts stubs the empty DescribeTargetGroups
    of an estate without load balancers: these tests stub that call themselves."""

    def add_response(self, *args, **kwargs) -> None:
        return None


class LbStubs(Stubs):
    """Stubs with a wafv2 stubber per region, the Elastic Load Balancing and WAF calls in
    the collector's shapes, and a count of every call made (``provide-client-params``:
    once per API call, before the Stubber checks it: a call it refuses counts too)."""

    def __init__(self, regions: tuple[str, ...] = (REGION,)) -> None:
        super().__init__(regions)
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        for region in regions:
            stubber = Stubber(session.client("wafv2", region_name=region))
            stubber.activate()
            self.stubbers[("wafv2", region)] = stubber
        self.made: Counter[str] = Counter()
        for (service, region), stubber in self.stubbers.items():
            events = stubber.client.meta.events
            events.register(
                "provide-client-params.*.*",
                lambda model=None, service=service, region=region, **_: self._count(service, region, model),
            )

    def _count(self, service: str, region: str, model) -> None:
        self.made[f"{service}.{model.name}@{region}"] += 1

    def calls(self, service: str, region: str = REGION) -> dict[str, int]:
        suffix = f"@{region}"
        return {
            key.removeprefix(f"{service}.").removesuffix(suffix): n
            for key, n in sorted(self.made.items())
            if key.startswith(f"{service}.") and key.endswith(suffix)
        }

    def _respond(self, service: str, region: str, method: str, response: dict, params: dict) -> None:
        """A deep copy of ``response``: the collector owns (and converts in place) what a
        client returns, as it owns AWS's fresh answers."""
        self.stubbers[(service, region)].add_response(method, copy.deepcopy(response), params)

    def wafv2(self, region: str = REGION) -> Stubber:
        return self.stubbers[("wafv2", region)]

    def network(self, vpcs: list[str], region: str = REGION, **kwargs) -> None:
        """Every VPC-level read of ``vpc_facts`` but DescribeTargetGroups."""
        real = self.stubbers[("elbv2", region)]
        self.stubbers[("elbv2", region)] = _Discard()
        try:
            self.vpc_facts(vpcs, region=region, **kwargs)
        finally:
            self.stubbers[("elbv2", region)] = real

    # -- Elastic Load Balancing

    def target_groups(self, pages: list[list[dict]], region: str = REGION) -> None:
        for number, items in enumerate(pages):
            response = {"TargetGroups": items}
            params = {"PageSize": PAGE}
            if number + 1 < len(pages):
                response["NextMarker"] = f"tg-{number + 1}"
            if number:
                params["Marker"] = f"tg-{number}"
            self._respond("elbv2", region, "describe_target_groups", response, params)

    def target_health(self, item: dict, descriptions: list[dict], region: str = REGION) -> None:
        self._respond(
            "elbv2",
            region,
            "describe_target_health",
            {"TargetHealthDescriptions": descriptions},
            {"TargetGroupArn": item["TargetGroupArn"]},
        )

    def load_balancers(self, arns: list[str], items: list[dict], region: str = REGION) -> None:
        self._respond(
            "elbv2", region, "describe_load_balancers", {"LoadBalancers": items}, {"LoadBalancerArns": arns}
        )

    def listeners(self, lb: dict, pages: list[list[dict]], region: str = REGION) -> None:
        for number, items in enumerate(pages):
            response = {"Listeners": items}
            params = {"LoadBalancerArn": lb["LoadBalancerArn"], "PageSize": PAGE}
            if number + 1 < len(pages):
                response["NextMarker"] = f"listeners-{number + 1}"
            if number:
                params["Marker"] = f"listeners-{number}"
            self._respond("elbv2", region, "describe_listeners", response, params)

    def rules(self, item: dict, pages: list[list[dict]] | None = None, region: str = REGION) -> None:
        pages = pages if pages is not None else [[default_rule(item)]]
        for number, items in enumerate(pages):
            response = {"Rules": items}
            params = {"ListenerArn": item["ListenerArn"], "PageSize": PAGE}
            if number + 1 < len(pages):
                response["NextMarker"] = f"rules-{number + 1}"
            if number:
                params["Marker"] = f"rules-{number}"
            self._respond("elbv2", region, "describe_rules", response, params)

    def attributes(self, item: dict, attributes: dict[str, str], region: str = REGION) -> None:
        self._respond(
            "elbv2",
            region,
            "describe_target_group_attributes",
            {"Attributes": [{"Key": k, "Value": v} for k, v in attributes.items()]},
            {"TargetGroupArn": item["TargetGroupArn"]},
        )

    def elb_error(self, method: str, code: str, params: dict, region: str = REGION) -> None:
        self.elbv2(region).add_client_error(method, code, f"{code} injected", 400, expected_params=params)

    # -- EC2 and WAF

    def subnets(self, ids: list[str], items: list[dict] | None = None, region: str = REGION) -> None:
        items = items if items is not None else [subnet(s, n) for n, s in enumerate(ids)]
        self._respond(
            "ec2",
            region,
            "describe_subnets",
            {"Subnets": items},
            {"Filters": [{"Name": "subnet-id", "Values": ids}], "MaxResults": 1000},
        )

    def web_acl(self, lb: dict, acl: dict | None, region: str = REGION) -> None:
        self._respond(
            "wafv2",
            region,
            "get_web_acl_for_resource",
            {"WebACL": acl} if acl else {},
            {"ResourceArn": lb["LoadBalancerArn"]},
        )

    def web_acl_error(self, lb: dict, code: str, region: str = REGION) -> None:
        self.wafv2(region).add_client_error(
            "get_web_acl_for_resource",
            code,
            f"{code} injected",
            400,
            expected_params={"ResourceArn": lb["LoadBalancerArn"]},
        )


def tasks_in(stubs: LbStubs, vpcs: tuple[str, ...] = ("vpc-a",), region: str = REGION) -> None:
    """one_cluster_world's cluster "alpha": task i in vpcs[i] (10.0.0.{i+1}), the VPC facts
    without DescribeTargetGroups."""
    one_cluster_world(stubs, count=len(vpcs), region=region)
    enis = [make_eni(i, vpc=vpc) for i, vpc in enumerate(vpcs)]
    stubs.network_interfaces([enis], "network-interface-id", [eni_id(i) for i in range(len(vpcs))], region)
    stubs.network(sorted(set(vpcs)), region)


def collected(stubs: LbStubs, regions: tuple[str, ...] = (REGION,)) -> dict[str, dict]:
    """Collect cluster "alpha" and verify every stub was used: {vpc id: load_balancing}."""
    result = stubs.collect(regions=list(regions), clusters=["alpha"])
    stubs.verify()
    assert result.errors == []
    facts: dict[str, dict] = {}
    for raw in result.raw_tasks:
        assert raw["errors"] == {}, raw["errors"]
        vpc = raw["vpc"]
        facts[f"{vpc['vpc_id']}@{raw['region']}" if len(regions) > 1 else vpc["vpc_id"]] = vpc[
            "load_balancing"
        ]
    return facts


def clean(facts: dict) -> None:
    assert facts["errors"] == {} and facts["web_acl_errors"] == {}, (facts["errors"], facts["web_acl_errors"])


def arns(items) -> list[str]:
    return [item["TargetGroupArn"] for item in items]


# --------------------------------------------------------------------------- cost


def test_an_estate_without_load_balancers_costs_one_request_per_region():
    stubs = LbStubs(regions=(REGION, OTHER_REGION))
    for region in (REGION, OTHER_REGION):
        one_cluster_world(stubs, count=2, region=region)
        stubs.network_interfaces(
            [[make_eni(0), make_eni(1)]], "network-interface-id", [eni_id(0), eni_id(1)], region
        )
        stubs.vpc_facts(["vpc-a"], region=region)  # with its one empty DescribeTargetGroups

    facts = collected(stubs, (REGION, OTHER_REGION))

    for region in (REGION, OTHER_REGION):
        assert stubs.calls("elbv2", region) == {"DescribeTargetGroups": 1}
        assert stubs.calls("wafv2", region) == {}
        assert "DescribeSubnets" not in stubs.calls("ec2", region)
    for vpc in facts.values():
        clean(vpc)
        assert vpc["target_groups"] == [] and vpc["load_balancers"] == {}


def test_target_groups_are_paged_once_per_region_in_pages_of_400():
    stubs = LbStubs(regions=(REGION, OTHER_REGION))
    for region in (REGION, OTHER_REGION):
        tasks_in(stubs, region=region)
        first = group("first", region=region)
        second = group("second", region=region)
        third = group("third", kind="instance", region=region)
        stubs.target_groups([[first], [second, third], []], region)  # three pages: Marker, NextMarker
        stubs.target_health(first, targets("10.0.9.9"), region)
        stubs.target_health(second, [], region)

    facts = collected(stubs, (REGION, OTHER_REGION))

    for region in (REGION, OTHER_REGION):
        assert stubs.calls("elbv2", region) == {"DescribeTargetGroups": 3, "DescribeTargetHealth": 2}
        vpc = facts[f"vpc-a@{region}"]
        clean(vpc)
        assert arns(vpc["target_groups"]) == [tg_arn("first", region), tg_arn("second", region)]
        assert vpc["target_groups"][0]["Targets"] == targets("10.0.9.9")
        assert vpc["load_balancers"] == {}  # no group holds an audited task's address


def test_target_health_only_for_ip_groups_of_audited_vpcs():
    stubs = LbStubs()
    tasks_in(stubs, ("vpc-a", "vpc-b"))
    own = group("own")
    in_b = group("in-b", vpc="vpc-b")
    skipped = [
        group("instances", kind="instance"),
        group("function", kind="lambda", protocol=None, vpc=None),
        group("alb-behind-nlb", kind="alb", protocol="TCP"),
        group("elsewhere", vpc="vpc-unaudited"),
    ]
    stubs.target_groups([[skipped[0], own, *skipped[1:], in_b]])
    stubs.target_health(own, targets("10.0.5.5"))
    stubs.target_health(in_b, targets("10.0.6.6"))

    facts = collected(stubs)

    assert stubs.calls("elbv2") == {"DescribeTargetGroups": 1, "DescribeTargetHealth": 2}
    assert arns(facts["vpc-a"]["target_groups"]) == [own["TargetGroupArn"]]
    assert arns(facts["vpc-b"]["target_groups"]) == [in_b["TargetGroupArn"]]
    clean(facts["vpc-a"])
    clean(facts["vpc-b"])


def test_load_balancers_only_of_groups_holding_an_audited_task_20_arns_a_call():
    stubs = LbStubs()
    tasks_in(stubs)
    held = [balancer(f"held-{n:02d}", scheme="internal") for n in range(23)]
    not_held = balancer("not-held")
    draining = balancer("draining")
    holding = group("holding", lbs=tuple(held[:15]))
    also = group("also", lbs=tuple(held[10:]))  # overlapping: each ARN described once
    elsewhere = group("elsewhere", lbs=(not_held,))  # another address
    leaving = group("leaving", lbs=(draining,))  # the task's address, draining: not the task's
    stubs.target_groups([[holding, also, elsewhere, leaving]])
    stubs.target_health(holding, targets(TASK_IP, "10.0.0.99"))
    stubs.target_health(also, targets("10.0.0.99", TASK_IP, port=9090))
    stubs.target_health(elsewhere, targets("10.0.0.99"))
    stubs.target_health(leaving, targets(TASK_IP, state="draining"))
    ordered = sorted(held, key=lambda lb: lb["LoadBalancerArn"])
    stubs.load_balancers([lb["LoadBalancerArn"] for lb in ordered[:20]], ordered[:20])
    stubs.load_balancers([lb["LoadBalancerArn"] for lb in ordered[20:]], ordered[20:])

    facts = collected(stubs)["vpc-a"]

    assert stubs.calls("elbv2") == {
        "DescribeLoadBalancers": 2,
        "DescribeTargetGroups": 1,
        "DescribeTargetHealth": 4,
    }
    clean(facts)
    assert sorted(facts["load_balancers"]) == [lb["LoadBalancerArn"] for lb in ordered]
    assert all("Listeners" not in lb for lb in facts["load_balancers"].values())  # internal ones
    assert stubs.calls("ec2").get("DescribeSubnets") is None and stubs.calls("wafv2") == {}


def test_a_load_balancer_gone_from_a_batch_is_described_one_by_one_and_left_out():
    stubs = LbStubs()
    tasks_in(stubs)
    lbs = [balancer(name, scheme="internal") for name in ("a-first", "b-gone", "c-last")]
    holding = group("holding", lbs=tuple(lbs))
    stubs.target_groups([[holding]])
    stubs.target_health(holding, targets(TASK_IP))
    every = [lb["LoadBalancerArn"] for lb in lbs]
    stubs.elb_error("describe_load_balancers", "LoadBalancerNotFound", {"LoadBalancerArns": every})
    stubs.load_balancers([every[0]], [lbs[0]])
    stubs.elb_error("describe_load_balancers", "LoadBalancerNotFound", {"LoadBalancerArns": [every[1]]})
    stubs.load_balancers([every[2]], [lbs[2]])

    facts = collected(stubs)["vpc-a"]

    assert stubs.calls("elbv2")["DescribeLoadBalancers"] == 4
    clean(facts)  # gone is no error
    assert sorted(facts["load_balancers"]) == [every[0], every[2]]


def test_a_load_balancer_gone_alone_is_left_out_without_another_call():
    stubs = LbStubs()
    tasks_in(stubs)
    gone = balancer("gone")
    holding = group("holding", lbs=(gone,))
    stubs.target_groups([[holding]])
    stubs.target_health(holding, targets(TASK_IP))
    stubs.elb_error(
        "describe_load_balancers", "LoadBalancerNotFound", {"LoadBalancerArns": [gone["LoadBalancerArn"]]}
    )

    facts = collected(stubs)["vpc-a"]

    assert stubs.calls("elbv2")["DescribeLoadBalancers"] == 1
    clean(facts)
    assert facts["load_balancers"] == {} and arns(facts["target_groups"]) == [holding["TargetGroupArn"]]


def test_listeners_and_rules_only_for_internet_facing_load_balancers_not_failed():
    stubs = LbStubs()
    tasks_in(stubs)
    public = balancer("alb-public")
    internal = balancer("alb-internal", scheme="internal", subnets=("subnet-priv-a",))
    failed = balancer("alb-failed", state="failed", subnets=("subnet-failed-a",))
    nlb = balancer("nlb-public", kind="network", subnets=("subnet-pub-a", "subnet-pub-c"))
    groups = [
        group("public", lbs=(public,)),
        group("internal", lbs=(internal,)),
        group("failed", lbs=(failed,)),
        group("udp", protocol="UDP", lbs=(nlb,)),
    ]
    stubs.target_groups([groups])
    for item in groups:
        stubs.target_health(item, targets(TASK_IP))
    ordered = sorted([public, internal, failed, nlb], key=lambda lb: lb["LoadBalancerArn"])
    stubs.load_balancers([lb["LoadBalancerArn"] for lb in ordered], ordered)
    http = listener(public, 80, "HTTP", forward(groups[0]))
    https = listener(public, 443, "HTTPS", forward(groups[0]))
    udp = listener(nlb, 53, "UDP", forward(groups[3]))
    for lb in ordered:  # in the order DescribeLoadBalancers gave them
        if lb is public:
            stubs.listeners(public, [[http], [https]])  # two pages
            extra = rule(http, "10", forward(groups[0]))
            stubs.rules(http, [[extra], [default_rule(http)]])  # two pages
            stubs.elb_error(
                "describe_rules", "ListenerNotFound", {"ListenerArn": https["ListenerArn"], "PageSize": PAGE}
            )
        elif lb is nlb:
            stubs.listeners(nlb, [[udp]])  # a network load balancer's listeners have no rules
    stubs.subnets(["subnet-pub-a", "subnet-pub-b", "subnet-pub-c"])  # internet-facing ones only
    stubs.web_acl(public, None)

    facts = collected(stubs)["vpc-a"]

    assert stubs.calls("elbv2") == {
        "DescribeListeners": 3,
        "DescribeLoadBalancers": 1,
        "DescribeRules": 3,
        "DescribeTargetGroups": 1,
        "DescribeTargetHealth": 4,
    }
    clean(facts)
    found = facts["load_balancers"]
    assert [item["ListenerArn"] for item in found[public["LoadBalancerArn"]]["Listeners"]] == [
        http["ListenerArn"]
    ]  # the listener gone between the calls (ListenerNotFound) is dropped
    assert found[public["LoadBalancerArn"]]["Listeners"][0]["Rules"] == [extra, default_rule(http)]
    assert found[nlb["LoadBalancerArn"]]["Listeners"] == [udp]
    assert "Listeners" not in found[internal["LoadBalancerArn"]]
    assert "Listeners" not in found[failed["LoadBalancerArn"]]
    assert sorted(facts["subnets"]) == ["subnet-pub-a", "subnet-pub-b", "subnet-pub-c"]
    assert facts["subnets"]["subnet-pub-c"]["CidrBlock"] == "10.0.102.0/24"


def test_a_load_balancer_gone_before_its_listeners_is_left_out():
    stubs = LbStubs()
    tasks_in(stubs)
    gone = balancer("gone", subnets=("subnet-gone-a",))
    stays = balancer("stays", kind="network", subnets=("subnet-stays-a",))
    http = group("http", lbs=(gone,))
    udp = group("udp", protocol="UDP", lbs=(stays,))
    stubs.target_groups([[http, udp]])
    stubs.target_health(http, targets(TASK_IP))
    stubs.target_health(udp, targets(TASK_IP))
    stubs.load_balancers([gone["LoadBalancerArn"], stays["LoadBalancerArn"]], [gone, stays])
    stubs.elb_error(
        "describe_listeners",
        "LoadBalancerNotFound",
        {"LoadBalancerArn": gone["LoadBalancerArn"], "PageSize": PAGE},
    )
    stubs.listeners(stays, [[listener(stays, 53, "UDP", forward(udp))]])
    stubs.subnets(["subnet-stays-a"])  # not the gone one's; and no web ACL read for it

    facts = collected(stubs)["vpc-a"]

    clean(facts)
    assert list(facts["load_balancers"]) == [stays["LoadBalancerArn"]]
    assert stubs.calls("wafv2") == {}


def test_a_network_load_balancer_gone_before_its_listeners_costs_no_attributes_read():
    """Gone between the calls, it is no front door: its groups' attributes are not read (a
    request for nothing, whose failure would be recorded against a resource that is gone)."""
    stubs = LbStubs()
    tasks_in(stubs)
    gone = balancer("nlb-gone", kind="network", subnets=("subnet-gone-a",))
    tcp = group("tcp", protocol="TCP", lbs=(gone,))
    stubs.target_groups([[tcp]])
    stubs.target_health(tcp, targets(TASK_IP))
    stubs.load_balancers([gone["LoadBalancerArn"]], [gone])
    stubs.elb_error(
        "describe_listeners",
        "LoadBalancerNotFound",
        {"LoadBalancerArn": gone["LoadBalancerArn"], "PageSize": PAGE},
    )

    facts = collected(stubs)["vpc-a"]

    assert "DescribeTargetGroupAttributes" not in stubs.calls("elbv2")
    clean(facts)
    assert facts["load_balancers"] == {} and facts["target_group_attributes"] == {}


def test_target_group_attributes_only_for_tcp_and_tls_groups_of_internet_facing_nlbs():
    stubs = LbStubs()
    tasks_in(stubs)
    public = balancer("nlb-public", kind="network", subnets=("subnet-pub-a",))
    public2 = balancer("nlb-public2", kind="network", subnets=("subnet-pub-b",))
    internal = balancer("nlb-internal", kind="network", scheme="internal", subnets=("subnet-priv-a",))
    failed = balancer("nlb-failed", kind="network", state="failed", subnets=("subnet-pub-c",))
    unread = balancer("nlb-unread", kind="network", subnets=("subnet-pub-d",))
    public_tls = balancer("nlb-public-tls", kind="network", subnets=("subnet-pub-a",))
    tcp = group("tcp", protocol="TCP", lbs=(public,))
    tls_public = group("tls-public", protocol="TLS", lbs=(public_tls,))
    tls = group("tls", protocol="TLS", lbs=(internal,))
    udp = group("udp", protocol="UDP", lbs=(public2,))
    tcp_failed = group("tcp-failed", protocol="TCP", lbs=(failed,))
    unregistered = group("unregistered", protocol="TCP", lbs=(unread,))
    stubs.target_groups([[tcp, tls_public, tls, udp, tcp_failed, unregistered]])
    for item in (tcp, tls_public, tls, udp, tcp_failed):
        stubs.target_health(item, targets(TASK_IP))
    stubs.target_health(unregistered, targets("10.0.0.99"))
    ordered = sorted([public, public_tls, public2, internal, failed], key=lambda lb: lb["LoadBalancerArn"])
    stubs.load_balancers([lb["LoadBalancerArn"] for lb in ordered], ordered)
    for lb in ordered:
        if lb is public:
            stubs.listeners(public, [[listener(public, 443, "TCP", forward(tcp))]])
        elif lb is public_tls:
            stubs.listeners(public_tls, [[listener(public_tls, 443, "TLS", forward(tls_public))]])
        elif lb is public2:
            stubs.listeners(public2, [[listener(public2, 53, "UDP", forward(udp))]])
    stubs.attributes(
        tcp, {"preserve_client_ip.enabled": "true", "deregistration_delay.timeout_seconds": "300"}
    )
    stubs.attributes(tls_public, {})  # (AWS always reports them; absent means not preserved)
    stubs.subnets(["subnet-pub-a", "subnet-pub-b"])

    facts = collected(stubs)["vpc-a"]

    assert stubs.calls("elbv2")["DescribeTargetGroupAttributes"] == 2
    clean(facts)
    assert facts["target_group_attributes"] == {
        tcp["TargetGroupArn"]: {
            "preserve_client_ip.enabled": "true",
            "deregistration_delay.timeout_seconds": "300",
        },
        tls_public["TargetGroupArn"]: {},
    }
    assert unread["LoadBalancerArn"] not in facts["load_balancers"]


def test_a_target_group_gone_before_its_attributes_is_left_out():
    stubs = LbStubs()
    tasks_in(stubs)
    nlb = balancer("nlb", kind="network", subnets=("subnet-pub-a",))
    tcp = group("tcp", protocol="TCP", lbs=(nlb,))
    gone_early = group("gone-early", protocol="TCP", lbs=(nlb,))
    stubs.target_groups([[gone_early, tcp]])
    stubs.elb_error(
        "describe_target_health", "TargetGroupNotFound", {"TargetGroupArn": gone_early["TargetGroupArn"]}
    )
    stubs.target_health(tcp, targets(TASK_IP))
    stubs.load_balancers([nlb["LoadBalancerArn"]], [nlb])
    stubs.listeners(nlb, [[listener(nlb, 443, "TCP", forward(tcp))]])
    stubs.elb_error(
        "describe_target_group_attributes", "TargetGroupNotFound", {"TargetGroupArn": tcp["TargetGroupArn"]}
    )
    stubs.subnets(["subnet-pub-a"])

    facts = collected(stubs)["vpc-a"]

    clean(facts)
    assert facts["target_groups"] == [] and facts["target_group_attributes"] == {}


def test_web_acl_only_for_internet_facing_albs_forwarding_to_a_group_holding_a_task():
    stubs = LbStubs()
    tasks_in(stubs)
    albs = {name: balancer(f"alb-{name}") for name in ("acl", "weight0", "none", "nonexistent", "other")}
    albs["internal"] = balancer("alb-internal", scheme="internal")
    nlb = balancer("nlb", kind="network")
    groups = {name: group(name, lbs=(lb,)) for name, lb in albs.items()}
    groups["udp"] = group("udp", protocol="UDP", lbs=(nlb,))
    spare = group("spare")  # holds no task; what the weighted and the other ALB forward to
    stubs.target_groups([[*groups.values(), spare]])
    for item in groups.values():
        stubs.target_health(item, targets(TASK_IP))
    stubs.target_health(spare, [])
    every = sorted([*albs.values(), nlb], key=lambda lb: lb["LoadBalancerArn"])
    stubs.load_balancers([lb["LoadBalancerArn"] for lb in every], every)
    for lb in every:
        name = lb["LoadBalancerName"].removeprefix("alb-")
        if lb is nlb:
            stubs.listeners(nlb, [[listener(nlb, 53, "UDP", forward(groups["udp"]))]])
        elif name == "weight0":  # a rule forwarding to the task's group with weight 0 only
            item = listener(lb, 80, "HTTP", forward(spare))
            stubs.listeners(lb, [[item]])
            stubs.rules(
                item, [[rule(item, "1", weighted((groups[name], 0), (spare, 1))), default_rule(item)]]
            )
        elif name == "other":  # attached to the task's group, forwarding elsewhere
            item = listener(lb, 80, "HTTP", forward(spare))
            stubs.listeners(lb, [[item]])
            stubs.rules(item)
        elif name != "internal":
            item = listener(lb, 80, "HTTP", {"Type": "redirect"})
            stubs.listeners(lb, [[item]])
            stubs.rules(
                item, [[rule(item, "5", weighted((groups[name], 2), (spare, 0))), default_rule(item)]]
            )
    stubs.subnets(["subnet-pub-a", "subnet-pub-b"])
    acl = web_acl("shop-waf")
    stubs.web_acl(albs["acl"], acl)  # in ARN order
    stubs.web_acl(albs["none"], None)  # no WebACL key: none associated
    stubs.web_acl_error(albs["nonexistent"], "WAFNonexistentItemException")

    facts = collected(stubs)["vpc-a"]

    assert stubs.calls("wafv2") == {"GetWebACLForResource": 3}
    clean(facts)
    assert facts["web_acls"] == {
        albs["acl"]["LoadBalancerArn"]: acl["ARN"],
        albs["none"]["LoadBalancerArn"]: None,
        albs["nonexistent"]["LoadBalancerArn"]: None,
    }


def test_a_group_in_another_vpc_holding_the_same_address_is_not_the_tasks():
    stubs = LbStubs()
    tasks_in(stubs, ("vpc-a", "vpc-b"))  # 10.0.0.1 in vpc-a, 10.0.0.2 in vpc-b
    lb_b = balancer("alb-b", vpc="vpc-b")
    same_address = group("same-address", vpc="vpc-b", lbs=(lb_b,))
    stubs.target_groups([[same_address]])
    stubs.target_health(same_address, targets(TASK_IP))  # vpc-a's task address, in vpc-b

    facts = collected(stubs)

    assert stubs.calls("elbv2") == {"DescribeTargetGroups": 1, "DescribeTargetHealth": 1}
    assert facts["vpc-a"]["target_groups"] == [] and facts["vpc-a"]["load_balancers"] == {}
    assert arns(facts["vpc-b"]["target_groups"]) == [same_address["TargetGroupArn"]]
    assert facts["vpc-b"]["load_balancers"] == {}  # 10.0.0.1 is no audited address of vpc-b


# --------------------------------------------------------------------------- where errors land

ALB = balancer("alb", subnets=("subnet-pub-a",))
NLB = balancer("nlb", kind="network", subnets=("subnet-pub-b",))
WEB = group("web", lbs=(ALB,))
EDGE = group("edge", protocol="TCP", lbs=(NLB,))
IN_B = group("in-b", vpc="vpc-b")
HTTP = listener(ALB, 80, "HTTP", forward(WEB))
TCP = listener(NLB, 443, "TCP", forward(EDGE))
DENIED = "AccessDenied"
MESSAGE = {
    call: f"{call}: {DENIED}: {DENIED} injected"
    for call in (
        "DescribeTargetGroups",
        "DescribeTargetHealth",
        "DescribeLoadBalancers",
        "DescribeListeners",
        "DescribeRules",
        "DescribeTargetGroupAttributes",
        "DescribeSubnets",
        "GetWebACLForResource",
    )
}


def _errors_world(stubs: LbStubs, fail: str | None) -> None:
    """vpc-a's task (10.0.0.1) behind an internet-facing ALB (HTTP 80, group web) and an
    internet-facing NLB (TCP 443, group edge); vpc-b's task in no group; ``fail``: the one
    call answered AccessDenied (what follows it stubbed as the collector then goes on)."""
    tasks_in(stubs, ("vpc-a", "vpc-b"))
    elbv2 = stubs.elbv2()
    if fail == "DescribeTargetGroups":
        elbv2.add_client_error("describe_target_groups", DENIED, f"{DENIED} injected", 403)
        return
    stubs.target_groups([[WEB, EDGE, IN_B]])
    if fail == "DescribeTargetHealth":
        stubs.elb_error("describe_target_health", DENIED, {"TargetGroupArn": WEB["TargetGroupArn"]})
    else:
        stubs.target_health(WEB, targets(TASK_IP))
    stubs.target_health(EDGE, targets(TASK_IP))
    stubs.target_health(IN_B, targets("10.0.0.77"))
    lbs = [ALB, NLB] if fail != "DescribeTargetHealth" else [NLB]
    if fail == "DescribeLoadBalancers":
        stubs.elb_error(
            "describe_load_balancers", DENIED, {"LoadBalancerArns": [lb["LoadBalancerArn"] for lb in lbs]}
        )
        return
    stubs.load_balancers([lb["LoadBalancerArn"] for lb in lbs], lbs)
    if ALB in lbs:
        if fail == "DescribeListeners":
            stubs.elb_error(
                "describe_listeners", DENIED, {"LoadBalancerArn": ALB["LoadBalancerArn"], "PageSize": PAGE}
            )
        else:
            stubs.listeners(ALB, [[HTTP]])
            if fail == "DescribeRules":
                stubs.elb_error(
                    "describe_rules", DENIED, {"ListenerArn": HTTP["ListenerArn"], "PageSize": PAGE}
                )
            else:
                stubs.rules(HTTP)
    stubs.listeners(NLB, [[TCP]])
    if fail == "DescribeTargetGroupAttributes":
        stubs.elb_error(
            "describe_target_group_attributes", DENIED, {"TargetGroupArn": EDGE["TargetGroupArn"]}
        )
    else:
        stubs.attributes(EDGE, {"preserve_client_ip.enabled": "false"})
    subnets = ["subnet-pub-a", "subnet-pub-b"] if ALB in lbs else ["subnet-pub-b"]
    if fail == "DescribeSubnets":
        stubs.ec2().add_client_error(
            "describe_subnets",
            DENIED,
            f"{DENIED} injected",
            403,
            expected_params={"Filters": [{"Name": "subnet-id", "Values": subnets}], "MaxResults": 1000},
        )
    else:
        stubs.subnets(subnets)
    if ALB in lbs and fail != "DescribeListeners":
        if fail == "GetWebACLForResource":
            stubs.web_acl_error(ALB, DENIED)
        else:
            stubs.web_acl(ALB, web_acl("alb-waf"))


WHERE = {  # call -> (vpc-a's errors, vpc-a's web_acl_errors)
    "DescribeTargetGroups": ({"*": MESSAGE["DescribeTargetGroups"]}, {}),
    "DescribeTargetHealth": ({"*": MESSAGE["DescribeTargetHealth"]}, {}),
    "DescribeLoadBalancers": (
        {
            ALB["LoadBalancerArn"]: MESSAGE["DescribeLoadBalancers"],
            NLB["LoadBalancerArn"]: MESSAGE["DescribeLoadBalancers"],
        },
        {},
    ),
    "DescribeListeners": ({ALB["LoadBalancerArn"]: MESSAGE["DescribeListeners"]}, {}),
    "DescribeRules": ({ALB["LoadBalancerArn"]: MESSAGE["DescribeRules"]}, {}),
    "DescribeTargetGroupAttributes": ({EDGE["TargetGroupArn"]: MESSAGE["DescribeTargetGroupAttributes"]}, {}),
    "DescribeSubnets": (
        {"subnet-pub-a": MESSAGE["DescribeSubnets"], "subnet-pub-b": MESSAGE["DescribeSubnets"]},
        {},
    ),
    "GetWebACLForResource": ({}, {ALB["LoadBalancerArn"]: MESSAGE["GetWebACLForResource"]}),
}


def test_without_a_failure_the_errors_world_is_clean():
    stubs = LbStubs()
    _errors_world(stubs, None)

    facts = collected(stubs)

    clean(facts["vpc-a"])
    clean(facts["vpc-b"])
    assert sorted(facts["vpc-a"]["load_balancers"]) == sorted(
        [ALB["LoadBalancerArn"], NLB["LoadBalancerArn"]]
    )
    assert facts["vpc-a"]["web_acls"] == {ALB["LoadBalancerArn"]: web_acl("alb-waf")["ARN"]}
    assert facts["vpc-a"]["target_group_attributes"] == {
        EDGE["TargetGroupArn"]: {"preserve_client_ip.enabled": "false"}
    }
    assert sorted(facts["vpc-a"]["subnets"]) == ["subnet-pub-a", "subnet-pub-b"]


@pytest.mark.parametrize("call", list(WHERE))
def test_a_failed_call_lands_on_what_it_would_have_read(call):
    stubs = LbStubs()
    _errors_world(stubs, call)

    facts = collected(stubs)  # the failures are facts' errors, never the bundle's or the scan's

    errors, web_acl_errors = WHERE[call]
    assert facts["vpc-a"]["errors"] == errors
    assert facts["vpc-a"]["web_acl_errors"] == web_acl_errors
    expected_b = {"*": MESSAGE[call]} if call == "DescribeTargetGroups" else {}
    assert facts["vpc-b"]["errors"] == expected_b and facts["vpc-b"]["web_acl_errors"] == {}
    if call == "GetWebACLForResource":
        assert ALB["LoadBalancerArn"] not in facts["vpc-a"]["web_acls"]


def test_a_load_balancer_denied_alone_in_the_one_by_one_retry_is_its_own_error():
    stubs = LbStubs()
    tasks_in(stubs)
    lbs = [balancer(name, scheme="internal") for name in ("a-gone", "b-denied", "c-fine")]
    holding = group("holding", lbs=tuple(lbs))
    stubs.target_groups([[holding]])
    stubs.target_health(holding, targets(TASK_IP))
    every = [lb["LoadBalancerArn"] for lb in lbs]
    stubs.elb_error("describe_load_balancers", "LoadBalancerNotFound", {"LoadBalancerArns": every})
    stubs.elb_error("describe_load_balancers", "LoadBalancerNotFound", {"LoadBalancerArns": [every[0]]})
    stubs.elb_error("describe_load_balancers", DENIED, {"LoadBalancerArns": [every[1]]})
    stubs.load_balancers([every[2]], [lbs[2]])

    facts = collected(stubs)["vpc-a"]

    assert facts["errors"] == {every[1]: MESSAGE["DescribeLoadBalancers"]}
    assert list(facts["load_balancers"]) == [every[2]]


def test_the_stubbed_calls_are_the_whole_sequence():
    """A guard on the harness itself: a call made in another order, or not stubbed, is
    recorded by the collector as an error (the Stubber's own), which ``clean`` catches."""
    stubs = LbStubs()
    tasks_in(stubs)
    holding = group("holding", lbs=(balancer("alb"),))
    stubs.target_groups([[holding]])
    stubs.target_health(holding, targets(TASK_IP))  # DescribeLoadBalancers left unstubbed

    result = stubs.collect(clusters=["alpha"])

    (raw,) = result.raw_tasks
    errors = raw["vpc"]["load_balancing"]["errors"]
    assert list(errors) == [holding["LoadBalancerArns"][0]]
    assert "DescribeLoadBalancers" in errors[holding["LoadBalancerArns"][0]]


def test_made_calls_are_counted_per_region_and_service():
    stubs = LbStubs()
    stubs.ecs().add_response("list_clusters", {"clusterArns": []}, {"maxResults": 100})

    stubs.collect()

    assert stubs.calls("ecs") == {"ListClusters": 1} and stubs.calls("elbv2") == {}


# --------------------------------------------------------------------------- addresses and states


def test_a_task_ipv6_address_written_otherwise_by_the_target_is_still_the_tasks():
    stubs = LbStubs()
    one_cluster_world(stubs, count=1)
    eni = make_eni(0) | {"Ipv6Addresses": [{"Ipv6Address": "2001:db8:0:1::a"}]}
    stubs.network_interfaces([[eni]], "network-interface-id", [eni_id(0)])
    stubs.network(["vpc-a"])
    lb = balancer("dualstack", scheme="internal")
    holding = group("v6", lbs=(lb,))
    stubs.target_groups([[holding]])
    stubs.target_health(holding, targets("2001:DB8:0:1:0:0:0:A"))
    stubs.load_balancers([lb["LoadBalancerArn"]], [lb])

    facts = collected(stubs)["vpc-a"]

    clean(facts)
    assert list(facts["load_balancers"]) == [lb["LoadBalancerArn"]]


@pytest.mark.parametrize(
    ("state", "described"),
    [("initial", True), ("healthy", True), ("unhealthy", True), ("draining", False), ("unused", False)],
)
def test_a_target_counts_in_every_state_but_draining_and_unused(state, described):
    stubs = LbStubs()
    tasks_in(stubs)
    lb = balancer("internal", scheme="internal")
    holding = group("holding", lbs=(lb,))
    stubs.target_groups([[holding]])
    stubs.target_health(holding, targets(TASK_IP, state=state))
    if described:  # ECS registers a task while it is ACTIVATING: "initial" is already the task's
        stubs.load_balancers([lb["LoadBalancerArn"]], [lb])

    facts = collected(stubs)["vpc-a"]

    clean(facts)
    assert list(facts["load_balancers"]) == ([lb["LoadBalancerArn"]] if described else [])

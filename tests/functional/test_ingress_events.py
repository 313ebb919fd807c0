"""Ingress through load balancers on the event path: the verdicts of NET-11 and NET-12
arrive in Security Hub when a task starts behind a load balancer and again when a listener
changes (AWS Config), naming the load balancer (issue "Ingress through load balancers")."""

from __future__ import annotations

import json

import pytest
from support.env import REGION, WORLD4
from support.world import emulated_world


@pytest.fixture
def world(monkeypatch):
    with emulated_world(monkeypatch) as built:
        yield built


class FrontDoor:
    """An internet-facing ALB in the world's VPC: HTTPS forwarding to the web tasks (at
    their port 443, which their group opens to the world), HTTP redirecting to HTTPS."""

    def __init__(self, world) -> None:
        ec2, self.elbv2 = world.client("ec2"), world.client("elbv2")
        subnet_b = ec2.create_subnet(VpcId=world.vpc, CidrBlock="10.20.2.0/24", AvailabilityZone=f"{REGION}b")
        subnet_b = subnet_b["Subnet"]["SubnetId"]
        ec2.associate_route_table(RouteTableId=world.route_table, SubnetId=subnet_b)
        group = ec2.create_security_group(GroupName="web-alb", Description="web ALB", VpcId=world.vpc)[
            "GroupId"
        ]
        ec2.authorize_security_group_ingress(
            GroupId=group,
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": WORLD4}]}
                for port in (80, 443)
            ],
        )
        self.arn = self.elbv2.create_load_balancer(
            Name="web-prod",
            Subnets=[world.subnet, subnet_b],
            SecurityGroups=[group],
            Scheme="internet-facing",
        )["LoadBalancers"][0]["LoadBalancerArn"]
        self.group = self.elbv2.create_target_group(
            Name="web", Protocol="HTTPS", Port=443, VpcId=world.vpc, TargetType="ip"
        )["TargetGroups"][0]["TargetGroupArn"]
        self.elbv2.register_targets(
            TargetGroupArn=self.group, Targets=[{"Id": task.private_ip, "Port": 443} for task in world.web]
        )
        certificate = world.client("acm").request_certificate(DomainName="web.example.com")["CertificateArn"]
        self.https = self.elbv2.create_listener(
            LoadBalancerArn=self.arn,
            Protocol="HTTPS",
            Port=443,
            Certificates=[{"CertificateArn": certificate}],
            DefaultActions=[{"Type": "forward", "TargetGroupArn": self.group}],
        )["Listeners"][0]["ListenerArn"]
        self.http = self.elbv2.create_listener(
            LoadBalancerArn=self.arn,
            Protocol="HTTP",
            Port=80,
            DefaultActions=[
                {
                    "Type": "redirect",
                    "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"},
                }
            ],
        )["Listeners"][0]["ListenerArn"]

    def forward_plain_http(self) -> None:
        self.elbv2.modify_listener(
            ListenerArn=self.http, DefaultActions=[{"Type": "forward", "TargetGroupArn": self.group}]
        )

    def config_event(self, world) -> dict:
        """The sample Listener change, naming this listener and load balancer."""
        sample = world.config("config-listener-change.json")
        text = json.dumps(sample)
        for old, new in (
            (sample["detail"]["configurationItem"]["ARN"], self.http),
            (sample["detail"]["configurationItem"]["configuration"]["LoadBalancerArn"], self.arn),
        ):
            text = text.replace(old, new)
        return json.loads(text)


def _compliance(world, rule_id: str) -> str:
    return world.finding(rule_id)["Compliance"]["Status"]


def test_task_launch_behind_a_load_balancer_raises_net11_and_net12_naming_it(world):
    door = FrontDoor(world)
    outcome = world.task_events(world.running(world.web[0]))
    assert outcome["status"] == "audited"

    assert _compliance(world, "NET-11") == "PASSED"  # HTTPS only: HTTP redirects
    finding = world.finding("NET-12")
    assert finding["Compliance"]["Status"] == "FAILED"  # no web ACL on the ALB
    lbs = [r for r in finding["Resources"] if r["Type"] == "AwsElbv2LoadBalancer"]
    assert [r["Id"] for r in lbs] == [door.arn]
    assert lbs[0]["Details"]["AwsElbv2LoadBalancer"]["Type"] == "application"
    types = [r["Type"] for r in finding["Resources"]]
    assert types.index("AwsEcsTask") < types.index("AwsElbv2LoadBalancer")
    latest = world.rt.recorder.latest(world.web[0].arn)
    (exposure,) = latest["posture"]["network"]["exposures"]
    assert (exposure["listener_port"], exposure["listener_protocol"], exposure["target_port"]) == (
        443,
        "HTTPS",
        443,
    )
    assert exposure["web_acl_arn"] is None
    calls = outcome["api_calls"]
    assert calls["elasticloadbalancing.DescribeTargetGroups"] == 1
    assert calls["wafv2.GetWebACLForResource"] == 1
    load_balancing = {k: v for k, v in calls.items() if k.startswith(("elasticloadbalancing.", "wafv2."))}
    assert load_balancing == {  # README "What it costs to run": behind a load balancer
        "elasticloadbalancing.DescribeTargetGroups": 1,
        "elasticloadbalancing.DescribeTargetHealth": 1,  # one ip group in the VPC
        "elasticloadbalancing.DescribeLoadBalancers": 1,
        "elasticloadbalancing.DescribeListeners": 1,
        "elasticloadbalancing.DescribeRules": 2,  # the HTTPS and HTTP listeners
        "wafv2.GetWebACLForResource": 1,
    }, calls
    assert calls["ec2.DescribeSubnets"] == 1


def test_a_listener_change_reaudits_the_tasks_behind_it_and_net11_fails(world):
    door = FrontDoor(world)
    for task in world.web:
        world.task_events(world.running(task))
    assert _compliance(world, "NET-11") == "PASSED"

    door.forward_plain_http()
    outcome = world.config_events(door.config_event(world))

    assert outcome["status"] == "audited" and outcome["tasks"] == 2
    assert outcome["resource_type"] == "AWS::ElasticLoadBalancingV2::Listener"
    finding = world.finding("NET-11")
    assert finding["Compliance"]["Status"] == "FAILED"
    assert door.arn in {r["Id"] for r in finding["Resources"]}
    history = world.rt.recorder.history(world.web[0].arn)
    assert history[-1]["cause"]["type"] == "config-event"
    (change,) = [f for f in history[-1]["facts"] if f["path"] == "network.exposures"]
    assert [e["listener_port"] for e in change["after"]] == [80, 443]
    assert history[-1]["rules"]["NET-11"] == ["PASSED", "FAILED"]


def test_a_change_of_a_load_balancer_not_in_front_of_any_task_is_ignored(world):
    door = FrontDoor(world)
    world.task_events(world.running(world.etl[0]))  # etl is registered nowhere
    event = door.config_event(world)
    outcome = world.config_events(event)
    assert outcome["status"] == "ignored" and outcome["tasks"] == 0

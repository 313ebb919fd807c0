"""Config changes of resources no task's posture names yet, but which change a task's
verdict: a new VPC endpoint in the task's VPC, the route table of the subnet of the NAT
gateway the task's egress goes through, a new listener on the load balancer in front of
the task. Each Config item (AWS's documented shape) re-audits the task at once; before,
each was "no running task depends on it" until the next sweep (hours of a stale verdict,
a false PASSED for the NAT hop)."""

from __future__ import annotations

import pytest
from fargate_audit.local import estate
from support.env import ACCOUNT, REGION
from support.world import emulated_world, task_of


@pytest.fixture
def world(monkeypatch):
    with emulated_world(monkeypatch) as built:
        yield built


def config_item_event(resource_type, resource_id, configuration, relationships, arn, change="UPDATE"):
    """A ``Config Configuration Item Change`` event as AWS Config sends it."""
    item = {
        "relatedEvents": [],
        "relationships": relationships,
        "configuration": configuration,
        "supplementaryConfiguration": {},
        "tags": {},
        "configurationItemVersion": "1.3",
        "configurationItemCaptureTime": "2026-11-20T10:15:13.100Z",
        "configurationStateId": 1795177145302,
        "awsAccountId": ACCOUNT,
        "configurationItemStatus": "ResourceDiscovered" if change == "CREATE" else "OK",
        "resourceType": resource_type,
        "resourceId": resource_id,
        "resourceName": None,
        "ARN": arn,
        "awsRegion": REGION,
        "availabilityZone": "Not Applicable",
        "configurationStateMd5Hash": "",
        "resourceCreationTime": None,
    }
    return {
        "version": "0",
        "id": f"config-{resource_id[-12:]}",
        "detail-type": "Config Configuration Item Change",
        "source": "aws.config",
        "account": ACCOUNT,
        "time": "2026-11-20T10:15:14Z",
        "region": REGION,
        "resources": [arn],
        "detail": {
            "recordVersion": "1.3",
            "messageType": "ConfigurationItemChangeNotification",
            "notificationCreationTime": "2026-11-20T10:15:14.262Z",
            "configurationItem": item,
            "configurationItemDiff": {"changedProperties": {}, "changeType": change},
        },
    }


def oversized(event: dict) -> dict:
    """The same change as AWS Config sends it when the item is too large: a
    ``configurationItemSummary`` (no configuration, no relationships) and where in S3 the
    whole item lies."""
    item = event["detail"]["configurationItem"]
    summary = {k: v for k, v in item.items() if k not in ("configuration", "relationships", "relatedEvents",
                                                          "supplementaryConfiguration", "tags")}  # fmt: skip
    summary["changeType"] = event["detail"]["configurationItemDiff"]["changeType"]
    event["detail"] = {
        "configurationItemSummary": summary,
        "s3DeliverySummary": {
            "s3BucketLocation": "config-bucket/item.json.gz",
            "errorCode": None,
            "errorMessage": None,
        },
        "notificationCreationTime": event["detail"]["notificationCreationTime"],
        "messageType": "OversizedConfigurationItemChangeNotification",
        "recordVersion": "1.0",
    }
    return event


def status_of(world, task, rule_id: str) -> str:
    (result,) = [r for r in world.rt.recorder.latest(task.arn)["results"] if r["rule_id"] == rule_id]
    return result["status"]


@pytest.mark.parametrize("named_by", ["configuration", "relationships", "oversized"])
def test_a_new_vpc_endpoint_reaudits_the_tasks_of_its_vpc(world, named_by):
    """Oversized: the notification names the endpoint alone; its VPC is read from EC2."""
    task = world.web[0]
    world.task_events(world.running(task))
    assert status_of(world, task, "NET-10") == "FAILED"  # no ecr.dkr, ecr.api or S3 endpoint
    ec2 = world.client("ec2")
    for service, kind in (("s3", "Gateway"), ("ecr.dkr", "Interface"), ("ecr.api", "Interface")):
        placed = {"RouteTableIds": [world.route_table]} if kind == "Gateway" else {"SubnetIds": [task.subnet]}
        endpoint = ec2.create_vpc_endpoint(
            VpcId=world.vpc, ServiceName=f"com.amazonaws.{REGION}.{service}", VpcEndpointType=kind, **placed
        )["VpcEndpoint"]["VpcEndpointId"]
        configuration = {
            "vpcEndpointId": endpoint,
            "vpcEndpointType": kind,
            "vpcId": world.vpc,
            "serviceName": f"com.amazonaws.{REGION}.{service}",
            "state": "available",
            "routeTableIds": placed.get("RouteTableIds", []),
            "subnetIds": placed.get("SubnetIds", []),
        }
        relationships = [
            {"resourceId": world.vpc, "resourceType": "AWS::EC2::VPC", "name": "Is contained in Vpc"}
        ]
        if named_by == "relationships":
            configuration = {"vpcEndpointId": endpoint}
        event = config_item_event(
            "AWS::EC2::VPCEndpoint",
            endpoint,
            configuration,
            relationships,
            f"arn:aws:ec2:{REGION}:{ACCOUNT}:vpc-endpoint/{endpoint}",
            change="CREATE",
        )
        if named_by == "oversized":
            event = oversized(event)

        outcome = world.config_events(event)

        assert outcome["status"] == "audited" and outcome["tasks"] >= 1, outcome
    assert status_of(world, task, "NET-10") == "PASSED"
    assert world.finding("NET-10")["Compliance"]["Status"] == "PASSED"


def test_the_route_table_of_the_nat_gateways_subnet_reaudits_the_tasks_behind_the_nat(world):
    """rules.md: the NAT gateway is followed one hop, to its own subnet's default route.
    That route moving from an inspection endpoint to the internet gateway turns NET-05
    FAILED: the task now depends on the NAT's subnet and that subnet's route table."""
    ec2 = world.client("ec2")
    builder = estate._Builder(world.session, REGION)
    builder.info.task_definitions["web"] = world.web[0].task_definition_arn
    nat_subnet = builder.subnet("nat-a", world.vpc, "10.20.9.0/24", "a")
    firewall_subnet = builder.subnet("fw-a", world.vpc, "10.20.8.0/24", "a")
    firewall = ec2.create_vpc_endpoint(
        VpcId=world.vpc,
        ServiceName=f"com.amazonaws.vpce.{REGION}.vpce-svc-0123456789abcdef0",
        VpcEndpointType="GatewayLoadBalancer",
        SubnetIds=[firewall_subnet],
    )["VpcEndpoint"]["VpcEndpointId"]
    nat_table = builder.route_table(
        "nat-a", world.vpc, [nat_subnet], [{"DestinationCidrBlock": "0.0.0.0/0", "VpcEndpointId": firewall}]
    )
    nat = builder.nat_gateway("nat-a", nat_subnet)
    private = builder.subnet("private-a", world.vpc, "10.20.20.0/24", "a")
    builder.route_table(
        "private-a", world.vpc, [private], [{"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": nat}]
    )
    (arn,) = builder.run_tasks("prod-web", "web", [private], [world.sg], 1, "1.4.0", service="web")
    task = task_of(builder.ecs, arn)
    world.task_events(world.running(task))
    assert status_of(world, task, "NET-05") == "PASSED"  # nat-gateway>inspection-endpoint
    assert {nat_subnet, nat_table} <= set(world.rt.recorder.latest(task.arn)["deps"])

    ec2.replace_route(RouteTableId=nat_table, DestinationCidrBlock="0.0.0.0/0", GatewayId=world.igw)
    configuration = {
        "routeTableId": nat_table,
        "vpcId": world.vpc,
        "associations": [
            {
                "main": False,
                "routeTableAssociationId": "rtbassoc-0aaa",
                "routeTableId": nat_table,
                "subnetId": nat_subnet,
            }
        ],
        "routes": [{"destinationCidrBlock": "0.0.0.0/0", "gatewayId": world.igw, "state": "active"}],
    }
    relationships = [
        {"resourceId": nat_subnet, "resourceType": "AWS::EC2::Subnet", "name": "Is associated with Subnet"},
        {"resourceId": world.vpc, "resourceType": "AWS::EC2::VPC", "name": "Is contained in Vpc"},
    ]
    event = config_item_event(
        "AWS::EC2::RouteTable",
        nat_table,
        configuration,
        relationships,
        f"arn:aws:ec2:{REGION}:{ACCOUNT}:route-table/{nat_table}",
    )

    outcome = world.config_events(event)

    assert outcome["status"] == "audited", outcome
    assert status_of(world, task, "NET-05") == "FAILED"
    last = world.rt.recorder.history(task.arn)[-1]
    assert last["rules"]["NET-05"] == ["PASSED", "FAILED"]
    (egress,) = [f for f in last["facts"] if f["path"] == "network.egress.ipv4"]
    assert egress["after"]["path"] == "nat-gateway>internet-gateway" and "via" not in egress["after"]


@pytest.mark.parametrize("as_sent", ["whole", "oversized"])
def test_a_new_listener_reaudits_the_tasks_behind_its_load_balancer(world, as_sent):
    ec2, elbv2 = world.client("ec2"), world.client("elbv2")
    second = ec2.create_subnet(VpcId=world.vpc, CidrBlock="10.20.2.0/24", AvailabilityZone=f"{REGION}b")[
        "Subnet"
    ]["SubnetId"]
    ec2.associate_route_table(RouteTableId=world.route_table, SubnetId=second)
    group = ec2.create_security_group(GroupName="web-alb", Description="alb", VpcId=world.vpc)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=group,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": p, "ToPort": p, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
            for p in (80, 443)
        ],
    )
    lb = elbv2.create_load_balancer(
        Name="web-prod", Subnets=[world.subnet, second], SecurityGroups=[group], Scheme="internet-facing"
    )["LoadBalancers"][0]["LoadBalancerArn"]
    target_group = elbv2.create_target_group(
        Name="web", Protocol="HTTPS", Port=443, VpcId=world.vpc, TargetType="ip"
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.register_targets(
        TargetGroupArn=target_group, Targets=[{"Id": t.private_ip, "Port": 443} for t in world.web]
    )
    certificate = world.client("acm").request_certificate(DomainName="web.example.com")["CertificateArn"]
    elbv2.create_listener(
        LoadBalancerArn=lb,
        Protocol="HTTPS",
        Port=443,
        Certificates=[{"CertificateArn": certificate}],
        DefaultActions=[{"Type": "forward", "TargetGroupArn": target_group}],
    )
    task = world.web[0]
    world.task_events(world.running(task))
    assert status_of(world, task, "NET-11") == "PASSED"

    http = elbv2.create_listener(
        LoadBalancerArn=lb,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": target_group}],
    )["Listeners"][0]["ListenerArn"]
    configuration = {
        "ListenerArn": http,
        "LoadBalancerArn": lb,
        "Port": 80,
        "Protocol": "HTTP",
        "DefaultActions": [
            {
                "Type": "forward",
                "Order": 1,
                "TargetGroupArn": target_group,
                "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": target_group, "Weight": 1}]},
            }
        ],
    }
    relationships = [
        {
            "resourceId": lb,
            "resourceType": "AWS::ElasticLoadBalancingV2::LoadBalancer",
            "name": "Is associated with LoadBalancer",
        }
    ]

    event = config_item_event(
        "AWS::ElasticLoadBalancingV2::Listener", http, configuration, relationships, http, "CREATE"
    )

    outcome = world.config_events(oversized(event) if as_sent == "oversized" else event)

    assert outcome["status"] == "audited" and outcome["tasks"] == 1, outcome  # the one audited
    assert status_of(world, task, "NET-11") == "FAILED"


def test_an_endpoint_or_listener_item_naming_nothing_indexed_is_still_ignored(world):
    world.task_events(world.running(world.web[0]))
    endpoint = "vpce-0123456789abcdef0"
    event = config_item_event(
        "AWS::EC2::VPCEndpoint",
        endpoint,
        {"vpcEndpointId": endpoint, "vpcId": "vpc-0aaaaaaaaaaaaaaaa", "routeTableIds": [], "subnetIds": []},
        [
            {
                "resourceId": "vpc-0aaaaaaaaaaaaaaaa",
                "resourceType": "AWS::EC2::VPC",
                "name": "Is contained in Vpc",
            }
        ],
        f"arn:aws:ec2:{REGION}:{ACCOUNT}:vpc-endpoint/{endpoint}",
        change="CREATE",
    )

    outcome = world.config_events(event)

    assert outcome["status"] == "ignored" and outcome["tasks"] == 0

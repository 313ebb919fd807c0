"""Unit tests of fargate_audit.core.posture.build_posture: raw bundle (design.md section 1) ->
Posture (section 2), with the derivations of shared/spec/rules.md "Shared definitions".

Raw inputs are written in the shapes boto3 returns (field names checked against botocore's
ec2/ecs service models); ``bundle()`` builds a realistic baseline that each test adjusts.
"""

import ast
import copy
import importlib
import json
import random
from pathlib import Path

import pytest
from fargate_audit.core import netalgebra
from fargate_audit.core.posture import (
    build_posture,
    endpoint_service,
    image_digest,
    image_registry,
    is_private_ecr,
    is_trivial_env_value,
)

ACCOUNT = "123456789012"
REGION = "eu-west-1"
CLUSTER_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/prod"
TASK_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/prod/0f3c1e2d4b5a49c8a7e6d5c4b3a29180"
TASKDEF_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:7"
VPC = "vpc-0a1b2c3d4e5f60718"
SUBNET = "subnet-0aa11bb22cc33dd44"  # the task's (private) subnet
PUBLIC_SUBNET = "subnet-0ee55ff66aa77bb88"  # the NAT gateway's subnet
OTHER_SUBNET = "subnet-0999888777666555a"
ENI = "eni-0c1d2e3f4a5b6c7d8"
SG_WEB = "sg-0123456789abcdef0"
SG_DEFAULT = "sg-0fedcba9876543210"
IGW = "igw-0a9b8c7d6e5f40312"
NAT = "nat-0b1c2d3e4f5a6b7c8"
EIGW = "eigw-0d1e2f3a4b5c6d7e8"
RTB_MAIN = "rtb-0main0000000000001"
RTB_PRIVATE = "rtb-0priv0000000000002"
RTB_PUBLIC = "rtb-0publ0000000000003"
ACL_DEFAULT = "acl-0def00000000000001"
NAT_VIA = [PUBLIC_SUBNET, RTB_PUBLIC]  # egress "via" of the NAT hop: its subnet and that subnet's table
ACL_CUSTOM = "acl-0cus00000000000002"
ECR = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
DIGEST = "sha256:" + "ab" * 32
CANARY = "s3cr3t-CANARY-value-9f8e7d"

FULL = 65535


def iv(protocol, lo, hi):
    return {"protocol": protocol, "from": lo, "to": hi}


# --- builders (boto3 response shapes) ---------------------------------------------------


def api_task(**changes):
    """One DescribeTasks `tasks[]` item, datetimes already ISO strings (as the collector gives)."""
    task = {
        "attachments": [
            {
                "id": "a1b2c3d4-5678-90ab-cdef-111111111111",
                "type": "ElasticNetworkInterface",
                "status": "ATTACHED",
                "details": [
                    {"name": "subnetId", "value": SUBNET},
                    {"name": "networkInterfaceId", "value": ENI},
                    {"name": "macAddress", "value": "0a:1b:2c:3d:4e:5f"},
                    {"name": "privateDnsName", "value": "ip-10-0-1-25.eu-west-1.compute.internal"},
                    {"name": "privateIPv4Address", "value": "10.0.1.25"},
                ],
            }
        ],
        "attributes": [{"name": "ecs.cpu-architecture", "value": "x86_64"}],
        "availabilityZone": "eu-west-1a",
        "clusterArn": CLUSTER_ARN,
        "connectivity": "CONNECTED",
        "connectivityAt": "2024-06-01T10:00:05.123000+00:00",
        "containers": [],
        "cpu": "256",
        "createdAt": "2024-06-01T10:00:00+00:00",
        "desiredStatus": "RUNNING",
        "group": "service:web",
        "lastStatus": "RUNNING",
        "launchType": "FARGATE",
        "memory": "512",
        "overrides": {
            "containerOverrides": [
                {"name": "app", "environment": [{"name": "DEBUG", "value": "true"}]},
                {"name": "envoy"},
            ],
            "inferenceAcceleratorOverrides": [],
        },
        "platformVersion": "1.4.0",
        "platformFamily": "Linux",
        "startedAt": "2024-06-01T10:00:30.500000+00:00",
        "startedBy": "ecs-svc/1234567890123456789",
        "taskArn": TASK_ARN,
        "taskDefinitionArn": TASKDEF_ARN,
        "version": 3,
    }
    task.update(changes)
    return task


def event_detail(**changes):
    """The `detail` of an "ECS Task State Change" event for the same task."""
    detail = {
        "attachments": [
            {
                "id": "a1b2c3d4-5678-90ab-cdef-111111111111",
                "type": "eni",
                "status": "ATTACHED",
                "details": [
                    {"name": "subnetId", "value": SUBNET},
                    {"name": "networkInterfaceId", "value": ENI},
                    {"name": "macAddress", "value": "0a:1b:2c:3d:4e:5f"},
                    {"name": "privateIPv4Address", "value": "10.0.1.25"},
                ],
            }
        ],
        "availabilityZone": "eu-west-1a",
        "clusterArn": CLUSTER_ARN,
        "connectivity": "CONNECTED",
        "connectivityAt": "2024-06-01T10:00:05.123Z",
        "containers": [],
        "createdAt": "2024-06-01T10:00:00Z",
        "desiredStatus": "RUNNING",
        "group": "service:web",
        "lastStatus": "RUNNING",
        "launchType": "FARGATE",
        "overrides": {
            "containerOverrides": [
                {"name": "app", "environment": [{"name": "DEBUG", "value": "true"}]},
                {"name": "envoy"},
            ]
        },
        "platformVersion": "1.4.0",
        "platformFamily": "Linux",
        "pullStartedAt": "2024-06-01T10:00:10Z",
        "pullStoppedAt": "2024-06-01T10:00:25Z",
        "startedAt": "2024-06-01T10:00:30.5Z",
        "taskArn": TASK_ARN,
        "taskDefinitionArn": TASKDEF_ARN,
        "updatedAt": "2024-06-01T10:00:30.5Z",
        "version": 3,
    }
    detail.update(changes)
    return detail


def task_definition():
    return {
        "taskDefinitionArn": TASKDEF_ARN,
        "family": "web",
        "revision": 7,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "compatibilities": ["EC2", "FARGATE"],
        "cpu": "256",
        "memory": "512",
        "status": "ACTIVE",
        "runtimePlatform": {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
        "containerDefinitions": [
            {
                "name": "envoy",
                "image": "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.29.4.0-prod",
                "essential": True,
                "environment": [],
            },
            {
                "name": "app",
                "image": f"{ECR}/web@{DIGEST}",
                "essential": True,
                "readonlyRootFilesystem": True,
                "environment": [
                    {"name": "DB_PASSWORD", "value": CANARY},
                    {"name": "LOG_LEVEL", "value": "info"},
                    {"name": "FEATURE_X", "value": "  YES "},
                    {"name": "EMPTY_TOKEN", "value": ""},
                ],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {"awslogs-group": "/ecs/web", "awslogs-region": REGION},
                },
            },
        ],
    }


def cluster():
    return {
        "clusterArn": CLUSTER_ARN,
        "clusterName": "prod",
        "status": "ACTIVE",
        "runningTasksCount": 1,
        "settings": [{"name": "containerInsights", "value": "enabled"}],
    }


def eni():
    """DescribeNetworkInterfaces `NetworkInterfaces[]` item of a Fargate task ENI."""
    return {
        "Attachment": {
            "AttachmentId": "ela-attach-0a1b2c3d4e5f60718",
            "DeleteOnTermination": False,
            "DeviceIndex": 1,
            "Status": "attached",
        },
        "AvailabilityZone": "eu-west-1a",
        "Description": f"arn:aws:ecs:{REGION}:{ACCOUNT}:attachment/a1b2c3d4-5678-90ab-cdef-111111111111",
        "Groups": [{"GroupName": "web", "GroupId": SG_WEB}],
        "InterfaceType": "interface",
        "Ipv6Addresses": [],
        "MacAddress": "0a:1b:2c:3d:4e:5f",
        "NetworkInterfaceId": ENI,
        "OwnerId": ACCOUNT,
        "PrivateDnsName": "ip-10-0-1-25.eu-west-1.compute.internal",
        "PrivateIpAddress": "10.0.1.25",
        "PrivateIpAddresses": [
            {
                "Primary": True,
                "PrivateDnsName": "ip-10-0-1-25.eu-west-1.compute.internal",
                "PrivateIpAddress": "10.0.1.25",
            }
        ],
        "RequesterId": "578734482556",
        "RequesterManaged": True,
        "SourceDestCheck": True,
        "Status": "in-use",
        "SubnetId": SUBNET,
        "TagSet": [],
        "VpcId": VPC,
    }


def perm(protocol, lo=None, hi=None, v4=(), v6=(), prefix_lists=(), groups=()):
    """One IpPermission; FromPort/ToPort omitted when None (as AWS does for protocol -1)."""
    p = {
        "IpProtocol": protocol,
        "IpRanges": [{"CidrIp": c} for c in v4],
        "Ipv6Ranges": [{"CidrIpv6": c} for c in v6],
        "PrefixListIds": [{"PrefixListId": pl} for pl in prefix_lists],
        "UserIdGroupPairs": [{"GroupId": g, "UserId": ACCOUNT} for g in groups],
    }
    if lo is not None:
        p["FromPort"], p["ToPort"] = lo, hi
    return p


def security_group(group_id, name, ingress=(), egress=None):
    if egress is None:
        egress = [perm("-1", v4=["0.0.0.0/0"])]
    return {
        "Description": f"{name} group",
        "GroupName": name,
        "IpPermissions": list(ingress),
        "OwnerId": ACCOUNT,
        "GroupId": group_id,
        "IpPermissionsEgress": list(egress),
        "VpcId": VPC,
        "SecurityGroupArn": f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/{group_id}",
    }


def route(dest, state="active", ipv6=False, **target):
    r = {"DestinationIpv6CidrBlock" if ipv6 else "DestinationCidrBlock": dest, "Origin": "CreateRoute"}
    r.update(target)
    if state is not None:
        r["State"] = state
    return r


LOCAL_ROUTE = {
    "DestinationCidrBlock": "10.0.0.0/16",
    "GatewayId": "local",
    "Origin": "CreateRouteTable",
    "State": "active",
}


def route_table(rtb_id, routes, subnets=(), main=False):
    associations = [
        {
            "Main": False,
            "RouteTableAssociationId": f"rtbassoc-{rtb_id[4:]}{i}",
            "RouteTableId": rtb_id,
            "SubnetId": subnet,
            "AssociationState": {"State": "associated"},
        }
        for i, subnet in enumerate(subnets)
    ]
    if main:
        associations.append(
            {
                "Main": True,
                "RouteTableAssociationId": f"rtbassoc-{rtb_id[4:]}m",
                "RouteTableId": rtb_id,
                "AssociationState": {"State": "associated"},
            }
        )
    return {
        "Associations": associations,
        "PropagatingVgws": [],
        "RouteTableId": rtb_id,
        "Routes": [LOCAL_ROUTE, *routes],
        "Tags": [],
        "VpcId": VPC,
        "OwnerId": ACCOUNT,
    }


def acl_entry(number, action, protocol="-1", cidr="0.0.0.0/0", egress=False, ports=None):
    e = {"Egress": egress, "Protocol": protocol, "RuleAction": action, "RuleNumber": number}
    e["Ipv6CidrBlock" if ":" in cidr else "CidrBlock"] = cidr
    if ports:
        e["PortRange"] = {"From": ports[0], "To": ports[1]}
    return e


def network_acl(acl_id, entries, subnets=(), default=False):
    return {
        "Associations": [
            {"NetworkAclAssociationId": f"aclassoc-0{i}{acl_id[5:]}", "NetworkAclId": acl_id, "SubnetId": s}
            for i, s in enumerate(subnets)
        ],
        "Entries": list(entries),
        "IsDefault": default,
        "NetworkAclId": acl_id,
        "Tags": [],
        "VpcId": VPC,
        "OwnerId": ACCOUNT,
    }


DEFAULT_ACL_ENTRIES = [
    acl_entry(100, "allow"),
    acl_entry(101, "allow", cidr="::/0"),
    acl_entry(32767, "deny"),
    acl_entry(32768, "deny", cidr="::/0"),
    acl_entry(100, "allow", egress=True),
    acl_entry(32767, "deny", egress=True),
]


def nat_gateway(nat_id=NAT, subnet=PUBLIC_SUBNET):
    return {
        "CreateTime": "2024-05-01T09:00:00+00:00",
        "NatGatewayAddresses": [
            {
                "AllocationId": "eipalloc-0a1b2c3d4e5f60718",
                "NetworkInterfaceId": "eni-0natnatnatnatnat01",
                "PrivateIp": "10.0.0.10",
                "PublicIp": "203.0.113.10",
                "AssociationId": "eipassoc-0a1b2c3d4e5f60718",
                "IsPrimary": True,
                "Status": "succeeded",
            }
        ],
        "NatGatewayId": nat_id,
        "State": "available",
        "SubnetId": subnet,
        "VpcId": VPC,
        "ConnectivityType": "public",
    }


def flow_log(fl_id, resource, traffic="ALL", status="ACTIVE"):
    fl = {
        "CreationTime": "2024-05-01T09:00:00+00:00",
        "DeliverLogsStatus": "SUCCESS",
        "FlowLogId": fl_id,
        "LogGroupName": "/vpc/flow",
        "ResourceId": resource,
        "TrafficType": traffic,
        "LogDestinationType": "cloud-watch-logs",
        "MaxAggregationInterval": 600,
    }
    if status is not None:
        fl["FlowLogStatus"] = status
    return fl


S3_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::prod-eu-west-1-starport-layer-bucket/*",
        }
    ],
}


def vpc_endpoint(vpce_id, service, vtype="Interface", state="available", route_tables=(), policy=S3_POLICY):
    ep = {
        "VpcEndpointId": vpce_id,
        "VpcEndpointType": vtype,
        "VpcId": VPC,
        "ServiceName": f"com.amazonaws.{REGION}.{service}",
        "State": state,
        "RouteTableIds": list(route_tables),
        "SubnetIds": [] if vtype == "Gateway" else [SUBNET],
        "Groups": [],
        "PrivateDnsEnabled": vtype == "Interface",
        "RequesterManaged": False,
        "NetworkInterfaceIds": [],
        "DnsEntries": [],
        "CreationTimestamp": "2024-05-01T09:00:00+00:00",
        "OwnerId": ACCOUNT,
    }
    if policy is not None:
        ep["PolicyDocument"] = policy if isinstance(policy, str) else json.dumps(policy)
    return ep


def query_log_association(assoc_id="rqlca-0a1b2c3d4e5f60718", status="ACTIVE", vpc=VPC):
    """One ListResolverQueryLogConfigAssociations ``ResolverQueryLogConfigAssociations[]`` item."""
    return {
        "Id": assoc_id,
        "ResolverQueryLogConfigId": "rqlc-0f1e2d3c4b5a69788",
        "ResourceId": vpc,
        "Status": status,
        "Error": "NONE",
        "ErrorMessage": "",
        "CreationTime": "2024-05-01T09:00:00Z",
    }


def bundle():
    """A running Fargate task in a private subnet: NAT -> IGW egress, SG open on 443."""
    return {
        "account_id": ACCOUNT,
        "region": REGION,
        "task": api_task(),
        "task_definition": task_definition(),
        "cluster": cluster(),
        "eni": eni(),
        "vpc": {
            "vpc_id": VPC,
            "subnets": [
                {"SubnetId": SUBNET, "VpcId": VPC, "CidrBlock": "10.0.1.0/24", "State": "available"},
                {"SubnetId": PUBLIC_SUBNET, "VpcId": VPC, "CidrBlock": "10.0.0.0/24", "State": "available"},
            ],
            "security_groups": [
                security_group(SG_WEB, "web", ingress=[perm("tcp", 443, 443, v4=["0.0.0.0/0"])]),
                security_group(SG_DEFAULT, "default", ingress=[perm("-1", groups=[SG_DEFAULT])]),
            ],
            "route_tables": [
                route_table(RTB_MAIN, [], main=True),
                route_table(RTB_PRIVATE, [route("0.0.0.0/0", NatGatewayId=NAT)], subnets=[SUBNET]),
                route_table(RTB_PUBLIC, [route("0.0.0.0/0", GatewayId=IGW)], subnets=[PUBLIC_SUBNET]),
            ],
            "network_acls": [
                network_acl(ACL_DEFAULT, DEFAULT_ACL_ENTRIES, subnets=[SUBNET, PUBLIC_SUBNET], default=True)
            ],
            "flow_logs": [flow_log("fl-0vpc00000000000001", VPC)],
            "vpc_endpoints": [
                vpc_endpoint("vpce-0s3000000000000001", "s3", "Gateway", route_tables=[RTB_PRIVATE]),
                vpc_endpoint("vpce-0dkr00000000000002", "ecr.dkr", policy=None),
                vpc_endpoint("vpce-0api00000000000003", "ecr.api", policy=None),
            ],
            "nat_gateways": [nat_gateway()],
            "query_log_associations": [query_log_association()],
            "load_balancing": {"target_groups": [], "load_balancers": {}, "errors": {}},
        },
        "errors": {},
    }


def rt(raw, rtb_id):
    return next(t for t in raw["vpc"]["route_tables"] if t["RouteTableId"] == rtb_id)


def sg(raw, group_id):
    return next(g for g in raw["vpc"]["security_groups"] if g["GroupId"] == group_id)


# --- identity, task-level facts ---------------------------------------------------------


def test_baseline_bundle_yields_complete_posture_without_errors():
    p = build_posture(bundle())
    assert p["errors"] == {}
    assert p["posture_version"] == 1
    assert p["task_arn"] == TASK_ARN
    assert p["cluster_arn"] == CLUSTER_ARN
    assert p["cluster_name"] == "prod"
    assert p["account_id"] == ACCOUNT
    assert p["region"] == REGION
    assert p["group"] == "service:web"
    assert p["workload"] == "prod/service:web"
    assert p["service_name"] == "web"
    assert p["task_definition_arn"] == TASKDEF_ARN
    assert p["launch_type"] == "FARGATE"
    assert p["last_status"] == "RUNNING"
    assert p["platform_family"] == "LINUX"
    assert p["platform_version"] == "1.4.0"
    assert p["connectivity_at"] == "2024-06-01T10:00:05.123000+00:00"
    assert p["started_at"] == "2024-06-01T10:00:30.500000+00:00"
    assert p["cluster"] == {"container_insights": "enabled"}


def test_posture_has_exactly_the_design_keys():
    p = build_posture(bundle())
    assert set(p) == {
        "posture_version", "task_arn", "cluster_arn", "cluster_name", "account_id", "region", "group",
        "task_group", "workload", "service_name", "task_definition_arn", "launch_type", "last_status",
        "platform_family", "platform_version", "connectivity_at", "started_at", "containers",
        "environment", "cluster", "network", "errors",
    }  # fmt: skip
    assert set(p["network"]) == {
        "eni_id", "private_ip", "subnet_id", "vpc_id", "public_ipv4", "ipv6_addresses",
        "public_address", "security_groups", "world_ingress_rules", "world_ingress",
        "world_egress_rules", "route_table_id", "egress", "nacl", "flow_logs", "vpc_endpoints",
        "query_log_configs", "exposures", "load_balancer_resources", "unknown_web_acls",
    }  # fmt: skip
    assert set(p["containers"][0]) == {
        "name", "image", "registry", "digest", "private_ecr", "log_driver", "readonly_root_filesystem",
    }  # fmt: skip
    assert set(p["network"]["vpc_endpoints"][0]) == {
        "id", "service_name", "service", "type", "state", "route_table_ids", "policy", "policy_error",
    }  # fmt: skip


def test_account_and_region_come_from_task_arn_when_bundle_lacks_them():
    raw = bundle()
    del raw["account_id"], raw["region"]
    p = build_posture(raw)
    assert (p["account_id"], p["region"]) == (ACCOUNT, REGION)


def test_family_group_has_no_service_name():
    raw = bundle()
    raw["task"]["group"] = "family:batch"
    p = build_posture(raw)
    assert p["service_name"] is None
    assert p["workload"] == "prod/family:batch"


def test_event_shaped_task_gives_the_same_posture_as_the_api_shaped_task():
    api = build_posture(bundle())
    raw = bundle()
    raw["task"] = event_detail()
    event = build_posture(raw)
    assert event == api
    assert event["network"]["eni_id"] == ENI
    assert event["connectivity_at"] == "2024-06-01T10:00:05.123000+00:00"


def test_epoch_timestamps_become_iso_utc():
    raw = bundle()
    raw["task"]["connectivityAt"] = 1717236005.123
    raw["task"]["startedAt"] = 1717236030
    p = build_posture(raw)
    assert p["connectivity_at"].startswith("2024-06-01T10:00:05.123")
    assert p["started_at"] == "2024-06-01T10:00:30+00:00"


def test_missing_platform_version_is_an_error_not_a_value():
    raw = bundle()
    del raw["task"]["platformVersion"]
    p = build_posture(raw)
    assert p["platform_version"] is None
    assert p["errors"] == {"platform_version": "platformVersion not reported by AWS"}


def test_windows_platform_family_falls_back_to_task_definition_runtime_platform():
    raw = bundle()
    del raw["task"]["platformFamily"]
    raw["task_definition"]["runtimePlatform"]["operatingSystemFamily"] = "WINDOWS_SERVER_2022_CORE"
    assert build_posture(raw)["platform_family"] == "WINDOWS"


def test_task_platform_family_wins_over_task_definition():
    raw = bundle()
    raw["task"]["platformFamily"] = "windows_server_2019_full"
    assert build_posture(raw)["platform_family"] == "WINDOWS"
    raw["task"]["platformFamily"] = "Linux"
    raw["task_definition"]["runtimePlatform"]["operatingSystemFamily"] = "WINDOWS_SERVER_2022_CORE"
    assert build_posture(raw)["platform_family"] == "LINUX"


def test_platform_family_without_any_report_is_linux():
    raw = bundle()
    del raw["task"]["platformFamily"]
    del raw["task_definition"]["runtimePlatform"]
    assert build_posture(raw)["platform_family"] == "LINUX"


DENIED_DEFINITION = (
    "DescribeTaskDefinition: AccessDeniedException: not authorized to perform ecs:DescribeTaskDefinition"
)


def test_platform_family_is_unknown_when_the_task_reports_none_and_its_definition_is_denied():
    raw = bundle()
    del raw["task"]["platformFamily"]
    raw["task_definition"] = None
    raw["errors"] = {"task_definition": DENIED_DEFINITION}
    p = build_posture(raw)
    assert p["platform_family"] is None  # not defaulted to LINUX: a Windows definition is possible
    assert p["errors"] == {"containers": DENIED_DEFINITION, "platform_family": DENIED_DEFINITION}
    assert p["platform_version"] == "1.4.0"


def test_platform_family_is_unknown_when_the_definition_is_absent_without_an_error():
    raw = bundle()
    del raw["task"]["platformFamily"]
    raw["task_definition"] = None
    p = build_posture(raw)
    assert p["platform_family"] is None
    assert p["errors"]["platform_family"] == p["errors"]["containers"]
    assert TASKDEF_ARN in p["errors"]["platform_family"]


def test_task_platform_family_is_known_even_when_the_definition_is_denied():
    raw = bundle()
    raw["task"]["platformFamily"] = "WINDOWS_SERVER_2019_CORE"
    raw["task_definition"] = None
    raw["errors"] = {"task_definition": DENIED_DEFINITION}
    p = build_posture(raw)
    assert p["platform_family"] == "WINDOWS"
    assert p["errors"] == {"containers": DENIED_DEFINITION}


@pytest.mark.parametrize(
    ("version", "status"),
    [("1.0.0", "ERROR"), ("1.3.0", "ERROR"), ("LATEST", "PASSED"), ("1.4.0", "PASSED"), ("0.9.0", "FAILED")],
)
def test_cfg_01_of_a_task_whose_family_is_unknown(version, status):
    """The issue: a Windows task on 1.0.0 whose definition is denied was FAILED (taken
    for Linux). Its family is unknown, the two minimums disagree: ERROR naming the call."""
    from fargate_audit.core import engine
    from fargate_audit.core.rules import load_catalog

    raw = bundle()
    del raw["task"]["platformFamily"]
    raw["task"]["platformVersion"] = version
    raw["task_definition"] = None
    raw["errors"] = {"task_definition": DENIED_DEFINITION}
    result = engine.evaluate(load_catalog(), [build_posture(raw)])
    (cfg_01,) = [r for r in result.results if r["rule_id"] == "CFG-01"]
    assert cfg_01["status"] == status, cfg_01
    if status == "ERROR":
        assert cfg_01["evidence"]["error"].startswith(f"platform_family: {DENIED_DEFINITION} (unknown family")
    else:
        assert cfg_01["evidence"]["platform_family"] is None
        assert cfg_01["evidence"]["minimums"] == {"LINUX": "1.4.0", "WINDOWS": "1.0.0"}


def test_readable_windows_definition_gives_windows_without_a_platform_family_error():
    raw = bundle()
    del raw["task"]["platformFamily"]
    raw["task_definition"]["runtimePlatform"]["operatingSystemFamily"] = "WINDOWS_SERVER_2019_CORE"
    p = build_posture(raw)
    assert p["platform_family"] == "WINDOWS"
    assert "platform_family" not in p["errors"]


# --- containers and environment -------------------------------------------------------


def test_containers_come_from_the_task_definition_sorted_by_name():
    p = build_posture(bundle())
    assert p["containers"] == [
        {
            "name": "app",
            "image": f"{ECR}/web@{DIGEST}",
            "registry": ECR,
            "digest": DIGEST,
            "private_ecr": True,
            "log_driver": "awslogs",
            "readonly_root_filesystem": True,
        },
        {
            "name": "envoy",
            "image": "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.29.4.0-prod",
            "registry": "public.ecr.aws",
            "digest": None,
            "private_ecr": False,
            "log_driver": None,
            "readonly_root_filesystem": False,
        },
    ]


def test_readonly_root_filesystem_requires_literal_true():
    raw = bundle()
    raw["task_definition"]["containerDefinitions"][1]["readonlyRootFilesystem"] = "true"
    assert build_posture(raw)["containers"][0]["readonly_root_filesystem"] is False


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("nginx:1.25", "docker.io"),
        ("nginx", "docker.io"),
        ("library/nginx", "docker.io"),
        ("bitnami/redis:7.2", "docker.io"),
        ("nginx@" + DIGEST, "docker.io"),
        ("localhost/app", "localhost"),
        ("localhost:5000/app:1", "localhost:5000"),
        ("registry:5000/app", "registry:5000"),
        ("ghcr.io/org/app:1", "ghcr.io"),
        ("public.ecr.aws/nginx/nginx:latest", "public.ecr.aws"),
        (f"{ECR}/web:1", ECR),
        ("123456789012.DKR.ECR.us-east-1.AMAZONAWS.COM/web", "123456789012.DKR.ECR.us-east-1.AMAZONAWS.COM"),
        ("", "docker.io"),
        (None, "docker.io"),
    ],
)
def test_image_registry_follows_dockers_rule(image, registry):
    assert image_registry(image) == registry


@pytest.mark.parametrize(
    ("registry", "private"),
    [
        (ECR, True),
        ("210987654321.dkr.ecr.ap-southeast-2.amazonaws.com", True),
        ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", True),
        ("123456789012.DKR.ECR.us-east-1.AMAZONAWS.COM", True),
        ("12345678901.dkr.ecr.eu-west-1.amazonaws.com", False),
        (
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com:443",
            True,
        ),  # the host is ECR's; a port is no other registry
        ("public.ecr.aws", False),
        ("docker.io", False),
        ("evil.com/123456789012.dkr.ecr.eu-west-1.amazonaws.com", False),
    ],
)
def test_private_ecr_is_any_account_and_region_of_ecr(registry, private):
    assert is_private_ecr(registry) is private


def test_image_digest_is_the_sha256_after_at():
    assert image_digest(f"{ECR}/web@{DIGEST}") == DIGEST
    assert image_digest(f"{ECR}/web:1.2@{DIGEST}") == DIGEST
    assert image_digest(f"{ECR}/web:1.2") is None
    assert image_digest("nginx@md5:abc") is None


def test_environment_lists_names_sources_and_triviality_only():
    p = build_posture(bundle())
    assert p["environment"] == [
        {"container": "app", "name": "DB_PASSWORD", "source": "definition", "trivial_value": False},
        {"container": "app", "name": "DEBUG", "source": "override", "trivial_value": True},
        {"container": "app", "name": "EMPTY_TOKEN", "source": "definition", "trivial_value": True},
        {"container": "app", "name": "FEATURE_X", "source": "definition", "trivial_value": False},
        {"container": "app", "name": "LOG_LEVEL", "source": "definition", "trivial_value": False},
    ]


@pytest.mark.parametrize(
    ("value", "trivial"),
    [(None, True), ("", True), ("true", True), ("FALSE", True), (" yes ", False), ("No", True),
     ("0", True), ("1", True), ("2", False), ("  ", False), ("\t\n", False), ("enabled", False),
     ("hunter2", False), (" hunter2 ", False)],
)  # fmt: skip
def test_trivial_env_values_are_empty_or_boolean_words(value, trivial):
    assert is_trivial_env_value(value) is trivial


def test_environment_values_never_reach_the_posture():
    raw = bundle()
    raw["task"]["overrides"]["containerOverrides"][0]["environment"].append(
        {"name": "API_KEY", "value": CANARY}
    )
    raw["task_definition"]["containerDefinitions"][0]["environment"].append({"name": "X", "value": CANARY})
    raw["errors"] = {"cluster": "DescribeClusters: AccessDeniedException: denied"}
    p = build_posture(raw)
    dumped = json.dumps(p)
    assert CANARY not in dumped
    assert "info" not in [e.get("value") for e in p["environment"]]
    assert all(set(e) == {"container", "name", "source", "trivial_value"} for e in p["environment"])


def test_task_definition_error_spoils_containers_but_keeps_override_names():
    raw = bundle()
    raw["task_definition"] = None
    raw["errors"] = {
        "task_definition": "DescribeTaskDefinition: ClientException: Unable to describe task definition."
    }
    p = build_posture(raw)
    assert p["errors"] == {
        "containers": "DescribeTaskDefinition: ClientException: Unable to describe task definition."
    }
    assert p["containers"] == []
    assert [e["source"] for e in p["environment"]] == ["override"]


def test_task_definition_absent_without_error_is_still_an_error():
    raw = bundle()
    raw["task_definition"] = None
    assert "containers" in build_posture(raw)["errors"]


# --- cluster ----------------------------------------------------------------------------


def test_container_insights_absent_setting_is_none():
    raw = bundle()
    raw["cluster"]["settings"] = []
    p = build_posture(raw)
    assert p["cluster"] == {"container_insights": None}
    assert "cluster" not in p["errors"]


def test_cluster_error_maps_to_cluster_fact():
    raw = bundle()
    raw["cluster"] = None
    raw["errors"] = {"cluster": "DescribeClusters: AccessDeniedException: not authorized"}
    p = build_posture(raw)
    assert p["errors"] == {"cluster": "DescribeClusters: AccessDeniedException: not authorized"}
    assert p["cluster_name"] == "prod"  # from the cluster ARN


# --- addresses ------------------------------------------------------------------------


def test_public_ipv4_is_decided_from_the_association_even_for_a_loopback_address():
    raw = bundle()
    raw["eni"]["Association"] = {"IpOwnerId": ACCOUNT, "PublicDnsName": "", "PublicIp": "127.0.0.5"}
    p = build_posture(raw)["network"]
    assert p["public_ipv4"] == "127.0.0.5"
    assert p["public_address"] == {"ipv4": True, "ipv6": False}


def test_no_association_means_no_public_ipv4():
    p = build_posture(bundle())["network"]
    assert p["public_ipv4"] is None
    assert p["public_address"] == {"ipv4": False, "ipv6": False}
    assert (p["eni_id"], p["private_ip"], p["subnet_id"], p["vpc_id"]) == (ENI, "10.0.1.25", SUBNET, VPC)


def test_any_ipv6_address_is_a_public_address():
    raw = bundle()
    raw["eni"]["Ipv6Addresses"] = [
        {"Ipv6Address": "2001:db8:1:2::20", "IsPrimaryIpv6": False},
        {"Ipv6Address": "2001:db8:1:2::10", "IsPrimaryIpv6": True},
    ]
    raw["eni"]["Ipv6Address"] = "2001:db8:1:2::10"
    p = build_posture(raw)["network"]
    assert p["ipv6_addresses"] == ["2001:db8:1:2::10", "2001:db8:1:2::20"]
    assert p["public_address"] == {"ipv4": False, "ipv6": True}


def test_a_custom_task_group_names_the_workload_by_family_and_the_report_keeps_the_schema():
    """A standalone task run with a custom group: its workload is its family's (interface.md:
    `family:NAME` for standalone tasks), its own group kept as `task_group`; the report's
    `group` keeps scan-report.schema.json's form (it failed validation)."""
    from datetime import UTC, datetime

    import jsonschema
    from fargate_audit.core import report

    raw = bundle()
    raw["task"]["group"] = "team/etl#nightly"
    p = build_posture(raw)
    family = raw["task"]["taskDefinitionArn"].rsplit("/", 1)[1].rsplit(":", 1)[0]
    assert (p["group"], p["task_group"]) == (f"family:{family}", "team/etl#nightly")
    assert p["workload"] == f"{p['cluster_name']}/family:{family}"
    entry = report.task_entry(p)
    assert (entry["group"], entry["task_group"]) == (f"family:{family}", "team/etl#nightly")
    now = datetime(2026, 12, 7, tzinfo=UTC)
    doc = report.build_report([p], [], now=now, scope={"regions": [p["region"]]})
    jsonschema.validate(json.loads(json.dumps(doc)), report.load_schema())
    raw["task"]["group"] = "service:web"
    assert "task_group" not in report.task_entry(build_posture(raw))


def test_a_delegated_ipv6_prefix_is_a_public_address_listed_as_the_prefix():
    """rules.md: "for IPv6, any IPv6 address on the ENI": a prefix delegated to the ENI
    (Ipv6Prefixes) gives it addresses too."""
    raw = bundle()
    raw["eni"]["Ipv6Prefixes"] = [{"Ipv6Prefix": "2a05:d018:123:4500:1::/80"}]
    p = build_posture(raw)["network"]
    assert p["ipv6_addresses"] == ["2a05:d018:123:4500:1::/80"]
    assert p["public_address"] == {"ipv4": False, "ipv6": True}


# --- security groups ----------------------------------------------------------------------


def test_security_groups_are_the_enis_with_names_from_the_group_list():
    raw = bundle()
    raw["eni"]["Groups"] = [{"GroupId": SG_WEB}, {"GroupId": SG_DEFAULT, "GroupName": "default"}]
    p = build_posture(raw)
    assert p["network"]["security_groups"] == [
        {"id": SG_WEB, "name": "web"},
        {"id": SG_DEFAULT, "name": "default"},
    ]
    assert p["errors"] == {}


def test_unattached_groups_do_not_contribute_rules():
    raw = bundle()
    sg(raw, SG_DEFAULT)["IpPermissions"] = [perm("-1", v4=["0.0.0.0/0"])]
    p = build_posture(raw)["network"]
    assert {r["group_id"] for r in p["world_ingress_rules"]} == {SG_WEB}


def test_attached_group_not_found_is_a_security_groups_error():
    raw = bundle()
    raw["eni"]["Groups"].append({"GroupId": "sg-0aaaaaaaaaaaaaaaa", "GroupName": "gone"})
    p = build_posture(raw)
    assert set(p["errors"]) == {"security_groups"}
    assert "sg-0aaaaaaaaaaaaaaaa" in p["errors"]["security_groups"]


def test_security_groups_call_error_maps_to_security_groups_fact():
    raw = bundle()
    raw["vpc"]["security_groups"] = []
    raw["errors"] = {"security_groups": "DescribeSecurityGroups: UnauthorizedOperation: denied"}
    p = build_posture(raw)
    assert p["errors"] == {"security_groups": "DescribeSecurityGroups: UnauthorizedOperation: denied"}


def test_world_ingress_rules_cover_minus_one_numeric_and_ipv6():
    raw = bundle()
    sg(raw, SG_WEB)["IpPermissions"] = [
        perm("-1", v6=["::/0"]),
        perm("6", 22, 22, v4=["0.0.0.0/0"]),
        perm("17", 53, 53, v4=["0.0.0.0/0", "10.0.0.0/8"]),
        perm("icmp", -1, -1, v4=["0.0.0.0/0"]),
    ]
    p = build_posture(raw)["network"]
    v4 = {"group_id": SG_WEB, "family": "ipv4", "cidr": "0.0.0.0/0"}
    v6 = {"group_id": SG_WEB, "family": "ipv6", "cidr": "::/0"}
    assert p["world_ingress_rules"] == [
        {**v4, "protocol": "icmp", "ports": []},
        {**v4, "protocol": "tcp", "ports": [iv("tcp", 22, 22)]},
        {**v4, "protocol": "udp", "ports": [iv("udp", 53, 53)]},
        {**v6, "protocol": "-1", "ports": [iv("tcp", 0, FULL), iv("udp", 0, FULL)]},
    ]
    assert p["world_ingress"] == {
        "ipv4": [iv("tcp", 22, 22), iv("udp", 53, 53)],
        "ipv6": [iv("tcp", 0, FULL), iv("udp", 0, FULL)],
    }


def test_narrow_cidrs_prefix_lists_and_group_references_are_not_world():
    raw = bundle()
    sg(raw, SG_WEB)["IpPermissions"] = [
        perm("tcp", 22, 22, v4=["0.0.0.0/1", "128.0.0.0/1"], v6=["::/1", "8000::/1"]),
        perm("tcp", 80, 80, prefix_lists=["pl-6da54004"]),
        perm("-1", groups=[SG_DEFAULT]),
    ]
    p = build_posture(raw)["network"]
    assert p["world_ingress_rules"] == []
    assert p["world_ingress"] == {"ipv4": [], "ipv6": []}


def test_world_ingress_merges_adjacent_ports_across_groups():
    raw = bundle()
    raw["eni"]["Groups"].append({"GroupId": SG_DEFAULT, "GroupName": "default"})
    sg(raw, SG_WEB)["IpPermissions"] = [perm("tcp", 22, 22, v4=["0.0.0.0/0"])]
    sg(raw, SG_DEFAULT)["IpPermissions"] = [perm("tcp", 23, 25, v4=["0.0.0.0/0"])]
    assert build_posture(raw)["network"]["world_ingress"]["ipv4"] == [iv("tcp", 22, 25)]


def test_world_egress_rules_keep_protocol_and_ports_as_given():
    raw = bundle()
    sg(raw, SG_WEB)["IpPermissionsEgress"] = [
        perm("-1", v4=["0.0.0.0/0"]),
        perm("6", 0, 65535, v6=["::/0"]),
        perm("udp", 53, 53, v4=["0.0.0.0/0"]),
        perm("tcp", 443, 443, v4=["10.0.0.0/16"], prefix_lists=["pl-6da54004"]),
    ]
    p = build_posture(raw)["network"]
    assert p["world_egress_rules"] == [
        {
            "group_id": SG_WEB,
            "family": "ipv4",
            "cidr": "0.0.0.0/0",
            "protocol": "-1",
            "from": None,
            "to": None,
        },
        {"group_id": SG_WEB, "family": "ipv4", "cidr": "0.0.0.0/0", "protocol": "udp", "from": 53, "to": 53},
        {"group_id": SG_WEB, "family": "ipv6", "cidr": "::/0", "protocol": "tcp", "from": 0, "to": 65535},
    ]


# --- route table and egress path ------------------------------------------------------------


def test_explicit_route_table_association_wins_over_main():
    p = build_posture(bundle())["network"]
    assert p["route_table_id"] == RTB_PRIVATE


def test_main_route_table_applies_without_explicit_association():
    raw = bundle()
    rt(raw, RTB_PRIVATE)["Associations"] = []
    rt(raw, RTB_MAIN)["Routes"].append(route("0.0.0.0/0", GatewayId=IGW))
    p = build_posture(raw)["network"]
    assert p["route_table_id"] == RTB_MAIN
    assert p["egress"]["ipv4"] == {"path": "internet-gateway", "targets": [IGW]}


def test_no_route_table_at_all_is_a_route_table_and_egress_error():
    raw = bundle()
    raw["vpc"]["route_tables"] = [rt(raw, RTB_PUBLIC)]
    p = build_posture(raw)
    assert set(p["errors"]) == {"route_table", "egress"}
    assert p["network"]["route_table_id"] is None


def test_route_tables_call_error_spoils_route_table_and_egress():
    raw = bundle()
    raw["vpc"]["route_tables"] = []
    raw["errors"] = {"route_tables": "DescribeRouteTables: RequestLimitExceeded: throttled"}
    p = build_posture(raw)
    assert p["errors"] == {
        "route_table": "DescribeRouteTables: RequestLimitExceeded: throttled",
        "egress": "DescribeRouteTables: RequestLimitExceeded: throttled",
    }


INSTANCE_ROUTE_TARGET = {
    "InstanceId": "i-0123456789abcdef0",
    "InstanceOwnerId": ACCOUNT,
    "NetworkInterfaceId": "eni-0inst0000000000001",
}


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ({"GatewayId": IGW}, "internet-gateway"),
        ({"GatewayId": "vpce-0fw0000000000000001"}, "inspection-endpoint"),
        ({"TransitGatewayId": "tgw-0123456789abcdef0"}, "transit-gateway"),
        ({"NetworkInterfaceId": "eni-0appliance00000001"}, "appliance"),
        (INSTANCE_ROUTE_TARGET, "appliance"),
        ({"VpcPeeringConnectionId": "pcx-0123456789abcdef0"}, "peering"),
        ({"LocalGatewayId": "lgw-0123456789abcdef0"}, "other"),
        ({"CarrierGatewayId": "cagw-0123456789abcdef0"}, "other"),
        ({"CoreNetworkArn": f"arn:aws:networkmanager::{ACCOUNT}:core-network/core-network-0123"}, "other"),
        ({"GatewayId": "vgw-0123456789abcdef0"}, "other"),
    ],
)  # fmt: skip
def test_default_route_target_classifies_the_ipv4_egress_path(target, path):
    raw = bundle()
    rt(raw, RTB_PRIVATE)["Routes"] = [LOCAL_ROUTE, route("0.0.0.0/0", **target)]
    egress = build_posture(raw)["network"]["egress"]["ipv4"]
    assert egress["path"] == path
    assert len(egress["targets"]) == 1
    assert egress["targets"][0] in target.values()


def test_no_default_route_is_path_none():
    raw = bundle()
    rt(raw, RTB_PRIVATE)["Routes"] = [
        LOCAL_ROUTE,
        route("192.168.0.0/16", TransitGatewayId="tgw-0123456789abcdef0"),
    ]
    p = build_posture(raw)
    assert p["network"]["egress"] == {
        "ipv4": {"path": "none", "targets": []},
        "ipv6": {"path": "none", "targets": []},
    }
    assert p["errors"] == {}


def test_blackhole_default_route_counts_as_no_route():
    raw = bundle()
    rt(raw, RTB_PRIVATE)["Routes"] = [LOCAL_ROUTE, route("0.0.0.0/0", state="blackhole", GatewayId=IGW)]
    assert build_posture(raw)["network"]["egress"]["ipv4"] == {"path": "none", "targets": []}


def test_default_route_without_state_counts_as_active():
    raw = bundle()
    rt(raw, RTB_PRIVATE)["Routes"] = [LOCAL_ROUTE, route("0.0.0.0/0", state=None, GatewayId=IGW)]
    assert build_posture(raw)["network"]["egress"]["ipv4"]["path"] == "internet-gateway"


def test_narrow_route_is_not_a_default_route():
    raw = bundle()
    rt(raw, RTB_PRIVATE)["Routes"] = [
        LOCAL_ROUTE,
        route("0.0.0.0/1", GatewayId=IGW),
        route("128.0.0.0/1", GatewayId=IGW),
    ]
    assert build_posture(raw)["network"]["egress"]["ipv4"]["path"] == "none"


@pytest.mark.parametrize("static_first", [False, True])
def test_a_static_default_route_wins_over_one_a_vpn_gateway_propagated(static_first):
    """AWS ("How route priority works"): of a static and a propagated route to the same
    destination, the static one routes. A BGP-learned 0.0.0.0/0 listed first must not hide
    the static route to the internet gateway (the path was "other": NET-02/NET-05 passed)."""
    raw = bundle()
    propagated = route("0.0.0.0/0", GatewayId="vgw-0a1b2c3d4e5f60718") | {
        "Origin": "EnableVgwRoutePropagation"
    }
    static = route("0.0.0.0/0", GatewayId=IGW)
    rt(raw, RTB_PRIVATE)["Routes"] = [
        LOCAL_ROUTE,
        *((static, propagated) if static_first else (propagated, static)),
    ]
    assert build_posture(raw)["network"]["egress"]["ipv4"] == {"path": "internet-gateway", "targets": [IGW]}


def test_a_propagated_default_route_alone_routes():
    raw = bundle()
    propagated = route("0.0.0.0/0", GatewayId="vgw-0a1b2c3d4e5f60718") | {
        "Origin": "EnableVgwRoutePropagation"
    }
    rt(raw, RTB_PRIVATE)["Routes"] = [LOCAL_ROUTE, propagated]
    assert build_posture(raw)["network"]["egress"]["ipv4"] == {
        "path": "other",
        "targets": ["vgw-0a1b2c3d4e5f60718"],
    }


def test_ipv6_egress_via_egress_only_gateway_is_classified_separately():
    raw = bundle()
    rt(raw, RTB_PRIVATE)["Routes"].append(route("::/0", ipv6=True, EgressOnlyInternetGatewayId=EIGW))
    egress = build_posture(raw)["network"]["egress"]
    assert egress["ipv6"] == {"path": "egress-only-internet-gateway", "targets": [EIGW]}
    assert egress["ipv4"] == {"path": "nat-gateway>internet-gateway", "targets": [NAT, IGW], "via": NAT_VIA}


def test_ipv6_egress_via_internet_gateway():
    raw = bundle()
    rt(raw, RTB_PRIVATE)["Routes"].append(route("::/0", ipv6=True, GatewayId=IGW))
    assert build_posture(raw)["network"]["egress"]["ipv6"] == {"path": "internet-gateway", "targets": [IGW]}


def test_nat_is_followed_one_hop_to_the_internet_gateway():
    p = build_posture(bundle())
    assert p["network"]["egress"]["ipv4"] == {
        "path": "nat-gateway>internet-gateway",
        "targets": [NAT, IGW],
        "via": NAT_VIA,  # what the hop depends on: the NAT's subnet and its route table
    }
    assert p["errors"] == {}


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ({"GatewayId": "vpce-0gwlb000000000001"}, "nat-gateway>inspection-endpoint"),
        ({"NetworkInterfaceId": "eni-0fw00000000000001"}, "nat-gateway>appliance"),
        ({"TransitGatewayId": "tgw-0123456789abcdef0"}, "nat-gateway>transit-gateway"),
        ({"NatGatewayId": "nat-0second0000000001"}, "nat-gateway>nat-gateway"),
    ],
)
def test_nat_hop_classifies_the_nat_subnets_default_route(target, path):
    raw = bundle()
    rt(raw, RTB_PUBLIC)["Routes"] = [LOCAL_ROUTE, route("0.0.0.0/0", **target)]
    egress = build_posture(raw)["network"]["egress"]["ipv4"]
    assert egress == {"path": path, "targets": [NAT, *target.values()], "via": NAT_VIA}


def test_nat_subnet_without_default_route_gives_nat_then_none():
    raw = bundle()
    rt(raw, RTB_PUBLIC)["Routes"] = [LOCAL_ROUTE]
    assert build_posture(raw)["network"]["egress"]["ipv4"] == {
        "path": "nat-gateway>none",
        "targets": [NAT],
        "via": NAT_VIA,
    }


def test_nat_subnet_falls_back_to_the_main_route_table():
    raw = bundle()
    rt(raw, RTB_PUBLIC)["Associations"] = []
    rt(raw, RTB_MAIN)["Routes"].append(route("0.0.0.0/0", GatewayId="vpce-0gwlb000000000001"))
    egress = build_posture(raw)["network"]["egress"]["ipv4"]
    assert egress == {
        "path": "nat-gateway>inspection-endpoint",
        "targets": [NAT, "vpce-0gwlb000000000001"],
        "via": [PUBLIC_SUBNET, RTB_MAIN],  # the main table decides the hop now
    }


RTB_REGIONAL_NAT = "rtb-0rnat000000000004"


def _regional_nat(raw: dict) -> dict:
    """The bundle's NAT gateway made regional (VPC User Guide, "Regional NAT gateways for
    automatic multi-AZ expansion"): no subnet; AWS creates its route table, which
    DescribeNatGateways names (RouteTableId)."""
    nat = raw["vpc"]["nat_gateways"][0]
    nat.pop("SubnetId")
    nat |= {"AvailabilityMode": "regional", "AutoProvisionZones": "enabled", "RouteTableId": RTB_REGIONAL_NAT}
    return nat


def test_a_regional_nat_gateway_is_followed_through_its_own_route_table_not_the_main_one():
    """Before, a NAT gateway without SubnetId was followed through the VPC's main table: a
    main table routed to a firewall endpoint passed NET-05 for traffic leaving uninspected."""
    raw = bundle()
    _regional_nat(raw)
    raw["vpc"]["route_tables"].append(route_table(RTB_REGIONAL_NAT, [route("0.0.0.0/0", GatewayId=IGW)]))
    rt(raw, RTB_MAIN)["Routes"].append(route("0.0.0.0/0", GatewayId="vpce-0fw00000000000001"))
    p = build_posture(raw)
    assert p["network"]["egress"]["ipv4"] == {
        "path": "nat-gateway>internet-gateway",
        "targets": [NAT, IGW],
        "via": [RTB_REGIONAL_NAT],  # a change to that table re-audits the task
    }
    assert p["errors"] == {}


def test_a_nat_gateway_without_subnet_or_route_table_is_not_followed_through_the_main_table():
    """An SDK older than regional NAT gateways drops AvailabilityMode and RouteTableId: the
    gateway arrives with neither subnet nor table. The main table is not where its traffic
    leaves: the hop is unknown (NET-05 ERROR), never a path the main table draws."""
    raw = bundle()
    nat = _regional_nat(raw)
    for key in ("AvailabilityMode", "AutoProvisionZones", "RouteTableId"):
        nat.pop(key)
    rt(raw, RTB_MAIN)["Routes"].append(route("0.0.0.0/0", GatewayId="vpce-0fw00000000000001"))
    ipv4 = build_posture(raw)["network"]["egress"]["ipv4"]
    assert ipv4["path"] is None and "names no route table" in ipv4["error"]
    assert ipv4["targets"] == [NAT]


def test_a_regional_nat_gateway_whose_route_table_is_not_found_leaves_the_hop_unknown():
    raw = bundle()
    _regional_nat(raw)
    rt(raw, RTB_MAIN)["Routes"].append(route("0.0.0.0/0", GatewayId="vpce-0fw00000000000001"))
    ipv4 = build_posture(raw)["network"]["egress"]["ipv4"]
    assert ipv4["path"] is None and RTB_REGIONAL_NAT in ipv4["error"] and "regional" in ipv4["error"]
    assert ipv4["targets"] == [NAT]
    assert ipv4["via"] == [RTB_REGIONAL_NAT]  # the table named, so its change re-audits the task


def test_nat_gateway_not_found_leaves_the_ipv4_path_unknown_with_its_error():
    raw = bundle()
    raw["vpc"]["nat_gateways"] = []
    p = build_posture(raw)
    assert p["errors"] == {}  # the first hop is known; only the class after the NAT is not
    ipv4 = p["network"]["egress"]["ipv4"]
    assert ipv4["path"] is None and NAT in ipv4["error"] and ipv4["targets"] == [NAT]


def test_nat_gateways_call_error_concerns_the_ipv4_path_only_when_it_uses_a_nat():
    raw = bundle()
    raw["vpc"]["nat_gateways"] = []
    raw["errors"] = {"nat_gateways": "DescribeNatGateways: UnauthorizedOperation: denied"}
    p = build_posture(raw)
    assert p["network"]["egress"]["ipv4"]["error"] == "DescribeNatGateways: UnauthorizedOperation: denied"
    assert "error" not in p["network"]["egress"]["ipv6"]
    import jsonschema
    from fargate_audit.core import facts

    jsonschema.Draft202012Validator(facts.posture_schema()).validate(json.loads(json.dumps(p)))
    rt(raw, RTB_PRIVATE)["Routes"] = [LOCAL_ROUTE, route("0.0.0.0/0", GatewayId=IGW)]
    assert "error" not in build_posture(raw)["network"]["egress"]["ipv4"]


def test_an_unknown_nat_hop_is_net05_error_unless_ipv6_fails_it_and_never_net02_error():
    """rules.md: ERROR only when a fact the rule needs is missing. NET-02 needs an internet
    gateway as the family's path (a NAT-routed IPv4 path is not, whatever follows the NAT);
    NET-05's IPv4 condition needs the class after the NAT, its IPv6 condition does not."""
    from fargate_audit.core import engine, rules
    from fargate_audit.core.params import effective_params

    catalog = rules.load_catalog()
    params = effective_params(catalog, {})
    by_id = {rule.id: rule for rule in catalog.rules}
    raw = bundle()
    raw["errors"] = {"nat_gateways": "DescribeNatGateways: UnauthorizedOperation: denied"}
    p = build_posture(raw)
    net05 = engine.evaluate_rule(by_id["NET-05"], p, params)
    assert net05[0] == "ERROR" and "DescribeNatGateways" in net05[1]["error"]
    assert engine.evaluate_rule(by_id["NET-02"], p, params)[0] != "ERROR"

    p["network"] = {
        **p["network"],
        "ipv6_addresses": ["2a05:d018:1a2b:3c00::10"],
        "public_address": {"ipv4": False, "ipv6": True},
        "egress": {**p["network"]["egress"], "ipv6": {"path": "internet-gateway", "targets": ["igw-1"]}},
    }
    status, evidence = engine.evaluate_rule(by_id["NET-05"], p, params)
    assert status == "FAILED" and evidence["families"] == ["ipv6"]
    assert evidence["paths"]["ipv4"]["error"].startswith("DescribeNatGateways")


# --- NACL -----------------------------------------------------------------------------------


def test_default_nacl_applies_when_no_nacl_is_associated_with_the_subnet():
    raw = bundle()
    raw["vpc"]["network_acls"][0]["Associations"] = []
    raw["vpc"]["network_acls"].append(network_acl(ACL_CUSTOM, [], subnets=[OTHER_SUBNET]))
    nacl = build_posture(raw)["network"]["nacl"]
    assert nacl["id"] == ACL_DEFAULT
    assert nacl["inbound_world_allowed"] == {"ipv4": netalgebra.full_range(), "ipv6": netalgebra.full_range()}


def test_associated_nacl_is_evaluated_first_match_per_family():
    raw = bundle()
    raw["vpc"]["network_acls"][0]["Associations"] = []
    entries = [
        acl_entry(100, "deny", "6", ports=(22, 22)),
        acl_entry(200, "allow"),
        acl_entry(90, "deny", "6", cidr="203.0.113.0/24", ports=(443, 443)),
        acl_entry(100, "allow", "6", cidr="::/0", ports=(443, 443)),
        acl_entry(32767, "deny"),
        acl_entry(32768, "deny", cidr="::/0"),
        acl_entry(100, "allow", egress=True),
    ]
    raw["vpc"]["network_acls"].append(network_acl(ACL_CUSTOM, entries, subnets=[SUBNET]))
    nacl = build_posture(raw)["network"]["nacl"]
    assert nacl["id"] == ACL_CUSTOM
    assert nacl["inbound_world_allowed"] == {
        "ipv4": [iv("tcp", 0, 21), iv("tcp", 23, FULL), iv("udp", 0, FULL)],
        "ipv6": [iv("tcp", 443, 443)],
    }


def test_network_acls_call_error_maps_to_nacl_fact():
    raw = bundle()
    raw["vpc"]["network_acls"] = []
    raw["errors"] = {"network_acls": "DescribeNetworkAcls: UnauthorizedOperation: denied"}
    p = build_posture(raw)
    assert p["errors"] == {"nacl": "DescribeNetworkAcls: UnauthorizedOperation: denied"}
    assert p["network"]["nacl"] == {"id": None, "inbound_world_allowed": {"ipv4": [], "ipv6": []}}


def test_no_nacl_found_is_a_nacl_error():
    raw = bundle()
    raw["vpc"]["network_acls"] = []
    assert set(build_posture(raw)["errors"]) == {"nacl"}


# --- flow logs and endpoints ----------------------------------------------------------------


def test_flow_logs_on_eni_subnet_or_vpc_are_listed_others_are_not():
    raw = bundle()
    raw["vpc"]["flow_logs"] = [
        flow_log("fl-0vpc00000000000001", VPC, "REJECT"),
        flow_log("fl-0sub00000000000002", SUBNET, "ALL", status=None),
        flow_log("fl-0eni00000000000003", ENI, "ACCEPT"),
        flow_log("fl-0oth00000000000004", OTHER_SUBNET, "ALL"),
    ]
    assert build_posture(raw)["network"]["flow_logs"] == [
        {"id": "fl-0eni00000000000003", "resource_id": ENI, "traffic_type": "ACCEPT", "status": "ACTIVE"},
        {"id": "fl-0sub00000000000002", "resource_id": SUBNET, "traffic_type": "ALL", "status": None},
        {"id": "fl-0vpc00000000000001", "resource_id": VPC, "traffic_type": "REJECT", "status": "ACTIVE"},
    ]


def test_flow_logs_call_error_maps_to_flow_logs_fact():
    raw = bundle()
    raw["vpc"]["flow_logs"] = []
    raw["errors"] = {"flow_logs": "DescribeFlowLogs: UnauthorizedOperation: denied"}
    assert build_posture(raw)["errors"] == {"flow_logs": "DescribeFlowLogs: UnauthorizedOperation: denied"}


def test_vpc_endpoints_carry_short_service_and_parsed_policy():
    endpoints = build_posture(bundle())["network"]["vpc_endpoints"]
    assert [(e["id"], e["service"], e["type"]) for e in endpoints] == [
        ("vpce-0api00000000000003", "ecr.api", "Interface"),
        ("vpce-0dkr00000000000002", "ecr.dkr", "Interface"),
        ("vpce-0s3000000000000001", "s3", "Gateway"),
    ]
    s3 = endpoints[2]
    assert s3["service_name"] == f"com.amazonaws.{REGION}.s3"
    assert s3["route_table_ids"] == [RTB_PRIVATE]
    assert s3["policy"] == S3_POLICY
    assert s3["policy_error"] is None
    assert endpoints[0]["policy"] is None


def test_only_s3_gateway_endpoints_keep_their_policy_others_a_digest_of_it():
    """NET-09 reads S3 Gateway endpoints' policies alone. Every task of a VPC holds every
    endpoint: 22 interface endpoints of 20 KB policies made each task's record larger than
    DynamoDB's 400 KB item, and the whole sweep page failed on every receive."""
    from fargate_audit.stores import record

    big = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*", "Sid": "x" * 19_000}
        ],
    }
    raw = bundle()
    raw["vpc"]["vpc_endpoints"] = [
        vpc_endpoint("vpce-0s3000000000000001", "s3", "Gateway", route_tables=[RTB_PRIVATE]),
        *(vpc_endpoint(f"vpce-0if{n:014d}", f"svc{n}", policy=big) for n in range(50)),
    ]
    posture = build_posture(raw)
    s3, *others = sorted(posture["network"]["vpc_endpoints"], key=lambda e: e["service"] != "s3")
    assert s3["policy"] == S3_POLICY and "policy_digest" not in s3
    assert all(e["policy"] is None and e["policy_digest"].startswith("sha256:") for e in others)
    assert len({e["policy_digest"] for e in others}) == 1  # the same document, the same digest
    changed = copy.deepcopy(raw)
    changed["vpc"]["vpc_endpoints"][1]["PolicyDocument"] = json.dumps({**big, "Version": "2008-10-17"})
    digests = [e.get("policy_digest") for e in build_posture(changed)["network"]["vpc_endpoints"]]
    assert digests != [e.get("policy_digest") for e in posture["network"]["vpc_endpoints"]]
    item = record.latest_item(
        posture, [], digest="d", cause={}, task_version=1, observed_at="2026-01-01T00:00:00Z", rev=1, deps=[]
    )
    assert record.item_size(item) < 100_000
    # history compares policies by digest: a posture recorded when every endpoint kept its
    # document (before this change) is no change, and another document is one
    from fargate_audit.core.facts import HISTORY_PATHS

    (read,) = [read for path, read in HISTORY_PATHS if path == "network.vpc_endpoints"]
    recorded_before = copy.deepcopy(posture)
    for endpoint in recorded_before["network"]["vpc_endpoints"]:
        if endpoint.get("policy_digest"):
            endpoint["policy"] = copy.deepcopy(big)
            del endpoint["policy_digest"]
    assert read(recorded_before) == read(posture)
    assert read(build_posture(changed)) != read(posture)


@pytest.mark.parametrize(
    ("state", "kept"),
    [
        ("available", True),
        ("Available", True),
        ("pendingAcceptance", True),
        ("PendingAcceptance", True),
        ("pending", True),
        ("Partial", True),
        ("deleted", False),
        ("Deleted", False),
        ("deleting", False),
        ("failed", False),
        ("Failed", False),
        ("rejected", False),
        ("expired", False),
        ("Expired", False),
    ],
)
def test_vpc_endpoints_in_unusable_states_are_dropped(state, kept):
    raw = bundle()
    raw["vpc"]["vpc_endpoints"] = [vpc_endpoint("vpce-0s3000000000000001", "s3", "Gateway", state=state)]
    assert len(build_posture(raw)["network"]["vpc_endpoints"]) == int(kept)


def test_invalid_endpoint_policy_gives_policy_error_and_no_policy():
    raw = bundle()
    raw["vpc"]["vpc_endpoints"] = [
        vpc_endpoint("vpce-0s3000000000000001", "s3", "Gateway", policy="{not json")
    ]
    (ep,) = build_posture(raw)["network"]["vpc_endpoints"]
    assert ep["policy"] is None
    assert ep["policy_error"].startswith("PolicyDocument is not valid JSON")


@pytest.mark.parametrize(
    ("name", "service"),
    [
        ("com.amazonaws.eu-west-1.s3", "s3"),
        ("com.amazonaws.us-gov-west-1.ecr.dkr", "ecr.dkr"),
        ("cn.com.amazonaws.cn-north-1.ecr.api", "ecr.api"),
        ("com.amazonaws.vpce.eu-west-1.vpce-svc-0123456789abcdef0", None),
        ("aws.sagemaker.eu-west-1.notebook", None),
        (None, None),
    ],
)
def test_endpoint_service_is_the_part_after_the_region(name, service):
    assert endpoint_service(name) == service


def test_vpc_endpoints_call_error_maps_to_vpc_endpoints_fact():
    raw = bundle()
    raw["vpc"]["vpc_endpoints"] = []
    raw["errors"] = {"vpc_endpoints": "DescribeVpcEndpoints: UnauthorizedOperation: denied"}
    assert build_posture(raw)["errors"] == {
        "vpc_endpoints": "DescribeVpcEndpoints: UnauthorizedOperation: denied"
    }


# --- ENI failures -----------------------------------------------------------------------------

NETWORK_FACTS = {
    "eni", "security_groups", "route_table", "egress", "nacl", "flow_logs", "vpc_endpoints",
    "dns_query_logging", "load_balancers", "web_acl",
}  # fmt: skip


def test_vanished_eni_puts_every_network_fact_in_error():
    raw = bundle()
    raw["eni"] = None
    raw["vpc"] = None
    raw["errors"] = {"eni": f"DescribeNetworkInterfaces: {ENI} not found (vanished)"}
    p = build_posture(raw)
    assert set(p["errors"]) == NETWORK_FACTS
    assert p["errors"]["eni"] == f"DescribeNetworkInterfaces: {ENI} not found (vanished)"
    assert all("not found (vanished)" in p["errors"][f] for f in NETWORK_FACTS)
    net = p["network"]
    assert (net["eni_id"], net["subnet_id"], net["private_ip"]) == (ENI, SUBNET, "10.0.1.25")
    assert net["public_address"] == {"ipv4": False, "ipv6": False}
    assert net["security_groups"] == [] and net["vpc_endpoints"] == []
    # container facts are unaffected
    assert p["containers"] and "containers" not in p["errors"]


def test_task_without_eni_attachment_is_an_eni_error():
    raw = bundle()
    raw["task"]["attachments"] = []
    p = build_posture(raw)
    assert set(p["errors"]) == NETWORK_FACTS
    assert "attachment" in p["errors"]["eni"]


def test_eni_absent_without_recorded_error_is_still_an_error():
    raw = bundle()
    raw["eni"] = None
    assert set(build_posture(raw)["errors"]) == NETWORK_FACTS


def test_vpc_absent_with_eni_present_spoils_every_vpc_fact():
    raw = bundle()
    raw["vpc"] = None
    p = build_posture(raw)
    # a web ACL is read only for a known exposure: unknown exposures are the load_balancers error
    assert set(p["errors"]) == NETWORK_FACTS - {"eni", "web_acl"}
    assert p["network"]["eni_id"] == ENI


# --- determinism and purity -------------------------------------------------------------------


def test_posture_is_json_serialisable_deterministic_and_order_independent():
    def two_group_bundle():
        raw = bundle()
        raw["eni"]["Groups"].append({"GroupId": SG_DEFAULT, "GroupName": "default"})
        return raw

    first = build_posture(two_group_bundle())
    assert json.dumps(first) == json.dumps(build_posture(two_group_bundle()))
    raw = two_group_bundle()
    rng = random.Random(3)
    raw["task_definition"]["containerDefinitions"].reverse()
    raw["eni"]["Groups"].reverse()
    for key in ("security_groups", "route_tables", "network_acls", "vpc_endpoints", "flow_logs"):
        rng.shuffle(raw["vpc"][key])
    for acl in raw["vpc"]["network_acls"]:
        rng.shuffle(acl["Entries"])
    assert build_posture(raw) == first


def test_build_posture_does_not_mutate_its_input():
    raw = bundle()
    before = copy.deepcopy(raw)
    posture = build_posture(raw)
    assert raw == before
    posture["network"]["vpc_endpoints"][2]["policy"]["Statement"].clear()
    assert raw == before


def test_posture_module_imports_no_io_or_clock():
    source = Path(importlib.import_module("fargate_audit.core.posture").__file__).read_text()
    tree = ast.parse(source)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
            imported |= {f"{node.module}.{a.name}" for a in node.names}
    assert not imported & {"boto3", "botocore", "os", "time", "fargate_audit.edge.collect"}
    assert "fargate_audit.edge.collect" not in imported and "collect" not in imported
    assert ".now(" not in source and "os.environ" not in source


# --- Resolver query logging (EGR-02) ---------------------------------------------------------


def test_query_log_associations_of_the_vpc_become_query_log_configs():
    raw = bundle()
    raw["vpc"]["query_log_associations"] = [
        query_log_association("rqlca-0b", "FAILED"),
        query_log_association("rqlca-0a", "ACTIVE"),
        query_log_association("rqlca-0c", "ACTIVE", vpc="vpc-0other0000000000"),
    ]
    p = build_posture(raw)
    assert p["network"]["query_log_configs"] == [
        {"id": "rqlca-0a", "config_id": "rqlc-0f1e2d3c4b5a69788", "status": "ACTIVE"},
        {"id": "rqlca-0b", "config_id": "rqlc-0f1e2d3c4b5a69788", "status": "FAILED"},
    ]
    assert "dns_query_logging" not in p["errors"]


def test_denied_query_log_listing_is_a_dns_query_logging_error():
    raw = bundle()
    raw["vpc"]["query_log_associations"] = []
    denied = "ListResolverQueryLogConfigAssociations: AccessDeniedException: no"
    raw["errors"] = {"query_log_associations": denied}
    p = build_posture(raw)
    assert p["errors"] == {
        "dns_query_logging": "ListResolverQueryLogConfigAssociations: AccessDeniedException: no"
    }
    assert p["network"]["query_log_configs"] == []


def test_query_log_associations_absent_from_the_bundle_are_an_error_not_an_empty_list():
    raw = bundle()
    del raw["vpc"]["query_log_associations"]
    assert set(build_posture(raw)["errors"]) == {"dns_query_logging"}


def test_a_timestamp_past_the_calendar_in_utc_is_kept_as_given_not_raised():
    """ "9999-12-31T23:59:59-01:00" matches an ISO pattern but is past year 9999 in UTC:
    converting it raised OverflowError, so the task event failed every retry."""
    raw = bundle()
    raw["task"]["startedAt"] = "9999-12-31T23:59:59-01:00"
    assert build_posture(raw)["started_at"] == "9999-12-31T23:59:59-01:00"

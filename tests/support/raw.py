"""Raw task bundles (docs/design.md section 1) in the shapes boto3 returns, for tests that
call ``fargate_audit.core.posture.build_posture``.

The EC2/ECS part (constants, ``api_task`` ... ``bundle``, ``rt``, ``sg``) is a verbatim copy
of tests/unit/test_posture.py's builders (field names checked there against botocore's
ec2/ecs models), so that module may import them from here without changing an assertion.
The Elastic Load Balancing part builds ``vpc["load_balancing"]`` (core/ingress.py): target
groups with their ``Targets`` (DescribeTargetHealth ``TargetHealthDescriptions``), load
balancers (DescribeLoadBalancers) with ``Listeners`` (DescribeListeners) and their ``Rules``
(DescribeRules), DescribeSubnets items and WAF web ACL ARNs.
"""

import json

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


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


# --- Elastic Load Balancing (v2) and WAF ------------------------------------------------------

ELB = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}"
ALB = f"{ELB}:loadbalancer/app/web-prod/50dc6c495c0c9188"
ALB_B = f"{ELB}:loadbalancer/app/api-prod/6d0ecf831eec9f09"
NLB = f"{ELB}:loadbalancer/net/edge-prod/1f2e3d4c5b6a7980"
GWLB = f"{ELB}:loadbalancer/gwy/inspect/7c6b5a4f3e2d1c0b"
TG_WEB = f"{ELB}:targetgroup/web/73e2d6bc24d8a067"
TG_API = f"{ELB}:targetgroup/api/943f017f100becff"
TG_EDGE = f"{ELB}:targetgroup/edge/2453ed029918f21f"
TG_OTHER = f"{ELB}:targetgroup/other/5d1b6c1d7e2f3a4b"
WEB_ACL = f"arn:aws:wafv2:{REGION}:{ACCOUNT}:regional/webacl/web/a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"
SG_ALB = "sg-0a11b22c33d44e55f"
SG_NLB = "sg-0b66c77d88e99f00a"
LB_SUBNET = PUBLIC_SUBNET  # 10.0.0.0/24, eu-west-1a, default route to the internet gateway
LB_SUBNET_B = "subnet-0bb22cc33dd44ee55"  # 10.0.2.0/24, eu-west-1b
TASK_IP = "10.0.1.25"  # the ENI's private IPv4 address (eni())
TASK_IPV6 = "2a05:d018:abcd:1::25"
VPC_IPV6 = "2a05:d018:abcd::/56"
OTHER_VPC = "vpc-0f9e8d7c6b5a40312"

# TargetHealth.Reason that AWS gives with each state (none for healthy).
_TARGET_REASONS = {
    "initial": "Elb.RegistrationInProgress",
    "unhealthy": "Target.FailedHealthChecks",
    "unused": "Target.NotInUse",
    "draining": "Target.DeregistrationInProgress",
    "unavailable": "Target.HealthCheckDisabled",
    "unhealthy.draining": "Target.FailedHealthChecks",
}


def target(address=TASK_IP, port=8080, state="healthy", zone="eu-west-1a"):
    """One DescribeTargetHealth ``TargetHealthDescriptions[]`` item."""
    health = {"State": state}
    if state in _TARGET_REASONS:
        health["Reason"] = _TARGET_REASONS[state]
        health["Description"] = f"target is {state}"
    return {
        "Target": {"Id": address, "Port": port, "AvailabilityZone": zone},
        "HealthCheckPort": str(port),
        "TargetHealth": health,
    }


def target_group(
    arn=TG_WEB,
    protocol="HTTP",
    port=80,
    load_balancers=(ALB,),
    targets=(),
    target_type="ip",
    vpc=VPC,
    ip_address_type="ipv4",
):
    """One DescribeTargetGroups ``TargetGroups[]`` item with its ``Targets``."""
    group = {
        "TargetGroupArn": arn,
        "TargetGroupName": arn.split("/")[-2],
        "Protocol": protocol,
        "Port": port,
        "VpcId": vpc,
        "HealthCheckProtocol": "HTTP" if protocol in ("HTTP", "HTTPS") else "TCP",
        "HealthCheckPort": "traffic-port",
        "HealthCheckEnabled": True,
        "HealthCheckIntervalSeconds": 30,
        "HealthCheckTimeoutSeconds": 5,
        "HealthyThresholdCount": 5,
        "UnhealthyThresholdCount": 2,
        "LoadBalancerArns": list(load_balancers),
        "TargetType": target_type,
        "IpAddressType": ip_address_type,
        "Targets": list(targets),
    }
    if protocol in ("HTTP", "HTTPS"):
        group |= {"HealthCheckPath": "/health", "Matcher": {"HttpCode": "200"}, "ProtocolVersion": "HTTP1"}
    return group


def forward(group_arn=TG_WEB):
    """A forward action to one target group, as AWS describes it (both spellings)."""
    return {
        "Type": "forward",
        "TargetGroupArn": group_arn,
        "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": group_arn, "Weight": 1}],
            "TargetGroupStickinessConfig": {"Enabled": False},
        },
    }


def weighted_forward(*weights):
    """A forward action over several target groups: ``(arn, weight)`` pairs, weight None
    meaning the ``Weight`` key is absent."""
    entries = [
        {"TargetGroupArn": arn} | ({} if weight is None else {"Weight": weight}) for arn, weight in weights
    ]
    return {
        "Type": "forward",
        "ForwardConfig": {"TargetGroups": entries, "TargetGroupStickinessConfig": {"Enabled": False}},
    }


def redirect_to_https():
    return {
        "Type": "redirect",
        "Order": 1,
        "RedirectConfig": {
            "Protocol": "HTTPS",
            "Port": "443",
            "Host": "#{host}",
            "Path": "/#{path}",
            "Query": "#{query}",
            "StatusCode": "HTTP_301",
        },
    }


def fixed_response(status="404"):
    return {
        "Type": "fixed-response",
        "Order": 1,
        "FixedResponseConfig": {"MessageBody": "none", "StatusCode": status, "ContentType": "text/plain"},
    }


def listener_rule(listener_arn, priority, actions, path="/api/*"):
    """One DescribeRules ``Rules[]`` item (``priority`` "default" for the default rule)."""
    default = priority == "default"
    rule_id = "default0000000000" if default else f"{int(priority):016x}"
    return {
        "RuleArn": listener_arn.replace(":listener/", ":listener-rule/") + f"/{rule_id}",
        "Priority": str(priority),
        "Conditions": []
        if default
        else [{"Field": "path-pattern", "Values": [path], "PathPatternConfig": {"Values": [path]}}],
        "Actions": list(actions),
        "IsDefault": default,
    }


def listener_arn(lb_arn, port, protocol="HTTPS"):
    """A listener ARN under the load balancer's (one id per port and protocol)."""
    kind_name_id = lb_arn.split(":loadbalancer/")[1]
    listener_id = f"{port:05d}{sum(map(ord, protocol)):04d}0000000"[:16]
    return f"{ELB}:listener/{kind_name_id}/{listener_id}"


def listener(lb_arn, port, protocol, default_actions, rules=None):
    """One DescribeListeners ``Listeners[]`` item; an application load balancer's carries
    ``Rules`` (its default rule first, then ``rules``: ``(priority, actions)`` pairs)."""
    arn = listener_arn(lb_arn, port, protocol)
    item = {
        "ListenerArn": arn,
        "LoadBalancerArn": lb_arn,
        "Port": port,
        "Protocol": protocol,
        "DefaultActions": list(default_actions),
    }
    if protocol in ("HTTPS", "TLS"):
        item["Certificates"] = [{"CertificateArn": f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/0c1d2e3f"}]
        item["SslPolicy"] = "ELBSecurityPolicy-TLS13-1-2-2021-06"
    if ":loadbalancer/app/" in lb_arn:
        item["Rules"] = [
            *(listener_rule(arn, priority, actions) for priority, actions in rules or ()),
            listener_rule(arn, "default", default_actions),
        ]
    return item


def load_balancer(
    arn=ALB,
    kind="application",
    scheme="internet-facing",
    state="active",
    ip_address_type="ipv4",
    subnets=(LB_SUBNET,),
    security_groups=(SG_ALB,),
    listeners=(),
):
    """One DescribeLoadBalancers ``LoadBalancers[]`` item with its ``Listeners``."""
    name = arn.split("/")[-2]
    zones = {LB_SUBNET: "eu-west-1a", LB_SUBNET_B: "eu-west-1b"}
    item = {
        "LoadBalancerArn": arn,
        "DNSName": f"{name}-1234567890.{REGION}.elb.amazonaws.com",
        "CanonicalHostedZoneId": "Z32O12XQLNTSW2",
        "CreatedTime": "2024-05-01T09:00:00+00:00",
        "LoadBalancerName": name,
        "Scheme": scheme,
        "VpcId": VPC,
        "State": {"Code": state},
        "Type": kind,
        "AvailabilityZones": [
            {"ZoneName": zones.get(subnet, "eu-west-1c"), "SubnetId": subnet, "LoadBalancerAddresses": []}
            for subnet in subnets
        ],
        "SecurityGroups": list(security_groups),
        "IpAddressType": ip_address_type,
        "Listeners": list(listeners),
    }
    if state == "failed":
        item["State"]["Reason"] = "insufficient capacity"
    return item


def subnet(subnet_id, cidr, zone="eu-west-1a", ipv6=None):
    """One DescribeSubnets ``Subnets[]`` item."""
    item = {
        "AvailabilityZone": zone,
        "AvailableIpAddressCount": 250,
        "CidrBlock": cidr,
        "DefaultForAz": False,
        "MapPublicIpOnLaunch": False,
        "State": "available",
        "SubnetId": subnet_id,
        "VpcId": VPC,
        "OwnerId": ACCOUNT,
        "AssignIpv6AddressOnCreation": False,
        "Ipv6CidrBlockAssociationSet": [],
        "SubnetArn": f"arn:aws:ec2:{REGION}:{ACCOUNT}:subnet/{subnet_id}",
    }
    if ipv6:
        item["Ipv6CidrBlockAssociationSet"] = [
            {
                "AssociationId": f"subnet-cidr-assoc-{subnet_id[7:]}",
                "Ipv6CidrBlock": ipv6,
                "Ipv6CidrBlockState": {"State": "associated"},
            }
        ]
    return item


def load_balancing(target_groups=(), load_balancers=(), web_acls=None, attributes=None, subnets=None):
    """A VPC's ``load_balancing`` (core/ingress.py): the load balancers by ARN; ``subnets``
    default to both load-balancer subnets, with IPv6 blocks."""
    if subnets is None:
        subnets = [
            subnet(LB_SUBNET, "10.0.0.0/24", "eu-west-1a", "2a05:d018:abcd:0::/64"),
            subnet(LB_SUBNET_B, "10.0.2.0/24", "eu-west-1b", "2a05:d018:abcd:2::/64"),
        ]
    return {
        "target_groups": list(target_groups),
        "load_balancers": {lb["LoadBalancerArn"]: lb for lb in load_balancers},
        "target_group_attributes": dict(attributes or {}),
        "subnets": {s["SubnetId"]: s for s in subnets},
        "web_acls": dict(web_acls or {}),
        "errors": {},
        "web_acl_errors": {},
    }

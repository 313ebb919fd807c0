"""Emulated AWS estates for the demo, the end-to-end tests and the benchmarks.

Builds ECS-on-Fargate estates in the moto emulator, either in-process (inside
``moto.mock_aws``) or on a moto server (boto3 reaches it through ``AWS_ENDPOINT_URL``). It
refuses to run anywhere else: these functions create resources and must never touch a
real account.

The product is written for real AWS; where moto behaves differently, this builder (and
only this builder) makes the emulated estate look like what AWS would return
(``/work/shared/notes/moto.md``):

- every container definition gets container-level ``memory`` and every VPC
  ``EnableDnsHostnames`` (moto's RunTask crashes otherwise);
- ``assignPublicIp`` is ignored by moto: public tasks get an Elastic IP associated with
  their ENI, as Fargate would give them a public address;
- tasks in dual-stack subnets get an IPv6 address on their ENI (Fargate does so when the
  account's ``dualStackIPv6`` setting is on; moto never does);
- task states are frozen at RUNNING (moto advances them on every DescribeTasks);
- in-process, task ENIs take an address inside their subnet, one no other task of the
  subnet holds (moto picks any 10.x, or any address of the block, repeats included);
- every task is started with an explicit ``platformVersion``: moto echoes the requested
  value in DescribeTasks, but reports none when none was requested (AWS always does);
- the default network ACL of an IPv6 VPC gets the ``::/0`` allow entries AWS adds;
- moto services never start tasks, so service tasks are started with RunTask,
  ``group="service:NAME"`` and an ``ecs-svc/...`` ``startedBy``, as the scheduler does.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import random
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlparse

from botocore.config import Config

from fargate_audit.app import flowlogs

CANARY_SECRET = "CANARY-SECRET-VALUE-DO-NOT-LEAK"  # noqa: S105 (a canary, not a secret)
"""Value of the demo's plain-text secret variables: it must never appear in any output."""

BUILDER_CONFIG = Config(retries={"total_max_attempts": 1})
TASK_STATE_MODEL = "ecs::task"
FROZEN = {"progression": "manual", "times": 10**9}
WORLD4 = "0.0.0.0/0"
WORLD6 = "::/0"
RUN_TASK_MAX_COUNT = 10  # RunTask starts at most 10 tasks per call
DEMO_QUERY_LOG_GROUP = "/vpc/prod/dns-queries"  # Resolver query logs of the demo's prod VPC
DEMO_FLOW_LOG_GROUP = "/vpc/prod/flow-logs"  # the VPC flow log of the demo's prod VPC


@dataclass
class EstateInfo:
    """Names and ids of what a builder created (for tests, the demo's narrative, benches)."""

    account_id: str
    region: str
    vpcs: dict[str, str] = field(default_factory=dict)  # name -> vpc id
    subnets: dict[str, str] = field(default_factory=dict)  # name -> subnet id
    route_tables: dict[str, str] = field(default_factory=dict)
    network_acls: dict[str, str] = field(default_factory=dict)
    security_groups: dict[str, str] = field(default_factory=dict)  # "vpc/name" -> sg id
    nat_gateways: dict[str, str] = field(default_factory=dict)
    vpc_endpoints: dict[str, str] = field(default_factory=dict)
    clusters: dict[str, str] = field(default_factory=dict)  # name -> arn
    services: dict[str, str] = field(default_factory=dict)  # "cluster/service:NAME" -> arn
    task_definitions: dict[str, str] = field(default_factory=dict)  # family -> arn
    workloads: dict[str, list[str]] = field(default_factory=dict)  # "cluster/group" -> arns
    skipped_tasks: dict[str, str] = field(default_factory=dict)  # arn -> why it is skipped
    load_balancers: dict[str, str] = field(default_factory=dict)  # name -> arn
    target_groups: dict[str, str] = field(default_factory=dict)  # name -> arn
    web_acls: dict[str, str] = field(default_factory=dict)  # name -> arn
    narrative: list[str] = field(default_factory=list)  # one line per notable feature
    canary: str = CANARY_SECRET

    @property
    def running_fargate_tasks(self) -> list[str]:
        return [arn for arns in self.workloads.values() for arn in arns]


# --------------------------------------------------------------------------- emulator


_AWS_DOMAINS = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws", ".c2s.ic.gov", ".sc2s.sgov.gov")


def emulator_endpoint(client) -> str | None:
    """The moto server's endpoint, or None when moto runs in-process.

    Raises RuntimeError when the client would reach real AWS. (Any other endpoint is taken
    for a moto server; the builders' first call, freeze_task_states, only succeeds there.)
    """
    url = client.meta.endpoint_url
    host = urlparse(url).hostname or ""
    if not host.endswith(_AWS_DOMAINS):
        return url.rstrip("/")
    try:
        from moto.core.models import botocore_stubber
    except ImportError:  # moto is the demo extra
        botocore_stubber = None
    if botocore_stubber is not None and botocore_stubber.enabled:
        return None
    raise RuntimeError(
        f"refusing to build an emulated estate against {url}: start moto (mock_aws) or "
        "set AWS_ENDPOINT_URL to a moto server"
    )


def _moto_api(endpoint: str, path: str, payload: dict | None = None) -> None:
    request = urllib.request.Request(  # noqa: S310 (the emulator's http URL)
        f"{endpoint}/moto-api/{path}",
        data=json.dumps(payload or {}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (see above)
        response.read()


def freeze_task_states(client) -> None:
    """Keep every ECS task in its current state however often it is described."""
    endpoint = emulator_endpoint(client)
    if endpoint is None:
        from moto.moto_api import state_manager

        state_manager.set_transition(model_name=TASK_STATE_MODEL, transition=FROZEN)
    else:
        _moto_api(
            endpoint, "state-manager/set-transition", {"model_name": TASK_STATE_MODEL, "transition": FROZEN}
        )


def release_task_states(client) -> None:
    """Undo freeze_task_states (moto's state manager is process-wide)."""
    endpoint = emulator_endpoint(client)
    if endpoint is None:
        from moto.moto_api import state_manager

        state_manager.unset_transition(model_name=TASK_STATE_MODEL)
    else:
        _moto_api(endpoint, "state-manager/unset-transition", {"model_name": TASK_STATE_MODEL})


def reset_server(endpoint: str) -> None:
    """Drop every resource of a moto server."""
    _moto_api(endpoint, "reset")


@contextmanager
def _task_enis_in_subnet_range(in_process: bool, issued: dict[str, set[str]]) -> Iterator[None]:
    """In-process, make moto give task ENIs an address of their subnet (as AWS does), one
    no other task ENI of the subnet holds, outside the five addresses AWS reserves (the
    first four and the last). moto draws any address of the block, repeats included: two
    tasks sharing an address would both stand behind a target registered at it.
    ``issued`` holds the addresses given so far, by subnet block."""
    if not in_process:
        yield
        return
    import moto.ec2.models.elastic_network_interfaces as eni_models
    import moto.ecs.models as ecs_models

    original_ecs, original_eni = ecs_models.random_private_ip, eni_models.random_private_ip

    def distinct(cidr: str | None = None, ipv6: bool = False) -> str:
        if not cidr or ipv6:
            return original_eni(cidr, ipv6=ipv6)
        return _free_address(ipaddress.IPv4Network(cidr), issued.setdefault(cidr, set()))

    ecs_models.random_private_ip = lambda *args, **kwargs: None
    eni_models.random_private_ip = distinct
    try:
        yield
    finally:
        ecs_models.random_private_ip, eni_models.random_private_ip = original_ecs, original_eni


def _free_address(block: ipaddress.IPv4Network, taken: set[str]) -> str:
    usable = block.num_addresses - 5
    if len(taken) >= usable:
        raise ValueError(f"subnet {block} has no free address left for another task")
    while True:
        address = str(block.network_address + 4 + random.randrange(usable))
        if address not in taken:
            taken.add(address)
            return address


def _digest(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def _container(name, image, logs=True, readonly=True, ports=(), environment=None, **extra) -> dict:
    """A container definition; ``readonly`` None leaves readonlyRootFilesystem unset."""
    container = {"name": name, "image": image, "awslogs": logs, **extra}
    if readonly is not None:
        container["readonlyRootFilesystem"] = readonly
    if ports:
        container["portMappings"] = [{"containerPort": port} for port in ports]
    if environment:
        container["environment"] = [{"name": key, "value": value} for key, value in environment.items()]
    return container


def _tags(resource_type: str, name: str) -> list[dict]:
    return [{"ResourceType": resource_type, "Tags": [{"Key": "Name", "Value": name}]}]


def _ports(protocol: str, low: int, high: int, cidrs4=(), cidrs6=(), groups=(), description="") -> dict:
    permission: dict = {"IpProtocol": protocol}
    if protocol != "-1":
        permission.update(FromPort=low, ToPort=high)
    if cidrs4:
        permission["IpRanges"] = [{"CidrIp": c, "Description": description} for c in cidrs4]
    if cidrs6:
        permission["Ipv6Ranges"] = [{"CidrIpv6": c, "Description": description} for c in cidrs6]
    if groups:
        permission["UserIdGroupPairs"] = [{"GroupId": g, "Description": description} for g in groups]
    return permission


# --------------------------------------------------------------------------- builder


class _Builder:
    """Thin helpers over the EC2 and ECS calls an estate needs; records ids in `info`."""

    def __init__(self, session, region: str):
        self.session = session
        self.ec2 = session.client("ec2", region_name=region, config=BUILDER_CONFIG)
        self.ecs = session.client("ecs", region_name=region, config=BUILDER_CONFIG)
        self.elbv2 = session.client("elbv2", region_name=region, config=BUILDER_CONFIG)
        self.in_process = emulator_endpoint(self.ec2) is None
        freeze_task_states(self.ecs)  # before anything is created: fails unless on moto
        account = session.client("sts", region_name=region, config=BUILDER_CONFIG).get_caller_identity()
        self.info = EstateInfo(account_id=account["Account"], region=region)
        self.region = region
        self._dual_stack_subnets: set[str] = set()
        self._issued_addresses: dict[str, set[str]] = {}

    # -- network -----------------------------------------------------------

    def vpc(self, name: str, cidr: str, ipv6: bool = False) -> str:
        vpc = self.ec2.create_vpc(
            CidrBlock=cidr, AmazonProvidedIpv6CidrBlock=ipv6, TagSpecifications=_tags("vpc", name)
        )["Vpc"]
        vpc_id = vpc["VpcId"]
        self.ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": True})
        self.ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
        self.info.vpcs[name] = vpc_id
        if ipv6:
            self._add_default_nacl_ipv6_entries(vpc_id)
        return vpc_id

    def vpc_ipv6_cidr(self, vpc_id: str) -> ipaddress.IPv6Network:
        vpc = self.ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]
        return ipaddress.IPv6Network(vpc["Ipv6CidrBlockAssociationSet"][0]["Ipv6CidrBlock"])

    def _add_default_nacl_ipv6_entries(self, vpc_id: str) -> None:
        acls = self.ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["NetworkAcls"]
        default = next(acl for acl in acls if acl["IsDefault"])
        for egress in (False, True):
            self.ec2.create_network_acl_entry(
                NetworkAclId=default["NetworkAclId"],
                RuleNumber=101,
                Protocol="-1",
                RuleAction="allow",
                Egress=egress,
                Ipv6CidrBlock=WORLD6,
            )

    def internet_gateway(self, vpc_id: str, name: str) -> str:
        igw = self.ec2.create_internet_gateway(TagSpecifications=_tags("internet-gateway", name))
        igw_id = igw["InternetGateway"]["InternetGatewayId"]
        self.ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
        return igw_id

    def subnet(self, name: str, vpc_id: str, cidr: str, az: str, ipv6_cidr=None) -> str:
        kwargs = {"Ipv6CidrBlock": str(ipv6_cidr)} if ipv6_cidr else {}
        subnet_id = self.ec2.create_subnet(
            VpcId=vpc_id,
            CidrBlock=cidr,
            AvailabilityZone=f"{self.region}{az}",
            TagSpecifications=_tags("subnet", name),
            **kwargs,
        )["Subnet"]["SubnetId"]
        if ipv6_cidr:
            self.ec2.modify_subnet_attribute(SubnetId=subnet_id, AssignIpv6AddressOnCreation={"Value": True})
            self._dual_stack_subnets.add(subnet_id)
        self.info.subnets[name] = subnet_id
        return subnet_id

    def route_table(self, name: str, vpc_id: str, subnet_ids: list[str], routes: list[dict]) -> str:
        rt_id = self.ec2.create_route_table(VpcId=vpc_id, TagSpecifications=_tags("route-table", name))[
            "RouteTable"
        ]["RouteTableId"]
        for route in routes:
            self.ec2.create_route(RouteTableId=rt_id, **route)
        for subnet_id in subnet_ids:
            self.ec2.associate_route_table(RouteTableId=rt_id, SubnetId=subnet_id)
        self.info.route_tables[name] = rt_id
        return rt_id

    def nat_gateway(self, name: str, subnet_id: str) -> str:
        allocation = self.ec2.allocate_address(Domain="vpc")["AllocationId"]
        nat_id = self.ec2.create_nat_gateway(
            SubnetId=subnet_id, AllocationId=allocation, TagSpecifications=_tags("natgateway", name)
        )["NatGateway"]["NatGatewayId"]
        self.info.nat_gateways[name] = nat_id
        return nat_id

    def network_acl(self, name: str, vpc_id: str, subnet_ids: list[str], inbound: list[tuple]) -> str:
        """inbound: (rule number, protocol, action, cidr, from, to); all outbound allowed."""
        acl_id = self.ec2.create_network_acl(VpcId=vpc_id, TagSpecifications=_tags("network-acl", name))[
            "NetworkAcl"
        ]["NetworkAclId"]
        entries = [(False, *entry) for entry in inbound] + [(True, 100, "-1", "allow", WORLD4, None, None)]
        for egress, number, protocol, action, cidr, low, high in entries:
            kwargs = {"Ipv6CidrBlock": cidr} if ":" in cidr else {"CidrBlock": cidr}
            if low is not None:
                kwargs["PortRange"] = {"From": low, "To": high}
            self.ec2.create_network_acl_entry(
                NetworkAclId=acl_id,
                RuleNumber=number,
                Protocol=protocol,
                RuleAction=action,
                Egress=egress,
                **kwargs,
            )
        acls = self.ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["NetworkAcls"]
        for association in (a for acl in acls for a in acl["Associations"]):
            if association["SubnetId"] in subnet_ids:
                self.ec2.replace_network_acl_association(
                    AssociationId=association["NetworkAclAssociationId"], NetworkAclId=acl_id
                )
        self.info.network_acls[name] = acl_id
        return acl_id

    def security_group(
        self, vpc_name: str, name: str, description: str, ingress=(), egress=None, vpc_id=None
    ) -> str:
        """egress None keeps AWS's default allow-all egress; a list replaces it."""
        vpc_id = vpc_id or self.info.vpcs[vpc_name]
        sg_id = self.ec2.create_security_group(
            GroupName=name,
            Description=description,
            VpcId=vpc_id,
            TagSpecifications=_tags("security-group", name),
        )["GroupId"]
        if ingress:
            self.ec2.authorize_security_group_ingress(GroupId=sg_id, IpPermissions=list(ingress))
        if egress is not None:
            current = self.ec2.describe_security_groups(GroupIds=[sg_id])["SecurityGroups"][0]
            if current["IpPermissionsEgress"]:
                self.ec2.revoke_security_group_egress(
                    GroupId=sg_id, IpPermissions=current["IpPermissionsEgress"]
                )
            if egress:
                self.ec2.authorize_security_group_egress(GroupId=sg_id, IpPermissions=list(egress))
        self.info.security_groups[f"{vpc_name}/{name}"] = sg_id
        return sg_id

    def default_security_group(self, vpc_name: str) -> str:
        groups = self.ec2.describe_security_groups(
            Filters=[
                {"Name": "vpc-id", "Values": [self.info.vpcs[vpc_name]]},
                {"Name": "group-name", "Values": ["default"]},
            ]
        )["SecurityGroups"]
        group_id = groups[0]["GroupId"]
        if not groups[0].get("IpPermissions"):  # moto leaves out AWS's "all from itself" rule
            self.ec2.authorize_security_group_ingress(
                GroupId=group_id,
                IpPermissions=[{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group_id}]}],
            )
        self.info.security_groups[f"{vpc_name}/default"] = group_id
        return group_id

    def endpoint(self, name: str, vpc_id: str, service: str, kind: str, **kwargs) -> str:
        if "PolicyDocument" in kwargs:
            kwargs["PolicyDocument"] = json.dumps(kwargs["PolicyDocument"])
        endpoint_id = self.ec2.create_vpc_endpoint(
            VpcId=vpc_id,
            ServiceName=service,
            VpcEndpointType=kind,
            TagSpecifications=_tags("vpc-endpoint", name),
            **kwargs,
        )["VpcEndpoint"]["VpcEndpointId"]
        self.info.vpc_endpoints[name] = endpoint_id
        return endpoint_id

    def flow_log(
        self,
        resource_id: str,
        resource_type: str,
        traffic: str,
        log_group: str,
        log_format: str | None = None,
    ) -> None:
        """A flow log to CloudWatch Logs (``log_format`` None: AWS's default format)."""
        self.ec2.create_flow_logs(
            ResourceIds=[resource_id],
            ResourceType=resource_type,
            TrafficType=traffic,
            LogDestinationType="cloud-watch-logs",
            LogGroupName=log_group,
            DeliverLogsPermissionArn=f"arn:aws:iam::{self.info.account_id}:role/vpc-flow-logs",
            **({"LogFormat": log_format} if log_format else {}),
        )

    # -- ECS -----------------------------------------------------------------

    def cluster(self, name: str, insights: str | None) -> str:
        settings = [{"name": "containerInsights", "value": insights}] if insights else []
        arn = self.ecs.create_cluster(clusterName=name, settings=settings)["cluster"]["clusterArn"]
        self.info.clusters[name] = arn
        return arn

    def task_definition(self, family: str, containers: list[dict], cpu="256", memory="512", **extra) -> str:
        definitions = []
        for container in containers:
            definition = {"essential": True, "memory": int(memory) // len(containers), **container}
            if definition.pop("awslogs", False):
                definition["logConfiguration"] = {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": f"/ecs/{family}",
                        "awslogs-region": self.region,
                        "awslogs-stream-prefix": container["name"],
                    },
                }
            definitions.append(definition)
        arn = self.ecs.register_task_definition(
            family=family,
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu=cpu,
            memory=memory,
            executionRoleArn=f"arn:aws:iam::{self.info.account_id}:role/ecsTaskExecutionRole",
            containerDefinitions=definitions,
            **extra,
        )["taskDefinition"]["taskDefinitionArn"]
        self.info.task_definitions[family] = arn
        return arn

    def service(
        self, cluster: str, name: str, family: str, subnets: list[str], groups: list[str], count: int
    ):
        arn = self.ecs.create_service(
            cluster=cluster,
            serviceName=name,
            taskDefinition=self.info.task_definitions[family],
            desiredCount=count,
            launchType="FARGATE",
            networkConfiguration={"awsvpcConfiguration": {"subnets": subnets, "securityGroups": groups}},
        )["service"]["serviceArn"]
        self.info.services[f"{cluster}/service:{name}"] = arn
        return arn

    def run_tasks(
        self,
        cluster: str,
        family: str,
        subnets: list[str],
        groups: list[str],
        count: int,
        platform_version: str,
        service: str | None = None,
        started_by: str = "",
        public_ip: bool = False,
        overrides: dict | None = None,
    ) -> list[str]:
        """Start `count` Fargate tasks spread over `subnets`, record them under their workload
        and return their ARNs."""
        group = f"service:{service}" if service else f"family:{family}"
        if service and not started_by:
            started_by = "ecs-svc/" + str(int(hashlib.sha256(service.encode()).hexdigest(), 16))[:19]
        request = {
            "cluster": cluster,
            "taskDefinition": self.info.task_definitions[family],
            "launchType": "FARGATE",
            "group": group,
            "startedBy": started_by,
            "platformVersion": platform_version,
            **({"overrides": overrides} if overrides else {}),
        }
        arns: list[str] = []
        for position, subnet in enumerate(subnets):
            share = count // len(subnets) + (position < count % len(subnets))
            for start in range(0, share, RUN_TASK_MAX_COUNT):
                batch = min(RUN_TASK_MAX_COUNT, share - start)
                arns += self._start(request, subnet, groups, batch, public_ip)
        self.info.workloads.setdefault(f"{cluster}/{group}", []).extend(arns)
        return arns

    def _start(self, request: dict, subnet: str, groups: list[str], count: int, public_ip: bool) -> list[str]:
        network = {"subnets": [subnet], "securityGroups": groups, "assignPublicIp": "DISABLED"}
        if public_ip:
            network["assignPublicIp"] = "ENABLED"
        with _task_enis_in_subnet_range(self.in_process, self._issued_addresses):
            tasks = self.ecs.run_task(
                **request, count=count, networkConfiguration={"awsvpcConfiguration": network}
            )["tasks"]
        for task in tasks:
            eni_id = _eni_of(task)
            if public_ip:  # moto ignores assignPublicIp
                allocation = self.ec2.allocate_address(Domain="vpc")["AllocationId"]
                self.ec2.associate_address(AllocationId=allocation, NetworkInterfaceId=eni_id)
            if subnet in self._dual_stack_subnets:
                self.ec2.assign_ipv6_addresses(NetworkInterfaceId=eni_id, Ipv6AddressCount=1)
        return [task["taskArn"] for task in tasks]

    # -- load balancers ------------------------------------------------------

    def load_balancer(self, name: str, kind: str, scheme: str, subnets: list[str], groups: list[str]) -> str:
        request = {"Name": name, "Type": kind, "Scheme": scheme, "Subnets": subnets}
        if groups:
            request["SecurityGroups"] = groups
        arn = self.elbv2.create_load_balancer(**request)["LoadBalancers"][0]["LoadBalancerArn"]
        self.info.load_balancers[name] = arn
        return arn

    def target_group(self, name: str, protocol: str, port: int, vpc_id: str) -> str:
        arn = self.elbv2.create_target_group(
            Name=name, Protocol=protocol, Port=port, VpcId=vpc_id, TargetType="ip"
        )["TargetGroups"][0]["TargetGroupArn"]
        self.info.target_groups[name] = arn
        return arn

    def register(self, target_group: str, cluster: str, task_arns: list[str], port: int) -> None:
        """Register the tasks' private IPv4 addresses at ``port`` (as ECS does for a service)."""
        tasks = self.ecs.describe_tasks(cluster=cluster, tasks=task_arns)["tasks"]
        enis = self.ec2.describe_network_interfaces(NetworkInterfaceIds=[_eni_of(t) for t in tasks])
        targets = [{"Id": eni["PrivateIpAddress"], "Port": port} for eni in enis["NetworkInterfaces"]]
        self.elbv2.register_targets(TargetGroupArn=target_group, Targets=targets)

    def listener(self, load_balancer: str, protocol: str, port: int, action: dict, domain: str = "") -> str:
        request = {
            "LoadBalancerArn": load_balancer,
            "Protocol": protocol,
            "Port": port,
            "DefaultActions": [action],
        }
        if protocol in ("HTTPS", "TLS"):
            acm = self.session.client("acm", region_name=self.region, config=BUILDER_CONFIG)
            certificate = acm.request_certificate(DomainName=domain)["CertificateArn"]
            request["Certificates"] = [{"CertificateArn": certificate}]
        return self.elbv2.create_listener(**request)["Listeners"][0]["ListenerArn"]

    def web_acl(self, name: str, load_balancer: str) -> str:
        wafv2 = self.session.client("wafv2", region_name=self.region, config=BUILDER_CONFIG)
        visibility = {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True, "MetricName": name}
        arn = wafv2.create_web_acl(
            Name=name, Scope="REGIONAL", DefaultAction={"Allow": {}}, VisibilityConfig=visibility, Rules=[]
        )["Summary"]["ARN"]
        wafv2.associate_web_acl(WebACLArn=arn, ResourceArn=load_balancer)
        self.info.web_acls[name] = arn
        return arn


def _forward(target_group: str) -> dict:
    return {"Type": "forward", "TargetGroupArn": target_group}


def _eni_of(task: dict) -> str:
    for attachment in task.get("attachments", []):
        if attachment["type"] == "ElasticNetworkInterface":
            details = {d["name"]: d["value"] for d in attachment["details"]}
            return details["networkInterfaceId"]
    raise RuntimeError(f"emulator gave task {task['taskArn']} no ENI attachment")


# --------------------------------------------------------------------------- demo estate


def build_demo_estate(session, region: str) -> EstateInfo:
    """A realistic estate: two workload VPCs, four clusters, 31 running Fargate tasks.

    Every rule of the catalog is both FAILED and PASSED on some task (see the narrative).
    """
    b = _Builder(session, region)
    info = b.info
    account, ecr = info.account_id, f"{info.account_id}.dkr.ecr.{region}.amazonaws.com"
    logs = session.client("logs", region_name=region, config=BUILDER_CONFIG)
    for group in (DEMO_FLOW_LOG_GROUP, "/vpc/shared-services/flow-logs", DEMO_QUERY_LOG_GROUP):
        logs.create_log_group(logGroupName=group)

    # -- VPC "prod": public, NAT, firewall-inspected and isolated subnets --------
    prod = b.vpc("prod", "10.0.0.0/16")
    prod_igw = b.internet_gateway(prod, "prod-igw")
    public_a = b.subnet("prod-public-a", prod, "10.0.0.0/24", "a")
    public_b = b.subnet("prod-public-b", prod, "10.0.1.0/24", "b")
    nat_inspected = b.subnet("prod-nat-inspected-a", prod, "10.0.2.0/24", "a")
    firewall = b.subnet("prod-firewall-a", prod, "10.0.3.0/24", "a")
    private_a = b.subnet("prod-private-a", prod, "10.0.10.0/24", "a")
    private_b = b.subnet("prod-private-b", prod, "10.0.11.0/24", "b")
    inspected = b.subnet("prod-inspected-a", prod, "10.0.20.0/24", "a")
    isolated = b.subnet("prod-isolated-a", prod, "10.0.30.0/24", "a")
    nat_public = b.nat_gateway("prod-nat-a", public_a)
    nat_to_firewall = b.nat_gateway("prod-nat-inspected-a", nat_inspected)
    # moto has no Network Firewall endpoint ids: a Gateway Load Balancer endpoint stands in
    # for the inspection appliance (AWS reports both as vpce- route targets).
    gwlb = b.endpoint(
        "prod-inspection-gwlbe",
        prod,
        f"com.amazonaws.vpce.{region}.vpce-svc-0a1b2c3d4e5f60718",
        "GatewayLoadBalancer",
        SubnetIds=[firewall],
    )
    b.route_table(
        "prod-public",
        prod,
        [public_a, public_b, firewall],
        [{"DestinationCidrBlock": WORLD4, "GatewayId": prod_igw}],
    )
    b.route_table(
        "prod-nat-inspected", prod, [nat_inspected], [{"DestinationCidrBlock": WORLD4, "VpcEndpointId": gwlb}]
    )
    rt_private = b.route_table(
        "prod-private",
        prod,
        [private_a, private_b],
        [{"DestinationCidrBlock": WORLD4, "NatGatewayId": nat_public}],
    )
    rt_inspected = b.route_table(
        "prod-inspected",
        prod,
        [inspected],
        [{"DestinationCidrBlock": WORLD4, "NatGatewayId": nat_to_firewall}],
    )
    rt_isolated = b.route_table("prod-isolated", prod, [isolated], [])
    b.network_acl(
        "prod-public",
        prod,
        [public_a, public_b, nat_inspected, firewall],
        [
            (90, "6", "deny", WORLD4, 3389, 3389),
            (100, "6", "allow", WORLD4, 443, 443),
            (110, "6", "allow", WORLD4, 80, 80),
            (120, "6", "allow", WORLD4, 1024, 65535),
            (200, "-1", "allow", "10.0.0.0/16", None, None),
        ],
    )
    b.network_acl(
        "prod-private",
        prod,
        [private_a, private_b, inspected, isolated],
        [
            (100, "-1", "allow", "10.0.0.0/16", None, None),
            (110, "6", "allow", WORLD4, 32768, 65535),
        ],
    )
    # the format the flow_logs function documents (templates/vpc-flow-log.yaml's)
    b.flow_log(prod, "VPC", "ALL", DEMO_FLOW_LOG_GROUP, flowlogs.DOCUMENTED_FORMAT)
    # Resolver query logging for prod only (EGR-02: shared-services has none).
    resolver = session.client("route53resolver", region_name=region, config=BUILDER_CONFIG)
    query_logs = resolver.create_resolver_query_log_config(
        Name="prod-dns-queries",
        DestinationArn=f"arn:aws:logs:{region}:{account}:log-group:{DEMO_QUERY_LOG_GROUP}",
        CreatorRequestId="fargate-audit-demo-prod-dns-queries",
    )["ResolverQueryLogConfig"]
    resolver.associate_resolver_query_log_config(ResolverQueryLogConfigId=query_logs["Id"], ResourceId=prod)
    s3 = f"com.amazonaws.{region}.s3"
    b.endpoint(
        "prod-s3-approved",
        prod,
        s3,
        "Gateway",
        RouteTableIds=[rt_isolated, rt_inspected],
        PolicyDocument={
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ApprovedBucketsOnly",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": ["s3:GetObject", "s3:PutObject", "s3:ListBucket"],
                    "Resource": [
                        f"arn:aws:s3:::prod-{region}-starport-layer-bucket/*",
                        "arn:aws:s3:::acme-prod-artifacts",
                        "arn:aws:s3:::acme-prod-artifacts/*",
                    ],
                }
            ],
        },
    )
    b.endpoint(
        "prod-s3-wildcard",
        prod,
        s3,
        "Gateway",
        RouteTableIds=[rt_private],
        PolicyDocument={
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::acme-*/*"}
            ],
        },
    )
    vpce_sg = b.security_group(
        "prod",
        "vpc-endpoints",
        "HTTPS from the VPC to interface endpoints",
        ingress=[_ports("tcp", 443, 443, cidrs4=["10.0.0.0/16"])],
    )
    for service in ("ecr.dkr", "ecr.api", "logs"):
        b.endpoint(
            f"prod-{service}",
            prod,
            f"com.amazonaws.{region}.{service}",
            "Interface",
            SubnetIds=[isolated],
            SecurityGroupIds=[vpce_sg],
            PrivateDnsEnabled=True,
        )

    web_public = b.security_group(
        "prod",
        "web-public",
        "HTTPS from the internet",
        ingress=[_ports("tcp", 443, 443, cidrs4=[WORLD4], description="HTTPS")],
    )
    app_internal = b.security_group(
        "prod",
        "app-internal",
        "App tier, egress restricted",
        ingress=[_ports("tcp", 8080, 8080, groups=[web_public])],
        egress=[_ports("tcp", 443, 443, cidrs4=[WORLD4]), _ports("tcp", 5432, 5432, cidrs4=["10.0.0.0/16"])],
    )
    ops_admin = b.security_group(
        "prod",
        "ops-admin",
        "Legacy remote administration",
        ingress=[
            _ports("tcp", 22, 22, cidrs4=[WORLD4], description="SSH"),
            _ports("tcp", 3389, 3389, cidrs4=[WORLD4], description="RDP"),
        ],
    )
    batch_workers = b.security_group("prod", "batch-workers", "Batch jobs, no ingress")
    alb_public = b.security_group(
        "prod",
        "alb-public",
        "Internet-facing load balancers: HTTP and HTTPS from the internet",
        ingress=[
            _ports("tcp", 443, 443, cidrs4=[WORLD4], description="HTTPS"),
            _ports("tcp", 80, 80, cidrs4=[WORLD4], description="HTTP"),
        ],
    )
    prod_default = b.default_security_group("prod")

    # -- VPC "shared-services": dual-stack, REJECT-only flow logs, SSH-friendly NACL ---
    shared = b.vpc("shared-services", "10.1.0.0/16", ipv6=True)
    v6 = list(b.vpc_ipv6_cidr(shared).subnets(new_prefix=64))
    shared_igw = b.internet_gateway(shared, "shared-igw")
    eigw = b.ec2.create_egress_only_internet_gateway(VpcId=shared)["EgressOnlyInternetGateway"][
        "EgressOnlyInternetGatewayId"
    ]
    tgw = b.ec2.create_transit_gateway(Description="hub")["TransitGateway"]["TransitGatewayId"]
    shared_public = b.subnet("shared-public-a", shared, "10.1.0.0/24", "a", ipv6_cidr=v6[0])
    shared_private = b.subnet("shared-private-a", shared, "10.1.10.0/24", "a", ipv6_cidr=v6[1])
    shared_transit = b.subnet("shared-transit-a", shared, "10.1.20.0/24", "a")
    shared_nat = b.nat_gateway("shared-nat-a", shared_public)
    b.route_table(
        "shared-public",
        shared,
        [shared_public],
        [
            {"DestinationCidrBlock": WORLD4, "GatewayId": shared_igw},
            {"DestinationIpv6CidrBlock": WORLD6, "GatewayId": shared_igw},
        ],
    )
    rt_shared_private = b.route_table(
        "shared-private",
        shared,
        [shared_private],
        [
            {"DestinationCidrBlock": WORLD4, "NatGatewayId": shared_nat},
            {"DestinationIpv6CidrBlock": WORLD6, "EgressOnlyInternetGatewayId": eigw},
        ],
    )
    b.route_table(
        "shared-transit",
        shared,
        [shared_transit],
        [{"DestinationCidrBlock": WORLD4, "TransitGatewayId": tgw}],
    )
    b.network_acl(
        "shared-edge",
        shared,
        [shared_public],
        [
            (100, "6", "allow", WORLD4, 22, 22),
            (110, "6", "allow", WORLD4, 443, 443),
            (120, "6", "allow", WORLD6, 443, 443),
            (130, "6", "allow", WORLD6, 8443, 8443),
            (140, "6", "allow", WORLD4, 1024, 65535),
            (150, "6", "allow", WORLD6, 1024, 65535),
        ],
    )
    b.network_acl(
        "shared-transit",
        shared,
        [shared_transit],
        [
            (100, "-1", "allow", "10.0.0.0/8", None, None),
            (110, "6", "allow", WORLD4, 32768, 65535),
        ],
    )
    # shared-private-a keeps the VPC's default NACL (everything allowed, both families).
    b.flow_log(shared, "VPC", "REJECT", "/vpc/shared-services/flow-logs")
    b.flow_log(shared_transit, "Subnet", "ALL", "/vpc/shared-services/flow-logs")
    b.endpoint(
        "shared-s3", shared, s3, "Gateway", RouteTableIds=[rt_shared_private]
    )  # no policy: full access
    edge = b.security_group(
        "shared-services",
        "edge-dualstack",
        "Public edge, IPv4 and IPv6",
        ingress=[
            _ports("tcp", 443, 443, cidrs4=[WORLD4], cidrs6=[WORLD6]),
            _ports("tcp", 8443, 8443, cidrs6=[WORLD6], description="admin API over IPv6"),
        ],
    )
    tools = b.security_group(
        "shared-services",
        "internal-tools",
        "Internal tools via the hub",
        ingress=[_ports("tcp", 9090, 9090, cidrs4=["10.0.0.0/8"])],
        egress=[_ports("tcp", 443, 443, cidrs4=[WORLD4]), _ports("udp", 53, 53, cidrs4=[WORLD4])],
    )
    shared_default = b.default_security_group("shared-services")

    # -- task definitions -----------------------------------------------------------
    mcr, public_ecr = "mcr.microsoft.com", "public.ecr.aws/aws-observability"
    b.task_definition(
        "storefront",
        [
            _container(
                "web",
                f"{ecr}/storefront@{_digest('storefront')}",
                ports=[443],
                environment={"LOG_LEVEL": "info", "FEATURE_TOKEN_CACHE": "true"},
            )
        ],
    )
    b.task_definition(
        "checkout-api",
        [
            _container(
                "api",
                f"{ecr}/checkout-api@{_digest('checkout-api')}",
                ports=[8080],
                environment={
                    "DB_HOST": "checkout.cluster-abc.eu-west-1.rds.amazonaws.com",
                    "DB_PASSWORD": CANARY_SECRET,
                },
                secrets=[
                    {
                        "name": "STRIPE_API_KEY",
                        "valueFrom": f"arn:aws:secretsmanager:{region}:{account}:secret:stripe-key",
                    }
                ],
            ),
            _container("otel", f"{public_ecr}/aws-otel-collector@{_digest('otel')}"),
        ],
        cpu="512",
        memory="1024",
    )
    b.task_definition(
        "edge-proxy", [_container("nginx", "nginx:1.25", logs=False, readonly=None, ports=[443])]
    )
    b.task_definition(
        "report-worker", [_container("worker", "ghcr.io/acme-corp/report-worker:2.3.1", readonly=False)]
    )
    b.task_definition(
        "etl",
        [
            _container(
                "etl",
                f"{ecr}/etl@{_digest('etl')}",
                environment={"BATCH_SIZE": "500", "OUTPUT_BUCKET": "acme-prod-artifacts"},
            )
        ],
    )
    b.task_definition(
        "billing", [_container("httpd", "public.ecr.aws/docker/library/httpd:2.4", readonly=None, ports=[80])]
    )
    b.task_definition(
        "windows-agent",
        [_container("agent", f"{mcr}/windows/servercore:ltsc2019", readonly=None)],
        cpu="1024",
        memory="2048",
        runtimePlatform={"operatingSystemFamily": "WINDOWS_SERVER_2019_CORE", "cpuArchitecture": "X86_64"},
    )
    b.task_definition(
        "edge-gateway",
        [_container("gateway", f"{ecr}/edge-gateway@{_digest('edge-gateway')}", ports=[443, 8443])],
    )
    b.task_definition(
        "internal-tools",
        [_container("tools", f"111122223333.dkr.ecr.{region}.amazonaws.com/platform/tools:1.8")],
    )
    b.task_definition(
        "log-shipper", [_container("fluent-bit", f"{public_ecr}/aws-for-fluent-bit@{_digest('fluent-bit')}")]
    )
    # -- clusters, services, tasks ----------------------------------------------------
    b.cluster("prod-web", "enabled")
    b.cluster("batch", "disabled")
    b.cluster("legacy", None)
    b.cluster("platform", "enhanced")

    def service(cluster, name, family, subnets, groups, count, version, public=False):
        b.service(cluster, name, family, subnets, groups, count)
        b.run_tasks(cluster, family, subnets, groups, count, version, service=name, public_ip=public)

    service(
        "prod-web", "storefront", "storefront", [public_a, public_b], [web_public], 4, "1.4.0", public=True
    )
    service("prod-web", "checkout-api", "checkout-api", [inspected], [app_internal], 4, "LATEST")
    # checkout-api behind an internet-facing ALB: HTTPS with a web ACL, HTTP redirected
    shop = b.load_balancer(
        "shop", "application", "internet-facing", [public_a, public_b], [web_public, alb_public]
    )
    checkout = b.target_group("checkout-api", "HTTP", 8080, prod)
    b.register(checkout, "prod-web", info.workloads["prod-web/service:checkout-api"], 8080)
    b.listener(shop, "HTTPS", 443, _forward(checkout), domain="shop.example.com")
    b.listener(
        shop,
        "HTTP",
        80,
        {
            "Type": "redirect",
            "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"},
        },
    )
    b.web_acl("shop-waf", shop)
    service(
        "prod-web", "edge-proxy", "edge-proxy", [public_b], [web_public, ops_admin], 2, "1.4.0", public=True
    )
    service("batch", "etl", "etl", [isolated], [batch_workers], 4, "LATEST")
    b.run_tasks(
        "batch",
        "report-worker",
        [private_a, private_b],
        [batch_workers],
        3,
        "1.4.0",
        started_by="events-rule/nightly-reports",
    )
    b.run_tasks(
        "batch",
        "etl",
        [isolated],
        [batch_workers],
        1,
        "1.4.0",
        started_by="ops/jdoe",
        overrides={
            "containerOverrides": [
                {"name": "etl", "environment": [{"name": "DB_PASSWORD", "value": CANARY_SECRET}]}
            ]
        },
    )
    service("legacy", "billing", "billing", [private_a], [prod_default], 3, "1.3.0")
    # billing behind an ALB that forwards plain HTTP, no web ACL; the ALB also carries the
    # VPC's default group, whose self-reference admits it to the tasks
    legacy = b.load_balancer(
        "billing-legacy", "application", "internet-facing", [public_a, public_b], [alb_public, prod_default]
    )
    billing = b.target_group("billing", "HTTP", 80, prod)
    b.register(billing, "legacy", info.workloads["legacy/service:billing"], 80)
    b.listener(legacy, "HTTP", 80, _forward(billing))
    b.run_tasks("legacy", "windows-agent", [private_b], [ops_admin], 2, "1.0.0", started_by="ops/windows")
    service("platform", "edge-gateway", "edge-gateway", [shared_public], [edge], 3, "1.4.0", public=True)
    # edge-gateway is also behind an internet-facing network load balancer that preserves
    # client addresses (reached at its own address too: NET-02)
    edge_nlb = b.load_balancer("edge", "network", "internet-facing", [shared_public], [])
    edge_group = b.target_group("edge-gateway", "TCP", 443, shared)
    b.elbv2.modify_target_group_attributes(
        TargetGroupArn=edge_group, Attributes=[{"Key": "preserve_client_ip.enabled", "Value": "true"}]
    )
    b.register(edge_group, "platform", info.workloads["platform/service:edge-gateway"], 443)
    b.listener(edge_nlb, "TCP", 443, _forward(edge_group))
    service("platform", "internal-tools", "internal-tools", [shared_transit], [tools], 3, "1.4.0")
    # internal-tools behind an internal network load balancer: not reachable from the internet
    tools_nlb = b.load_balancer("tools-internal", "network", "internal", [shared_transit], [])
    tools_group = b.target_group("internal-tools", "TCP", 9090, shared)
    b.register(tools_group, "platform", info.workloads["platform/service:internal-tools"], 9090)
    b.listener(tools_nlb, "TCP", 9090, _forward(tools_group))
    b.run_tasks(
        "platform", "log-shipper", [shared_private], [shared_default], 2, "LATEST", started_by="ops/logging"
    )

    _add_skipped_tasks(b, private_a, batch_workers)
    info.narrative = [
        f"account {account}, region {region}: VPCs prod (10.0.0.0/16) and shared-services "
        "(10.1.0.0/16, dual-stack)",
        "prod: public subnets (IGW), private subnets behind a NAT gateway, a subnet whose NAT "
        "gateway sends traffic through a Gateway Load Balancer inspection endpoint, an isolated "
        "subnet with S3/ECR/logs endpoints; flow logs ALL; Resolver query logging on",
        "shared-services: dual-stack public subnet (SSH open in its NACL), IPv6 egress-only "
        "private subnet, a transit-gateway subnet; VPC flow logs REJECT only",
        f"clusters {', '.join(info.clusters)}: {len(info.running_fargate_tasks)} running Fargate tasks "
        f"in {len(info.workloads)} workloads, {len(info.skipped_tasks)} tasks that are not audited "
        "(EC2 launch type, not RUNNING)",
    ]
    return info


def _add_skipped_tasks(b: _Builder, subnet: str, security_group: str) -> None:
    """An EC2-launch-type task, and in-process a task still PENDING: scans skip both."""
    ec2_instance = b.ec2.run_instances(
        ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t3.medium"
    )
    document = {
        "instanceId": ec2_instance["Instances"][0]["InstanceId"],
        "region": b.region,
        "accountId": b.info.account_id,
    }
    b.ecs.register_container_instance(cluster="legacy", instanceIdentityDocument=json.dumps(document))
    b.ecs.register_task_definition(
        family="nightly-cron",
        networkMode="bridge",
        requiresCompatibilities=["EC2"],
        containerDefinitions=[{"name": "cron", "image": "busybox:1.36", "memory": 128}],
    )
    task = b.ecs.run_task(cluster="legacy", taskDefinition="nightly-cron", launchType="EC2")["tasks"][0]
    b.info.skipped_tasks[task["taskArn"]] = "EC2 launch type"
    if not b.in_process:
        return
    [arn] = b.run_tasks(
        "batch",
        "report-worker",
        [subnet],
        [security_group],
        1,
        "1.4.0",
        started_by="events-rule/nightly-reports",
    )
    from moto.ecs.models import ecs_backends

    task_model = ecs_backends[b.info.account_id][b.region].tasks["batch"][arn]
    task_model.last_status = "PENDING"  # still pulling its image
    b.info.workloads["batch/family:report-worker"].remove(arn)
    b.info.skipped_tasks[arn] = "lastStatus PENDING"


# --------------------------------------------------------------------------- bench estate

_BENCH_IMAGES = (
    ("{ecr}/svc-{n}@" + _digest("bench"), True, True),
    ("public.ecr.aws/nginx/nginx:1.27", True, False),
    ("nginx:1.25", False, False),
    ("ghcr.io/acme-corp/svc-{n}:1.0.{n}", True, True),
)


def build_bench_estate(
    session,
    region: str,
    tasks: int,
    vpcs: int,
    security_groups: int,
    task_definitions: int,
    clusters: int,
) -> EstateInfo:
    """A large, regular estate: `tasks` running Fargate tasks spread over `vpcs` VPCs (public,
    NAT and isolated subnets each), `security_groups` groups, `task_definitions` families and
    `clusters` clusters. Three batches in four belong to a service; one batch in six placed in
    a public subnet gets public IPs."""
    if not (1 <= vpcs <= 200 and 1 <= clusters <= 999):
        # cluster names of equal width: moto's ListTasks matches the cluster name as a
        # substring of task ARNs ("bench-cluster-1" would also list "bench-cluster-10")
        raise ValueError("vpcs must be between 1 and 200, clusters between 1 and 999")
    b = _Builder(session, region)
    ecr = f"{b.info.account_id}.dkr.ecr.{region}.amazonaws.com"
    placements: list[tuple[str, str, bool]] = []  # (vpc name, subnet id, public)
    for v in range(vpcs):
        name = f"bench-{v}"
        vpc = b.vpc(name, f"10.{v}.0.0/16")
        igw = b.internet_gateway(vpc, f"{name}-igw")
        public = b.subnet(f"{name}-public", vpc, f"10.{v}.0.0/20", "a")
        private = b.subnet(f"{name}-private", vpc, f"10.{v}.16.0/20", "b")
        isolated = b.subnet(f"{name}-isolated", vpc, f"10.{v}.32.0/20", "c")
        nat = b.nat_gateway(f"{name}-nat", public)
        b.route_table(f"{name}-public", vpc, [public], [{"DestinationCidrBlock": WORLD4, "GatewayId": igw}])
        b.route_table(
            f"{name}-private", vpc, [private], [{"DestinationCidrBlock": WORLD4, "NatGatewayId": nat}]
        )
        rt_isolated = b.route_table(f"{name}-isolated", vpc, [isolated], [])
        b.network_acl(
            f"{name}-private",
            vpc,
            [private, isolated],
            [(100, "-1", "allow", f"10.{v}.0.0/16", None, None), (110, "6", "allow", WORLD4, 32768, 65535)],
        )
        b.endpoint(
            f"{name}-s3",
            vpc,
            f"com.amazonaws.{region}.s3",
            "Gateway",
            RouteTableIds=[rt_isolated],
            PolicyDocument={
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::prod-{region}-starport-layer-bucket/*",
                    }
                ]
            },
        )
        if v % 2 == 0:
            for service in ("ecr.dkr", "ecr.api"):
                b.endpoint(
                    f"{name}-{service}",
                    vpc,
                    f"com.amazonaws.{region}.{service}",
                    "Interface",
                    SubnetIds=[isolated],
                )
        if v % 3 != 2:
            b.flow_log(vpc, "VPC", "ALL" if v % 3 == 0 else "REJECT", f"/vpc/{name}")
        placements += [(name, public, True), (name, private, False), (name, isolated, False)]

    group_kinds = (
        ("web", [_ports("tcp", 443, 443, cidrs4=[WORLD4])], None),
        (
            "internal",
            [_ports("tcp", 8080, 8080, cidrs4=["10.0.0.0/8"])],
            [_ports("tcp", 443, 443, cidrs4=[WORLD4])],
        ),
        ("admin", [_ports("tcp", 22, 22, cidrs4=[WORLD4])], None),
        ("worker", [], None),
    )
    groups_of_vpc: dict[str, list[str]] = {}
    for g in range(max(security_groups, vpcs)):
        vpc_name = f"bench-{g % vpcs}"
        kind, ingress, egress = group_kinds[(g // vpcs) % len(group_kinds)]
        sg = b.security_group(vpc_name, f"{kind}-{g}", f"bench {kind}", ingress=ingress, egress=egress)
        groups_of_vpc.setdefault(vpc_name, []).append(sg)

    families = []
    for t in range(task_definitions):
        image, awslogs, readonly = _BENCH_IMAGES[t % len(_BENCH_IMAGES)]
        environment = {"DB_PASSWORD": CANARY_SECRET} if t % 5 == 4 else None
        container = _container("app", image.format(ecr=ecr, n=t), awslogs, readonly, environment=environment)
        families.append(f"bench-td-{t}")
        b.task_definition(families[-1], [container])
    for c in range(clusters):
        b.cluster(f"bench-cluster-{c:03d}", ("enabled", "disabled")[c % 2])

    versions = ("1.4.0", "LATEST", "1.3.0")
    for batch, start in enumerate(range(0, tasks, RUN_TASK_MAX_COUNT)):
        count = min(RUN_TASK_MAX_COUNT, tasks - start)
        vpc_name, subnet, public = placements[batch % len(placements)]
        vpc_groups = groups_of_vpc[vpc_name]
        sg = vpc_groups[(batch // len(placements)) % len(vpc_groups)]
        cluster = f"bench-cluster-{batch % clusters:03d}"
        family = families[batch % len(families)]
        service = f"{family}-svc" if batch % 4 else None  # one batch in four is standalone
        if service and f"{cluster}/service:{service}" not in b.info.services:
            b.service(cluster, service, family, [subnet], [sg], count)
        b.run_tasks(
            cluster,
            family,
            [subnet],
            [sg],
            count,
            versions[batch % len(versions)],
            service=service,
            public_ip=public and batch % 6 == 0,
        )
    b.info.narrative = [
        f"{tasks} tasks, {vpcs} VPCs, {len(b.info.security_groups)} security groups, "
        f"{task_definitions} task definitions, {clusters} clusters"
    ]
    return b.info

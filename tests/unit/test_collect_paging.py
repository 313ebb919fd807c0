"""The collector against botocore's Stubber on real clients: paging, batching, failures.

moto ignores MaxResults, so paging is proven here. The Stubber checks every request's
parameters (filters, page sizes, tokens) and every response against the service model,
and `verify()` proves each stubbed call was made.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from fargate_audit.core.errors import CredentialsError, ScanError
from fargate_audit.core.posture import build_posture
from fargate_audit.edge.aws import CallCounter, Clients, describe_error
from fargate_audit.edge.collect import collect, describe_tasks

REGION = "eu-west-1"
OTHER_REGION = "us-east-1"
ACCOUNT = "111122223333"
CREATED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def cluster_arn(name: str, region: str = REGION) -> str:
    return f"arn:aws:ecs:{region}:{ACCOUNT}:cluster/{name}"


def task_arn(cluster: str, index: int, region: str = REGION) -> str:
    return f"arn:aws:ecs:{region}:{ACCOUNT}:task/{cluster}/{index:032x}"


def td_arn(family: str = "web", region: str = REGION) -> str:
    return f"arn:aws:ecs:{region}:{ACCOUNT}:task-definition/{family}:1"


def eni_id(index: int) -> str:
    return f"eni-{index:017x}"


def make_task(
    cluster: str,
    index: int,
    *,
    region: str = REGION,
    subnet: str = "subnet-a",
    family: str = "web",
    launch_type: str | None = "FARGATE",
    last_status: str = "RUNNING",
    capacity_provider: str | None = None,
) -> dict:
    task = {
        "taskArn": task_arn(cluster, index, region),
        "clusterArn": cluster_arn(cluster, region),
        "taskDefinitionArn": td_arn(family, region),
        "lastStatus": last_status,
        "desiredStatus": "RUNNING",
        "createdAt": CREATED,
        "attachments": [
            {
                "id": f"att-{index}",
                "type": "ElasticNetworkInterface",
                "status": "ATTACHED",
                "details": [
                    {"name": "subnetId", "value": subnet},
                    {"name": "networkInterfaceId", "value": eni_id(index)},
                    {"name": "privateIPv4Address", "value": f"10.0.{index // 250}.{index % 250 + 1}"},
                ],
            }
        ],
    }
    if launch_type:
        task["launchType"] = launch_type
    if capacity_provider:
        task["capacityProviderName"] = capacity_provider
    return task


def make_eni(index: int, subnet: str = "subnet-a", vpc: str = "vpc-a") -> dict:
    return {
        "NetworkInterfaceId": eni_id(index),
        "SubnetId": subnet,
        "VpcId": vpc,
        "Groups": [{"GroupId": f"sg-{vpc}-0", "GroupName": "web"}],  # one the VPC listing has
        "PrivateIpAddress": f"10.0.{index // 250}.{index % 250 + 1}",
    }


RESOLVER_CALL = "ListResolverQueryLogConfigAssociations"


# One item per VPC for each VPC-level call, in the shapes EC2 (and Resolver) return.
def fact_item(call: str, vpc: str, n: int = 0) -> dict:
    return {
        "DescribeSecurityGroups": lambda: {"GroupId": f"sg-{vpc}-{n}", "GroupName": "web", "VpcId": vpc},
        "DescribeRouteTables": lambda: {
            "RouteTableId": f"rtb-{vpc}-{n}",
            "VpcId": vpc,
            "Associations": [{"Main": True, "RouteTableId": f"rtb-{vpc}-{n}"}],
        },
        "DescribeNetworkAcls": lambda: {"NetworkAclId": f"acl-{vpc}-{n}", "VpcId": vpc, "Entries": []},
        "DescribeVpcEndpoints": lambda: {
            "VpcEndpointId": f"vpce-{vpc}-{n}",
            "VpcId": vpc,
            "ServiceName": "com.amazonaws.eu-west-1.s3",
            "CreationTimestamp": CREATED,
        },
        "DescribeNatGateways": lambda: {
            "NatGatewayId": f"nat-{vpc}-{n}",
            "VpcId": vpc,
            "CreateTime": CREATED,
        },
        "DescribeFlowLogs": lambda: {
            "FlowLogId": f"fl-{vpc}-{n}",
            "ResourceId": vpc,
            "TrafficType": "ALL",
            "CreationTime": CREATED,
        },
        RESOLVER_CALL: lambda: {
            "Id": f"rqlca-{vpc}-{n}",
            "ResolverQueryLogConfigId": f"rqlc-{n}",
            "ResourceId": vpc,
            "Status": "ACTIVE",
            "CreationTime": "2026-11-01T12:00:00Z",
        },
    }[call]()


VPC_CALLS = {  # call -> (method, result key, fact, filter param, page size)
    "DescribeSecurityGroups": (
        "describe_security_groups",
        "SecurityGroups",
        "security_groups",
        "Filters",
        1000,
    ),
    "DescribeRouteTables": ("describe_route_tables", "RouteTables", "route_tables", "Filters", 100),
    "DescribeNetworkAcls": ("describe_network_acls", "NetworkAcls", "network_acls", "Filters", 1000),
    "DescribeVpcEndpoints": ("describe_vpc_endpoints", "VpcEndpoints", "vpc_endpoints", "Filters", 1000),
    "DescribeNatGateways": ("describe_nat_gateways", "NatGateways", "nat_gateways", "Filter", 1000),
}


class Stubs:
    """Stubbed ecs/ec2 clients per region, injected into the collector through `Clients`."""

    def __init__(self, regions: tuple[str, ...] = (REGION,)) -> None:
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        self.stubbers: dict[tuple[str, str], Stubber] = {}
        for region in regions:
            for service in ("ecs", "ec2", "route53resolver", "elbv2"):
                stubber = Stubber(session.client(service, region_name=region))
                stubber.activate()
                self.stubbers[(service, region)] = stubber
        self.clients = Clients(factory=lambda service, region: self.stubbers[(service, region)].client)

    def ecs(self, region: str = REGION) -> Stubber:
        return self.stubbers[("ecs", region)]

    def ec2(self, region: str = REGION) -> Stubber:
        return self.stubbers[("ec2", region)]

    def resolver(self, region: str = REGION) -> Stubber:
        return self.stubbers[("route53resolver", region)]

    def elbv2(self, region: str = REGION) -> Stubber:
        return self.stubbers[("elbv2", region)]

    def collect(self, **kwargs):
        kwargs.setdefault("regions", [REGION])
        return collect(None, clients=self.clients, **kwargs)

    def verify(self) -> None:
        for stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()

    # -- ECS

    def list_clusters(self, pages: list[list[str]], region: str = REGION) -> None:
        for number, arns in enumerate(pages):
            response = {"clusterArns": arns}
            params = {"maxResults": 100}
            if number + 1 < len(pages):
                response["nextToken"] = f"clusters-{number + 1}"
            if number:
                params["nextToken"] = f"clusters-{number}"
            self.ecs(region).add_response("list_clusters", response, params)

    def list_tasks(self, cluster: str, pages: list[list[str]], region: str = REGION) -> None:
        for number, arns in enumerate(pages):
            response = {"taskArns": arns}
            params = {"cluster": cluster, "maxResults": 100}
            if number + 1 < len(pages):
                response["nextToken"] = f"{cluster}-{number + 1}"
            if number:
                params["nextToken"] = f"{cluster}-{number}"
            self.ecs(region).add_response("list_tasks", response, params)

    def describe_tasks(self, cluster: str, tasks: list[dict], region: str = REGION) -> None:
        for start in range(0, len(tasks), 100):
            batch = tasks[start : start + 100]
            self.ecs(region).add_response(
                "describe_tasks",
                {"tasks": batch, "failures": []},
                {"cluster": cluster, "tasks": [t["taskArn"] for t in batch]},
            )

    def describe_clusters(self, arns: list[str], region: str = REGION) -> None:
        clusters = [
            {
                "clusterArn": arn,
                "clusterName": arn.rsplit("/", 1)[-1],
                "status": "ACTIVE",
                "settings": [{"name": "containerInsights", "value": "enabled"}],
            }
            for arn in arns
        ]
        self.ecs(region).add_response(
            "describe_clusters",
            {"clusters": clusters, "failures": []},
            {"clusters": arns, "include": ["SETTINGS"]},
        )

    def describe_task_definition(self, arn: str, region: str = REGION) -> None:
        definition = {
            "taskDefinitionArn": arn,
            "family": arn.rsplit("/", 1)[-1].split(":")[0],
            "containerDefinitions": [{"name": "app", "image": "nginx:1.25", "memory": 512}],
            "registeredAt": CREATED,
        }
        self.ecs(region).add_response(
            "describe_task_definition", {"taskDefinition": definition}, {"taskDefinition": arn}
        )

    def cluster_with_tasks(self, name: str, tasks: list[dict], region: str = REGION) -> None:
        """ListTasks (one page) + DescribeTasks for a cluster given by ARN."""
        self.list_tasks(cluster_arn(name, region), [[t["taskArn"] for t in tasks]], region)
        self.describe_tasks(cluster_arn(name, region), tasks, region)

    # -- EC2

    def network_interfaces(
        self, pages: list[list[dict]], filter_name: str, values: list[str], region: str = REGION
    ) -> None:
        for number, enis in enumerate(pages):
            response = {"NetworkInterfaces": enis}
            params = {
                "Filters": [{"Name": filter_name, "Values": values}],
                "IncludeManagedResources": True,
                "MaxResults": 1000,
            }
            if number + 1 < len(pages):
                response["NextToken"] = f"eni-{number + 1}"
            if number:
                params["NextToken"] = f"eni-{number}"
            self.ec2(region).add_response("describe_network_interfaces", response, params)

    def vpc_call(
        self, call: str, vpcs: list[str], pages: list[list[dict]] | None = None, region=REGION
    ) -> None:
        method, key, _, filter_param, page_size = VPC_CALLS[call]
        if pages is None:
            pages = [[fact_item(call, vpc) for vpc in vpcs]]
        for number, items in enumerate(pages):
            response = {key: items}
            params = {filter_param: [{"Name": "vpc-id", "Values": vpcs}], "MaxResults": page_size}
            if number + 1 < len(pages):
                response["NextToken"] = f"{call}-{number + 1}"
            if number:
                params["NextToken"] = f"{call}-{number}"
            self.ec2(region).add_response(method, response, params)

    def flow_logs(self, pages: list[list[dict]], region: str = REGION) -> None:
        for number, items in enumerate(pages):
            response = {"FlowLogs": items}
            params = {"MaxResults": 1000}
            if number + 1 < len(pages):
                response["NextToken"] = f"fl-{number + 1}"
            if number:
                params["NextToken"] = f"fl-{number}"
            self.ec2(region).add_response("describe_flow_logs", response, params)

    def query_log_associations(self, pages: list[list[dict]], region: str = REGION) -> None:
        for number, items in enumerate(pages):
            response = {"ResolverQueryLogConfigAssociations": items}
            params = {"MaxResults": 100}
            if number + 1 < len(pages):
                response["NextToken"] = f"rqlca-{number + 1}"
            if number:
                params["NextToken"] = f"rqlca-{number}"
            self.resolver(region).add_response(
                "list_resolver_query_log_config_associations", response, params
            )

    def vpc_facts(
        self,
        vpcs: list[str],
        *,
        pages: dict[str, list[list[dict]]] | None = None,
        errors: dict[str, str] | None = None,
        region: str = REGION,
        groups_by_id: tuple[list[str], str] | None = None,
    ) -> None:
        """Every VPC-level call in the collector's order; one page each unless `pages`
        gives them, or a ClientError with the code `errors` gives. `groups_by_id`: the
        attached group ids the VPC listing lacks, read by id before the flow logs, and the
        code of the ClientError that call meets."""
        pages, errors = pages or {}, errors or {}
        for call in [*VPC_CALLS, "DescribeFlowLogs"]:
            if call == "DescribeFlowLogs" and groups_by_id:
                group_ids, code = groups_by_id
                self.ec2(region).add_client_error(
                    "describe_security_groups",
                    code,
                    "refused",
                    403,
                    expected_params={
                        "Filters": [{"Name": "group-id", "Values": group_ids}],
                        "MaxResults": 1000,
                    },
                )
            if call in errors:
                method = VPC_CALLS[call][0] if call in VPC_CALLS else "describe_flow_logs"
                self.ec2(region).add_client_error(method, errors[call], f"{call} refused", 403)
            elif call == "DescribeFlowLogs":
                self.flow_logs(pages.get(call) or [[fact_item(call, vpc) for vpc in vpcs]], region)
            else:
                self.vpc_call(call, vpcs, pages.get(call), region)
        if RESOLVER_CALL in errors:
            self.resolver(region).add_client_error(
                "list_resolver_query_log_config_associations",
                errors[RESOLVER_CALL],
                f"{RESOLVER_CALL} refused",
                400,
            )
        else:
            default = [[fact_item(RESOLVER_CALL, vpc) for vpc in vpcs]]
            self.query_log_associations(pages.get(RESOLVER_CALL) or default, region)
        # the region's target groups: none (the one load-balancing request of such an estate)
        self.elbv2(region).add_response("describe_target_groups", {"TargetGroups": []}, {"PageSize": 400})


def one_cluster_world(stubs: Stubs, count: int = 2, region: str = REGION) -> list[dict]:
    """Cluster "alpha" given by name: `count` Fargate tasks in vpc-a, one task definition."""
    arn = cluster_arn("alpha", region)
    tasks = [make_task("alpha", i, region=region) for i in range(count)]
    stubs.ecs(region).add_response(
        "describe_clusters",
        {"clusters": [{"clusterArn": arn, "clusterName": "alpha", "settings": []}], "failures": []},
        {"clusters": ["alpha"], "include": ["SETTINGS"]},
    )
    stubs.cluster_with_tasks("alpha", tasks, region)
    stubs.describe_task_definition(td_arn(region=region), region)
    return tasks


# ---------------------------------------------------------------------------- paging


def test_list_clusters_follows_next_token_across_pages():
    stubs = Stubs()
    stubs.list_clusters([[cluster_arn("alpha")], [cluster_arn("beta")]])
    alpha = [make_task("alpha", 0)]
    beta = [make_task("beta", 1)]
    stubs.list_tasks(cluster_arn("alpha"), [[task_arn("alpha", 0)]])
    stubs.list_tasks(cluster_arn("beta"), [[task_arn("beta", 1)]])
    stubs.describe_tasks(cluster_arn("alpha"), alpha)
    stubs.describe_tasks(cluster_arn("beta"), beta)
    stubs.describe_clusters([cluster_arn("alpha"), cluster_arn("beta")])
    stubs.describe_task_definition(td_arn())
    stubs.network_interfaces([[make_eni(0), make_eni(1)]], "network-interface-id", [eni_id(0), eni_id(1)])
    stubs.vpc_facts(["vpc-a"])

    result = stubs.collect()

    stubs.verify()
    assert result.scope["clusters"] == [cluster_arn("alpha"), cluster_arn("beta")]
    assert [raw["task"]["taskArn"] for raw in result.raw_tasks] == [task_arn("alpha", 0), task_arn("beta", 1)]
    assert result.errors == []


def test_list_tasks_follows_next_token_across_pages():
    stubs = Stubs()
    tasks = [make_task("alpha", i) for i in range(3)]
    stubs.ecs().add_response(
        "describe_clusters",
        {"clusters": [{"clusterArn": cluster_arn("alpha"), "clusterName": "alpha"}], "failures": []},
        {"clusters": ["alpha"], "include": ["SETTINGS"]},
    )
    stubs.list_tasks(
        cluster_arn("alpha"), [[tasks[0]["taskArn"]], [tasks[1]["taskArn"]], [tasks[2]["taskArn"]]]
    )
    stubs.describe_tasks(cluster_arn("alpha"), tasks)
    stubs.describe_task_definition(td_arn())
    ids = [eni_id(i) for i in range(3)]
    stubs.network_interfaces([[make_eni(i) for i in range(3)]], "network-interface-id", ids)
    stubs.vpc_facts(["vpc-a"])

    result = stubs.collect(clusters=["alpha"])

    stubs.verify()
    assert len(result.raw_tasks) == 3


def test_describe_tasks_in_batches_of_100_and_enis_in_id_chunks_of_200():
    stubs = Stubs()
    tasks = [make_task("alpha", i, family="web" if i % 2 else "worker") for i in range(250)]
    stubs.ecs().add_response(
        "describe_clusters",
        {"clusters": [{"clusterArn": cluster_arn("alpha"), "clusterName": "alpha"}], "failures": []},
        {"clusters": ["alpha"], "include": ["SETTINGS"]},
    )
    stubs.list_tasks(
        cluster_arn("alpha"), [[t["taskArn"] for t in tasks[:100]], [t["taskArn"] for t in tasks[100:]]]
    )
    stubs.describe_tasks(cluster_arn("alpha"), tasks)  # stubs exactly 100, 100, 50
    stubs.describe_task_definition(td_arn("worker"))  # once per distinct ARN, in task order
    stubs.describe_task_definition(td_arn("web"))
    ids = sorted(eni_id(i) for i in range(250))
    stubs.network_interfaces(
        [[make_eni(int(i[4:], 16)) for i in ids[:200]]], "network-interface-id", ids[:200]
    )
    stubs.network_interfaces(
        [[make_eni(int(i[4:], 16)) for i in ids[200:]]], "network-interface-id", ids[200:]
    )
    stubs.vpc_facts(["vpc-a"])
    progress = []

    result = stubs.collect(clusters=["alpha"], progress=lambda *args: progress.append(args))

    stubs.verify()
    assert len(result.raw_tasks) == 250
    assert all(raw["errors"] == {} for raw in result.raw_tasks)
    assert progress == [
        (0, 250, "list tasks"),
        (100, 250, "describe tasks"),
        (200, 250, "describe tasks"),
        (250, 250, "describe tasks"),
    ]


def test_more_than_1000_enis_are_read_by_subnet_filter_keeping_only_task_enis():
    stubs = Stubs()
    count = 1001
    tasks = [make_task("alpha", i, subnet="subnet-a" if i % 2 else "subnet-b") for i in range(count)]
    stubs.ecs().add_response(
        "describe_clusters",
        {"clusters": [{"clusterArn": cluster_arn("alpha"), "clusterName": "alpha"}], "failures": []},
        {"clusters": ["alpha"], "include": ["SETTINGS"]},
    )
    stubs.cluster_with_tasks("alpha", tasks)
    stubs.describe_task_definition(td_arn())
    enis = [make_eni(i, subnet="subnet-a" if i % 2 else "subnet-b") for i in range(count)]
    foreign = {"NetworkInterfaceId": "eni-0ther", "SubnetId": "subnet-a", "VpcId": "vpc-a"}
    stubs.network_interfaces([enis[:1000], [*enis[1000:], foreign]], "subnet-id", ["subnet-a", "subnet-b"])
    stubs.vpc_facts(["vpc-a"])

    result = stubs.collect(clusters=["alpha"])

    stubs.verify()
    assert len(result.raw_tasks) == count
    assert all(raw["eni"] and "eni" not in raw["errors"] for raw in result.raw_tasks)
    assert all(raw["eni"]["NetworkInterfaceId"] != "eni-0ther" for raw in result.raw_tasks)


def test_describe_network_interfaces_follows_next_token_across_pages():
    stubs = Stubs()
    one_cluster_world(stubs, count=2)
    stubs.network_interfaces([[make_eni(0)], [make_eni(1)]], "network-interface-id", [eni_id(0), eni_id(1)])
    stubs.vpc_facts(["vpc-a"])

    result = stubs.collect(clusters=["alpha"])

    stubs.verify()
    assert [raw["eni"]["NetworkInterfaceId"] for raw in result.raw_tasks] == [eni_id(0), eni_id(1)]
    assert all("eni" not in raw["errors"] for raw in result.raw_tasks)


@pytest.mark.parametrize("call", [*VPC_CALLS, "DescribeFlowLogs"])
def test_vpc_level_describe_follows_next_token_across_pages(call):
    stubs = Stubs()
    one_cluster_world(stubs, count=2)
    stubs.network_interfaces([[make_eni(0), make_eni(1)]], "network-interface-id", [eni_id(0), eni_id(1)])
    pages = [[fact_item(call, "vpc-a", 0)], [fact_item(call, "vpc-a", 2)]]  # item 0: the ENI's group
    stubs.vpc_facts(["vpc-a"], pages={call: pages})

    result = stubs.collect(clusters=["alpha"])

    stubs.verify()
    fact = VPC_CALLS[call][2] if call in VPC_CALLS else "flow_logs"
    vpc = result.raw_tasks[0]["vpc"]
    assert vpc[fact] == [
        json.loads(json.dumps(item, default=datetime.isoformat)) for item in pages[0] + pages[1]
    ]
    assert result.raw_tasks[1]["vpc"] is vpc


def test_vpc_facts_are_fetched_once_for_all_vpcs_with_a_vpc_id_filter():
    stubs = Stubs()
    tasks = [make_task("alpha", i, subnet=f"subnet-{i % 2}") for i in range(4)]
    stubs.ecs().add_response(
        "describe_clusters",
        {"clusters": [{"clusterArn": cluster_arn("alpha"), "clusterName": "alpha"}], "failures": []},
        {"clusters": ["alpha"], "include": ["SETTINGS"]},
    )
    stubs.cluster_with_tasks("alpha", tasks)
    stubs.describe_task_definition(td_arn())
    enis = [make_eni(i, subnet=f"subnet-{i % 2}", vpc=("vpc-a", "vpc-b")[i % 2]) for i in range(4)]
    stubs.network_interfaces([enis], "network-interface-id", [eni_id(i) for i in range(4)])
    stubs.vpc_facts(["vpc-a", "vpc-b"])  # exactly one call per VPC-level API for both VPCs

    result = stubs.collect(clusters=["alpha"])

    stubs.verify()
    vpc_a, vpc_b = result.raw_tasks[0]["vpc"], result.raw_tasks[1]["vpc"]
    assert (vpc_a["vpc_id"], vpc_b["vpc_id"]) == ("vpc-a", "vpc-b")
    assert result.raw_tasks[2]["vpc"] is vpc_a and result.raw_tasks[3]["vpc"] is vpc_b
    assert [sg["GroupId"] for sg in vpc_a["security_groups"]] == ["sg-vpc-a-0"]
    assert [fl["FlowLogId"] for fl in vpc_b["flow_logs"]] == ["fl-vpc-b-0"]


# ---------------------------------------------------------------------------- failures


def test_access_denied_on_flow_logs_marks_only_flow_logs():
    stubs = Stubs()
    one_cluster_world(stubs, count=2)
    stubs.network_interfaces([[make_eni(0), make_eni(1)]], "network-interface-id", [eni_id(0), eni_id(1)])
    stubs.vpc_facts(["vpc-a"], errors={"DescribeFlowLogs": "UnauthorizedOperation"})

    result = stubs.collect(clusters=["alpha"])

    stubs.verify()
    for raw in result.raw_tasks:
        assert raw["errors"] == {
            "flow_logs": "DescribeFlowLogs: UnauthorizedOperation: DescribeFlowLogs refused"
        }
        assert raw["vpc"]["flow_logs"] == []
        assert raw["vpc"]["security_groups"] and raw["vpc"]["route_tables"] and raw["eni"]
    assert result.errors == []


def test_client_error_on_security_groups_marks_security_groups_for_that_vpcs_tasks_only():
    stubs = Stubs(regions=(REGION, OTHER_REGION))
    one_cluster_world(stubs, count=2, region=REGION)
    one_cluster_world(stubs, count=1, region=OTHER_REGION)
    stubs.network_interfaces([[make_eni(0), make_eni(1)]], "network-interface-id", [eni_id(0), eni_id(1)])
    stubs.vpc_facts(["vpc-a"], errors={"DescribeSecurityGroups": "RequestLimitExceeded"})
    stubs.network_interfaces([[make_eni(0, vpc="vpc-z")]], "network-interface-id", [eni_id(0)], OTHER_REGION)
    stubs.vpc_facts(["vpc-z"], region=OTHER_REGION)

    result = stubs.collect(regions=[REGION, OTHER_REGION], clusters=["alpha"])

    stubs.verify()
    by_region = {}
    for raw in result.raw_tasks:
        by_region.setdefault(raw["region"], []).append(raw)
    assert len(by_region[REGION]) == 2 and len(by_region[OTHER_REGION]) == 1
    for raw in by_region[REGION]:
        assert raw["errors"] == {
            "security_groups": "DescribeSecurityGroups: RequestLimitExceeded: DescribeSecurityGroups refused"
        }
        assert raw["vpc"]["security_groups"] == [] and raw["vpc"]["route_tables"]
    assert by_region[OTHER_REGION][0]["errors"] == {}
    assert by_region[OTHER_REGION][0]["vpc"]["security_groups"]


def test_a_refused_read_of_an_attached_group_the_vpc_listing_lacks_concerns_its_tasks_only():
    """A group associated from another VPC is not listed by the `vpc-id` filter and is read
    by id; that read refused leaves the task holding it with its security groups unknown
    (naming the error), and the VPC's other tasks judged on the whole listing."""
    stubs = Stubs()
    one_cluster_world(stubs, count=2)
    eni = make_eni(0) | {"Groups": [{"GroupId": "sg-associated", "GroupName": "shared"}]}
    stubs.network_interfaces([[eni, make_eni(1)]], "network-interface-id", [eni_id(0), eni_id(1)])
    stubs.vpc_facts(["vpc-a"], groups_by_id=(["sg-associated"], "UnauthorizedOperation"))

    result = stubs.collect(clusters=["alpha"])

    stubs.verify()
    holding, other = result.raw_tasks
    assert holding["errors"] == other["errors"] == {}  # the listing itself was read
    assert holding["vpc"]["security_group_errors"] == {
        "sg-associated": "DescribeSecurityGroups: UnauthorizedOperation: refused"
    }
    assert [sg["GroupId"] for sg in holding["vpc"]["security_groups"]] == ["sg-vpc-a-0"]
    problems = {raw["eni"]["NetworkInterfaceId"]: build_posture(raw)["errors"] for raw in result.raw_tasks}
    assert "security_groups" not in problems[eni_id(1)]
    assert "sg-associated" in problems[eni_id(0)]["security_groups"]
    assert "not read: DescribeSecurityGroups: UnauthorizedOperation" in problems[eni_id(0)]["security_groups"]


def test_failed_task_definition_and_cluster_describes_mark_only_those_facts():
    stubs = Stubs()
    tasks = [make_task("alpha", 0)]
    stubs.list_clusters([[cluster_arn("alpha")]])
    stubs.cluster_with_tasks("alpha", tasks)
    stubs.ecs().add_client_error("describe_clusters", "AccessDeniedException", "no clusters", 400)
    stubs.ecs().add_client_error("describe_task_definition", "ClientException", "gone", 400)
    stubs.network_interfaces([[make_eni(0)]], "network-interface-id", [eni_id(0)])
    stubs.vpc_facts(["vpc-a"])

    result = stubs.collect()

    stubs.verify()
    (raw,) = result.raw_tasks
    assert raw["errors"] == {
        "cluster": "DescribeClusters: AccessDeniedException: no clusters",
        "task_definition": "DescribeTaskDefinition: ClientException: gone",
    }
    assert raw["cluster"] is None and raw["task_definition"] is None and raw["vpc"]["security_groups"]


def test_list_tasks_failure_is_a_scan_error_entry_and_other_clusters_go_on():
    stubs = Stubs()
    stubs.list_clusters([[cluster_arn("alpha"), cluster_arn("beta")]])
    stubs.ecs().add_client_error("list_tasks", "AccessDeniedException", "not on alpha", 400)
    stubs.cluster_with_tasks("beta", [make_task("beta", 7)])
    stubs.describe_clusters([cluster_arn("beta")])
    stubs.describe_task_definition(td_arn())
    stubs.network_interfaces([[make_eni(7)]], "network-interface-id", [eni_id(7)])
    stubs.vpc_facts(["vpc-a"])

    result = stubs.collect()

    stubs.verify()
    assert result.errors == [
        {
            "call": "ListTasks",
            "region": REGION,
            "resource": cluster_arn("alpha"),
            "message": "ListTasks: AccessDeniedException: not on alpha",
        }
    ]
    assert [raw["task"]["taskArn"] for raw in result.raw_tasks] == [task_arn("beta", 7)]


def test_list_clusters_denied_in_every_region_raises_scan_error():
    stubs = Stubs()
    stubs.ecs().add_client_error("list_clusters", "AccessDeniedException", "denied", 400)

    with pytest.raises(ScanError, match="ListClusters: AccessDeniedException: denied"):
        stubs.collect()
    stubs.verify()


def test_rejected_credentials_raise_credentials_error():
    stubs = Stubs()
    stubs.ecs().add_client_error("list_clusters", "UnrecognizedClientException", "bad token", 400)

    with pytest.raises(CredentialsError, match="AWS rejected the credentials: ListClusters"):
        stubs.collect()


def test_no_credentials_raise_credentials_error(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # never reach AWS, whatever happens
    session = boto3.Session(region_name=REGION)

    with pytest.raises(CredentialsError, match=r"^no AWS credentials found \(set AWS_PROFILE"):
        collect(session)


def test_a_missing_profile_is_one_credentials_error_even_with_the_region_in_the_environment(
    monkeypatch, tmp_path
):
    from fargate_audit.edge.aws import session_from_env

    monkeypatch.setenv("AWS_PROFILE", "nosuch")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)  # botocore then reads no profile until a call
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))

    with pytest.raises(CredentialsError, match=r"^The config profile \(nosuch\) could not be found$"):
        session_from_env()


def test_no_region_raises_credentials_error():
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
    session._session.set_config_variable("region", None)

    with pytest.raises(CredentialsError, match="no AWS region"):
        collect(session)


# ---------------------------------------------------------------------------- classification


def test_non_fargate_and_non_running_tasks_are_skipped_with_a_reason():
    stubs = Stubs()
    tasks = [
        make_task("alpha", 0),
        make_task("alpha", 1, launch_type="EC2"),
        make_task("alpha", 2, last_status="PENDING"),
        make_task("alpha", 3, launch_type=None, capacity_provider="FARGATE_SPOT"),
        make_task("alpha", 4, launch_type=None, capacity_provider="my-asg"),
        make_task("alpha", 5, last_status="DEACTIVATING"),
    ]
    stubs.ecs().add_response(
        "describe_clusters",
        {"clusters": [{"clusterArn": cluster_arn("alpha"), "clusterName": "alpha"}], "failures": []},
        {"clusters": ["alpha"], "include": ["SETTINGS"]},
    )
    stubs.cluster_with_tasks("alpha", tasks)
    stubs.describe_task_definition(td_arn())
    stubs.network_interfaces([[make_eni(0), make_eni(3)]], "network-interface-id", [eni_id(0), eni_id(3)])
    stubs.vpc_facts(["vpc-a"])

    result = stubs.collect(clusters=["alpha"])

    stubs.verify()
    assert [raw["task"]["taskArn"] for raw in result.raw_tasks] == [
        task_arn("alpha", 0),
        task_arn("alpha", 3),
    ]
    assert result.skipped == [
        {"task_arn": task_arn("alpha", 1), "reason": "launch type EC2"},
        {"task_arn": task_arn("alpha", 2), "reason": "lastStatus PENDING"},
        {"task_arn": task_arn("alpha", 4), "reason": "capacity provider my-asg"},
        {"task_arn": task_arn("alpha", 5), "reason": "lastStatus DEACTIVATING"},
    ]


def test_bundles_are_json_safe_with_iso_timestamps():
    stubs = Stubs()
    one_cluster_world(stubs, count=1)
    stubs.network_interfaces([[make_eni(0)]], "network-interface-id", [eni_id(0)])
    stubs.vpc_facts(["vpc-a"])

    (raw,) = stubs.collect(clusters=["alpha"]).raw_tasks

    assert json.loads(json.dumps(raw)) == raw
    assert raw["task"]["createdAt"] == "2026-11-01T12:00:00+00:00"
    assert raw["task_definition"]["registeredAt"] == "2026-11-01T12:00:00+00:00"
    assert raw["account_id"] == ACCOUNT and raw["region"] == REGION


# ---------------------------------------------------------------------------- aws helpers


def test_describe_error_is_one_line_naming_call_and_code():
    exc = ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "not\nallowed"}}, "DescribeNetworkInterfaces"
    )

    assert (
        describe_error(exc, "DescribeNetworkInterfaces")
        == "DescribeNetworkInterfaces: AccessDenied: not allowed"
    )


def test_call_counter_counts_requests_by_service_and_operation():
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    ecs = session.client("ecs")
    counter = CallCounter()
    counter.attach(ecs)
    counter.attach(ecs)  # attaching twice must not double count

    ecs.meta.events.emit("before-send.ecs.DescribeTasks", request=None)
    ecs.meta.events.emit("before-send.ecs.DescribeTasks", request=None)
    ecs.meta.events.emit("before-send.ecs.ListTasks", request=None)

    assert counter.since({}) == {"ecs.DescribeTasks": 2, "ecs.ListTasks": 1}


# ---------------------------------------------------------------------------- Resolver query logs


def test_query_log_associations_are_listed_once_paged_and_assigned_by_resource_id():
    stubs = Stubs()
    one_cluster_world(stubs, count=2)
    stubs.network_interfaces([[make_eni(0), make_eni(1)]], "network-interface-id", [eni_id(0), eni_id(1)])
    pages = [
        [fact_item(RESOLVER_CALL, "vpc-other", 1), fact_item(RESOLVER_CALL, "vpc-a", 2)],
        [fact_item(RESOLVER_CALL, "vpc-a", 3)],
    ]
    stubs.vpc_facts(["vpc-a"], pages={RESOLVER_CALL: pages})

    result = stubs.collect(clusters=["alpha"])

    stubs.verify()
    vpc = result.raw_tasks[0]["vpc"]
    assert [a["Id"] for a in vpc["query_log_associations"]] == ["rqlca-vpc-a-2", "rqlca-vpc-a-3"]


def test_denied_query_log_listing_marks_only_that_fact():
    stubs = Stubs()
    one_cluster_world(stubs, count=1)
    stubs.network_interfaces([[make_eni(0)]], "network-interface-id", [eni_id(0)])
    stubs.vpc_facts(["vpc-a"], errors={RESOLVER_CALL: "AccessDeniedException"})

    (raw,) = stubs.collect(clusters=["alpha"]).raw_tasks

    stubs.verify()
    assert raw["errors"] == {
        "query_log_associations": f"{RESOLVER_CALL}: AccessDeniedException: {RESOLVER_CALL} refused"
    }
    assert raw["vpc"]["query_log_associations"] == [] and raw["vpc"]["security_groups"]


def test_own_jsonable_converts_a_response_in_place_as_jsonable_would_copy_it():
    from datetime import UTC, date, datetime

    from fargate_audit.edge.collect import jsonable, own_jsonable

    response = {
        "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "items": [{"day": date(2026, 1, 2), "pair": (1, datetime(2026, 1, 2, tzinfo=UTC))}, "x", 3],
        "nested": {"deep": [[date(2026, 2, 3)]]},
    }
    copied = jsonable(response)
    inner = response["items"][0]
    assert own_jsonable(response) is response and response["items"][0] is inner
    assert response == copied
    assert json.loads(json.dumps(response)) == copied


def test_fact_clients_parse_timestamps_into_iso_text_and_others_keep_datetimes():
    """edge.aws.client gives the fact services' clients iso_timestamp (the collector then
    keeps their responses as they come); STS keeps botocore's datetimes, which its
    credential refresh needs."""
    from fargate_audit.edge import aws
    from fargate_audit.edge.collect import json_ready, own_jsonable

    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    ecs, sts = aws.client(session, "ecs", REGION), aws.client(session, "sts", REGION)
    assert aws.timestamps_as_text(ecs) and not aws.timestamps_as_text(sts)
    assert json_ready(ecs)(marker := {"a": 1}) is marker
    assert json_ready(sts) is own_jsonable
    assert json_ready(Stubs().clients.ecs(REGION)) is own_jsonable  # injected: walked as before
    assert aws.iso_timestamp(1761998400) == "2025-11-01T12:00:00+00:00"
    assert aws.iso_timestamp(1761998400.5) == "2025-11-01T12:00:00.500000+00:00"
    assert aws.iso_timestamp("2026-11-01T12:00:00.000Z") == "2026-11-01T12:00:00.000Z"
    # through botocore's own request path (the endpoint parses each response; AWS's JSON
    # gives epoch seconds): a stand-in for the HTTP layer answers, botocore parses
    from botocore.awsrequest import AWSResponse

    class _Raw:
        def __init__(self, body: bytes) -> None:
            self.body = body

        def stream(self, **_):
            yield self.body

    def answer(body: dict):
        def handler(request, **_):
            return AWSResponse(request.url, 200, {}, _Raw(json.dumps(body).encode()))

        return handler

    body = {"tasks": [{"taskArn": "t", "createdAt": 1761998400.0}], "failures": []}
    ecs.meta.events.register("before-send.ecs.DescribeTasks", answer(body))
    response = ecs.describe_tasks(cluster="c", tasks=["t"])
    assert response["tasks"][0]["createdAt"] == "2025-11-01T12:00:00+00:00"
    other = session.client("ecs", region_name=REGION)  # the same session's plain client
    other.meta.events.register("before-send.ecs.DescribeTasks", answer(body))
    assert isinstance(other.describe_tasks(cluster="c", tasks=["t"])["tasks"][0]["createdAt"], datetime)


def test_a_task_described_neither_as_a_task_nor_as_a_failure_is_an_error_not_silence():
    """DescribeTasks answers each ARN in `tasks` or in `failures`; one in neither is a scan
    error naming it (it was dropped without a word)."""
    stubs = Stubs()
    listed = [make_task("alpha", 1), make_task("alpha", 2)]
    stubs.list_clusters([[cluster_arn("alpha")]])
    stubs.list_tasks(cluster_arn("alpha"), [[t["taskArn"] for t in listed]])
    stubs.ecs().add_response(
        "describe_tasks",
        {"tasks": [listed[0]], "failures": []},
        {"cluster": cluster_arn("alpha"), "tasks": [t["taskArn"] for t in listed]},
    )
    stubs.describe_clusters([cluster_arn("alpha")])
    stubs.describe_task_definition(td_arn())
    stubs.network_interfaces([[make_eni(1)]], "network-interface-id", [eni_id(1)])
    stubs.vpc_facts(["vpc-a"])

    result = stubs.collect()

    stubs.verify()
    assert [raw["task"]["taskArn"] for raw in result.raw_tasks] == [task_arn("alpha", 1)]
    assert result.errors == [
        {
            "call": "DescribeTasks",
            "region": REGION,
            "resource": task_arn("alpha", 2),
            "message": f"DescribeTasks: not returned: {task_arn('alpha', 2)}",
        }
    ]


def test_a_listing_cut_short_after_a_page_audits_that_page_and_names_the_failure():
    """--cluster alpha (no ListClusters): ListTasks page 1 read, page 2 refused. The tasks
    of page 1 are audited and the scan error names the call (it ended as 'no cluster in
    scope could be listed', losing page 1)."""
    stubs = Stubs()
    first = make_task("alpha", 1)
    stubs.describe_clusters([cluster_arn("alpha")])
    stubs.ecs().add_response(
        "list_tasks",
        {"taskArns": [first["taskArn"]], "nextToken": "page-2"},
        {"cluster": cluster_arn("alpha"), "maxResults": 100},
    )
    stubs.ecs().add_client_error("list_tasks", "AccessDeniedException", "not page 2", 400)
    stubs.describe_tasks(cluster_arn("alpha"), [first])
    stubs.describe_task_definition(td_arn())
    stubs.network_interfaces([[make_eni(1)]], "network-interface-id", [eni_id(1)])
    stubs.vpc_facts(["vpc-a"])

    result = stubs.collect(clusters=[cluster_arn("alpha")])

    stubs.verify()
    assert [raw["task"]["taskArn"] for raw in result.raw_tasks] == [task_arn("alpha", 1)]
    assert [(e["call"], e["message"]) for e in result.errors] == [
        ("ListTasks", "ListTasks: AccessDeniedException: not page 2")
    ]


def test_the_tasks_of_a_cluster_ecs_no_longer_has_are_missing_not_an_error():
    """describe_tasks (the sweep's and re-audit's): a deleted cluster's tasks are MISSING
    (retired by the caller), whether DescribeTasks refuses the cluster or, for an INACTIVE
    one, answers neither; a cluster DescribeClusters still reports ACTIVE keeps its
    unanswered task unaccounted for, and a failed DescribeClusters concludes nothing."""
    stubs = Stubs()
    gone, inactive, refused, running = (cluster_arn(n) for n in ("gone", "inactive", "refused", "running"))
    for cluster in (gone, inactive, refused, running):  # the order describe_tasks goes in
        name = cluster.rsplit("/", 1)[-1]
        expected = {"cluster": cluster, "tasks": [task_arn(name, 1)]}
        if cluster == refused:
            stubs.ecs().add_client_error(
                "describe_tasks",
                service_error_code="ClusterNotFoundException",
                service_message="Cluster not found.",
                expected_params=expected,
            )
        else:
            stubs.ecs().add_response("describe_tasks", {"tasks": [], "failures": []}, expected)
    stubs.ecs().add_response(
        "describe_clusters",
        {
            "clusters": [
                {"clusterArn": inactive, "clusterName": "inactive", "status": "INACTIVE"},
                {"clusterArn": running, "clusterName": "running", "status": "ACTIVE"},
            ],
            "failures": [{"arn": gone, "reason": "MISSING"}],
        },
        {"clusters": [gone, inactive, running]},
    )
    by_cluster = {c: [task_arn(c.rsplit("/", 1)[-1], 1)] for c in (running, refused, inactive, gone)}

    found, failures = describe_tasks(stubs.clients, REGION, by_cluster)

    stubs.verify()
    assert found == {}
    assert failures == {
        task_arn("gone", 1): "MISSING",
        task_arn("inactive", 1): "MISSING",
        task_arn("refused", 1): "MISSING",  # ClusterNotFoundException
    }  # running's task is in neither: the caller names it "not returned"

    stubs = Stubs()
    expected = {"cluster": gone, "tasks": [task_arn("gone", 1)]}
    stubs.ecs().add_response("describe_tasks", {"tasks": [], "failures": []}, expected)
    stubs.ecs().add_client_error("describe_clusters", service_error_code="AccessDeniedException")
    assert describe_tasks(stubs.clients, REGION, {gone: [task_arn("gone", 1)]}) == ({}, {})
    stubs.verify()


def test_a_cluster_of_another_account_or_region_is_never_concluded_gone():
    """The clients read one account and region: ECS's 'not found' about a cluster of
    another account (a shared VPC's Config change lists every account's tasks) says
    nothing of that cluster: an error, never MISSING (which would retire a running task)."""
    stubs = Stubs()
    theirs = "arn:aws:ecs:eu-west-1:222222222222:cluster/shared"
    task = "arn:aws:ecs:eu-west-1:222222222222:task/shared/" + "a" * 32
    stubs.ecs().add_client_error(
        "describe_tasks",
        service_error_code="ClusterNotFoundException",
        service_message="Cluster not found.",
        expected_params={"cluster": theirs, "tasks": [task]},
    )
    found, failures = describe_tasks(stubs.clients, REGION, {theirs: [task]}, ACCOUNT)
    assert found == {} and failures[task].startswith("DescribeTasks: ClusterNotFoundException")

    stubs = Stubs()  # answered with neither: no DescribeClusters is asked about their cluster
    stubs.ecs().add_response(
        "describe_tasks", {"tasks": [], "failures": []}, {"cluster": theirs, "tasks": [task]}
    )
    assert describe_tasks(stubs.clients, REGION, {theirs: [task]}, ACCOUNT) == ({}, {})
    stubs.verify()

"""The collector on moto (in-process): bundle shape, skipping, shared VPC facts, a vanished ENI.

One emulated account per module (a `mock_aws` context costs about 0.4 s): two VPCs, two
clusters, ten Fargate tasks (one with a public IP, one whose ENI is deleted after the task
started), one EC2-launch-type task; the scan runs once and the tests read its result.
"""

from __future__ import annotations

import json

import boto3
import pytest
from fargate_audit.edge.aws import Clients
from fargate_audit.edge.collect import RAW_FACTS, collect, collect_tasks
from moto import mock_aws
from moto.moto_api import state_manager
from support import env as environment
from support.env import REGION

BUNDLE_KEYS = {"account_id", "region", "task", "task_definition", "cluster", "eni", "vpc", "errors"}
VPC_KEYS = {
    "vpc_id",
    "security_groups",
    "route_tables",
    "network_acls",
    "flow_logs",
    "vpc_endpoints",
    "nat_gateways",
    "query_log_associations",
    "load_balancing",
}


def _network(ec2, cidr: str, name: str) -> dict:
    vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr.replace("0.0/16", "1.0/24"))["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=f"{name}-tasks", Description=name, VpcId=vpc)["GroupId"]
    return {"vpc": vpc, "subnet": subnet, "group": group}


def _run(ecs, cluster: str, definition: str, net: dict, count: int) -> list[dict]:
    return ecs.run_task(
        cluster=cluster,
        taskDefinition=definition,
        launchType="FARGATE",
        count=count,
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": [net["subnet"]], "securityGroups": [net["group"]]}
        },
    )["tasks"]


def _eni_of(task: dict) -> str:
    (attachment,) = [a for a in task["attachments"] if a["type"] == "ElasticNetworkInterface"]
    return next(d["value"] for d in attachment["details"] if d["name"] == "networkInterfaceId")


@pytest.fixture(scope="module")
def world(monkeypatch_module):
    with mock_aws():
        state_manager.set_transition(
            model_name="ecs::task", transition={"progression": "manual", "times": 10**9}
        )
        session = boto3.Session(region_name=REGION)
        ec2, ecs = session.client("ec2"), session.client("ecs")
        net_a = _network(ec2, "10.1.0.0/16", "a")
        net_b = _network(ec2, "10.2.0.0/16", "b")
        unrelated = _network(ec2, "10.9.0.0/16", "unrelated")
        session.client("s3").create_bucket(
            Bucket="flow-logs", CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        for resource, kind, traffic in (
            (net_a["vpc"], "VPC", "ALL"),
            (net_b["subnet"], "Subnet", "REJECT"),
            (unrelated["vpc"], "VPC", "ALL"),
        ):
            created = ec2.create_flow_logs(
                ResourceIds=[resource],
                ResourceType=kind,
                TrafficType=traffic,
                LogDestinationType="s3",
                LogDestination="arn:aws:s3:::flow-logs",
            )
            assert created["FlowLogIds"], created["Unsuccessful"]
        ecs.create_cluster(clusterName="alpha", settings=[{"name": "containerInsights", "value": "enabled"}])
        ecs.create_cluster(clusterName="beta")
        fargate = {
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "256",
            "memory": "512",
        }
        web = ecs.register_task_definition(
            family="web",
            containerDefinitions=[{"name": "app", "image": "nginx:1.25", "memory": 512}],
            **fargate,
        )["taskDefinition"]["taskDefinitionArn"]
        worker = ecs.register_task_definition(
            family="worker",
            containerDefinitions=[{"name": "job", "image": "busybox", "memory": 256}],
            **fargate,
        )["taskDefinition"]["taskDefinitionArn"]

        tasks = {
            "alpha-a": _run(ecs, "alpha", web, net_a, 3),
            "alpha-b": _run(ecs, "alpha", worker, net_b, 2),
            "beta-a": _run(ecs, "beta", worker, net_a, 2),
            "beta-b": _run(ecs, "beta", web, net_b, 3),
        }
        # a public IPv4 on the first task: moto ignores assignPublicIp
        public_eni = _eni_of(tasks["alpha-a"][0])
        allocation = ec2.allocate_address(Domain="vpc")
        ec2.associate_address(AllocationId=allocation["AllocationId"], NetworkInterfaceId=public_eni)
        # the ENI of one task vanishes after ListTasks would have seen the task
        vanished_task = tasks["beta-b"][2]
        vanished_eni = _eni_of(vanished_task)
        ec2.delete_network_interface(NetworkInterfaceId=vanished_eni)

        # one EC2-launch-type task on a registered container instance
        # an image of its own: moto's default AMIs are not loaded once another test's world
        # has turned them off in this process (MOTO_EC2_LOAD_DEFAULT_AMIS), whatever the order
        image = ec2.register_image(Name="ecs-instance", RootDeviceName="/dev/xvda")["ImageId"]
        instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=net_a["subnet"])
        instance_id = instance["Instances"][0]["InstanceId"]
        ecs.register_container_instance(
            cluster="alpha", instanceIdentityDocument=json.dumps({"instanceId": instance_id})
        )
        bridge = ecs.register_task_definition(
            family="legacy",
            requiresCompatibilities=["EC2"],
            containerDefinitions=[{"name": "old", "image": "httpd", "memory": 128}],
        )["taskDefinition"]["taskDefinitionArn"]
        ec2_task = ecs.run_task(cluster="alpha", taskDefinition=bridge, launchType="EC2", count=1)["tasks"][0]

        clients = Clients(session)
        progress: list[tuple] = []
        result = collect(session, progress=lambda *args: progress.append(args), clients=clients)
        yield {
            "session": session,
            "clients": clients,
            "result": result,
            "progress": progress,
            "net_a": net_a,
            "net_b": net_b,
            "tasks": tasks,
            "public_eni": public_eni,
            "public_ip": allocation["PublicIp"],
            "vanished_task": vanished_task["taskArn"],
            "vanished_eni": vanished_eni,
            "ec2_task": ec2_task["taskArn"],
        }


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        environment.apply(patch)  # moto's credentials and region; no profile or endpoint
        yield patch


def _by_arn(world) -> dict[str, dict]:
    return {raw["task"]["taskArn"]: raw for raw in world["result"].raw_tasks}


def test_every_running_fargate_task_gets_one_bundle_in_the_design_shape(world):
    raws = _by_arn(world)
    expected = {t["taskArn"] for group in world["tasks"].values() for t in group}
    assert set(raws) == expected and len(world["result"].raw_tasks) == 10
    for raw in raws.values():
        assert set(raw) == BUNDLE_KEYS
        assert raw["account_id"] == "123456789012" and raw["region"] == REGION
        assert set(raw["errors"]) <= set(RAW_FACTS)
        assert raw["task"]["launchType"] == "FARGATE" and raw["task"]["lastStatus"] == "RUNNING"
        assert raw["task_definition"]["taskDefinitionArn"] == raw["task"]["taskDefinitionArn"]
        assert raw["cluster"]["clusterArn"] == raw["task"]["clusterArn"]


def test_network_facts_match_each_tasks_own_vpc(world):
    nets = {"a": world["net_a"], "b": world["net_b"]}
    for key, group in world["tasks"].items():
        net = nets[key[-1]]
        for task in group:
            raw = _by_arn(world)[task["taskArn"]]
            if task["taskArn"] == world["vanished_task"]:
                continue
            assert raw["errors"] == {}
            assert raw["eni"]["NetworkInterfaceId"] == _eni_of(task)
            assert raw["eni"]["VpcId"] == net["vpc"] and raw["eni"]["SubnetId"] == net["subnet"]
            assert set(raw["vpc"]) == VPC_KEYS and raw["vpc"]["vpc_id"] == net["vpc"]
            assert net["group"] in {g["GroupId"] for g in raw["vpc"]["security_groups"]}
            assert {g["GroupId"] for g in raw["eni"]["Groups"]} == {net["group"]}
            assert any(a.get("Main") for rt in raw["vpc"]["route_tables"] for a in rt["Associations"])
            assert raw["vpc"]["network_acls"]
            flow_logs = [(fl["ResourceId"], fl["TrafficType"]) for fl in raw["vpc"]["flow_logs"]]
            assert flow_logs == [(net["vpc"], "ALL")] if key.endswith("a") else [(net["subnet"], "REJECT")]


def test_public_ip_association_is_on_the_eni_of_that_task_only(world):
    public = [raw for raw in world["result"].raw_tasks if raw["eni"] and raw["eni"].get("Association")]
    assert [raw["eni"]["NetworkInterfaceId"] for raw in public] == [world["public_eni"]]
    assert public[0]["eni"]["Association"]["PublicIp"] == world["public_ip"]


def test_cluster_settings_and_task_definitions_are_attached(world):
    for raw in world["result"].raw_tasks:
        settings = {s["name"]: s["value"] for s in raw["cluster"].get("settings", [])}
        if raw["cluster"]["clusterName"] == "alpha":
            assert settings == {"containerInsights": "enabled"}
        family = raw["task_definition"]["family"]
        assert [c["name"] for c in raw["task_definition"]["containerDefinitions"]] == [
            {"web": "app", "worker": "job"}[family]
        ]


def test_ec2_launch_type_task_is_skipped_and_counted(world):
    result = world["result"]
    assert result.skipped == [{"task_arn": world["ec2_task"], "reason": "launch type EC2"}]
    assert world["ec2_task"] not in _by_arn(world)


def test_vpc_facts_are_shared_objects_fetched_once_for_ten_tasks_in_two_vpcs(world):
    calls = world["result"].api_calls
    for call in (
        "DescribeSecurityGroups",
        "DescribeRouteTables",
        "DescribeNetworkAcls",
        "DescribeVpcEndpoints",
        "DescribeNatGateways",
        "DescribeFlowLogs",
        "DescribeNetworkInterfaces",
    ):
        assert calls[f"ec2.{call}"] == 1, call
    assert calls["ecs.DescribeTasks"] == 2  # one per cluster, <= 100 tasks each
    assert calls["ecs.ListTasks"] == 2 and calls["ecs.ListClusters"] == 1
    assert calls["ecs.DescribeClusters"] == 1 and calls["ecs.DescribeTaskDefinition"] == 2
    assert calls["route53resolver.ListResolverQueryLogConfigAssociations"] == 1  # once for both VPCs
    # DescribeTargetGroups once for the region (no load balancer: nothing more); no
    # DescribeSubnets: the tasks' subnet ids come from their ENIs
    assert calls["elasticloadbalancing.DescribeTargetGroups"] == 1
    assert sum(calls.values()) == 17
    vpcs: dict[str, dict] = {}
    for raw in world["result"].raw_tasks:
        if raw["vpc"] is not None:
            assert vpcs.setdefault(raw["vpc"]["vpc_id"], raw["vpc"]) is raw["vpc"]
    assert set(vpcs) == {world["net_a"]["vpc"], world["net_b"]["vpc"]}


def test_vanished_eni_is_an_error_for_that_task_only(world):
    raws = _by_arn(world)
    vanished = raws[world["vanished_task"]]
    assert vanished["errors"] == {
        "eni": f"DescribeNetworkInterfaces: {world['vanished_eni']} not found (vanished)"
    }
    assert vanished["eni"] is None and vanished["vpc"] is None
    assert vanished["task_definition"] is not None and vanished["cluster"] is not None
    others = [raw for arn, raw in raws.items() if arn != world["vanished_task"]]
    assert len(others) == 9 and all(raw["errors"] == {} and raw["eni"] for raw in others)


def test_every_bundle_survives_json_dumps(world):
    for raw in world["result"].raw_tasks:
        assert json.loads(json.dumps(raw)) == raw


def test_timestamps_arrive_as_iso_text_and_no_response_is_walked(world, monkeypatch):
    """The fact clients parse timestamps into ISO-8601 text (edge.aws.iso_timestamp), so the
    collector keeps their responses as they come: own_jsonable never runs."""
    from datetime import datetime

    from fargate_audit.edge import collect as collect_module

    walked = []
    monkeypatch.setattr(collect_module, "own_jsonable", lambda value: walked.append(value) or value)
    result = collect_module.collect(boto3.session.Session(region_name=REGION), regions=[REGION])
    assert result.raw_tasks and walked == []
    stamps = []

    def walk(value, key=""):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif key.endswith(("Time", "Timestamp", "At")):
            stamps.append(value)

    for raw in result.raw_tasks:
        walk(raw)
        json.dumps(raw)  # no datetime anywhere: the default encoder would refuse one
    assert stamps  # moto's ECS tasks carry none; its NAT gateways and VPC endpoints do
    for stamp in stamps:
        assert isinstance(stamp, str) and datetime.fromisoformat(stamp.replace("Z", "+00:00")).tzinfo, stamp


def test_scope_progress_and_no_scan_errors(world):
    result = world["result"]
    assert result.errors == []
    assert result.scope == {
        "accounts": ["123456789012"],
        "regions": [REGION],
        "clusters": [
            "arn:aws:ecs:eu-west-1:123456789012:cluster/alpha",
            "arn:aws:ecs:eu-west-1:123456789012:cluster/beta",
        ],
    }
    assert world["progress"][0] == (0, 11, "list tasks")
    assert world["progress"][-1] == (11, 11, "describe tasks")


def test_collect_tasks_enriches_an_event_shaped_task(world):
    task = dict(world["tasks"]["alpha-b"][0])
    detail = dict(task, attachments=[dict(a, type="eni") for a in task["attachments"]])
    detail["createdAt"] = "2026-11-01T12:00:00Z"

    result = collect_tasks(world["clients"], REGION, task["clusterArn"], [detail])

    (raw,) = result.raw_tasks
    assert raw["errors"] == {}
    assert raw["eni"]["NetworkInterfaceId"] == _eni_of(task)
    assert raw["vpc"]["vpc_id"] == world["net_b"]["vpc"]
    assert raw["task"]["createdAt"] == "2026-11-01T12:00:00Z"
    assert result.api_calls["ec2.DescribeNetworkInterfaces"] == 1


def test_postures_built_with_a_shared_memo_equal_postures_built_alone(world):
    """scan.evaluate_raw shares derived network facts between the tasks of a subnet, VPC or
    group set (posture.build_posture's memo): the postures are equal either way, also when
    some tasks of a VPC saw its facts fail and others did not."""
    import copy

    from fargate_audit.core import posture

    raws = copy.deepcopy(world["result"].raw_tasks)
    # half the tasks of each VPC lost their route tables and NACLs to an error
    for index, raw in enumerate(raws):
        if raw["vpc"] is not None and index % 2:
            raw["errors"] = {**raw["errors"], "route_tables": "DescribeRouteTables: Throttling: slow down"}
    alone = [posture.build_posture(raw) for raw in raws]
    memo: dict = {}
    shared = [posture.build_posture(raw, memo) for raw in raws]
    assert shared == alone
    assert json.dumps(shared, sort_keys=True) == json.dumps(alone, sort_keys=True)
    assert any(p["errors"].get("route_table") for p in shared)
    assert any(p["network"].get("route_table_id") for p in shared)
    # the tasks of one VPC whose facts all came hold the very same derived objects
    by_vpc: dict[str, list[dict]] = {}
    for raw, p in zip(raws, shared, strict=True):
        if p["network"]["vpc_id"] and p["network"]["nacl"] and not raw["errors"]:
            by_vpc.setdefault(p["network"]["vpc_id"], []).append(p)
    assert by_vpc and all(len(ps) > 1 for ps in by_vpc.values())
    for ps in by_vpc.values():
        assert all(p["network"]["nacl"] is ps[0]["network"]["nacl"] for p in ps)
    # and the engine, which evaluates the checks registered with inputs once per shared part,
    # gives the same results as on postures that share nothing
    from fargate_audit.core import engine
    from fargate_audit.core.rules import load_catalog

    catalog = load_catalog()
    assert engine.evaluate(catalog, shared).results == engine.evaluate(catalog, copy.deepcopy(alone)).results

"""The collector reads a security group attached to a task's ENI that the VPC's listing
lacks (a group associated from another VPC), on its own emulator state."""

from __future__ import annotations

import boto3
import pytest
from fargate_audit.edge.aws import Clients
from fargate_audit.edge.collect import collect
from moto import mock_aws
from moto.moto_api import state_manager
from support import env as environment
from support.env import REGION


@pytest.fixture
def aws_env(monkeypatch):
    environment.apply(monkeypatch)


def test_a_group_associated_from_another_vpc_is_read_by_id(aws_env):
    """The DescribeSecurityGroups `vpc-id` filter names the VPC a group was created in; a
    group associated with another VPC (AssociateSecurityGroupVpc) is attached to ENIs there
    too. Before, it was reported "not found" and NET-02/03/04 were ERROR on every scan.
    (moto has no AssociateSecurityGroupVpc; it lets an ENI hold another VPC's group.)"""
    with mock_aws():
        state_manager.set_transition(
            model_name="ecs::task", transition={"progression": "manual", "times": 10**9}
        )
        session = boto3.Session(region_name=REGION)
        ec2, ecs = session.client("ec2"), session.client("ecs")
        vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})  # moto's run_task needs it
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.1.0/24")["Subnet"]["SubnetId"]
        ec2.create_security_group(GroupName="tasks", Description="tasks", VpcId=vpc)
        other_vpc = ec2.create_vpc(CidrBlock="10.2.0.0/16")["Vpc"]["VpcId"]
        shared = ec2.create_security_group(GroupName="shared", Description="shared", VpcId=other_vpc)
        shared = shared["GroupId"]
        ecs.create_cluster(clusterName="alpha")
        definition = ecs.register_task_definition(
            family="web",
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            containerDefinitions=[{"name": "app", "image": "nginx:1.25", "memory": 512}],
        )["taskDefinition"]["taskDefinitionArn"]
        (task,) = ecs.run_task(
            cluster="alpha",
            taskDefinition=definition,
            launchType="FARGATE",
            networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [shared]}},
        )["tasks"]

        result = collect(session, clients=Clients(session))

        (raw,) = result.raw_tasks
        assert raw["task"]["taskArn"] == task["taskArn"]
        assert raw["errors"] == {}
        assert [g["GroupId"] for g in raw["eni"]["Groups"]] == [shared]
        assert shared in {g["GroupId"] for g in raw["vpc"]["security_groups"]}
        assert result.api_calls["ec2.DescribeSecurityGroups"] == 2  # the VPC's listing, then by id

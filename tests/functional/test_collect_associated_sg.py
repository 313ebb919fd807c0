"""The collector reads a security group attached to a task's ENI that the VPC's listing
lacks (a group associated from another VPC), on its own emulator state."""

from __future__ import annotations

import boto3
import pytest
from fargate_audit.edge.aws import Clients
from fargate_audit.edge.collect import collect
from fargate_audit.local import estate
from moto import mock_aws
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
        b = estate._Builder(boto3.Session(region_name=REGION), REGION)  # task states frozen
        vpc = b.vpc("tasks", "10.1.0.0/16")
        subnet = b.subnet("tasks-a", vpc, "10.1.1.0/24", "a")
        b.ec2.create_security_group(GroupName="tasks", Description="tasks", VpcId=vpc)
        other_vpc = b.vpc("other", "10.2.0.0/16")
        shared = b.ec2.create_security_group(GroupName="shared", Description="shared", VpcId=other_vpc)
        shared = shared["GroupId"]
        b.cluster("alpha", None)
        b.task_definition("web", [estate._container("app", "nginx:1.25")])
        (task_arn,) = b.run_tasks("alpha", "web", [subnet], [shared], 1, "1.4.0")

        result = collect(b.session, clients=Clients(b.session))

        (raw,) = result.raw_tasks
        assert raw["task"]["taskArn"] == task_arn
        assert raw["errors"] == {}
        assert [g["GroupId"] for g in raw["eni"]["Groups"]] == [shared]
        assert shared in {g["GroupId"] for g in raw["vpc"]["security_groups"]}
        assert result.api_calls["ec2.DescribeSecurityGroups"] == 2  # the VPC's listing, then by id

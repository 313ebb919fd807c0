"""The emulated estate gives task ENIs distinct addresses of their subnet, as AWS does.
moto drew any address of the block, repeats included: one run in about a hundred, the etl
task of the test world took a web task's address and stood behind that task's load
balancer target (tests/functional/test_ingress_events.py failed on CI)."""

from __future__ import annotations

import ipaddress

import boto3
import pytest
from fargate_audit.local import estate
from moto import mock_aws
from support import env as environment
from support.env import REGION


@pytest.fixture
def aws_env(monkeypatch):
    environment.apply(monkeypatch)


def _addresses(builder, cluster: str, arns: list[str]) -> list[str]:
    tasks = builder.ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
    enis = [estate._eni_of(task) for task in tasks]
    described = builder.ec2.describe_network_interfaces(NetworkInterfaceIds=enis)["NetworkInterfaces"]
    return [eni["PrivateIpAddress"] for eni in described]


def test_task_enis_of_a_nearly_full_subnet_hold_distinct_usable_addresses(aws_env):
    with mock_aws():
        builder = estate._Builder(boto3.Session(region_name=REGION), REGION)
        vpc = builder.vpc("small", "10.9.0.0/16")
        subnet = builder.subnet("small-a", vpc, "10.9.1.0/27", "a")  # 27 usable addresses
        group = builder.ec2.create_security_group(GroupName="t", Description="t", VpcId=vpc)["GroupId"]
        builder.cluster("c", None)
        builder.task_definition("app", [estate._container("app", "public.ecr.aws/nginx/nginx:1")])
        arns = builder.run_tasks("c", "app", [subnet], [group], 27, "1.4.0")

        addresses = _addresses(builder, "c", arns)
        assert len(set(addresses)) == 27
        block = ipaddress.IPv4Network("10.9.1.0/27")
        usable = {str(address) for address in list(block)[4:-1]}  # AWS reserves 4 + the last
        assert set(addresses) == usable

        with pytest.raises(ValueError, match="no free address"):
            builder.run_tasks("c", "app", [subnet], [group], 1, "1.4.0")

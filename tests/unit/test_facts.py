"""core/facts.py: the one definition of the posture and its facts, and what is derived from it."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path

import jsonschema
import pytest
from fargate_audit.core import facts
from fargate_audit.core.posture import POSTURE_VERSION, build_posture
from fargate_audit.core.rules import load_catalog
from fargate_audit.findings import asff
from fargate_audit.stores import record

REPO = Path(__file__).resolve().parents[2]
BASE = json.loads((REPO / "tests" / "fixtures" / "base_posture.json").read_text())

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_posture import bundle  # noqa: E402

_spec = importlib.util.spec_from_file_location("sync_facts", REPO / "scripts" / "sync_facts.py")
sync_facts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sync_facts)


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(sync_facts.POSTURE_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


# --------------------------------------------------------------------------- generated files


@pytest.mark.parametrize("path", list(sync_facts.expected()), ids=lambda p: p.name)
def test_committed_copy_is_what_the_declarations_generate(path):
    assert path.read_text(encoding="utf-8") == sync_facts.expected()[path], (
        f"{path.relative_to(REPO)} is stale: run scripts/sync_facts.py"
    )


def test_the_staleness_check_notices_a_changed_declaration(monkeypatch):
    assert sync_facts.stale() == []
    monkeypatch.setattr(facts, "FACT_NAMES", facts.FACT_NAMES + ("new_fact",))
    monkeypatch.setitem(facts.BY_NAME, "new_fact", facts.Fact("new_fact", ("ec2:DescribeVpcs",)))
    assert set(sync_facts.stale()) == {
        sync_facts.POSTURE_SCHEMA,
        sync_facts.CATALOG_SCHEMA,
        sync_facts.README,
        sync_facts.TEMPLATE,  # its Ec2DescribeNetwork statements gain ec2:DescribeVpcs
        sync_facts.MEMBER_TEMPLATE,  # the member role's too
    }


def test_rules_may_require_exactly_the_declared_facts():
    schema = json.loads((REPO / "rules" / "schema.json").read_text())
    assert schema["$defs"]["facts"]["items"]["enum"] == list(facts.FACT_NAMES)
    required = {fact for rule in load_catalog(REPO / "rules").rules for fact in rule.requires}
    assert required <= set(facts.FACT_NAMES)


def test_readme_scan_policy_is_the_derived_one():
    block = sync_facts._POLICY_BLOCK.search(sync_facts.README.read_text()).group(2)
    assert json.loads(block) == facts.scan_policy()
    actions = facts.scan_policy()["Statement"][0]["Action"]
    assert actions == sorted(set(actions))
    assert {"ecs:ListClusters", "ecs:ListTasks", "ecs:DescribeTasks"} <= set(actions)
    assert "ec2:DescribeNatGateways" in actions  # egress follows the NAT gateway


def test_read_actions_of_some_facts_are_theirs_and_the_scope_calls():
    assert facts.read_actions(["cluster"], scope=()) == ["ecs:DescribeClusters"]
    assert facts.read_actions(["nacl"], scope=["ecs:DescribeTasks"]) == [
        "ec2:DescribeNetworkAcls",
        "ec2:DescribeNetworkInterfaces",
        "ecs:DescribeTasks",
    ]
    with pytest.raises(KeyError):
        facts.read_actions(["no_such_fact"])


# --------------------------------------------------------------------------- the posture schema


def test_base_posture_fixture_is_a_posture(validator):
    assert list(validator.iter_errors(BASE)) == []


def test_built_postures_are_postures_with_and_without_errors(validator):
    raw = bundle()
    complete = build_posture(raw)
    assert complete["errors"] == {}
    assert list(validator.iter_errors(complete)) == []
    for raw_fact in ("eni", "task_definition", "cluster", "security_groups", "route_tables", "flow_logs"):
        spoiled = copy.deepcopy(raw)
        spoiled.setdefault("errors", {})[raw_fact] = f"Describe: AccessDenied ({raw_fact})"
        built = build_posture(spoiled)
        assert built["errors"], raw_fact
        assert list(validator.iter_errors(built)) == [], raw_fact
    assert list(validator.iter_errors(build_posture({}))) == []  # nothing collected at all


def test_the_schema_refuses_what_is_no_posture(validator):
    unknown_fact = dict(BASE, errors={"subnets": "x"})
    extra_key = copy.deepcopy(BASE)
    extra_key["network"]["subnet_cidr"] = "10.0.0.0/24"
    missing = {k: v for k, v in BASE.items() if k != "cluster"}
    bad_port = copy.deepcopy(BASE)
    bad_port["network"]["world_ingress"]["ipv4"][0]["from"] = "443"
    for posture in (unknown_fact, extra_key, missing, bad_port, dict(BASE, posture_version=2)):
        assert list(validator.iter_errors(posture)), posture


def test_the_schema_has_every_key_the_normaliser_writes():
    schema = facts.posture_schema()
    assert set(schema["required"]) == set(BASE) == set(build_posture(bundle()))
    assert set(schema["$defs"]["Network"]["required"]) == set(BASE["network"])
    assert schema["properties"]["posture_version"] == {"const": POSTURE_VERSION}
    assert schema["properties"]["errors"]["propertyNames"] == {"enum": list(facts.FACT_NAMES)}


# --------------------------------------------------------------------------- derived indexes


def test_every_fact_is_declared_once_with_well_formed_actions():
    assert len(facts.FACT_NAMES) == len(set(facts.FACT_NAMES))
    for fact in facts.FACTS:
        assert fact.actions, fact.name
        for action in fact.actions:
            service, _, operation = action.partition(":")
            assert (
                service in {"ecs", "ec2", "route53resolver", "elasticloadbalancing", "wafv2"}
                and operation[:1].isupper()
            ), action
        assert set(fact.asff_resources) <= {"eni", "security_groups", "subnet", "load_balancers"}, fact.name


def test_network_facts_are_those_read_through_the_eni():
    assert facts.NETWORK_FACTS[0] == "eni"
    assert set(facts.NETWORK_FACTS) == {
        "eni", "security_groups", "route_table", "egress", "nacl",
        "flow_logs", "vpc_endpoints", "dns_query_logging", "load_balancers", "web_acl",
    }  # fmt: skip
    spoiled = bundle()
    spoiled["errors"] = {"eni": "DescribeNetworkInterfaces: AccessDenied"}
    assert set(build_posture(spoiled)["errors"]) == set(facts.NETWORK_FACTS)


def test_history_paths_keep_their_order():
    assert [path for path, _ in record.FACT_PATHS] == [
        "task_definition_arn",
        "platform_version",
        "cluster.container_insights",
        "containers.images",
        "containers.registries",
        "containers.log_drivers",
        "network.subnet_id",
        "network.public_ipv4",
        "network.ipv6_addresses",
        "network.public_address",
        "network.security_groups",
        "network.world_ingress",
        "network.world_egress_rules",
        "network.route_table_id",
        "network.egress.ipv4",
        "network.egress.ipv6",
        "network.nacl.id",
        "network.nacl.inbound_world_allowed",
        "network.flow_logs",
        "network.vpc_endpoints",
        "network.query_log_configs",
        "network.exposures",
        "errors",
    ]


def test_each_plain_history_path_reads_the_posture_at_that_path():
    for path, extract in record.FACT_PATHS:
        value = BASE
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if path not in ("errors", "network.security_groups", "network.vpc_endpoints") and value is not None:
            assert extract(BASE) == value, path


def test_history_of_a_posture_missing_its_parts_is_none_not_a_crash():
    change = record.diff({"network": {}}, {}, {}, {})
    assert change == {"rules": {}, "facts": []}


def test_dependencies_come_from_the_facts_that_declare_them():
    by_fact = {fact.name: sorted(i for i in fact.depends_on(BASE["network"]) if i) for fact in facts.FACTS}
    assert by_fact["eni"] == ["eni-0a1b2c3d4e5f60718", "subnet-0c1d2e3f405162738", "vpc-0e1f2a3b4c5d6e7f8"]
    assert by_fact["egress"] == ["nat-0f1e2d3c4b5a69788", "vpce-0d4c3b2a190817263"]
    assert by_fact["flow_logs"] == ["fl-0123456789abcdef0"]  # a deleted flow log finds its tasks
    assert by_fact["dns_query_logging"] == []
    assert record.dependencies(BASE) == sorted({i for ids in by_fact.values() for i in ids})


def test_asff_resources_are_the_declared_ones():
    assert asff._FACT_RESOURCES == {
        "eni": ("eni",),
        "security_groups": ("security_groups",),
        "route_table": ("subnet",),
        "egress": ("subnet",),
        "nacl": ("subnet",),
        "flow_logs": ("eni", "subnet"),
        "vpc_endpoints": ("subnet",),
        "load_balancers": ("load_balancers",),
        "web_acl": ("load_balancers",),
    }

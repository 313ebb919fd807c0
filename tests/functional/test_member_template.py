"""templates/member.yaml, the member accounts' StackSet: who may assume its audit role, what
the role may do, which events it forwards to the central bus, and which stack instance
creates what (IAM is global, a StackSet instance is per region).

Pure tests on the template's documents (support.template's loader); cfn-lint and checkov
run on the file in scripts/sam-checks.sh and scripts/checkov.sh.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.resources
import json
import re

import pytest
from fargate_audit.core import facts
from support.cfn import Stack
from support.template import REPO_ROOT, event_patterns, load_template

MEMBER_PATH = REPO_ROOT / "templates" / "member.yaml"
PUBLISHER = REPO_ROOT / "layers" / "fargate_audit" / "findings" / "publish.py"
CENTRAL, MEMBER, OUTSIDER = "111111111111", "222222222222", "999999999999"
BUS = f"arn:aws:events:eu-west-1:{CENTRAL}:event-bus/fargate-audit-members"
PARAMS = {
    "CentralAccountId": CENTRAL,
    "CentralEventBusArn": BUS,
    "ExternalId": "fargate-audit-4711",
    "RoleRegion": "eu-west-1",
}
OWN_PRODUCT = "arn:${AWS::Partition}:securityhub:*:${AWS::AccountId}:product/${AWS::AccountId}/default"
# Actions that take no resource-level permission ("*" is the only resource they accept).
STAR_RESOURCE_ACTIONS = set(facts.read_actions()) - {"ecs:DescribeTasks", "ecs:DescribeClusters"}


@pytest.fixture(scope="module")
def member() -> dict:
    return load_template(MEMBER_PATH)


@pytest.fixture(scope="module")
def central() -> dict:
    return load_template()


def _role_statements(role: dict) -> list[dict]:
    (policy,) = role["Properties"]["Policies"]
    return policy["PolicyDocument"]["Statement"]


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _publisher_security_hub_actions() -> set[str]:
    """securityhub:<Operation> of every call the Publisher makes on a Security Hub client
    (``self.client.<operation>(...)`` or, per account, ``client.<operation>(...)`` in
    findings/publish.py)."""
    operations = set()
    for node in ast.walk(ast.parse(PUBLISHER.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if (isinstance(owner, ast.Attribute) and owner.attr == "client") or (
                isinstance(owner, ast.Name) and owner.id == "client"
            ):
                operations.add(node.func.attr)
    assert operations, "no Security Hub call found in findings/publish.py"
    return {"securityhub:" + "".join(word.title() for word in op.split("_")) for op in operations}


# ---------------------------------------------------------------------------------------
# parameters and which instance creates what


def test_parameters_are_the_central_account_bus_external_id_and_role_name(member, central):
    params = member["Parameters"]
    assert set(params) == {
        "CentralAccountId",
        "CentralStackName",
        "CentralEventBusArn",
        "ExternalId",
        "MemberRoleName",
        "RoleRegion",
        "ScannerPrincipalArn",
    }
    assert params["ExternalId"]["NoEcho"] is True
    assert "Default" not in params["ExternalId"]  # no trust without an ExternalId
    assert re.fullmatch(params["ExternalId"]["AllowedPattern"], "fargate-audit-4711")
    assert not re.fullmatch(params["ExternalId"]["AllowedPattern"], "")
    # the names the central stack uses for the same things
    assert params["MemberRoleName"]["Default"] == central["Parameters"]["MemberRoleName"]["Default"]
    assert params["MemberRoleName"]["Default"] == "fargate-audit-member"
    assert params["CentralStackName"]["Default"] == "fargate-audit"
    assert re.fullmatch(params["CentralEventBusArn"]["AllowedPattern"], BUS)
    assert re.fullmatch(params["CentralAccountId"]["AllowedPattern"], CENTRAL)
    assert not re.fullmatch(params["CentralAccountId"]["AllowedPattern"], "12345")


def test_is_plain_cloudformation_for_a_stackset(member):
    assert "Transform" not in member
    text = MEMBER_PATH.read_text(encoding="utf-8")
    assert not re.search(r"(^|\s)[*&][A-Za-z]", text), "CloudFormation rejects YAML anchors and aliases"


@pytest.mark.parametrize(
    ("account", "region", "expected"),
    [
        # the role once per account (RoleRegion); forwarding everywhere but where the
        # central functions already see the events on their default bus
        (
            MEMBER,
            "eu-west-1",
            {"AuditRole", "ForwardRole", "TaskStateChangeForward", "ConfigItemChangeForward"},
        ),
        (MEMBER, "us-east-1", {"ForwardRole", "TaskStateChangeForward", "ConfigItemChangeForward"}),
        (CENTRAL, "eu-west-1", {"AuditRole"}),
        (CENTRAL, "us-east-1", {"ForwardRole", "TaskStateChangeForward", "ConfigItemChangeForward"}),
    ],
)
def test_each_stack_instance_creates_the_role_once_and_forwards_once(member, account, region, expected):
    stack = Stack(member, PARAMS, AccountId=account, Region=region)
    assert stack.resources() == expected


# ---------------------------------------------------------------------------------------
# the audit role


def test_the_role_has_the_member_role_name(member):
    role = member["Resources"]["AuditRole"]
    assert role["Type"] == "AWS::IAM::Role"
    assert role["Properties"]["RoleName"] == {"Ref": "MemberRoleName"}
    assert "Path" not in role["Properties"]  # arn:PARTITION:iam::ACCOUNT:role/NAME, as the functions build it
    assert role["Condition"] == "CreatesRole"
    assert member["Conditions"]["CreatesRole"] == {
        "Fn::Equals": [{"Ref": "AWS::Region"}, {"Ref": "RoleRegion"}]
    }


def test_only_the_central_function_roles_with_the_external_id_may_assume_the_role(member):
    trust = member["Resources"]["AuditRole"]["Properties"]["AssumeRolePolicyDocument"]
    statement, scanner = trust["Statement"]
    # the CLI's scanner only when one is named, with the ExternalId (README: --role-name)
    assert scanner == {
        "Fn::If": [
            "TrustsScanner",
            {
                "Sid": "CliScanner",
                "Effect": "Allow",
                "Principal": {"AWS": {"Ref": "ScannerPrincipalArn"}},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}},
            },
            {"Ref": "AWS::NoValue"},
        ]
    }
    assert member["Conditions"]["TrustsScanner"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ScannerPrincipalArn"}, ""]}]
    }
    pattern = member["Parameters"]["ScannerPrincipalArn"]["AllowedPattern"]
    assert re.fullmatch(pattern, "") and re.fullmatch(
        pattern, f"arn:aws:iam::{CENTRAL}:role/security/Auditor"
    )
    assert not re.fullmatch(pattern, "*") and not re.fullmatch(pattern, f"arn:aws:iam::{CENTRAL}:root")
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sts:AssumeRole"  # not TagSession, not SetSourceIdentity
    assert statement["Principal"] == {
        "AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${CentralAccountId}:root"}
    }
    assert statement["Condition"] == {
        "StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}},
        "ArnLike": {
            "aws:PrincipalArn": {
                "Fn::Sub": "arn:${AWS::Partition}:iam::${CentralAccountId}:role/${CentralStackName}/*"
            }
        },
    }


def _arn_like(pattern: str, arn: str) -> bool:
    # IAM's ArnLike: * and ? within the ARN, case-sensitive.
    return fnmatch.fnmatchcase(arn, pattern)


@pytest.mark.parametrize(
    ("principal", "admitted"),
    [
        # the central stack's function roles: RolePath /STACK/ (template.yaml Globals)
        (f"arn:aws:iam::{CENTRAL}:role/fargate-audit/fargate-audit-TaskEventsFunctionRole-AbC123", True),
        (f"arn:aws:iam::{CENTRAL}:role/fargate-audit/fargate-audit-SweepWorkerFunctionRole-XyZ9", True),
        (f"arn:aws:iam::{CENTRAL}:role/fargate-audit-TaskEventsFunctionRole-AbC123", False),  # no path
        (
            f"arn:aws:iam::{CENTRAL}:role/fargate-audit-test/fargate-audit-test-TaskEventsFunctionRole-1",
            False,
        ),
        (f"arn:aws:iam::{CENTRAL}:user/fargate-audit/admin", False),
        (f"arn:aws:iam::{OUTSIDER}:role/fargate-audit/fargate-audit-TaskEventsFunctionRole-AbC123", False),
    ],
)
def test_the_principal_arn_condition_admits_only_the_central_stacks_roles(
    member, central, principal, admitted
):
    trust = member["Resources"]["AuditRole"]["Properties"]["AssumeRolePolicyDocument"]
    pattern = trust["Statement"][0]["Condition"]["ArnLike"]["aws:PrincipalArn"]["Fn::Sub"]
    pattern = pattern.replace("${AWS::Partition}", "aws").replace("${CentralAccountId}", CENTRAL)
    pattern = pattern.replace("${CentralStackName}", "fargate-audit")
    assert _arn_like(pattern, principal) is admitted
    # the path the central stack gives its function roles when it audits members
    assert central["Globals"]["Function"]["RolePath"] == {
        "Fn::If": ["AuditsMembers", {"Fn::Sub": "/${AWS::StackName}/"}, {"Ref": "AWS::NoValue"}]
    }


def test_the_role_may_do_exactly_the_collectors_reads_and_the_publishers_import(member):
    actions = {a for s in _role_statements(member["Resources"]["AuditRole"]) for a in _as_list(s["Action"])}
    security_hub = _publisher_security_hub_actions()
    assert security_hub == {"securityhub:BatchImportFindings"}
    assert actions == set(facts.read_actions()) | security_hub


def test_the_import_is_allowed_only_into_the_members_own_default_product(member):
    statements = _role_statements(member["Resources"]["AuditRole"])
    (statement,) = [s for s in statements if "securityhub:BatchImportFindings" in _as_list(s["Action"])]
    assert statement["Action"] == "securityhub:BatchImportFindings"
    # The role is global (one per account): the finding's region is the one wildcard.
    assert statement["Resource"] == {"Fn::Sub": OWN_PRODUCT}
    assert "Condition" not in statement


def test_reads_are_scoped_to_the_member_or_star_only_where_iam_offers_nothing_narrower(member):
    for statement in _role_statements(member["Resources"]["AuditRole"]):
        assert statement["Effect"] == "Allow"
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource"}
        actions, resources = _as_list(statement["Action"]), _as_list(statement["Resource"])
        assert all("*" not in action for action in actions)
        if resources == ["*"]:
            assert set(actions) <= STAR_RESOURCE_ACTIONS, actions
        elif actions == ["ecs:DescribeTasks"]:
            assert resources == [{"Fn::Sub": "arn:${AWS::Partition}:ecs:*:${AWS::AccountId}:task/*"}]
        elif actions == ["ecs:DescribeClusters"]:
            assert resources == [{"Fn::Sub": "arn:${AWS::Partition}:ecs:*:${AWS::AccountId}:cluster/*"}]
        else:
            assert actions == ["securityhub:BatchImportFindings"], actions


def test_every_action_exists_in_iam(member):
    import cfnlint.data.AdditionalSpecs as specs

    catalogue = json.loads((importlib.resources.files(specs) / "Policies.json").read_text(encoding="utf-8"))
    for role_id in ("AuditRole", "ForwardRole"):
        for statement in _role_statements(member["Resources"][role_id]):
            for action in _as_list(statement["Action"]):
                service, name = action.split(":", 1)
                assert name.lower() in catalogue[service]["Actions"], action


# ---------------------------------------------------------------------------------------
# event forwarding


def test_the_forwarding_rules_send_exactly_the_central_functions_events(member, central):
    forwarded = event_patterns(member)
    assert set(forwarded) == {"TaskStateChangeForward", "ConfigItemChangeForward"}
    assert forwarded["TaskStateChangeForward"] == event_patterns(central)["TaskEventsFunctionTaskStateChange"]
    assert (
        forwarded["ConfigItemChangeForward"]
        == event_patterns(central)["ConfigEventsFunctionConfigItemChange"]
    )
    task = forwarded["TaskStateChangeForward"]
    assert task["detail"] == {"launchType": ["FARGATE"], "lastStatus": ["RUNNING", "STOPPED"]}
    assert forwarded["ConfigItemChangeForward"]["source"] == ["aws.config"]


def test_each_rule_targets_the_central_bus_through_the_forwarding_role(member):
    for rule_id in ("TaskStateChangeForward", "ConfigItemChangeForward"):
        props = member["Resources"][rule_id]["Properties"]
        assert "EventBusName" not in props  # the account's default bus, where AWS services put
        assert props["State"] == "ENABLED"
        assert props["Targets"] == [
            {
                "Id": "CentralEventBus",
                "Arn": {"Ref": "CentralEventBusArn"},
                "RoleArn": {"Fn::GetAtt": ["ForwardRole", "Arn"]},
            }
        ], rule_id


def test_the_forwarding_role_may_only_put_events_on_the_central_bus(member):
    role = member["Resources"]["ForwardRole"]
    assert "RoleName" not in role["Properties"]  # one per region: a generated name
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    (statement,) = _role_statements(role)
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "events:PutEvents"
    assert statement["Resource"] == {"Ref": "CentralEventBusArn"}

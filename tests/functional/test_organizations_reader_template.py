"""templates/organizations-reader.yaml, the role the central stack's functions list the
organization's accounts through (OrganizationsRoleArn): who may assume it and exactly what
it may call (the Organizations calls of edge/accounts.organization_accounts, read from the
code and recorded on the emulator).

Pure tests on the template's documents, beside one run on moto's Organizations; cfn-lint
and checkov run on the file in scripts/sam-checks.sh and scripts/checkov.sh.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.resources
import json
import re

import boto3
import pytest
from fargate_audit.edge import accounts
from moto import mock_aws
from support.cfn import Stack
from support.template import REPO_ROOT, load_template

READER_PATH = REPO_ROOT / "templates" / "organizations-reader.yaml"
ACCOUNTS_PY = REPO_ROOT / "layers" / "fargate_audit" / "edge" / "accounts.py"
CENTRAL, OUTSIDER = "111111111111", "999999999999"
PRINCIPAL_ARN = "arn:${AWS::Partition}:iam::${CentralAccountId}:role/${CentralStackName}/*"
PARENT_RESOURCES = [
    {"Fn::Sub": "arn:${AWS::Partition}:organizations::*:root/o-*/r-*"},
    {"Fn::Sub": "arn:${AWS::Partition}:organizations::*:ou/o-*/ou-*"},
]


@pytest.fixture(scope="module")
def reader() -> dict:
    return load_template(READER_PATH)


def _role(reader: dict) -> dict:
    (role,) = [r for r in reader["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    return role


def _statements(reader: dict) -> list[dict]:
    (policy,) = _role(reader)["Properties"]["Policies"]
    return policy["PolicyDocument"]["Statement"]


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _actions(reader: dict) -> set[str]:
    return {a for s in _statements(reader) for a in _as_list(s["Action"])}


def _camel(operation: str) -> str:
    return "".join(word.title() for word in operation.split("_"))


def _organizations_calls_in_the_code() -> set[str]:
    """organizations:<Operation> of every call ``organization_accounts`` makes on its
    client: ``organizations_client.get_paginator("<operation>")`` and
    ``organizations_client.<operation>(...)`` (AuditedAccounts lists through it)."""
    tree = ast.parse(ACCOUNTS_PY.read_text(encoding="utf-8"))
    (function,) = [
        n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "organization_accounts"
    ]
    client = function.args.args[0].arg
    operations = set()
    for node in ast.walk(function):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        if isinstance(owner, ast.Name) and owner.id == client:
            if node.func.attr == "get_paginator":
                (name,) = node.args
                operations.add(name.value)
            else:
                operations.add(node.func.attr)
    assert operations, "no Organizations call found in edge/accounts.organization_accounts"
    return {f"organizations:{_camel(op)}" for op in operations}


def test_audited_accounts_lists_through_organization_accounts():
    # the reader's actions are organization_accounts' calls: AuditedAccounts makes no other
    tree = ast.parse(ACCOUNTS_PY.read_text(encoding="utf-8"))
    (audited,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "AuditedAccounts"]
    called = {
        n.func.id if isinstance(n.func, ast.Name) else n.func.attr
        for n in ast.walk(audited)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name | ast.Attribute)
    }
    assert "organization_accounts" in called
    assert not {name for name in called if name.startswith("list_") or name == "get_paginator"}


# ---------------------------------------------------------------------------------------
# parameters


def test_parameters_are_the_central_account_stack_name_optional_external_id_and_role_name(reader):
    params = reader["Parameters"]
    assert set(params) == {"CentralAccountId", "CentralStackName", "ExternalId", "RoleName"}
    member = load_template(REPO_ROOT / "templates" / "member.yaml")["Parameters"]
    for name in ("CentralAccountId", "CentralStackName"):  # the same values, checked the same way
        for key in ("Type", "AllowedPattern", "Default"):
            assert params[name].get(key) == member[name].get(key), (name, key)
    external_id = params["ExternalId"]
    assert external_id["NoEcho"] is True and external_id["Default"] == ""
    assert re.fullmatch(external_id["AllowedPattern"], "")  # none: the central stack presents none
    assert re.fullmatch(external_id["AllowedPattern"], "fargate-audit-4711")
    assert not re.fullmatch(external_id["AllowedPattern"], "x")  # IAM: 2 to 1,224 characters
    # the role's ARN is what the central stack's OrganizationsRoleArn accepts
    central = load_template()["Parameters"]
    role_arn = f"arn:aws:iam::{CENTRAL}:role/{params['RoleName']['Default']}"
    assert re.fullmatch(central["OrganizationsRoleArn"]["AllowedPattern"], role_arn)
    assert params["RoleName"]["Default"] == "fargate-audit-organizations"
    assert external_id["AllowedPattern"] == central["MemberExternalId"]["AllowedPattern"]


def test_is_plain_cloudformation(reader):
    assert "Transform" not in reader
    text = READER_PATH.read_text(encoding="utf-8")
    assert not re.search(r"(^|\s)[*&][A-Za-z]", text), "CloudFormation rejects YAML anchors and aliases"
    assert set(reader["Resources"]) == {"OrganizationsReaderRole"}
    assert reader["Outputs"]["OrganizationsRoleArn"]["Value"] == {
        "Fn::GetAtt": ["OrganizationsReaderRole", "Arn"]
    }


# ---------------------------------------------------------------------------------------
# trust


def test_only_the_central_function_roles_may_assume_the_role_with_the_external_id_when_given(reader):
    role = _role(reader)
    assert role["Properties"]["RoleName"] == {"Ref": "RoleName"}
    assert "Path" not in role["Properties"]  # the ARN OrganizationsRoleArn names: role/NAME
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Action"] == "sts:AssumeRole"  # not TagSession, not SetSourceIdentity
    assert statement["Principal"] == {
        "AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${CentralAccountId}:root"}
    }
    assert statement["Condition"] == {
        "StringEquals": {
            "Fn::If": ["HasExternalId", {"sts:ExternalId": {"Ref": "ExternalId"}}, {"Ref": "AWS::NoValue"}]
        },
        "ArnLike": {"aws:PrincipalArn": {"Fn::Sub": PRINCIPAL_ARN}},
    }
    assert reader["Conditions"]["HasExternalId"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ExternalId"}, ""]}]}
    assert Stack(reader, {"CentralAccountId": CENTRAL}).condition("HasExternalId") is False
    given = {"CentralAccountId": CENTRAL, "ExternalId": "fargate-audit-4711"}
    assert Stack(reader, given).condition("HasExternalId") is True


def test_the_trust_is_the_member_roles(reader):
    member = load_template(REPO_ROOT / "templates" / "member.yaml")
    # the member role's trust of the central functions (its other, optional, is the CLI's)
    theirs, _cli_scanner = member["Resources"]["AuditRole"]["Properties"]["AssumeRolePolicyDocument"][
        "Statement"
    ]
    (ours,) = _role(reader)["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert ours["Principal"] == theirs["Principal"]
    assert ours["Condition"]["ArnLike"] == theirs["Condition"]["ArnLike"]


@pytest.mark.parametrize(
    ("principal", "admitted"),
    [
        (f"arn:aws:iam::{CENTRAL}:role/fargate-audit/fargate-audit-SweepPlannerFunctionRole-AbC123", True),
        (f"arn:aws:iam::{CENTRAL}:role/fargate-audit/fargate-audit-TaskEventsFunctionRole-XyZ9", True),
        (f"arn:aws:iam::{CENTRAL}:role/fargate-audit-SweepPlannerFunctionRole-AbC123", False),  # no path
        (f"arn:aws:iam::{CENTRAL}:role/fargate-audit-test/fargate-audit-test-SweepPlannerRole-1", False),
        (f"arn:aws:iam::{CENTRAL}:user/fargate-audit/admin", False),
        (f"arn:aws:iam::{OUTSIDER}:role/fargate-audit/fargate-audit-SweepPlannerFunctionRole-AbC123", False),
    ],
)
def test_the_principal_arn_condition_admits_only_the_central_stacks_roles(principal, admitted):
    pattern = PRINCIPAL_ARN.replace("${AWS::Partition}", "aws").replace("${CentralAccountId}", CENTRAL)
    pattern = pattern.replace("${CentralStackName}", "fargate-audit")
    assert fnmatch.fnmatchcase(principal, pattern) is admitted  # IAM's ArnLike


def test_every_function_that_may_assume_the_role_has_the_trusted_path():
    # the central stack gives its function roles the path /STACK/ whenever it has the role
    central = load_template()
    assert {"Condition": "HasOrganizationsRole"} in central["Conditions"]["AuditsMembers"]["Fn::Or"]
    assert central["Globals"]["Function"]["RolePath"] == {
        "Fn::If": ["AuditsMembers", {"Fn::Sub": "/${AWS::StackName}/"}, {"Ref": "AWS::NoValue"}]
    }


# ---------------------------------------------------------------------------------------
# what the role may do


def test_the_role_may_do_exactly_the_organizations_calls_of_the_code(reader):
    assert _actions(reader) == _organizations_calls_in_the_code()
    assert _actions(reader) == {
        "organizations:ListAccounts",
        "organizations:ListAccountsForParent",
        "organizations:ListOrganizationalUnitsForParent",
    }


def test_the_calls_made_on_the_emulator_are_the_roles_actions(reader, monkeypatch):
    # every branch of organization_accounts (the whole organization, and under an OU)
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("organizations", region_name="us-east-1")
        client.create_organization(FeatureSet="ALL")
        root = client.list_roots()["Roots"][0]["Id"]
        ou = client.create_organizational_unit(ParentId=root, Name="workloads")["OrganizationalUnit"]["Id"]
        client.create_organizational_unit(ParentId=ou, Name="prod")
        called: set[str] = set()
        client.meta.events.register(
            "before-call.organizations", lambda model=None, **_: called.add(f"organizations:{model.name}")
        )
        accounts.organization_accounts(client)
        accounts.organization_accounts(client, [root])
    assert called == _actions(reader)


def test_listing_is_allowed_on_any_resource_and_the_parent_listings_on_roots_and_ous_only(reader):
    by_actions = {tuple(sorted(_as_list(s["Action"]))): s for s in _statements(reader)}
    assert by_actions.keys() == {
        ("organizations:ListAccounts",),
        ("organizations:ListAccountsForParent", "organizations:ListOrganizationalUnitsForParent"),
    }
    for statement in by_actions.values():
        assert statement["Effect"] == "Allow" and set(statement) <= {"Sid", "Effect", "Action", "Resource"}
    # ListAccounts takes no resource-level permission; the parent listings name their parent
    assert by_actions[("organizations:ListAccounts",)]["Resource"] == "*"
    parents = by_actions[
        ("organizations:ListAccountsForParent", "organizations:ListOrganizationalUnitsForParent")
    ]
    assert parents["Resource"] == PARENT_RESOURCES


def test_every_action_exists_in_iam(reader):
    import cfnlint.data.AdditionalSpecs as specs

    catalogue = json.loads((importlib.resources.files(specs) / "Policies.json").read_text(encoding="utf-8"))
    for action in _actions(reader):
        service, name = action.split(":", 1)
        assert name.lower() in catalogue[service]["Actions"], action


# ---------------------------------------------------------------------------------------
# deployment


def test_the_readme_deploys_it_with_its_own_parameters(reader):
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    deploy = r"aws cloudformation deploy [^`]*?--template-file templates/organizations-reader\.yaml"
    (command,) = re.findall(deploy + r"[^`]*?\n\s*aws ", readme)
    overrides = re.findall(r"(\w+)=\S+", command.split("--parameter-overrides", 1)[1])
    assert overrides and set(overrides) <= set(reader["Parameters"])
    assert "CentralAccountId" in overrides and "CAPABILITY_NAMED_IAM" in command
    # the central stack's example names the role this template creates by default
    assert f"role/{reader['Parameters']['RoleName']['Default']}" in readme

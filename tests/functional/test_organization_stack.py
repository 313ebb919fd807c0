"""template.yaml at organization scale: the member event bus and who may put events on it,
the parameters the functions read (AUDITED_ACCOUNTS ...), and that a stack with none of
them set creates nothing new (a single-account stack stays as it was).

Fault: an event forged with an audited account's id, put on the bus by a principal outside
the organization, is refused by the bus policy (evaluated here for its one statement).
"""

from __future__ import annotations

import re

import pytest
from support.cfn import Stack
from support.template import load_template

AUDITED, OUTSIDER = "222222222222", "999999999999"
ORG = "o-a1b2c3d4e5"
BUS_ARN = "arn:aws:events:eu-west-1:111111111111:event-bus/fargate-audit-members"
ORGANIZATION_RESOURCES = {
    "MemberEventBus",
    "MemberEventBusPolicy",
    "TaskEventsMemberRule",
    "TaskEventsMemberRulePermission",
    "ConfigEventsMemberRule",
    "ConfigEventsMemberRulePermission",
}
NEW_PARAMETERS = {
    "AuditedAccounts",
    "OrganizationsRoleArn",
    "AuditedOrganizationalUnits",
    "AuditedRegions",
    "MemberRoleName",
    "MemberExternalId",
    "OrganizationId",
}


@pytest.fixture(scope="module")
def template() -> dict:
    return load_template()


def _stack(template, **params) -> Stack:
    return Stack(template, params, AccountId="111111111111", Region="eu-west-1")


# ---------------------------------------------------------------------------------------
# parameters and conditions


def test_the_new_parameters_default_to_a_single_account_stack(template):
    params = template["Parameters"]
    assert set(params) >= NEW_PARAMETERS
    for name in ("AuditedAccounts", "AuditedOrganizationalUnits", "AuditedRegions"):
        assert params[name]["Type"] == "CommaDelimitedList" and params[name]["Default"] == "", name
    for name in ("OrganizationsRoleArn", "MemberExternalId", "OrganizationId"):
        assert params[name]["Type"] == "String" and params[name]["Default"] == "", name
        assert re.fullmatch(params[name]["AllowedPattern"], ""), name
    assert params["MemberRoleName"]["Default"] == "fargate-audit-member"
    assert params["MemberExternalId"]["NoEcho"] is True
    assert re.fullmatch(params["OrganizationId"]["AllowedPattern"], ORG)
    assert not re.fullmatch(params["OrganizationId"]["AllowedPattern"], "123456789012")
    assert re.fullmatch(
        params["OrganizationsRoleArn"]["AllowedPattern"], "arn:aws:iam::333333333333:role/org-read"
    )


def test_without_the_new_parameters_nothing_new_is_created(template):
    stack = _stack(template)
    assert not stack.condition("AuditsMembers")
    assert not stack.condition("HasOrganizationsRole")
    assert not stack.condition("HasOrganization")
    assert not stack.resources() & ORGANIZATION_RESOURCES
    for logical_id in ORGANIZATION_RESOURCES:
        assert template["Resources"][logical_id]["Condition"] == "HasOrganization", logical_id
    # the functions' roles keep their path and gain no statement (both under the conditions)
    assert template["Globals"]["Function"]["RolePath"]["Fn::If"][0] == "AuditsMembers"


@pytest.mark.parametrize(
    ("params", "members", "organizations", "bus"),
    [
        ({"AuditedAccounts": f"{AUDITED},333333333333"}, True, False, False),
        ({"OrganizationsRoleArn": "arn:aws:iam::333333333333:role/org-read"}, True, True, False),
        ({"OrganizationId": ORG}, False, False, True),
        ({"AuditedAccounts": AUDITED, "OrganizationId": ORG}, True, False, True),
        ({"AuditedRegions": "eu-west-1,us-east-1", "MemberExternalId": "x-4711"}, False, False, False),
    ],
)
def test_conditions_follow_the_parameters(template, params, members, organizations, bus):
    stack = _stack(template, **params)
    assert stack.condition("AuditsMembers") is members
    assert stack.condition("HasOrganizationsRole") is organizations
    assert stack.condition("HasOrganization") is bus
    assert (stack.resources() >= ORGANIZATION_RESOURCES) is bus


# ---------------------------------------------------------------------------------------
# the member event bus


def test_the_bus_policy_admits_put_events_only_from_the_organization(template):
    props = template["Resources"]["MemberEventBusPolicy"]["Properties"]
    assert props["EventBusName"] == {"Ref": "MemberEventBus"}
    statement = props["Statement"]
    assert statement == {
        "Sid": "OrganizationPutEvents",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "events:PutEvents",
        "Resource": {"Fn::GetAtt": ["MemberEventBus", "Arn"]},
        "Condition": {"StringEquals": {"aws:PrincipalOrgID": {"Ref": "OrganizationId"}}},
    }
    assert template["Resources"]["MemberEventBus"]["Properties"]["Name"] == {
        "Fn::Sub": "${AWS::StackName}-members"
    }


def _resolve(node, values: dict):
    if isinstance(node, dict) and set(node) == {"Ref"}:
        return values[node["Ref"]]
    if isinstance(node, dict) and set(node) == {"Fn::GetAtt"}:
        return values[".".join(node["Fn::GetAtt"])]
    return node


def _allows(statement: dict, request: dict, values: dict) -> bool:
    """IAM evaluation of one resource-policy statement (Allow, Principal "*", StringEquals
    conditions): a missing context key fails its condition; no Allow = implicit deny."""
    if statement["Effect"] != "Allow" or statement["Principal"] != "*":
        raise ValueError("this evaluator reads one Allow statement for any principal")
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    if request["action"] not in actions or request["resource"] != _resolve(statement["Resource"], values):
        return False
    for operator, conditions in statement.get("Condition", {}).items():
        if operator != "StringEquals":
            raise ValueError(f"{operator} is not evaluated here")
        for key, wanted in conditions.items():
            if request["context"].get(key) != _resolve(wanted, values):
                return False
    return True


def _put_events(principal_account: str, org: str | None, event_account: str) -> dict:
    context = {"aws:PrincipalAccount": principal_account}
    if org is not None:
        context["aws:PrincipalOrgID"] = org
    # the event body names the audited account: nothing in the policy may trust it
    entry = {"Source": "aws.ecs", "DetailType": "ECS Task State Change", "Account": event_account}
    return {"action": "events:PutEvents", "resource": BUS_ARN, "context": context, "entry": entry}


def test_a_forged_event_from_outside_the_organization_is_refused_by_the_bus_policy(template):
    statement = template["Resources"]["MemberEventBusPolicy"]["Properties"]["Statement"]
    values = {"OrganizationId": ORG, "MemberEventBus.Arn": BUS_ARN}
    # an account of another organization, or of none, puts an event naming an audited account
    assert not _allows(statement, _put_events(OUTSIDER, "o-zzzzzzzzzz", AUDITED), values)
    assert not _allows(statement, _put_events(OUTSIDER, None, AUDITED), values)
    # the member's own forwarding role (in the organization) is admitted
    assert _allows(statement, _put_events(AUDITED, ORG, AUDITED), values)
    # other actions and other buses are not granted
    other = _put_events(AUDITED, ORG, AUDITED) | {"action": "events:PutRule"}
    assert not _allows(statement, other, values)
    elsewhere = _put_events(AUDITED, ORG, AUDITED) | {"resource": BUS_ARN.replace("members", "default")}
    assert not _allows(statement, elsewhere, values)


def test_the_function_rules_on_the_member_bus_are_those_of_the_default_bus(template):
    functions = template["Resources"]
    for rule_id, function_id, event_id in [
        ("TaskEventsMemberRule", "TaskEventsFunction", "TaskStateChange"),
        ("ConfigEventsMemberRule", "ConfigEventsFunction", "ConfigItemChange"),
    ]:
        rule = template["Resources"][rule_id]["Properties"]
        own = functions[function_id]["Properties"]["Events"][event_id]["Properties"]
        assert rule["EventBusName"] == {"Ref": "MemberEventBus"}, rule_id
        assert rule["EventPattern"] == own["Pattern"], rule_id
        assert rule["State"] == "ENABLED"
        (target,) = rule["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}, rule_id
        assert target["RetryPolicy"] == own["RetryPolicy"], rule_id
        assert target.get("DeadLetterConfig") == own.get("DeadLetterConfig"), rule_id
        permission = template["Resources"][f"{rule_id}Permission"]["Properties"]
        assert permission == {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Ref": function_id},
            "Principal": "events.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]},
        }


def test_the_bus_arn_is_an_output_for_the_member_stackset(template):
    output = template["Outputs"]["MemberEventBusArn"]
    assert output["Condition"] == "HasOrganization"
    assert output["Value"] == {"Fn::GetAtt": ["MemberEventBus", "Arn"]}

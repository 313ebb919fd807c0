"""``invoke --parameter-overrides`` (interface.md): template parameters as ``sam deploy``
takes them, checked as CloudFormation would check them, and the environment a function of a
stack deployed with those values sees."""

from __future__ import annotations

import pytest
from fargate_audit.cli.template import load_template
from fargate_audit.core.errors import ConfigError
from fargate_audit.local.invoke import function_environment, parse_parameter_overrides

TEMPLATE = load_template()


def env_of(*overrides: str, function: str = "TaskEventsFunction") -> dict[str, str]:
    return function_environment(
        TEMPLATE,
        function,
        "table",
        queue_url="https://queue",
        overrides=parse_parameter_overrides(overrides, TEMPLATE),
    )


def test_without_overrides_each_parameter_is_its_default():
    environment = env_of()

    assert environment["LOG_LEVEL"] == "INFO"
    assert environment["AUDITED_ACCOUNTS"] == "" and environment["MEMBER_ROLE_NAME"] == "fargate-audit-member"


def test_an_override_replaces_the_default_and_a_list_parameter_is_given_as_a_comma_list():
    environment = env_of("LogLevel=DEBUG", "AuditedAccounts=111111111111,222222222222")

    assert environment["LOG_LEVEL"] == "DEBUG"
    assert environment["AUDITED_ACCOUNTS"] == "111111111111,222222222222"
    assert environment["ALLOWED_ACCOUNTS"] == ""  # untouched parameters keep their default


def test_several_pairs_in_one_argument_and_quoted_values_as_sam_takes_them():
    overrides = parse_parameter_overrides(
        ["LogLevel=WARNING SweepSchedule=\"rate(1 hour)\" MemberRoleName='audit-reader'"], TEMPLATE
    )

    assert overrides == {
        "LogLevel": "WARNING",
        "SweepSchedule": "rate(1 hour)",
        "MemberRoleName": "audit-reader",
    }


def test_a_value_with_spaces_in_its_own_argument_stays_whole():
    assert parse_parameter_overrides(["SweepSchedule=rate(1 hour)"], TEMPLATE) == {
        "SweepSchedule": "rate(1 hour)"
    }


def test_the_cloudformation_long_form_is_taken_too():
    overrides = parse_parameter_overrides(
        ["ParameterKey=AuditedRegions,ParameterValue=eu-west-1,us-east-1"], TEMPLATE
    )

    assert overrides == {"AuditedRegions": "eu-west-1,us-east-1"}
    assert env_of("ParameterKey=AuditedRegions,ParameterValue=eu-west-1,us-east-1")["AUDITED_REGIONS"] == (
        "eu-west-1,us-east-1"
    )


def test_several_long_form_pairs_in_one_argument_as_sam_documents_them():
    """sam's own example: "ParameterKey=KeyPairName,ParameterValue=MyKey
    ParameterKey=InstanceType,ParameterValue=t1.micro". Before, the first value swallowed
    the rest of the argument."""
    overrides = parse_parameter_overrides(
        [
            "ParameterKey=PublishFindings,ParameterValue=false "
            "ParameterKey=AuditedRegions,ParameterValue=eu-west-1,us-east-1  "
            "ParameterKey=SweepSchedule,ParameterValue=rate(1 hour)"
        ],
        TEMPLATE,
    )

    assert overrides == {
        "PublishFindings": "false",
        "AuditedRegions": "eu-west-1,us-east-1",
        "SweepSchedule": "rate(1 hour)",
    }


def test_the_last_value_of_a_parameter_given_twice_wins():
    assert parse_parameter_overrides(["LogLevel=DEBUG", "LogLevel=ERROR"], TEMPLATE) == {"LogLevel": "ERROR"}


def test_a_value_may_contain_an_equals_sign():
    overrides = parse_parameter_overrides(["AuditRoleExternalId=a=b"], TEMPLATE)

    assert overrides == {"AuditRoleExternalId": "a=b"}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            "Nope=1",
            "--parameter-overrides: Nope is not a parameter of template.yaml (one of AllowedAccounts,",
        ),
        ("LogLevel", "--parameter-overrides: 'LogLevel' is not KEY=VALUE"),
        ("=DEBUG", "--parameter-overrides: '=DEBUG' is not KEY=VALUE"),
        (
            "LogLevel=VERBOSE",
            "--parameter-overrides: LogLevel: 'VERBOSE' is not one of DEBUG, INFO, WARNING, ERROR",
        ),
        ("PublishFindings=yes", "--parameter-overrides: PublishFindings: 'yes' is not one of true, false"),
        ("VpcCacheTtlSeconds=soon", "--parameter-overrides: VpcCacheTtlSeconds: 'soon' is not a number"),
        (
            "VpcCacheTtlSeconds=3601",
            "--parameter-overrides: VpcCacheTtlSeconds: '3601' is above MaxValue 3600",
        ),
        ("VpcCacheTtlSeconds=-1", "--parameter-overrides: VpcCacheTtlSeconds: '-1' is below MinValue 0"),
        ("LogRetentionDays=2", "--parameter-overrides: LogRetentionDays: '2' is not one of 1, 3, 5,"),
        (
            "AuditRoleArn=arn:aws:iam::12:role/x",
            "--parameter-overrides: AuditRoleArn: 'arn:aws:iam::12:role/x' ",
        ),
        (
            "OrganizationId=r-abcd",
            "--parameter-overrides: OrganizationId: 'r-abcd' does not match AllowedPattern",
        ),
    ],
)
def test_a_bad_override_is_one_error_naming_the_parameter(item, message):
    with pytest.raises(ConfigError) as raised:
        parse_parameter_overrides([item], TEMPLATE)

    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_a_number_parameter_takes_any_spelling_of_an_allowed_value():
    assert parse_parameter_overrides(["LogRetentionDays=14", "VpcCacheTtlSeconds=0"], TEMPLATE) == {
        "LogRetentionDays": "14",
        "VpcCacheTtlSeconds": "0",
    }


def test_a_noecho_parameter_value_is_never_repeated_in_the_error():
    with pytest.raises(ConfigError) as raised:
        parse_parameter_overrides(["MemberExternalId=s3cr3t value!"], TEMPLATE)

    assert "s3cr3t" not in str(raised.value)
    assert str(raised.value).startswith(
        "--parameter-overrides: MemberExternalId: the value (NoEcho, not shown) does not match AllowedPattern"
    )


def test_an_empty_value_is_a_value_and_is_checked_like_any_other():
    environment = env_of("FlowLogFormat=${srcaddr} ${dstaddr}", "FlowLogFormat=", function="FlowLogsFunction")

    assert environment["FLOW_LOG_FORMAT"] == ""
    with pytest.raises(ConfigError, match="MemberRoleName: '' does not match AllowedPattern"):
        parse_parameter_overrides(["MemberRoleName="], TEMPLATE)


@pytest.mark.parametrize(
    "item",
    [
        "AuditedAccounts=222222222222,12345",
        "AllowedAccounts=1234567890123",
        "AllowedRegions=eu-west1",
        "AuditedRegions=EU-WEST-1",
        "AuditedOrganizationalUnits=ou-abcd",
    ],
)
def test_a_list_value_the_functions_would_refuse_is_refused_at_deploy_time(item):
    """Each value of a list parameter is checked against its AllowedPattern, as
    CloudFormation does: a stack that deploys with a value every function refuses
    (ConfigError on each invocation) is refused before it deploys."""
    key = item.split("=", 1)[0]
    with pytest.raises(ConfigError, match=f"--parameter-overrides: {key}: .* does not match AllowedPattern"):
        parse_parameter_overrides([item], TEMPLATE)


def test_the_list_patterns_take_what_the_functions_take():
    from fargate_audit.app import lambda_handlers

    environment = env_of(
        "AuditedAccounts=222222222222,333333333333",
        "AuditedRegions=eu-west-1,us-gov-west-1",
        "AllowedRegions=ap-southeast-2",
        "OrganizationsRoleArn=arn:aws:iam::111111111111:role/org-reader",
        "AuditedOrganizationalUnits=ou-ab12-cdefgh34,r-ab12",
        "MemberExternalId=member-ext",
    )
    settings = lambda_handlers._organization_settings(environment)
    assert settings["regions"] == frozenset({"eu-west-1", "us-gov-west-1"})
    assert settings["units"] == ["ou-ab12-cdefgh34", "r-ab12"]
    assert parse_parameter_overrides(["AllowedAccounts="], TEMPLATE) == {"AllowedAccounts": ""}


ROLE = "AuditRoleArn=arn:aws:iam::111111111111:role/audit"
ORG_ROLE = "OrganizationsRoleArn=arn:aws:iam::111111111111:role/org-reader"
MEMBER_ID = "MemberExternalId=member-ext"
COMBINATIONS = [
    ((), None),
    ((ROLE,), None),
    ((ROLE, "AuditRoleExternalId=ext-1"), None),
    (("AuditedAccounts=222222222222", "AuditedRegions=eu-west-1", MEMBER_ID), None),
    ((ORG_ROLE, "AuditedOrganizationalUnits=ou-ab12-cdefgh34", MEMBER_ID), None),
    ((ROLE, "AuditedAccounts=222222222222", MEMBER_ID), "OneAuditDesign"),
    ((ROLE, ORG_ROLE), "OneAuditDesign"),
    (("AuditRoleExternalId=ext-1",), "AuditRoleExternalIdNeedsRole"),
    (
        ("AuditedAccounts=222222222222", "AuditedOrganizationalUnits=ou-ab12-cdefgh34", MEMBER_ID),
        "OrganizationalUnitsNeedOrganizationsRole",
    ),
    # templates/member.yaml's trust requires the ExternalId: an empty one is AccessDenied everywhere
    (("AuditedAccounts=222222222222",), "MemberRolesNeedExternalId"),
    ((ORG_ROLE,), "MemberRolesNeedExternalId"),
    (("MemberExternalId=", "AuditedAccounts=222222222222"), "MemberRolesNeedExternalId"),
]


@pytest.mark.parametrize(("items", "refused_by"), COMBINATIONS)
def test_the_template_rules_refuse_at_deploy_time_what_every_function_refuses(items, refused_by):
    """template.yaml's Rules (evaluated by ``invoke`` as CloudFormation evaluates them)
    refuse exactly the combinations that make every function fail at start-up
    (build_runtime's ConfigError): such a stack never deploys."""
    import boto3
    from fargate_audit.app import lambda_handlers
    from fargate_audit.local.invoke import check_template_rules

    overrides = parse_parameter_overrides(items, TEMPLATE)
    session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="eu-west-1")
    try:
        lambda_handlers.build_runtime(env_of(*items), session=session)
        refused_at_runtime = False
    except ConfigError:
        refused_at_runtime = True
    assert refused_at_runtime is (refused_by is not None)
    if refused_by is None:
        check_template_rules(TEMPLATE, overrides)
    else:
        with pytest.raises(ConfigError, match=f"--parameter-overrides: rule {refused_by}: "):
            check_template_rules(TEMPLATE, overrides)


def test_invoke_refuses_a_combination_the_template_rules_refuse(tmp_path, capsys):
    """The CLI says it in one line and exits 2, before any AWS call."""
    from fargate_audit.cli.commands import main

    event = tmp_path / "event.json"
    event.write_text("{}")
    argv = [
        "invoke",
        "task_events",
        str(event),
        "--parameter-overrides",
        ROLE,
        "AuditedAccounts=222222222222",
    ]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert "rule OneAuditDesign: AuditRoleArn (one audited account) and AuditedAccounts" in err
    assert "Traceback" not in err


def test_invoke_against_aws_that_cannot_be_reached_says_so_instead_of_a_stand_in_account(monkeypatch):
    """Without AWS_ENDPOINT_URL, GetCallerIdentity failing (no network) ran the handler as
    account 000000000000 (meant for an emulator without STS): every event was 'rejected: not
    in the allowed accounts (000000000000)', the cause never named."""
    import boto3
    from botocore.exceptions import EndpointConnectionError
    from fargate_audit.core.errors import CredentialsError
    from fargate_audit.edge import aws
    from fargate_audit.local import invoke

    class Unreachable:
        def get_caller_identity(self):
            raise EndpointConnectionError(endpoint_url="https://sts.eu-west-1.amazonaws.com/")

    monkeypatch.setattr(aws, "client", lambda session, service, region: Unreachable())
    session = boto3.Session(aws_access_key_id="a", aws_secret_access_key="b", region_name="eu-west-1")
    with pytest.raises(CredentialsError, match=r"sts:GetCallerIdentity: EndpointConnectionError"):
        invoke.caller_account(session, emulated=False)
    assert invoke.caller_account(session, emulated=True) is None  # an emulator without STS

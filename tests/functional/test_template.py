"""template.yaml is what design.md section 5 says, and its event patterns route the samples.

Neither `sam validate` nor cfn-lint checks event patterns, numeric relations (visibility
timeout vs function timeout) or, on a SAM template, IAM action names (cfn-lint's W3037 is
skipped whenever the Serverless transform is present): these tests do. Event patterns are
matched offline with moto's EventBridge matcher against the documented-shape samples in
events/. Everything is read from the template (tests/template_util.py), nothing retyped.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import importlib.resources
import json
import re
from pathlib import Path
from unittest.mock import ANY

import boto3
import pytest
from fargate_audit.core import facts
from moto import mock_aws
from moto.events.models import EventPattern
from support.template import (
    REPO_ROOT,
    effective_function_properties,
    event_patterns,
    function_events,
    function_policies,
    functions,
    load_template,
    resources_of_type,
    table_create_kwargs,
    table_properties,
    table_ttl_attribute,
)

EVENTS_DIR = REPO_ROOT / "events"
ACCOUNT, REGION, CLUSTER = "123456789012", "eu-west-1", "prod-web"

# design.md section 5: folder -> logical id.
FUNCTIONS = {
    "TaskEventsFunction": "task_events",
    "ConfigEventsFunction": "config_events",
    "SweepPlannerFunction": "sweep_planner",
    "SweepWorkerFunction": "sweep_worker",
    "DnsLogsFunction": "dns_logs",
    "FlowLogsFunction": "flow_logs",
}
TIMEOUTS = {
    "TaskEventsFunction": 60,
    "ConfigEventsFunction": 60,
    "SweepPlannerFunction": 900,  # an organization's accounts x regions x clusters, listed in turn
    "SweepWorkerFunction": 300,
    "DnsLogsFunction": 120,
    "FlowLogsFunction": 120,
}
# Functions that EventBridge (or, for DNS logs, CloudWatch Logs) invokes asynchronously.
ASYNC_FUNCTIONS = {
    "TaskEventsFunction",
    "ConfigEventsFunction",
    "SweepPlannerFunction",
    "DnsLogsFunction",
    "FlowLogsFunction",
}
# Egress discovery: resources that exist only with ResolverQueryLogGroupName set.
DNS_CONDITIONS = {
    "DnsLogsFunction": "DnsDiscovery",
    "DnsLogsLogGroup": "DnsDiscovery",
    "DnsLogsPermission": "DnsDiscovery",
    "ResolverQueryLogSubscription": "DnsDiscovery",
    "ResolverQueryLogGroup": "CreateQueryLogConfig",
    "ResolverQueryLogConfig": "CreateQueryLogConfig",
    "ResolverQueryLogAssociation": "AssociateQueryLogVpc",
}
# Egress discovery from flow logs: resources that exist only with FlowLogGroupName set.
FLOW_CONDITIONS = {
    "FlowLogsFunction": "FlowDiscovery",
    "FlowLogsLogGroup": "FlowDiscovery",
    "FlowLogsPermission": "FlowDiscovery",
    "FlowLogSubscription": "FlowDiscovery",
}
NETWORK_RESOURCE_TYPES = [
    "AWS::EC2::SecurityGroup",
    "AWS::EC2::NetworkInterface",
    "AWS::EC2::RouteTable",
    "AWS::EC2::Subnet",
    "AWS::EC2::NetworkAcl",
    "AWS::EC2::VPCEndpoint",
    "AWS::EC2::NatGateway",
    "AWS::EC2::FlowLog",
]
TASK_RULE = "TaskEventsFunctionTaskStateChange"
CONFIG_RULE = "ConfigEventsFunctionConfigItemChange"
# The same patterns on the member event bus (only with OrganizationId set): rule -> function.
MEMBER_RULES = {
    "TaskEventsMemberRule": "TaskEventsFunction",
    "ConfigEventsMemberRule": "ConfigEventsFunction",
}
TASK_RULES = {TASK_RULE, "TaskEventsMemberRule"}
CONFIG_RULES = {CONFIG_RULE, "ConfigEventsMemberRule"}
# Sample -> the pattern rules that must match it (every other rule must reject it).
SAMPLE_ROUTES = {
    "ecs-task-running.json": TASK_RULES,
    "ecs-task-stopped.json": TASK_RULES,
    "ecs-task-ec2.json": set(),
    "config-security-group-change.json": CONFIG_RULES,
    "config-route-table-change.json": CONFIG_RULES,
    "config-oversized-change.json": CONFIG_RULES,
    "config-listener-change.json": CONFIG_RULES,
    "scheduled-event.json": set(),
    "sweep-message.json": set(),
}

# The least-privilege contract: exactly the actions each function calls (SAM adds the
# basic logging role and the OnFailure destination; the worker's queue poller is its own
# statement on the sweep queue, SQS_POLLER).
# The reads (ECS, EC2, Route 53 Resolver) are derived from the fact declarations
# (core/facts.py): an auditing function collects every posture fact of a task it describes
# (ecs:DescribeTasks); the worker also lists a cluster's tasks, the planner only lists.
AUDIT_SCOPE = ("ecs:DescribeTasks",)
FUNCTION_READS = {
    "TaskEventsFunction": set(facts.read_actions(scope=AUDIT_SCOPE)),
    "ConfigEventsFunction": set(facts.read_actions(scope=AUDIT_SCOPE)),
    "SweepWorkerFunction": set(facts.read_actions(scope=(*AUDIT_SCOPE, "ecs:ListTasks"))),
    "SweepPlannerFunction": set(facts.read_actions([], scope=("ecs:ListClusters", "ecs:ListTasks"))),
    "DnsLogsFunction": set(),
    # the LogFormat of its log group's flow logs, the CIDRs of the ENIs' VPCs
    "FlowLogsFunction": {"ec2:DescribeFlowLogs", "ec2:DescribeVpcs"},
}
READ_SERVICES = {action.split(":")[0] for action in facts.read_actions()}
TABLE_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",  # with Put/Update/Delete: what TransactWriteItems needs
}
AUDIT_ACTIONS = TABLE_ACTIONS | {"securityhub:BatchImportFindings"}
# Every function may read through the optional audit role (sts:AssumeRole, only under the
# HasAuditRole condition); the asynchronous ones dead-letter malformed events (sqs:SendMessage
# on EventsDeadLetterQueue only).
ASSUME_AUDIT_ROLE = {"sts:AssumeRole"}
DEAD_LETTERS = {"sqs:SendMessage"}
SQS_POLLER = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
OTHER_ACTIONS = {  # beside the reads
    "TaskEventsFunction": AUDIT_ACTIONS | DEAD_LETTERS | ASSUME_AUDIT_ROLE,
    "ConfigEventsFunction": AUDIT_ACTIONS | DEAD_LETTERS | ASSUME_AUDIT_ROLE,
    # Lambda's poller of its queue (SweepWorkerQueueMapping) runs with its role
    "SweepWorkerFunction": AUDIT_ACTIONS | ASSUME_AUDIT_ROLE | SQS_POLLER,
    # each cluster's workloads and their running tasks: those no longer listed go in its pages
    "SweepPlannerFunction": {"sqs:SendMessage", "dynamodb:Query", "dynamodb:BatchGetItem"}
    | ASSUME_AUDIT_ROLE,
    # batch markers, destinations, IP index, finding states, outbox; no ECS or EC2 read
    "DnsLogsFunction": {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "dynamodb:BatchWriteItem",
        "securityhub:BatchImportFindings",
    }
    | DEAD_LETTERS
    | ASSUME_AUDIT_ROLE,
    # batch markers, flow destinations and summaries, the ENI index, DNS answers, finding
    # states, outbox; EGR-03 findings; the flow logs' LogFormat (below); no ECS read
    "FlowLogsFunction": {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
        "dynamodb:BatchWriteItem",
        "securityhub:BatchImportFindings",
    }
    | DEAD_LETTERS
    | ASSUME_AUDIT_ROLE,
}
EXPECTED_ACTIONS = {
    function: actions | FUNCTION_READS[function] for function, actions in OTHER_ACTIONS.items()
}
# Actions that take no resource-level permission: "*" is the only possible resource. Of the
# reads, only DescribeTasks and DescribeClusters name a resource (a task, a cluster).
STAR_RESOURCE_ACTIONS = (set(facts.read_actions()) - {"ecs:DescribeTasks", "ecs:DescribeClusters"}) | {
    "ec2:DescribeVpcs"  # the flow_logs function's (the VPCs' CIDRs); no resource type either
}


@pytest.fixture(scope="module")
def template() -> dict:
    return load_template()


def _sample(name: str) -> dict:
    return json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))


def _matching_rules(patterns: dict[str, dict], event: dict) -> set[str]:
    return {
        rule_id
        for rule_id, pattern in patterns.items()
        if EventPattern.load(json.dumps(pattern)).matches_event(event)
    }


def _get_att(logical_id: str, attribute: str = "Arn") -> dict:
    return {"Fn::GetAtt": [logical_id, attribute]}


# ---------------------------------------------------------------------------------------
# functions


def test_functions_are_the_five_of_the_design_each_with_a_thin_app_handler(template):
    assert {fid: res["Properties"]["CodeUri"] for fid, res in functions(template).items()} == {
        fid: f"functions/{folder}/" for fid, folder in FUNCTIONS.items()
    }
    folders = {p.name for p in (REPO_ROOT / "functions").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(FUNCTIONS.values())
    for function_id, folder in FUNCTIONS.items():
        assert effective_function_properties(template, function_id)["Handler"] == "app.handler"
        source = (REPO_ROOT / "functions" / folder / "app.py").read_text(encoding="utf-8")
        tree = ast.parse(source)
        handlers = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "handler"]
        assert len(handlers) == 1, f"{folder}/app.py: one top-level handler()"
        assert [a.arg for a in handlers[0].args.args] == ["event", "context"]
        # thin: the work is delegated to the layer's handler of the same name
        assert f"lambda_handlers.{folder}(" in source
        assert len(source.splitlines()) <= 40
        assert "Tracer" not in source


def test_runtime_architecture_memory_and_timeouts_everywhere(template):
    for function_id in FUNCTIONS:
        props = effective_function_properties(template, function_id)
        assert props["Runtime"] == "python3.13", function_id
        assert props["Architectures"] == ["arm64"], function_id
        assert props["MemorySize"] == 512, function_id
        assert props["Timeout"] == TIMEOUTS[function_id], function_id
        assert props["Layers"] == [{"Ref": "AuditLayer"}], function_id
        assert "Tracing" not in props, f"{function_id}: X-Ray costs ~270 ms of cold start"
    layer = template["Resources"]["AuditLayer"]["Properties"]
    assert layer["CompatibleRuntimes"] == ["python3.13"]
    assert layer["CompatibleArchitectures"] == ["arm64"]


def test_environment_is_the_design_one(template):
    expected = {
        "TABLE_NAME": {"Ref": "PostureTable"},
        "RULE_PARAMS": {"Ref": "RuleParams"},
        "PUBLISH_FINDINGS": {"Ref": "PublishFindings"},
        "VPC_CACHE_TTL_SECONDS": {"Ref": "VpcCacheTtlSeconds"},
        "ALLOWED_ACCOUNTS": {"Fn::Join": [",", {"Ref": "AllowedAccounts"}]},
        "ALLOWED_REGIONS": {"Fn::Join": [",", {"Ref": "AllowedRegions"}]},
        "AUDIT_ROLE_ARN": {"Ref": "AuditRoleArn"},
        "AUDIT_ROLE_EXTERNAL_ID": {"Ref": "AuditRoleExternalId"},
        # organization scale (the Lambda code reads exactly these; empty when unset)
        "AUDITED_ACCOUNTS": {"Fn::Join": [",", {"Ref": "AuditedAccounts"}]},
        "ORGANIZATIONS_ROLE_ARN": {"Ref": "OrganizationsRoleArn"},
        "AUDITED_ORGANIZATIONAL_UNITS": {"Fn::Join": [",", {"Ref": "AuditedOrganizationalUnits"}]},
        "AUDITED_REGIONS": {"Fn::Join": [",", {"Ref": "AuditedRegions"}]},
        "MEMBER_ROLE_NAME": {"Ref": "MemberRoleName"},
        "MEMBER_EXTERNAL_ID": {"Ref": "MemberExternalId"},
        "POWERTOOLS_SERVICE_NAME": "fargate-audit",
        "POWERTOOLS_METRICS_NAMESPACE": "FargateAudit",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "LOG_LEVEL": {"Ref": "LogLevel"},
    }
    for function_id in FUNCTIONS:
        env = effective_function_properties(template, function_id)["Environment"]["Variables"]
        # the planner's pages; the config events function's too, for a change with more
        # dependent tasks than one page
        queues = ("SweepPlannerFunction", "ConfigEventsFunction")
        extra = {"SWEEP_QUEUE_URL": {"Ref": "SweepQueue"}} if function_id in queues else {}
        if function_id in ASYNC_FUNCTIONS:
            extra["EVENTS_DLQ_URL"] = {"Ref": "EventsDeadLetterQueue"}
        if function_id == "FlowLogsFunction":  # the fallback flow-log format, the VPCs' own CIDRs
            extra["FLOW_LOG_FORMAT"] = {"Ref": "FlowLogFormat"}
            extra["FLOW_LOG_VPC_CIDRS"] = {"Fn::Join": [",", {"Ref": "FlowLogVpcCidrs"}]}
        assert env == expected | extra, function_id
    params = template["Parameters"]
    assert params["SweepSchedule"]["Default"] == "rate(6 hours)"
    assert params["RuleParams"]["Default"] == "{}"
    assert params["PublishFindings"]["Default"] == "true"
    assert params["VpcCacheTtlSeconds"]["Default"] == 300
    assert params["LogRetentionDays"]["Default"] == 30
    # empty: the account the stack reads and its own region only
    for name in ("AllowedAccounts", "AllowedRegions"):
        assert params[name] == {
            "Type": "CommaDelimitedList",
            "Default": "",
            "AllowedPattern": ANY,  # each value (test_parameter_overrides)
            "ConstraintDescription": ANY,
            "Description": ANY,
        }, name
        assert re.fullmatch(params[name]["AllowedPattern"], "")
    assert params["AuditRoleArn"]["Default"] == params["AuditRoleExternalId"]["Default"] == ""
    assert re.fullmatch(params["AuditRoleArn"]["AllowedPattern"], "")
    assert re.fullmatch(params["AuditRoleArn"]["AllowedPattern"], "arn:aws:iam::111122223333:role/audit")
    assert not re.fullmatch(params["AuditRoleArn"]["AllowedPattern"], "arn:aws:iam::111122223333:user/x")
    has_role = {"Fn::Not": [{"Fn::Equals": [{"Ref": "AuditRoleArn"}, ""]}]}
    assert template["Conditions"]["HasAuditRole"] == has_role


def test_every_function_logs_to_its_own_log_group_with_retention(template):
    log_groups = resources_of_type(template, "AWS::Logs::LogGroup")
    used = []
    for function_id in FUNCTIONS:
        ref = template["Resources"][function_id]["Properties"]["LoggingConfig"]["LogGroup"]
        group_id = ref["Ref"]
        assert group_id in log_groups, function_id
        used.append(group_id)
    for group in log_groups.values():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert len(set(used)) == len(FUNCTIONS)
    assert set(log_groups) - set(used) == {"ResolverQueryLogGroup"}  # where Resolver writes


# ---------------------------------------------------------------------------------------
# event routing


def _pattern_filters(node, path=""):
    """Yield (path, filter list) of every leaf of an event pattern."""
    for key, value in node.items():
        if key == "$or":
            for branch in value:
                yield from _pattern_filters(branch, path)
        elif isinstance(value, dict):
            yield from _pattern_filters(value, f"{path}.{key}".lstrip("."))
        else:
            yield f"{path}.{key}".lstrip("."), value


def test_patterns_use_only_literal_values_that_the_offline_matcher_implements_exactly(template):
    # moto's matcher treats an unknown named filter as a match; literal lists (and $or) are
    # matched exactly like EventBridge does, so the routing tests below prove something.
    patterns = event_patterns(template)
    assert set(patterns) == TASK_RULES | CONFIG_RULES
    for rule_id, pattern in patterns.items():
        for path, filters in _pattern_filters(pattern):
            assert isinstance(filters, list) and filters, f"{rule_id} {path}"
            assert all(isinstance(f, str) for f in filters), f"{rule_id} {path}: literal strings only"


@pytest.mark.parametrize("sample", sorted(SAMPLE_ROUTES))
def test_each_sample_is_routed_to_exactly_its_rules(template, sample):
    assert _matching_rules(event_patterns(template), _sample(sample)) == SAMPLE_ROUTES[sample]


def test_every_eventbridge_sample_has_a_routing_expectation():
    assert set(SAMPLE_ROUTES) <= {p.name for p in EVENTS_DIR.glob("*.json")}
    eventbridge_samples = {p.name for p in EVENTS_DIR.glob("*.json") if "detail-type" in _sample(p.name)}
    assert eventbridge_samples <= set(SAMPLE_ROUTES), "add the new sample to SAMPLE_ROUTES"


@pytest.mark.parametrize("status", ["PROVISIONING", "PENDING", "ACTIVATING", "DEACTIVATING", "STOPPING"])
def test_task_rule_ignores_intermediate_task_states(template, status):
    event = _sample("ecs-task-running.json")
    event["detail"]["lastStatus"] = status
    assert _matching_rules(event_patterns(template), event) == set()


def test_task_rule_ignores_other_sources_and_detail_types(template):
    patterns = event_patterns(template)
    forged = _sample("ecs-task-running.json")
    forged["source"] = "custom.ecs"
    service_action = _sample("ecs-task-running.json")
    service_action["detail-type"] = "ECS Service Action"
    assert _matching_rules(patterns, forged) == set()
    assert _matching_rules(patterns, service_action) == set()


@pytest.mark.parametrize("resource_type", NETWORK_RESOURCE_TYPES)
def test_config_rule_takes_every_network_type_full_or_oversized(template, resource_type):
    patterns = event_patterns(template)
    full = _sample("config-security-group-change.json")
    full["detail"]["configurationItem"]["resourceType"] = resource_type
    oversized = _sample("config-oversized-change.json")
    oversized["detail"]["configurationItemSummary"]["resourceType"] = resource_type
    assert _matching_rules(patterns, full) == CONFIG_RULES
    assert _matching_rules(patterns, oversized) == CONFIG_RULES


@pytest.mark.parametrize("resource_type", ["AWS::EC2::Instance", "AWS::S3::Bucket", "AWS::EC2::VPC"])
def test_config_rule_rejects_other_resource_types(template, resource_type):
    patterns = event_patterns(template)
    full = _sample("config-route-table-change.json")
    full["detail"]["configurationItem"]["resourceType"] = resource_type
    oversized = _sample("config-oversized-change.json")
    oversized["detail"]["configurationItemSummary"]["resourceType"] = resource_type
    assert _matching_rules(patterns, full) == set()
    assert _matching_rules(patterns, oversized) == set()


def test_config_rule_rejects_a_failed_oversized_delivery(template):
    event = _sample("config-oversized-change.json")
    event["detail"]["messageType"] = "OversizedConfigurationItemChangeDeliveryFailed"
    assert _matching_rules(event_patterns(template), event) == set()


def test_planner_runs_on_the_sweep_schedule(template):
    schedules = function_events(template, "Schedule", "ScheduleV2")
    assert set(schedules) == {"SweepPlannerFunctionSweepTimer"}
    _, event = schedules["SweepPlannerFunctionSweepTimer"]
    assert event["Type"] == "Schedule"  # an EventBridge rule: events/scheduled-event.json
    assert event["Properties"]["Schedule"] == {"Ref": "SweepSchedule"}
    assert re.fullmatch(
        r"rate\(\d+ (minutes?|hours?|days?)\)|cron\(.+\)", template["Parameters"]["SweepSchedule"]["Default"]
    )


def test_worker_consumes_the_sweep_queue_with_partial_batch_failures(template):
    # a plain event source mapping, not SAM's SQS event: that one attaches the managed
    # AWSLambdaSQSQueueExecutionRole (receive and delete on every queue of the account)
    assert function_events(template, "SQS") == {}
    mappings = resources_of_type(template, "AWS::Lambda::EventSourceMapping")
    assert list(mappings) == ["SweepWorkerQueueMapping"]
    props = mappings["SweepWorkerQueueMapping"]["Properties"]
    assert props["FunctionName"] == {"Ref": "SweepWorkerFunction"}
    assert props["EventSourceArn"] == _get_att("SweepQueue")
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= props["BatchSize"] <= 10
    assert props["ScalingConfig"]["MaximumConcurrency"] >= 2  # Lambda's minimum
    worker = template["Resources"]["SweepWorkerFunction"]["Properties"]
    assert "Role" not in worker and not any(isinstance(p, str) for p in worker["Policies"])


# ---------------------------------------------------------------------------------------
# failure handling


def test_sweep_queue_redrives_to_its_dead_letter_queue(template):
    queue = template["Resources"]["SweepQueue"]["Properties"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": _get_att("SweepDeadLetterQueue"),
        "maxReceiveCount": 5,  # Lambda's advice for SQS sources: at least 5
    }
    # Lambda's advice for SQS sources: visibility timeout >= 6 x the function timeout.
    assert queue["VisibilityTimeout"] >= 6 * TIMEOUTS["SweepWorkerFunction"]
    assert queue["VisibilityTimeout"] <= 43200


def test_every_queue_is_encrypted_and_dead_letters_are_kept_14_days(template):
    queues = resources_of_type(template, "AWS::SQS::Queue")
    assert set(queues) == {"SweepQueue", "SweepDeadLetterQueue", "EventsDeadLetterQueue"}
    for queue_id, queue in queues.items():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True, queue_id
    for dlq in ("SweepDeadLetterQueue", "EventsDeadLetterQueue"):
        assert queues[dlq]["Properties"]["MessageRetentionPeriod"] == 1209600


def test_every_eventbridge_target_has_a_retry_policy_and_all_but_task_events_a_dead_letter_queue(template):
    """A rule's dead-letter queue stores the raw event: a task event's overrides carry
    environment values (CFG-02: never stored), so the task event rules have none."""
    targets = function_events(template, "EventBridgeRule", "CloudWatchEvent", "Schedule")
    assert set(targets) == {TASK_RULE, CONFIG_RULE, "SweepPlannerFunctionSweepTimer"}
    for rule_id, (_, event) in targets.items():
        props = event["Properties"]
        if rule_id == TASK_RULE:
            assert "DeadLetterConfig" not in props
        else:
            assert props["DeadLetterConfig"] == {"Arn": _get_att("EventsDeadLetterQueue")}, rule_id
        assert 0 <= props["RetryPolicy"]["MaximumRetryAttempts"] <= 185, rule_id
        assert 60 <= props["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 86400, rule_id
    for rule_id, rule in resources_of_type(template, "AWS::Events::Rule").items():
        for target in rule["Properties"].get("Targets", []):
            if target["Arn"] == _get_att("TaskEventsFunction"):
                assert "DeadLetterConfig" not in target, rule_id
            else:
                assert "Arn" in target.get("DeadLetterConfig", {}), rule_id
            assert "RetryPolicy" in target, rule_id


def test_async_functions_send_failed_invocations_to_the_events_dlq_but_task_events(template):
    """Lambda's failure record holds the raw event: not for task events (their overrides
    carry environment values); their failures are logged and counted (FailedEvents)."""
    for function_id in FUNCTIONS:
        config = template["Resources"][function_id]["Properties"].get("EventInvokeConfig")
        if function_id not in ASYNC_FUNCTIONS:
            assert config is None, f"{function_id} is invoked synchronously (SQS)"
            continue
        assert config["MaximumRetryAttempts"] <= 2, function_id
        if function_id == "TaskEventsFunction":
            assert "DestinationConfig" not in config
            continue
        assert config["DestinationConfig"]["OnFailure"] == {
            "Type": "SQS",
            "Destination": _get_att("EventsDeadLetterQueue"),
        }, function_id


def test_events_dlq_accepts_only_this_stacks_rules(template):
    policies = resources_of_type(template, "AWS::SQS::QueuePolicy")
    assert list(policies) == ["EventsDeadLetterQueuePolicy"]
    props = policies["EventsDeadLetterQueuePolicy"]["Properties"]
    assert props["Queues"] == [{"Ref": "EventsDeadLetterQueue"}]
    (statement,) = props["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == _get_att("EventsDeadLetterQueue")
    rules = function_events(template, "EventBridgeRule", "Schedule")
    source_arns = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
    member_rules = [
        {"Fn::If": ["HasOrganization", _get_att(rule_id), {"Ref": "AWS::NoValue"}]}
        for rule_id in MEMBER_RULES
        if rule_id != "TaskEventsMemberRule"
    ]
    expected = [_get_att(r) for r in rules if r != TASK_RULE] + member_rules
    assert sorted(map(json.dumps, source_arns)) == sorted(map(json.dumps, expected))


# ---------------------------------------------------------------------------------------
# IAM


def _iam_catalogue() -> dict:
    # cfn-lint's IAM action catalogue (its W3037 rule does not run on SAM templates).
    import cfnlint.data.AdditionalSpecs as specs

    return json.loads((importlib.resources.files(specs) / "Policies.json").read_text(encoding="utf-8"))


def test_each_function_has_exactly_the_actions_it_calls(template):
    policies = function_policies(template)
    assert set(policies) == set(FUNCTIONS)
    for function_id, statements in policies.items():
        actions = {action for acts, _ in statements for action in acts}
        assert actions == EXPECTED_ACTIONS[function_id], function_id


def test_each_function_reads_exactly_what_the_facts_it_collects_need(template):
    for function_id, statements in function_policies(template).items():
        reads = {a for acts, _ in statements for a in acts if a.split(":")[0] in READ_SERVICES}
        assert reads == FUNCTION_READS[function_id], function_id
    assert "ec2:DescribeNatGateways" in FUNCTION_READS["TaskEventsFunction"]  # declared by "egress"
    assert {"ecs", "ec2", "route53resolver", "elasticloadbalancing", "wafv2"} == READ_SERVICES


def test_no_wildcard_action_and_star_resources_only_where_iam_offers_nothing_narrower(template):
    for function_id, statements in function_policies(template).items():
        for actions, resources in statements:
            for action in actions:
                assert "*" not in action or re.fullmatch(r"ec2:Describe\*", action), (
                    f"{function_id}: {action}"
                )
            if "*" in resources:
                assert set(actions) <= STAR_RESOURCE_ACTIONS, f"{function_id}: {actions} on '*'"


# sts:AssumeRole, each only under its condition: the single audit role, any account's member
# role (by name), the Organizations role.
ASSUME_ROLE_STATEMENTS = [
    ("HasAuditRole", "AssumeAuditRole", {"Ref": "AuditRoleArn"}),
    ("AuditsMembers", "AssumeMemberRole", {"Fn::Sub": "arn:${AWS::Partition}:iam::*:role/${MemberRoleName}"}),
    ("HasOrganizationsRole", "AssumeOrganizationsRole", {"Ref": "OrganizationsRoleArn"}),
]
ASSUME_ROLE_RESOURCES = [resource for _, _, resource in ASSUME_ROLE_STATEMENTS]


def test_roles_may_be_assumed_only_when_the_stack_names_them(template):
    for function_id in FUNCTIONS:
        (policy,) = template["Resources"][function_id]["Properties"]["Policies"]
        conditional = [s for s in policy["Statement"] if set(s) == {"Fn::If"}]
        assert conditional == [
            {
                "Fn::If": [
                    condition,
                    {"Sid": sid, "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": resource},
                    {"Ref": "AWS::NoValue"},
                ]
            }
            for condition, sid, resource in ASSUME_ROLE_STATEMENTS
        ], function_id
        plain = [s for s in policy["Statement"] if "Action" in s]
        assert not any("sts:" in json.dumps(s["Action"]) for s in plain), function_id


def test_every_action_exists_in_iam(template):
    catalogue = _iam_catalogue()
    for function_id, statements in function_policies(template).items():
        for actions, _ in statements:
            for action in actions:
                service, name = action.split(":", 1)
                assert name.lower() in catalogue[service]["Actions"], (
                    f"{function_id}: {action} is no IAM action"
                )


def test_data_actions_are_scoped_to_this_stacks_resources(template):
    table_resources = [_get_att("PostureTable"), {"Fn::Sub": "${PostureTable.Arn}/index/*"}]

    def own(service: str, resource: str) -> dict:
        """The stack's own account: in its region, or in every region when the stack
        audits member accounts (the own account is then audited in AuditedRegions too) or
        other regions of its own (AllowedRegions)."""
        arn = f"arn:${{AWS::Partition}}:{service}:REGION:${{AWS::AccountId}}:{resource}"
        return {
            "Fn::If": [
                "AuditsOtherRegions",
                {"Fn::Sub": arn.replace("REGION", "*")},
                {"Fn::Sub": arn.replace("REGION", "${AWS::Region}")},
            ]
        }

    product = own("securityhub", "product/${AWS::AccountId}/default")
    for function_id, statements in function_policies(template).items():
        for actions, resources in statements:
            services = {action.split(":")[0] for action in actions}
            if services & {"dynamodb"}:
                assert services == {"dynamodb"} and list(resources) == table_resources, function_id
            if services & {"sqs"}:
                queues = [_get_att("EventsDeadLetterQueue")] * (function_id in ASYNC_FUNCTIONS)
                queues += [_get_att("SweepQueue")] * (
                    function_id in ("SweepPlannerFunction", "SweepWorkerFunction", "ConfigEventsFunction")
                )
                assert services == {"sqs"} and len(resources) == 1 and resources[0] in queues, function_id
            if services & {"sts"}:
                assert actions == ("sts:AssumeRole",) and len(resources) == 1, function_id
                assert resources[0] in ASSUME_ROLE_RESOURCES, function_id
            if services & {"securityhub"}:
                assert list(resources) == [product], function_id
            if "ecs:DescribeTasks" in actions:
                assert resources == (own("ecs", "task/*"),)
            if "ecs:DescribeClusters" in actions:
                assert resources == (own("ecs", "cluster/*"),)


def test_the_own_account_is_read_in_every_region_the_stack_audits(template):
    """AllowedRegions of a single-account stack: the planner sweeps those regions and the
    events of their tasks are accepted, so DescribeTasks, DescribeClusters and the import
    of their findings there must be allowed (they were the stack's region only)."""
    from support.cfn import Stack

    def other_regions(**params) -> bool:
        return Stack(template, params, AccountId="111111111111", Region="eu-west-1").condition(
            "AuditsOtherRegions"
        )

    assert not other_regions()
    assert other_regions(AllowedRegions="eu-west-1,us-east-1")
    assert other_regions(AuditedAccounts="222222222222")
    assert other_regions(OrganizationsRoleArn="arn:aws:iam::111111111111:role/org-reader")


# ---------------------------------------------------------------------------------------
# table


def test_table_is_the_design_single_table(template):
    props = table_properties(template)
    assert props["TableName"] == {"Fn::Sub": "${AWS::StackName}-posture"}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}
    assert table_ttl_attribute(template) == "ttl"
    kwargs = table_create_kwargs(template)
    assert kwargs["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert kwargs["GlobalSecondaryIndexes"] == [
        {
            "IndexName": "gsi1",
            "KeySchema": [
                {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        }
    ]


def test_table_from_the_template_creates_and_serves_the_gsi_on_moto(template, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(**table_create_kwargs(template))
        client.update_time_to_live(
            TableName="fargate-audit-posture",
            TimeToLiveSpecification={"Enabled": True, "AttributeName": table_ttl_attribute(template)},
        )
        table = client.describe_table(TableName="fargate-audit-posture")["Table"]
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["gsi1"]
        workload = f"WL#{ACCOUNT}#{REGION}#{CLUSTER}#service:web"
        client.put_item(
            TableName="fargate-audit-posture",
            Item={
                "pk": {"S": "TASK#arn:aws:ecs:eu-west-1:123456789012:task/prod-web/abc"},
                "sk": {"S": "LATEST"},
                "gsi1pk": {"S": workload},
                "gsi1sk": {"S": "TASK#arn:aws:ecs:eu-west-1:123456789012:task/prod-web/abc"},
            },
        )
        found = client.query(
            TableName="fargate-audit-posture",
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :w",
            ExpressionAttributeValues={":w": {"S": workload}},
        )
        assert found["Count"] == 1


# ---------------------------------------------------------------------------------------
# layer, outputs


def test_layer_is_built_by_the_layers_makefile_with_pinned_requirements(template):
    layer = template["Resources"]["AuditLayer"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    assert layer["Properties"]["ContentUri"] == "layers/"
    assert layer["Properties"]["RetentionPolicy"] == "Delete"
    makefile = (REPO_ROOT / "layers" / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^build-AuditLayer:", makefile, re.MULTILINE)
    assert "--invalidation-mode unchecked-hash" in makefile
    pins = _pins(REPO_ROOT / "layers" / "requirements.txt")
    assert {"aws-lambda-powertools", "jsonschema", "pyyaml"} <= set(pins)
    assert "aws-xray-sdk" not in pins and "boto3" not in pins and "botocore" not in pins
    repo_pins = _pins(REPO_ROOT / "requirements.txt") | _pins(REPO_ROOT / "requirements-dev.txt")
    for name, version in pins.items():
        assert repo_pins.get(name, version) == version, (
            f"layer pins {name}=={version}, the repo {repo_pins[name]}"
        )


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name, sep, version = line.partition("==")
        assert sep, f"{path.name}: {line!r} is not pinned exactly"
        pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_outputs_name_the_table_queues_functions_and_layer(template):
    values = {json.dumps(o["Value"], sort_keys=True) for o in template["Outputs"].values()}
    expected = [
        {"Ref": r} for r in ("PostureTable", "SweepQueue", "SweepDeadLetterQueue", "EventsDeadLetterQueue")
    ]
    expected += [_get_att(f) for f in FUNCTIONS] + [{"Ref": "AuditLayer"}]
    assert {json.dumps(e, sort_keys=True) for e in expected} <= values


# ---------------------------------------------------------------------------------------
# samples


def test_samples_share_one_account_region_and_cluster():
    for name in SAMPLE_ROUTES:
        text = (EVENTS_DIR / name).read_text(encoding="utf-8")
        assert set(re.findall(r"\b\d{12}\b", text)) <= {ACCOUNT}, name
        assert set(re.findall(r"\b(?:[a-z]{2}-[a-z]+-\d)\b", text)) == {REGION}, name
    for name in ("ecs-task-running.json", "ecs-task-stopped.json", "ecs-task-ec2.json"):
        detail = _sample(name)["detail"]
        assert detail["clusterArn"] == f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}"


def test_ecs_samples_have_the_event_shapes_not_the_api_ones():
    running, stopped = _sample("ecs-task-running.json")["detail"], _sample("ecs-task-stopped.json")["detail"]
    assert running["taskArn"] == stopped["taskArn"]
    assert stopped["version"] > running["version"]
    for detail, status in ((running, "ATTACHED"), (stopped, "DELETED")):
        (eni,) = detail["attachments"]
        assert eni["type"] == "eni" and eni["status"] == status
        assert {"subnetId", "networkInterfaceId", "macAddress", "privateIPv4Address"} <= {
            d["name"] for d in eni["details"]
        }
        for field in (
            "createdAt",
            "connectivityAt",
            "pullStartedAt",
            "pullStoppedAt",
            "startedAt",
            "updatedAt",
        ):
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", detail[field]), field
        assert detail["group"] == "service:web" and detail["platformVersion"] == "1.4.0"
    assert {"stopCode", "stoppedReason", "stoppedAt", "stoppingAt"} <= set(stopped)
    assert _sample("ecs-task-ec2.json")["detail"]["launchType"] == "EC2"


def test_config_samples_use_configs_camel_case():
    item = _sample("config-security-group-change.json")["detail"]["configurationItem"]
    permission = item["configuration"]["ipPermissions"][0]
    assert {"ipProtocol", "fromPort", "toPort", "ipv4Ranges"} <= set(permission)
    assert "IpPermissions" not in item["configuration"]
    oversized = _sample("config-oversized-change.json")["detail"]
    assert "configuration" not in oversized["configurationItemSummary"]
    assert oversized["s3DeliverySummary"]["s3BucketLocation"]


def test_sweep_message_is_an_sqs_event_as_lambda_receives_it():
    records = _sample("sweep-message.json")["Records"]
    assert records
    for record in records:
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"].startswith(f"arn:aws:sqs:{REGION}:{ACCOUNT}:")
        assert hashlib.md5(record["body"].encode()).hexdigest() == record["md5OfBody"]  # noqa: S324
        body = json.loads(record["body"])
        assert (
            {"account_id", "region", "cluster_arn"}
            <= set(body)
            <= {
                "account_id",
                "region",
                "cluster_arn",
                "task_arns",
                "page_token",
            }
        )


def test_template_helpers_do_not_mutate_the_template(template):
    before = copy.deepcopy(template)
    table_create_kwargs(template)
    function_policies(template)
    event_patterns(template)
    for function_id in FUNCTIONS:
        effective_function_properties(template, function_id)
    assert template == before


# ---------------------------------------------------------------------------------------
# egress discovery (DNS query logs)


def test_dns_discovery_resources_exist_only_when_a_query_log_group_is_named(template):
    params = template["Parameters"]
    assert params["ResolverQueryLogGroupName"]["Default"] == ""
    assert params["CreateResolverQueryLogConfig"]["Default"] == "false"
    assert params["QueryLogVpcId"]["Default"] == ""
    conditions = template["Conditions"]
    assert conditions["DnsDiscovery"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ResolverQueryLogGroupName"}, ""]}]
    }
    assert {"Condition": "DnsDiscovery"} in conditions["CreateQueryLogConfig"]["Fn::And"]
    assert {"Condition": "CreateQueryLogConfig"} in conditions["AssociateQueryLogVpc"]["Fn::And"]
    for logical_id, condition in DNS_CONDITIONS.items():
        assert template["Resources"][logical_id].get("Condition") == condition, logical_id
    # nothing unconditional names a conditional resource
    for logical_id, resource in template["Resources"].items():
        if logical_id in DNS_CONDITIONS:
            continue
        text = json.dumps(resource)
        assert not any(f'"{dns_id}"' in text for dns_id in DNS_CONDITIONS), logical_id
    for output in template["Outputs"].values():
        if any(f'"{dns_id}"' in json.dumps(output["Value"]) for dns_id in DNS_CONDITIONS):
            assert output.get("Condition") == "DnsDiscovery"


def test_the_subscription_filter_sends_every_query_log_record_to_the_dns_function(template):
    resources = template["Resources"]
    subscription = resources["ResolverQueryLogSubscription"]
    assert subscription["Type"] == "AWS::Logs::SubscriptionFilter"
    assert subscription["DependsOn"] == "DnsLogsPermission"  # Logs tests the permission on creation
    props = subscription["Properties"]
    assert props["FilterPattern"] == ""
    assert props["DestinationArn"] == _get_att("DnsLogsFunction")
    assert props["LogGroupName"] == {
        "Fn::If": [
            "CreateQueryLogConfig",
            {"Ref": "ResolverQueryLogGroup"},
            {"Ref": "ResolverQueryLogGroupName"},
        ]
    }
    permission = resources["DnsLogsPermission"]["Properties"]
    assert permission["Action"] == "lambda:InvokeFunction"
    assert permission["FunctionName"] == _get_att("DnsLogsFunction")
    assert permission["Principal"] == "logs.amazonaws.com"
    assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert permission["SourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
        "${ResolverQueryLogGroupName}:*"
    }
    assert "Events" not in resources["DnsLogsFunction"]["Properties"]  # the filter is the trigger


def test_the_optional_query_log_config_delivers_to_the_created_group_for_one_vpc(template):
    resources = template["Resources"]
    group = resources["ResolverQueryLogGroup"]["Properties"]
    assert group["LogGroupName"] == {"Ref": "ResolverQueryLogGroupName"}
    config = resources["ResolverQueryLogConfig"]
    assert config["Type"] == "AWS::Route53Resolver::ResolverQueryLoggingConfig"
    assert config["Properties"]["DestinationArn"] == _get_att("ResolverQueryLogGroup")
    association = resources["ResolverQueryLogAssociation"]
    assert association["Type"] == "AWS::Route53Resolver::ResolverQueryLoggingConfigAssociation"
    assert association["Properties"] == {
        "ResolverQueryLogConfigId": _get_att("ResolverQueryLogConfig", "Id"),
        "ResourceId": {"Ref": "QueryLogVpcId"},
    }
    pattern = template["Parameters"]["QueryLogVpcId"]["AllowedPattern"]
    assert re.fullmatch(pattern, "vpc-0a1b2c3d4e5f67890") and re.fullmatch(pattern, "")


# ---------------------------------------------------------------------------------------
# egress discovery (VPC flow logs)


def test_flow_discovery_resources_exist_only_when_a_flow_log_group_is_named(template):
    from fargate_audit.app import flowlogs

    params = template["Parameters"]
    assert params["FlowLogGroupName"]["Default"] == ""
    # empty: no fallback set (the flow log's own LogFormat is read; none found: the documented one)
    assert params["FlowLogFormat"]["Default"] == ""
    for allowed in ("", flowlogs.DOCUMENTED_FORMAT, flowlogs.AWS_DEFAULT_FORMAT):
        assert re.fullmatch(params["FlowLogFormat"]["AllowedPattern"], allowed)
    assert not re.fullmatch(params["FlowLogFormat"]["AllowedPattern"], "version srcaddr")
    assert template["Conditions"]["FlowDiscovery"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "FlowLogGroupName"}, ""]}]
    }
    for logical_id, condition in FLOW_CONDITIONS.items():
        assert template["Resources"][logical_id].get("Condition") == condition, logical_id
    for logical_id, resource in template["Resources"].items():
        if logical_id not in FLOW_CONDITIONS:
            assert not any(f'"{flow_id}"' in json.dumps(resource) for flow_id in FLOW_CONDITIONS), logical_id
    for output in template["Outputs"].values():
        if any(f'"{flow_id}"' in json.dumps(output["Value"]) for flow_id in FLOW_CONDITIONS):
            assert output.get("Condition") == "FlowDiscovery"
    variables = template["Resources"]["FlowLogsFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["FLOW_LOG_FORMAT"] == {"Ref": "FlowLogFormat"}
    assert variables["FLOW_LOG_VPC_CIDRS"] == {"Fn::Join": [",", {"Ref": "FlowLogVpcCidrs"}]}


def test_the_subscription_filter_sends_every_flow_record_to_the_flow_function(template):
    resources = template["Resources"]
    subscription = resources["FlowLogSubscription"]
    assert subscription["Type"] == "AWS::Logs::SubscriptionFilter"
    assert subscription["DependsOn"] == "FlowLogsPermission"
    props = subscription["Properties"]
    assert props == {
        "LogGroupName": {"Ref": "FlowLogGroupName"},
        "FilterPattern": "",
        "DestinationArn": _get_att("FlowLogsFunction"),
    }
    permission = resources["FlowLogsPermission"]["Properties"]
    assert permission["FunctionName"] == _get_att("FlowLogsFunction")
    assert permission["Principal"] == "logs.amazonaws.com"
    assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert permission["SourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
        "${FlowLogGroupName}:*"
    }
    assert "Events" not in resources["FlowLogsFunction"]["Properties"]

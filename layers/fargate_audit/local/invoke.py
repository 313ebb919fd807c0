"""``fargate-audit invoke``: a Lambda handler run as Lambda would, without a container
runtime (the ``[local]`` extra; the table views behind ``history`` and ``findings`` are in
``fargate_audit.cli.views``).

``invoke(function, event_file, out)``: FUNCTION is a folder under ``functions/`` or a
logical id in ``template.yaml``. The handler runs in this process with the function's
environment from the template (Globals + its own ``Environment``; ``!Ref`` of a parameter
-> its ``--parameter-overrides`` value (as ``sam deploy`` takes them), else its Default;
``!Join`` of parameters joined; of the table -> the local table name; of a queue -> a
local queue ``fargate-audit-<LogicalId>``) and a Lambda-like context whose ARN
names the caller's account (STS GetCallerIdentity, which needs no permission: the
handlers accept events of the account they read). Against an emulator
(``AWS_ENDPOINT_URL`` set) the table is first created from the template's definition,
Security Hub enabled and the function's queues created when missing, and, for
``flow_logs``, a VPC flow log delivering to the event's log group in the documented format
(``ensure_local_flow_log``: what templates/vpc-flow-log.yaml deploys) unless one does or
``--parameter-overrides FlowLogFormat=...`` gives the format (the case that parameter is
for: no flow log of the account delivers to the group), so
that the handler finds the format with DescribeFlowLogs as it would in an account; without one it runs
against the account of the caller's credentials and creates nothing (the table must
exist: deploy the stack; a queue's URL comes from the environment variable of the same
name, e.g. ``SWEEP_QUEUE_URL``, required for the planner; ``EVENTS_DLQ_URL`` is optional).
The handler's logs and metrics go to stderr, its return value to ``out`` as JSON. The
template and the handlers are the checkout's, or the copies an installed wheel carries
(template.find_template).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import sys
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from fargate_audit.cli.views import table_name
from fargate_audit.core.errors import ConfigError, FargateAuditError

LOCAL_QUEUE_NAME = "fargate-audit-SweepQueue"
LOCAL_QUEUE_PREFIX = "fargate-audit-"  # + the queue's logical id
LOCAL_ACCOUNT = "000000000000"  # the context's account when the caller's cannot be read
# Queue variables a local run may leave unset (the handler then only logs what it would send).
OPTIONAL_QUEUE_VARIABLES = frozenset({"EVENTS_DLQ_URL"})
FLOW_LOGS_FOLDER = "flow_logs"
LOCAL_FLOW_LOG_VPC = "fargate-audit-invoke"  # the Name tag of the VPC the local flow log logs
LOCAL_FLOW_LOG_VPC_CIDR = "10.20.0.0/16"


class InvokeError(FargateAuditError):
    """The handler raised (its own message follows)."""


# --------------------------------------------------------------------------- context


class LambdaContext:
    """What Lambda passes as ``context`` (the attributes Powertools and handlers read)."""

    def __init__(
        self, function_name: str, memory_mb: int, timeout_s: float, region: str, account: str | None = None
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = (
            f"arn:aws:lambda:{region}:{account or LOCAL_ACCOUNT}:function:{function_name}"
        )
        self.memory_limit_in_mb = int(memory_mb)
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        self._deadline = time.monotonic() + float(timeout_s)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# --------------------------------------------------------------------------- template


def resolve_function(template: dict, function: str) -> tuple[str, str]:
    """(logical id, folder under functions/) of FUNCTION (a folder or a logical id)."""
    from fargate_audit.cli.template import functions

    folders = {}
    for logical_id, resource in functions(template).items():
        code_uri = str(resource["Properties"].get("CodeUri") or "")
        folders[logical_id] = Path(code_uri.rstrip("/")).name
    if function in folders:
        return function, folders[function]
    for logical_id, folder in folders.items():
        if folder == function:
            return logical_id, folder
    known = ", ".join(sorted(folders.values()))
    raise ConfigError(f"{function}: no such function in template.yaml (one of {known}, or a logical id)")


def _parameter_default(
    parameters: dict, ref: str, logical_id: str, name: str, overrides: Mapping[str, str] | None = None
) -> str:
    """The value a deployed stack gives parameter ``ref``: its override, else its Default."""
    if overrides and ref in overrides:
        return overrides[ref]
    default = parameters[ref].get("Default")
    if default is None:
        raise ConfigError(
            f"{logical_id}: {name}: parameter {ref} has no Default "
            f"(give it with --parameter-overrides {ref}=VALUE)"
        )
    return str(default).lower() if isinstance(default, bool) else str(default)


# ``ParameterKey=K,ParameterValue=V`` (the CloudFormation CLI's form, which sam takes too),
# several in one argument whitespace apart, as sam documents
# ("ParameterKey=KeyPairName,ParameterValue=MyKey ParameterKey=InstanceType,ParameterValue=t1.micro")
_LONG_FORM = re.compile(r"^ParameterKey=(?P<key>[^,]*),ParameterValue=(?P<value>.*)$", re.DOTALL)
_LONG_START = re.compile(r"\s+(?=ParameterKey=)")
# several ``KEY=VALUE`` in one argument, as sam takes them ('A=1 B="x y"'): a new pair starts
# where whitespace is followed by a parameter name and "="
_PAIR_START = re.compile(r"\s+(?=[A-Za-z0-9]+=)")


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def parse_parameter_overrides(items: Iterable[str], template: dict) -> dict[str, str]:
    """``--parameter-overrides`` as ``sam deploy`` and ``sam local invoke`` take them:
    ``KEY=VALUE`` (several per argument, whitespace apart; a value may be quoted) or
    ``ParameterKey=KEY,ParameterValue=VALUE``; a list parameter as ``A,B``. Every key must be
    a parameter of the template and every value one CloudFormation would accept for it
    (Type Number, AllowedValues, AllowedPattern, Min/MaxLength, Min/MaxValue): else one
    ConfigError naming the parameter (a NoEcho parameter's value is never repeated)."""
    parameters = template.get("Parameters") or {}
    overrides: dict[str, str] = {}
    for item in items:
        long_forms = [_LONG_FORM.match(part) for part in _LONG_START.split(item.strip())]
        pairs = (
            [(found["key"], found["value"]) for found in long_forms if found]
            if item.strip().startswith("ParameterKey=") and all(long_forms)
            else [tuple(part.split("=", 1)) for part in _PAIR_START.split(item.strip()) if part]
        )
        for pair in pairs:
            if len(pair) != 2 or not pair[0]:
                raise ConfigError(f"--parameter-overrides: {item!r} is not KEY=VALUE")
            key, value = pair[0].strip(), _unquote(pair[1].strip())
            if key not in parameters:
                known = ", ".join(sorted(parameters))
                raise ConfigError(
                    f"--parameter-overrides: {key} is not a parameter of template.yaml (one of {known})"
                )
            _check_parameter_value(key, parameters[key], value)
            overrides[key] = value
    return overrides


def _check_parameter_value(key: str, spec: Mapping[str, Any], value: str) -> None:
    """What CloudFormation checks of a parameter value before it deploys."""
    shown = "the value (NoEcho, not shown)" if spec.get("NoEcho") else repr(value)
    kind = str(spec.get("Type") or "String")
    listed = kind == "CommaDelimitedList" or kind.startswith("List<")
    values = [v.strip() for v in value.split(",")] if listed else [value]
    if listed and value.strip() == "":
        values = []
    for one in values:
        if kind == "Number" or kind == "List<Number>":
            try:
                number = float(one)
            except ValueError:
                raise ConfigError(f"--parameter-overrides: {key}: {shown} is not a number") from None
            if "MinValue" in spec and number < float(spec["MinValue"]):
                raise ConfigError(
                    f"--parameter-overrides: {key}: {shown} is below MinValue {spec['MinValue']}"
                )
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                raise ConfigError(
                    f"--parameter-overrides: {key}: {shown} is above MaxValue {spec['MaxValue']}"
                )
        allowed = spec.get("AllowedValues")
        if allowed is not None and not any(_same_value(one, choice, kind) for choice in allowed):
            choices = ", ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in allowed)
            raise ConfigError(f"--parameter-overrides: {key}: {shown} is not one of {choices}")
        pattern = spec.get("AllowedPattern")
        if pattern is not None and re.fullmatch(str(pattern), one) is None:
            raise ConfigError(
                f"--parameter-overrides: {key}: {shown} does not match AllowedPattern {pattern}"
            )
        if "MinLength" in spec and len(one) < int(spec["MinLength"]):
            raise ConfigError(
                f"--parameter-overrides: {key}: {shown} is shorter than MinLength {spec['MinLength']}"
            )
        if "MaxLength" in spec and len(one) > int(spec["MaxLength"]):
            raise ConfigError(
                f"--parameter-overrides: {key}: {shown} is longer than MaxLength {spec['MaxLength']}"
            )


def _parameter_value(parameters: Mapping[str, Any], key: str, overrides: Mapping[str, str]) -> Any:
    """What ``Ref`` of parameter ``key`` gives in a template's Rules: a list (of the
    comma-separated items) for a list type, else the text."""
    spec = parameters[key]
    if key in overrides:
        text = overrides[key]
    else:
        default = spec.get("Default")
        text = "" if default is None else str(default).lower() if isinstance(default, bool) else str(default)
    kind = str(spec.get("Type") or "String")
    if kind == "CommaDelimitedList" or kind.startswith("List<"):
        return [item.strip() for item in text.split(",")]
    return text


def _rule_value(node: Any, parameters: Mapping[str, Any], overrides: Mapping[str, str]) -> Any:
    """A Rules expression evaluated on the parameter values (the rule functions
    CloudFormation documents that can be judged without reading the account)."""
    if isinstance(node, str | int | float | bool):
        return node
    if isinstance(node, list):
        return [_rule_value(item, parameters, overrides) for item in node]
    if isinstance(node, dict) and len(node) == 1:
        ((name, args),) = node.items()
        if name == "Ref" and args in parameters:
            return _parameter_value(parameters, args, overrides)
        values = _rule_value(args, parameters, overrides) if name != "Ref" else None
        if name == "Fn::Equals":
            return values[0] == values[1]
        if name == "Fn::Not":
            return not values[0]
        if name == "Fn::And":
            return all(values)
        if name == "Fn::Or":
            return any(values)
        if name == "Fn::Contains":
            return values[1] in values[0]
        if name == "Fn::EachMemberEquals":
            return all(item == values[1] for item in values[0])
        if name == "Fn::EachMemberIn":
            return all(item in values[1] for item in values[0])
    raise ConfigError(f"template.yaml: Rules: cannot evaluate {json.dumps(node)} locally")


def check_template_rules(template: dict, overrides: Mapping[str, str]) -> None:
    """The template's ``Rules`` on the parameter values a deploy with ``overrides`` gives: a
    rule whose ``RuleCondition`` holds and one of whose ``Assert`` fails is one ConfigError
    with its ``AssertDescription``, as CloudFormation refuses such a deploy."""
    parameters = template.get("Parameters") or {}
    for name, rule in (template.get("Rules") or {}).items():
        condition = rule.get("RuleCondition")
        if condition is not None and not _rule_value(condition, parameters, overrides):
            continue
        for assertion in rule.get("Assertions") or []:
            if not _rule_value(assertion["Assert"], parameters, overrides):
                described = " ".join(str(assertion.get("AssertDescription") or "assertion failed").split())
                raise ConfigError(f"--parameter-overrides: rule {name}: {described}")


def _same_value(value: str, choice: Any, kind: str) -> bool:
    if "Number" in kind:
        try:
            return float(value) == float(choice)
        except (TypeError, ValueError):
            return False
    return value == (str(choice).lower() if isinstance(choice, bool) else str(choice))


def function_environment(
    template: dict,
    logical_id: str,
    table: str,
    queue_url: str | None = None,
    queue_urls: Mapping[str, str | None] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The function's environment variables as Lambda would see them, ``!Ref`` resolved:
    a parameter -> its value in ``overrides`` (parse_parameter_overrides), else its
    Default; the table -> ``table``, an SQS queue -> ``queue_urls``'s
    URL for its logical id (``queue_url``: for any queue not named there); ``!Join`` of a
    list parameter -> its Default (a comma-separated text) joined."""
    from fargate_audit.cli.template import TABLE_LOGICAL_ID, effective_function_properties

    variables = (effective_function_properties(template, logical_id).get("Environment") or {}).get(
        "Variables"
    ) or {}
    parameters = template.get("Parameters") or {}
    resources = template.get("Resources") or {}
    queue_urls = dict(queue_urls or {})
    environment: dict[str, str] = {}
    for name, value in variables.items():
        if isinstance(value, bool):
            environment[name] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            environment[name] = str(value)
        elif isinstance(value, dict) and set(value) == {"Ref"}:
            ref = value["Ref"]
            if ref in parameters:
                environment[name] = _parameter_default(parameters, ref, logical_id, name, overrides)
            elif ref == TABLE_LOGICAL_ID:
                environment[name] = table
            elif (resources.get(ref) or {}).get("Type") == "AWS::SQS::Queue":
                url = queue_urls.get(ref) or queue_url
                if url:
                    environment[name] = url
                elif name not in OPTIONAL_QUEUE_VARIABLES:
                    raise ConfigError(
                        f"{name}: set it to the deployed stack's queue URL (output {ref}Url) "
                        "to invoke this function against an account"
                    )
            else:
                raise ConfigError(f"{logical_id}: {name}: cannot resolve !Ref {ref} locally")
        elif (
            isinstance(value, dict)
            and set(value) == {"Fn::Join"}
            and isinstance(value["Fn::Join"][1], dict)
            and value["Fn::Join"][1].get("Ref") in parameters
        ):
            separator, listed = value["Fn::Join"]
            text = _parameter_default(parameters, listed["Ref"], logical_id, name, overrides)
            environment[name] = separator.join(item.strip() for item in text.split(",") if item.strip())
        else:
            raise ConfigError(f"{logical_id}: {name}: cannot resolve {json.dumps(value)} locally")
    return environment


def function_queues(template: dict, logical_id: str) -> dict[str, str]:
    """``{queue logical id: environment variable}`` of the SQS queues the function's
    environment refers to."""
    from fargate_audit.cli.template import effective_function_properties

    variables = (effective_function_properties(template, logical_id).get("Environment") or {}).get(
        "Variables"
    ) or {}
    resources = template.get("Resources") or {}
    return {
        value["Ref"]: name
        for name, value in variables.items()
        if isinstance(value, dict)
        and (resources.get(value.get("Ref")) or {}).get("Type") == "AWS::SQS::Queue"
    }


def _needs_queue(template: dict, logical_id: str) -> bool:
    return bool(function_queues(template, logical_id))


def local_queue_name(queue_logical_id: str) -> str:
    """The queue ``invoke`` creates on an emulator (the sweep queue keeps its old name)."""
    return LOCAL_QUEUE_NAME if queue_logical_id == "SweepQueue" else LOCAL_QUEUE_PREFIX + queue_logical_id


def caller_account(session, emulated: bool = True) -> str | None:
    """The account of the session's credentials (STS GetCallerIdentity needs no
    permission), or None when an emulator (``emulated``: AWS_ENDPOINT_URL set) cannot
    answer it. No credentials, credentials AWS rejects, or AWS itself not reached are one
    CredentialsError naming the call, as ``scan`` says it: a Lambda always runs with its
    account's, never a stand-in one."""
    from fargate_audit.core.errors import CredentialsError
    from fargate_audit.edge.aws import AWS_ERRORS, client, describe_error, raise_for_credentials

    try:
        return client(session, "sts", session.region_name).get_caller_identity()["Account"]
    except AWS_ERRORS as exc:
        raise_for_credentials(exc, "GetCallerIdentity")
        if not emulated:
            raise CredentialsError(
                f"cannot read the caller's account: {describe_error(exc, 'sts:GetCallerIdentity')}"
            ) from exc
        return None


# --------------------------------------------------------------------------- emulator set-up


def _code(exc: Exception) -> str:
    from fargate_audit.edge.aws import error_code

    return error_code(exc)


def ensure_local_resources(
    session, template: dict, table: str, with_queue: bool, queue_names: list[str] | None = None
) -> str | None:
    """On an emulator: create the table (from the template), enable Security Hub and (when
    ``with_queue``) the queues named ``queue_names`` (default: the sweep queue), each only
    when missing. Returns the URL of the last queue."""
    from botocore.exceptions import ClientError

    from fargate_audit.cli.template import table_create_kwargs, table_ttl_attribute
    from fargate_audit.edge.aws import client

    region = session.region_name
    dynamodb = client(session, "dynamodb", region)
    try:
        dynamodb.describe_table(TableName=table)
    except ClientError as exc:
        if _code(exc) != "ResourceNotFoundException":
            raise
        dynamodb.create_table(**table_create_kwargs(template, table))
        dynamodb.get_waiter("table_exists").wait(
            TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
        )
        ttl = table_ttl_attribute(template)
        if ttl:
            dynamodb.update_time_to_live(
                TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl}
            )
    securityhub = client(session, "securityhub", region)
    try:
        securityhub.describe_hub()
    except ClientError as exc:
        if _code(exc) not in ("InvalidAccessException", "ResourceNotFoundException"):
            raise
        securityhub.enable_security_hub(EnableDefaultStandards=False)
    if not with_queue:
        return None
    sqs = client(session, "sqs", region)
    url = None
    for name in queue_names or [LOCAL_QUEUE_NAME]:
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError as exc:
            if _code(exc) not in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
                raise
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
    return url


def event_log_group(event: Any) -> str | None:
    """The log group of a CloudWatch Logs subscription event with data, else None (the
    handler says what is wrong with the event)."""
    from fargate_audit.app import dnslogs
    from fargate_audit.app.events import EventError

    try:
        payload = dnslogs.decode_subscription(event)
    except EventError:
        return None
    group = payload.get("logGroup")
    return (
        group if payload["messageType"] == dnslogs.DATA_MESSAGE and isinstance(group, str) and group else None
    )


def ensure_local_flow_log(session, group: str, account: str | None = None) -> str:
    """On an emulator: a VPC flow log of all traffic delivering to CloudWatch Logs group
    ``group`` in the documented format (``flowlogs.DOCUMENTED_FORMAT``, the LogFormat of
    templates/vpc-flow-log.yaml), with the group and a VPC of its own (tagged
    ``fargate-audit-invoke``), unless a flow log already delivers to the group. Returns
    the id of the flow log the handler will find."""
    from botocore.exceptions import ClientError

    from fargate_audit.app import flowlogs
    from fargate_audit.edge.aws import client

    region = session.region_name
    ec2 = client(session, "ec2", region)
    by_group = [{"Name": "log-group-name", "Values": [group]}]
    existing = ec2.describe_flow_logs(Filters=by_group)["FlowLogs"]
    if existing:
        return existing[0]["FlowLogId"]
    logs = client(session, "logs", region)
    try:
        logs.create_log_group(logGroupName=group)
    except ClientError as exc:
        if _code(exc) != "ResourceAlreadyExistsException":
            raise
    tagged = [{"Name": "tag:Name", "Values": [LOCAL_FLOW_LOG_VPC]}]
    vpcs = ec2.describe_vpcs(Filters=tagged)["Vpcs"]
    if vpcs:
        vpc_id = vpcs[0]["VpcId"]
    else:
        vpc_id = ec2.create_vpc(
            CidrBlock=LOCAL_FLOW_LOG_VPC_CIDR,
            TagSpecifications=[
                {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": LOCAL_FLOW_LOG_VPC}]}
            ],
        )["Vpc"]["VpcId"]
    created = ec2.create_flow_logs(
        ResourceIds=[vpc_id],
        ResourceType="VPC",
        TrafficType="ALL",
        LogDestinationType="cloud-watch-logs",
        LogGroupName=group,
        DeliverLogsPermissionArn=f"arn:aws:iam::{account or LOCAL_ACCOUNT}:role/fargate-audit-flow-logs",
        LogFormat=flowlogs.DOCUMENTED_FORMAT,
        MaxAggregationInterval=60,
    )
    return created["FlowLogIds"][0]


# --------------------------------------------------------------------------- invoke


@contextlib.contextmanager
def _environment(variables: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    try:
        os.environ.update(variables)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _read_event(event_file: str) -> Any:
    path = Path(event_file)
    if not path.is_file():
        raise ConfigError(f"{event_file}: event file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ConfigError(f"{event_file}: not valid JSON ({exc})") from None


def load_handler(app_path: Path, module_name: str):
    """Import ``functions/<name>/app.py`` by path (a fresh module each time) -> handler."""
    spec = importlib.util.spec_from_file_location(module_name, app_path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{app_path}: cannot import")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def invoke(
    function: str,
    event_file: str,
    out: TextIO,
    err: TextIO | None = None,
    template_path: str | Path | None = None,
    parameter_overrides: Iterable[str] = (),
) -> Any:
    """Run one function's handler on one event file; writes its return value to ``out``
    as JSON and returns it. Logs and metrics (stdout in Lambda) go to ``err``.
    ``parameter_overrides``: template parameters as ``sam deploy --parameter-overrides``
    takes them (parse_parameter_overrides); the function sees the environment a stack
    deployed with those values gives it."""
    from fargate_audit.app import lambda_handlers
    from fargate_audit.cli.template import (
        STACK_NAME,
        effective_function_properties,
        find_template,
        load_template,
    )
    from fargate_audit.core.errors import CredentialsError
    from fargate_audit.edge.aws import session_from_env

    err = err or sys.stderr
    path = find_template(template_path)
    template = load_template(path)
    logical_id, folder = resolve_function(template, function)
    overrides = parse_parameter_overrides(parameter_overrides, template)
    check_template_rules(template, overrides)
    app_path = path.parent / "functions" / folder / "app.py"
    if not app_path.is_file():
        raise ConfigError(f"{app_path}: handler not found")
    event = _read_event(event_file)

    session = session_from_env()
    region = session.region_name
    if not region:
        from fargate_audit.edge.aws import NO_REGION_SET_MESSAGE

        raise CredentialsError(NO_REGION_SET_MESSAGE)
    table = table_name()
    queues = function_queues(template, logical_id)  # logical id -> variable
    account = caller_account(session, emulated=bool(os.environ.get("AWS_ENDPOINT_URL")))
    if os.environ.get("AWS_ENDPOINT_URL"):
        queue_urls = {
            queue: ensure_local_resources(session, template, table, True, [local_queue_name(queue)])
            for queue in queues
        }
        if not queues:
            ensure_local_resources(session, template, table, False)
        group = event_log_group(event) if folder == FLOW_LOGS_FOLDER else None
        # with a FlowLogFormat of its own, the run is the deployed case that parameter is for:
        # no flow log of the account delivers to the group, the format is the parameter's
        if group and not overrides.get("FlowLogFormat"):
            ensure_local_flow_log(session, group, account)
    else:
        queue_urls = {queue: os.environ.get(variable) for queue, variable in queues.items()}
    variables = function_environment(template, logical_id, table, queue_urls=queue_urls, overrides=overrides)
    properties = effective_function_properties(template, logical_id)
    function_name = f"{STACK_NAME}-{logical_id}"
    variables |= {
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(properties.get("MemorySize", 128)),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_REGION": region,
    }
    context = LambdaContext(
        function_name,
        properties.get("MemorySize", 128),
        properties.get("Timeout", 3),
        region,
        account=account,
    )

    with _environment(variables), contextlib.redirect_stdout(err), warnings.catch_warnings():
        # Powertools warns (two lines, a site-packages path) when an invocation added no
        # metric: noise on a terminal; a deployed function's log keeps it
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        lambda_handlers.reset_runtime()  # a new environment: a new container
        handler = load_handler(app_path, f"fargate_audit_local_{folder}")
        try:
            result = handler(event, context)
        except FargateAuditError:
            raise
        except Exception as exc:
            first_line = (str(exc).strip().splitlines() or [""])[0]  # e.g. a batch error's summary
            raise InvokeError(f"{folder} raised {type(exc).__name__}: {first_line.strip()}") from exc
        finally:
            lambda_handlers.reset_runtime()
    out.write(json.dumps(result, indent=2, default=str) + "\n")
    out.flush()
    return result

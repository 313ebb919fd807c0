"""Incoming events: validate and reduce them to small dicts (design.md section 5).

Pure: no AWS, no clock, no environment. Each kind of input has a small JSON Schema shipped
in the package (``schemas/event-*.schema.json``, so a Lambda layer carries them) naming
only the fields the auditor reads; AWS adds fields freely, so unknown keys are allowed
everywhere but in our own sweep message. ``jsonschema`` is imported on first use.

A malformed input raises :class:`EventError` whose text is one line naming the input and
the field at fault, e.g. ``ECS event: detail.taskArn missing``. Messages echo short scalar
values only, and never anything under ``overrides`` or ``containers`` (where environment
values live).

Shapes returned:

``parse_task_event``    {"event_id", "event_time", "account", "region", "task_arn",
                         "cluster_arn", "group", "last_status", "launch_type",
                         "capacity_provider", "fargate", "version", "updated_at",
                         "stopped_at", "detail"}
``parse_config_event``  {"event_id", "event_time", "account", "event_region",
                         "message_type", "oversized", "resource_type", "resource_id",
                         "account_id", "region", "capture_time", "change_type", "status"}
                         (``account`` / ``event_region``: the envelope's; ``account_id`` /
                         ``region``: the configuration item's)
``parse_scheduled_event`` {"event_id", "event_time", "account", "region"}
``parse_sweep_message`` {"account_id", "region", "cluster_arn", "task_arns"} (``task_arns``:
                         one page of the cluster's tasks, None: the whole cluster)

``redact(event)`` is a copy of any input with every environment variable value replaced,
for the dead-letter queue; ``dead_letter_body`` the message sent there for a rejected one.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from typing import Any

from fargate_audit.core.errors import FargateAuditError
from fargate_audit.core.workloads import workload_group

TASK_EVENT = "ECS event"
CONFIG_EVENT = "Config event"
SCHEDULED_EVENT = "scheduled event"
SWEEP_MESSAGE = "sweep message"
# Task ARNs in one sweep message: one DescribeTasks call (the schema's maxItems). 100 ARNs
# of the longest form (a 255-character cluster name) are about 35 KB of JSON: far below
# SQS's 256 KiB per message (queue.send_batches keeps each batch under it too).
SWEEP_PAGE_TASKS = 100

_SCHEMAS = {
    TASK_EVENT: "event-ecs-task-state-change.schema.json",
    CONFIG_EVENT: "event-config-item-change.schema.json",
    SCHEDULED_EVENT: "event-scheduled.schema.json",
    SWEEP_MESSAGE: "event-sweep-message.schema.json",
}

FARGATE_CAPACITY_PROVIDERS = ("FARGATE", "FARGATE_SPOT")
OVERSIZED = "OversizedConfigurationItemChangeNotification"
_SECRET_BEARING = frozenset({"overrides", "containers", "environment"})
_MAX_ECHO = 80
REDACTED = "(redacted)"
# A dead letter stays under SQS's 256 KiB message limit; a larger event is sent as its
# envelope (ids, source, detail-type, account, region, time) only.
MAX_DEAD_LETTER_BYTES = 200 * 1024
_ENVELOPE_KEYS = ("version", "id", "detail-type", "source", "account", "time", "region", "resources")


class EventError(FargateAuditError):
    """A malformed event or message; ``str()`` is one line naming what is wrong."""


# --------------------------------------------------------------------------- validation


@cache
def _validator(kind: str):
    from importlib import resources

    from jsonschema import Draft202012Validator

    text = resources.files("fargate_audit").joinpath("schemas", _SCHEMAS[kind]).read_text(encoding="utf-8")
    return Draft202012Validator(json.loads(text))


def schema(kind: str) -> dict:
    """The JSON Schema of one input kind (``TASK_EVENT``, ``CONFIG_EVENT``, ...)."""
    return copy.deepcopy(_validator(kind).schema)


def _path(parts) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else ("." if text else "") + str(part)
    return text


def _echo(error) -> str:
    """`` ('value')`` for a short scalar outside secret-bearing fields, else nothing."""
    if _SECRET_BEARING & {str(p) for p in error.absolute_path}:
        return ""
    value = error.instance
    if isinstance(value, bool) or value is None or isinstance(value, int | float):
        return f" (got {json.dumps(value)})"
    if isinstance(value, str) and (
        value.lstrip()[:1] in ("{", "[") or error.validator == "type" and _CONTAINER_TYPES & _types(error)
    ):  # text where a document was expected: a document sent as text, which may hold values
        return " (got string)"
    if isinstance(value, str):
        shown = value if len(value) <= _MAX_ECHO else value[: _MAX_ECHO - 3] + "..."
        return f" (got {json.dumps(shown)})"
    return f" (got {type(value).__name__ if not isinstance(value, dict | list) else _json_type(value)})"


_CONTAINER_TYPES = frozenset({"object", "array"})


def _types(error) -> set[str]:
    expected = error.validator_value
    return {expected} if isinstance(expected, str) else set(expected or ())


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array"}.get(type(value), type(value).__name__)


def _message(kind: str, error) -> str:
    path = _path(error.absolute_path)
    where = path or "the event"
    validator, expected = error.validator, error.validator_value
    if validator == "required":
        missing = next((name for name in expected if name not in (error.instance or {})), expected[0])
        return f"{kind}: {_path([*error.absolute_path, missing])} missing"
    if validator == "type":
        if not path:
            return f"{kind}: not a JSON object{_echo(error)}"
        types = " or ".join(expected) if isinstance(expected, list) else expected
        return f"{kind}: {where} must be {'an' if types[0] in 'aeiou' else 'a'} {types}{_echo(error)}"
    if validator == "const":
        return f"{kind}: {where} must be {json.dumps(expected)}{_echo(error)}"
    if validator == "enum":
        return f"{kind}: {where} must be one of {', '.join(map(str, expected))}{_echo(error)}"
    if validator == "pattern":
        return f"{kind}: {where} is malformed{_echo(error)}"
    if validator == "minLength":
        return f"{kind}: {where} is empty"
    if validator == "maxLength":
        return f"{kind}: {where} is longer than {expected} characters"
    if validator == "minimum":
        return f"{kind}: {where} must be >= {expected}{_echo(error)}"
    if validator in ("minItems", "maxItems"):
        bound = "at least" if validator == "minItems" else "at most"
        return f"{kind}: {where} must have {bound} {expected} items"
    if validator == "additionalProperties":
        known = set(error.schema.get("properties") or {})
        extra = sorted(str(k) for k in error.instance if k not in known)
        return f"{kind}: {_path([*error.absolute_path, extra[0]])}: unknown key"
    return f"{kind}: {where}: {' '.join(error.message.split())[:200]}"


def validate(kind: str, document: Any) -> None:
    """Raise EventError (one line) when ``document`` does not satisfy ``kind``'s schema."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator(kind).iter_errors(document))
    if error is not None:
        raise EventError(_message(kind, error))


# --------------------------------------------------------------------------- helpers


def event_id(event: Any) -> str | None:
    """The id of an event or SQS record, for logs, without validating anything."""
    if isinstance(event, dict):
        value = event.get("id") or event.get("messageId")
        return value if isinstance(value, str) else None
    return None


def is_fargate(launch_type: str | None, capacity_provider: str | None) -> bool:
    """A task on Fargate: launch type FARGATE, or (capacity provider strategy, where the
    launch type is absent) a Fargate capacity provider."""
    if launch_type:
        return launch_type == "FARGATE"
    return capacity_provider in FARGATE_CAPACITY_PROVIDERS


def _account_of(arn: str) -> str:
    return arn.split(":")[4]


def _region_of(arn: str) -> str:
    return arn.split(":")[3]


# --------------------------------------------------------------------------- parsers


def parse_task_event(event: Any) -> dict:
    """An ``ECS Task State Change`` event -> the facts the task handler needs."""
    validate(TASK_EVENT, event)
    detail = event["detail"]
    task_arn, cluster_arn = detail["taskArn"], detail["clusterArn"]
    if _account_of(task_arn) != event["account"] or _region_of(task_arn) != event["region"]:
        raise EventError(f"{TASK_EVENT}: detail.taskArn is not in the event's account and region")
    if task_arn.split(":")[:5] != cluster_arn.split(":")[:5]:
        raise EventError(f"{TASK_EVENT}: detail.clusterArn is not in the task's account and region")
    launch_type = detail.get("launchType")
    capacity_provider = detail.get("capacityProviderName")
    return {
        "event_id": event["id"],
        "event_time": event["time"],
        "account": event["account"],
        "region": event["region"],
        "task_arn": task_arn,
        "cluster_arn": cluster_arn,
        "group": workload_group(detail["group"], detail.get("taskDefinitionArn")),
        "last_status": detail["lastStatus"],
        "launch_type": launch_type,
        "capacity_provider": capacity_provider,
        "fargate": is_fargate(launch_type, capacity_provider),
        "version": detail["version"],
        "updated_at": detail.get("updatedAt"),
        "stopped_at": detail.get("stoppedAt"),
        "detail": copy.deepcopy(detail),
    }


def _change_type(detail: dict, item: dict) -> str | None:
    """CREATE / UPDATE / DELETE: the summary's own field, else the diff's, else from the
    item status (a deleted resource has status ResourceDeleted)."""
    change = item.get("changeType") or (detail.get("configurationItemDiff") or {}).get("changeType")
    if change:
        return change
    status = item.get("configurationItemStatus") or ""
    if status.startswith("ResourceDeleted"):
        return "DELETE"
    if status == "ResourceDiscovered":
        return "CREATE"
    return None


def parse_config_event(event: Any) -> dict:
    """A ``Config Configuration Item Change`` event (full or oversized) -> the changed
    resource's identifiers."""
    validate(CONFIG_EVENT, event)
    detail = event["detail"]
    oversized = detail["messageType"] == OVERSIZED
    item = detail["configurationItemSummary" if oversized else "configurationItem"]
    return {
        "event_id": event["id"],
        "event_time": event["time"],
        "account": event["account"],
        "event_region": event["region"],
        "message_type": detail["messageType"],
        "oversized": oversized,
        "resource_type": item["resourceType"],
        "resource_id": item["resourceId"],
        "arn": item.get("ARN") or item.get("arn"),
        "account_id": item["awsAccountId"],
        "region": item["awsRegion"],
        "capture_time": item["configurationItemCaptureTime"],
        "change_type": _change_type(detail, item),
        "status": item.get("configurationItemStatus"),
        "related_ids": related_ids(item),
    }


# Config resource types whose change concerns the tasks of another resource the item
# names: a flow log is on a VPC, subnet or ENI (its configuration's resource id, spelled
# as EC2 (resourceId) or as CloudFormation (ResourceId) records it, or a relationship),
# which a task depends on; when it is deleted (configuration null) the flow log's own id,
# which the task's posture lists, finds them.
_RELATED_ID_KEYS = {"AWS::EC2::FlowLog": ("resourceId", "ResourceId")}


# A route table or network ACL now associated with a subnet concerns the tasks of that
# subnet, which did not depend on it before (a subnet moved off the VPC's main route table,
# or to another NACL): the subnets it names (relationships "Is associated with Subnet" /
# "Is attached to Subnet", configuration ``associations[].subnetId``) find them.
_SUBNET_ASSOCIATED = frozenset({"AWS::EC2::RouteTable", "AWS::EC2::NetworkAcl"})


# A new VPC endpoint concerns every task of its VPC (NET-09/NET-10 read all of the VPC's
# endpoints; a new one is in no task's posture yet): its VPC, route tables and subnets
# (configuration ``vpcId``, ``routeTableIds``, ``subnetIds``; the relationships). A new
# listener concerns the tasks behind its load balancer and target groups (configuration
# ``LoadBalancerArn``, its actions' ``TargetGroupArn``; the relationships).
_ENDPOINT = "AWS::EC2::VPCEndpoint"
_LISTENER = "AWS::ElasticLoadBalancingV2::Listener"


def _listed(value: Any) -> list:
    return value if isinstance(value, list) else []


def _endpoint_ids(configuration: dict) -> list:
    found = [configuration.get("vpcId") or configuration.get("VpcId")]
    for key in ("routeTableIds", "RouteTableIds", "subnetIds", "SubnetIds"):
        found += _listed(configuration.get(key))
    return found


def _listener_ids(configuration: dict) -> list:
    found = [configuration.get("LoadBalancerArn") or configuration.get("loadBalancerArn")]
    actions = _listed(configuration.get("DefaultActions") or configuration.get("defaultActions"))
    for action in (a for a in actions if isinstance(a, dict)):
        found.append(action.get("TargetGroupArn") or action.get("targetGroupArn"))
        forward = action.get("ForwardConfig") or action.get("forwardConfig")
        groups = (
            _listed((forward or {}).get("TargetGroups") or (forward or {}).get("targetGroups"))
            if isinstance(forward, dict)
            else []
        )
        found += [g.get("TargetGroupArn") or g.get("targetGroupArn") for g in groups if isinstance(g, dict)]
    return found


def related_ids(item: dict) -> list[str]:
    """The ids a Config item's configuration and relationships name that find the tasks it
    concerns beyond its own id (by resource type); also read from a described resource's
    API shape, given as ``{"resourceType": ..., "configuration": <the resource>}``."""
    resource_type = item["resourceType"]
    keys = _RELATED_ID_KEYS.get(resource_type)
    configuration = item.get("configuration")
    listed = item.get("relationships")
    relationships = [r for r in listed if isinstance(r, dict)] if isinstance(listed, list) else []
    if resource_type in (_ENDPOINT, _LISTENER):
        reader = _endpoint_ids if resource_type == _ENDPOINT else _listener_ids
        found = reader(configuration) if isinstance(configuration, dict) else []
        found += [r.get("resourceId") for r in relationships]
        return list(dict.fromkeys(i for i in found if isinstance(i, str) and i))
    if not keys and resource_type not in _SUBNET_ASSOCIATED:
        return []
    if keys:
        found = [configuration.get(k) for k in keys] if isinstance(configuration, dict) else []
        found += [r.get("resourceId") for r in relationships]
    else:
        found = [r.get("resourceId") for r in relationships if r.get("resourceType") == "AWS::EC2::Subnet"]
        associations = configuration.get("associations") if isinstance(configuration, dict) else None
        if isinstance(associations, list):
            found += [a.get("subnetId") for a in associations if isinstance(a, dict)]
    return list(dict.fromkeys(i for i in found if isinstance(i, str) and i))


def parse_scheduled_event(event: Any) -> dict:
    """The schedule's ``Scheduled Event`` -> when and where the sweep was asked for."""
    validate(SCHEDULED_EVENT, event)
    return {
        "event_id": event["id"],
        "event_time": event["time"],
        "account": event["account"],
        "region": event["region"],
    }


def parse_sweep_message(body: Any) -> dict:
    """One SweepQueue message body (JSON text, or an already decoded object)."""
    if isinstance(body, str | bytes):
        try:
            body = json.loads(body)
        except ValueError as exc:
            raise EventError(f"{SWEEP_MESSAGE}: body is not JSON ({exc.msg} at char {exc.pos})") from exc
    validate(SWEEP_MESSAGE, body)
    cluster_arn = body["cluster_arn"]
    if _account_of(cluster_arn) != body["account_id"] or _region_of(cluster_arn) != body["region"]:
        raise EventError(f"{SWEEP_MESSAGE}: cluster_arn is not in account_id {body['account_id']} / region")
    task_arns = body.get("task_arns")
    if task_arns and any(arn.split(":")[:5] != cluster_arn.split(":")[:5] for arn in task_arns):
        raise EventError(f"{SWEEP_MESSAGE}: task_arns must be in the cluster's account and region")
    # a long-format task ARN names its cluster (task/CLUSTER/ID): it must be the message's
    cluster_name = cluster_arn.split(":", 5)[-1].split("/", 1)[-1]
    if task_arns and any(
        arn.split(":", 5)[-1].count("/") == 2 and arn.split(":", 5)[-1].split("/")[1] != cluster_name
        for arn in task_arns
    ):
        raise EventError(f"{SWEEP_MESSAGE}: task_arns must be tasks of cluster_arn ({cluster_name[:255]})")
    workloads = body.get("workloads")
    if workloads:
        prefix = f"WL#{body['account_id']}#{body['region']}#{cluster_name}#"
        if task_arns or any(not key.startswith(prefix) or key.count("#") != 4 for key in workloads):
            raise EventError(
                f"{SWEEP_MESSAGE}: workloads must be workload keys of cluster_arn ({cluster_name[:255]}), "
                "without task_arns"
            )
    if body.get("no_longer_audited") and not workloads:
        raise EventError(f"{SWEEP_MESSAGE}: no_longer_audited names workloads")
    if body.get("cause") and not task_arns:
        raise EventError(f"{SWEEP_MESSAGE}: cause goes with task_arns")
    return {
        "account_id": body["account_id"],
        "region": body["region"],
        "cluster_arn": cluster_arn,
        "task_arns": list(dict.fromkeys(task_arns)) if task_arns else None,
        "workloads": list(dict.fromkeys(workloads)) if workloads else None,
        "no_longer_audited": body.get("no_longer_audited") is True,
        "cause": body.get("cause"),
    }


def sweep_message(
    account_id: str,
    region: str,
    cluster_arn: str,
    task_arns: list[str] | None = None,
    workloads: list[str] | None = None,
    no_longer_audited: bool = False,
    cause: dict | None = None,
) -> str:
    """The body the planner sends (the inverse of parse_sweep_message): one page of at most
    SWEEP_PAGE_TASKS tasks of a cluster (``task_arns``); or ``workloads`` of the cluster
    to publish (at most SWEEP_PAGE_TASKS: those with ACTIVE findings and no task recorded
    running; ``no_longer_audited``: of an account and region the stack no longer audits,
    to retire and archive); or, without either, the whole cluster (the form of the
    planners before pages, still valid). ``cause``: with ``task_arns``, the config event
    whose dependent tasks the page holds (``{"type": "config-event", "id", "event_time"}``)."""
    body: dict[str, Any] = {"account_id": account_id, "region": region, "cluster_arn": cluster_arn}
    if task_arns:
        if len(task_arns) > SWEEP_PAGE_TASKS:
            raise ValueError(f"a sweep page holds at most {SWEEP_PAGE_TASKS} tasks, not {len(task_arns)}")
        body["task_arns"] = list(task_arns)
        if cause:
            body["cause"] = dict(cause)
    elif workloads:
        if len(workloads) > SWEEP_PAGE_TASKS:
            raise ValueError(
                f"a sweep message names at most {SWEEP_PAGE_TASKS} workloads, not {len(workloads)}"
            )
        body["workloads"] = list(workloads)
        if no_longer_audited:
            body["no_longer_audited"] = True
    return json.dumps(body, separators=(",", ":"))


# --------------------------------------------------------------------------- dead letters


def _redact_environment(value: Any) -> Any:
    """An ``environment`` value with names kept and values replaced."""
    if not isinstance(value, list):
        return REDACTED
    kept = []
    for item in value:
        name_key = next(
            (k for k in ("name", "Name") if isinstance(item, dict) and isinstance(item.get(k), str)), None
        )
        if name_key is not None:
            kept.append({name_key: item[name_key], "value" if name_key == "name" else "Value": REDACTED})
        else:
            kept.append(REDACTED)
    return kept


# a key naming environment variables: ``environment`` in any casing (CloudFormation's and
# Config's ``Environment`` too), or a property path through one (a Config item's
# ``configurationItemDiff.changedProperties`` key ``Configuration.containerDefinitions.0.environment.0``)
_ENVIRONMENT_KEY = re.compile(r"(?i)(^|\.)environment(\.|$)")


# keys whose value holds environment variables deeper down (an ECS event's ``detail``,
# ``overrides``, ``containerOverrides``; a Config item's ``configuration``): a string there
# (a malformed event, a document sent as JSON text) may carry them
_HOLDS_ENVIRONMENT = frozenset(
    {"detail", "overrides", "containeroverrides", "configuration", "configurationitem"}
)


def redact(value: Any, holds_environment: bool = True) -> Any:
    """A deep copy of an event (or any JSON value) in which every ``environment`` entry, at
    any depth and whatever its shape or casing (ECS ``overrides.containerOverrides[].environment``,
    a task definition's ``containerDefinitions[].environment``, ``Environment[].{Name,Value}``,
    a Config diff's property path through one, a malformed variant), keeps only variable
    names: no environment value survives (rules.md CFG-02).

    A string that is a JSON object or array (a part of the event sent as text) is redacted
    as that document. Any other string where environment entries are held (the input
    itself, ``detail``, ``overrides``, ``containerOverrides``, ``configuration``) is replaced
    whole: it may be a document cut short."""
    if isinstance(value, dict):
        return {
            key: _redact_environment(item)
            if isinstance(key, str) and _ENVIRONMENT_KEY.search(key)
            else redact(item, isinstance(key, str) and key.lower() in _HOLDS_ENVIRONMENT)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item, holds_environment) for item in value]
    if isinstance(value, str) and (holds_environment or value.lstrip()[:1] in ("{", "[")):
        try:
            document = json.loads(value)
        except ValueError:
            return REDACTED
        if isinstance(document, dict | list):
            return json.dumps(redact(document), separators=(",", ":"))
        return value if not holds_environment or not isinstance(document, str) else REDACTED
    return value


def dead_letter_body(event: Any, error: str, function: str) -> str:
    """The events DLQ message for an input rejected as malformed: why, by which function,
    and the input itself with environment values redacted (its envelope only when too
    large for one SQS message)."""
    document = {
        "fargate_audit": {"rejected": "malformed", "function": function, "error": error},
        "event_id": event_id(event),
        "event": redact(event),
    }
    text = json.dumps(document, separators=(",", ":"), default=str)  # ASCII: SQS-safe
    if len(text.encode("utf-8")) <= MAX_DEAD_LETTER_BYTES:
        return text
    envelope = {k: event[k] for k in _ENVELOPE_KEYS if k in event} if isinstance(event, dict) else {}
    document["event"] = redact(envelope) | {"truncated": True}
    return json.dumps(document, separators=(",", ":"), default=str)

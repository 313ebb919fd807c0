"""Read ``template.yaml``: the one source of truth for the stack's shape, for tools and tests.

``load_template()`` parses the SAM template with a YAML loader that understands the
CloudFormation short tags (``!Ref X`` -> ``{"Ref": "X"}``, ``!GetAtt A.B`` ->
``{"Fn::GetAtt": ["A", "B"]}``, ``!Sub s`` -> ``{"Fn::Sub": s}``, ...). The other helpers
derive what ``fargate-audit invoke`` and the tests need from it, so nothing about the
table, the functions or their IAM is retyped anywhere else:

- ``table_create_kwargs(template)``: boto3 ``create_table`` arguments for the posture table;
- ``function_policies(template)``: ``{logical_id: [(actions, resources)]}`` of the inline
  policy statements of every ``AWS::Serverless::Function``;
- ``effective_function_properties(template, logical_id)``: a function's properties with the
  template's ``Globals.Function`` applied (as SAM merges them);
- ``event_patterns(template)``: every EventBridge event pattern, keyed by the logical id of
  the rule that SAM generates (function logical id + event name) or declares explicitly;
- ``find_template()``: where ``template.yaml`` is (the checkout's, else the copy an installed
  wheel carries in ``fargate_audit/_sam/``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_NAME = "template.yaml"
# The repository root when running from a checkout (layers/fargate_audit/cli/template.py).
REPO_ROOT = Path(__file__).resolve().parents[3]
# An installed wheel's copy of template.yaml and functions/ (setup.py copies them at build).
PACKAGED_ROOT = Path(__file__).resolve().parents[1] / "_sam"
# The table name `fargate-audit invoke` uses for local runs: the template names the table
# `${AWS::StackName}-posture`, with the stack called `fargate-audit`.
STACK_NAME = "fargate-audit"
DEFAULT_TABLE_NAME = f"{STACK_NAME}-posture"
TABLE_LOGICAL_ID = "PostureTable"
SERVERLESS_FUNCTION = "AWS::Serverless::Function"


def find_template(path: str | Path | None = None) -> Path:
    """``path`` when given; else the checkout's ``template.yaml``; else the installed wheel's
    copy. Never the working directory's: the product's own template, wherever the CLI runs.
    FileNotFoundError (naming where it looked) when there is none."""
    candidates = [Path(path)] if path else [REPO_ROOT / TEMPLATE_NAME, PACKAGED_ROOT / TEMPLATE_NAME]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{TEMPLATE_NAME} not found (looked in {', '.join(map(str, candidates))})")


class _CloudFormationLoader(yaml.SafeLoader):
    """SafeLoader plus the CloudFormation short-form intrinsic tags."""


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: str | Path | None = None) -> dict:
    """The template as plain data (intrinsics in their long JSON form); ``path`` None:
    :func:`find_template`."""
    path = find_template(path)
    with open(path, encoding="utf-8") as handle:
        template = yaml.load(handle, Loader=_CloudFormationLoader)  # noqa: S506 (SafeLoader subclass)
    if not isinstance(template, dict) or "Resources" not in template:
        raise ValueError(f"{path}: not a CloudFormation template (no Resources)")
    return template


def resources_of_type(template: dict, resource_type: str) -> dict[str, dict]:
    """``{logical_id: resource}`` of every resource of one type, in template order."""
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") == resource_type
    }


def functions(template: dict) -> dict[str, dict]:
    """The ``AWS::Serverless::Function`` resources."""
    return resources_of_type(template, SERVERLESS_FUNCTION)


def effective_function_properties(template: dict, logical_id: str) -> dict:
    """A function's properties with ``Globals.Function`` applied the way SAM merges them:
    maps merged key by key (the function wins), lists concatenated (Globals first),
    scalars replaced by the function's value."""
    globals_ = copy.deepcopy(template.get("Globals", {}).get("Function", {}))
    own = template["Resources"][logical_id]["Properties"]
    return _sam_merge(globals_, copy.deepcopy(own))


def _sam_merge(global_value: Any, local_value: Any) -> Any:
    if isinstance(global_value, dict) and isinstance(local_value, dict):
        if _is_intrinsic(global_value) or _is_intrinsic(local_value):
            return local_value
        merged = dict(global_value)
        for key, value in local_value.items():
            merged[key] = _sam_merge(global_value[key], value) if key in global_value else value
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return global_value + local_value
    return local_value


def _is_intrinsic(value: dict) -> bool:
    if len(value) != 1:
        return False
    key = next(iter(value))
    return key in ("Ref", "Condition") or key.startswith("Fn::")


def function_policies(template: dict) -> dict[str, list[tuple[tuple[str, ...], tuple[Any, ...]]]]:
    """``{function logical id: [(actions, resources)]}`` for every ``Allow`` statement of the
    function's inline ``Policies`` (resources as written: strings or intrinsics).

    Only inline policy documents are supported: a managed policy name/ARN or a SAM policy
    template hides its actions, so it raises ``ValueError`` (least privilege is reviewed
    from the template itself). A statement under ``Fn::If`` counts with both of its
    branches (``AWS::NoValue`` is none): what a condition may grant is reviewed too.
    """
    result: dict[str, list[tuple[tuple[str, ...], tuple[Any, ...]]]] = {}
    for logical_id, resource in functions(template).items():
        policies = resource["Properties"].get("Policies", [])
        if isinstance(policies, (str, dict)):
            policies = [policies]
        statements: list[tuple[tuple[str, ...], tuple[Any, ...]]] = []
        for policy in policies:
            if not isinstance(policy, dict) or "Statement" not in policy:
                raise ValueError(f"{logical_id}: Policies entry {policy!r} is not an inline policy document")
            for statement in _conditional_items(_as_list(policy["Statement"])):
                if statement.get("Effect") != "Allow":
                    continue
                if "NotAction" in statement or "NotResource" in statement:
                    raise ValueError(f"{logical_id}: NotAction/NotResource is not allowed")
                statements.append(
                    (tuple(_as_list(statement["Action"])), tuple(_as_list(statement["Resource"])))
                )
        result[logical_id] = statements
    return result


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _conditional_items(items: list) -> list:
    """List items with every ``{"Fn::If": [condition, a, b]}`` replaced by its branches
    (``{"Ref": "AWS::NoValue"}`` dropped)."""
    found = []
    for item in items:
        if isinstance(item, dict) and set(item) == {"Fn::If"}:
            _, when_true, when_false = item["Fn::If"]
            found += _conditional_items([when_true, when_false])
        elif item != {"Ref": "AWS::NoValue"}:
            found.append(item)
    return found


def event_patterns(template: dict) -> dict[str, dict]:
    """Every EventBridge event pattern in the template: ``{rule logical id: pattern}``.

    SAM names the rule it generates for a function event ``<FunctionId><EventName>``;
    explicit ``AWS::Events::Rule`` resources keep their own logical id. Schedule rules
    have no pattern and are not listed.
    """
    patterns: dict[str, dict] = {}
    for function_id, resource in functions(template).items():
        for event_id, event in resource["Properties"].get("Events", {}).items():
            if event.get("Type") in ("EventBridgeRule", "CloudWatchEvent"):
                patterns[function_id + event_id] = event["Properties"]["Pattern"]
    for rule_id, rule in resources_of_type(template, "AWS::Events::Rule").items():
        if "EventPattern" in rule["Properties"]:
            patterns[rule_id] = rule["Properties"]["EventPattern"]
    return patterns


def function_events(template: dict, *event_types: str) -> dict[str, tuple[str, dict]]:
    """``{generated rule/mapping logical id: (function logical id, event)}`` of the
    functions' ``Events`` of the given SAM event types (all types when none given)."""
    found: dict[str, tuple[str, dict]] = {}
    for function_id, resource in functions(template).items():
        for event_id, event in resource["Properties"].get("Events", {}).items():
            if not event_types or event.get("Type") in event_types:
                found[function_id + event_id] = (function_id, event)
    return found


def table_properties(template: dict, logical_id: str = TABLE_LOGICAL_ID) -> dict:
    """The ``Properties`` of the ``AWS::DynamoDB::Table`` resource."""
    resource = template["Resources"][logical_id]
    if resource["Type"] != "AWS::DynamoDB::Table":
        raise ValueError(f"{logical_id} is a {resource['Type']}, not an AWS::DynamoDB::Table")
    return resource["Properties"]


def table_create_kwargs(
    template: dict, table_name: str = DEFAULT_TABLE_NAME, logical_id: str = TABLE_LOGICAL_ID
) -> dict:
    """boto3 ``dynamodb.create_table(**kwargs)`` arguments for the template's table.

    Translates ``AttributeDefinitions``, ``KeySchema``, ``GlobalSecondaryIndexes`` and
    ``BillingMode`` (CloudFormation and the API share these shapes). The name is an argument
    because the template derives it from the stack name. TTL is a separate API call: see
    ``table_ttl_attribute``.
    """
    props = table_properties(template, logical_id)
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": [_literal(a, "AttributeDefinitions") for a in props["AttributeDefinitions"]],
        "KeySchema": [_literal(k, "KeySchema") for k in props["KeySchema"]],
        "BillingMode": _literal(props.get("BillingMode", "PROVISIONED"), "BillingMode"),
    }
    provisioned = kwargs["BillingMode"] == "PROVISIONED"
    if provisioned:
        kwargs["ProvisionedThroughput"] = _literal(props["ProvisionedThroughput"], "ProvisionedThroughput")
    indexes = []
    for gsi in props.get("GlobalSecondaryIndexes", []):
        index = {
            "IndexName": _literal(gsi["IndexName"], "IndexName"),
            "KeySchema": [_literal(k, "KeySchema") for k in gsi["KeySchema"]],
            "Projection": _literal(gsi["Projection"], "Projection"),
        }
        if provisioned:
            index["ProvisionedThroughput"] = _literal(gsi["ProvisionedThroughput"], "ProvisionedThroughput")
        indexes.append(index)
    if indexes:
        kwargs["GlobalSecondaryIndexes"] = indexes
    return copy.deepcopy(kwargs)


def table_ttl_attribute(template: dict, logical_id: str = TABLE_LOGICAL_ID) -> str | None:
    """The TTL attribute name when TTL is enabled, else None."""
    ttl = table_properties(template, logical_id).get("TimeToLiveSpecification") or {}
    return ttl.get("AttributeName") if ttl.get("Enabled") else None


def _literal(value: Any, what: str) -> Any:
    """``value`` unchanged, after checking it holds no intrinsic function."""
    if isinstance(value, dict):
        if _is_intrinsic(value):
            raise ValueError(f"table {what}: {value!r} is an intrinsic, not a literal value")
        for item in value.values():
            _literal(item, what)
    elif isinstance(value, list):
        for item in value:
            _literal(item, what)
    return value


def parameters_markdown(template: dict) -> str:
    """The template's parameters as a Markdown table (the README's table is this output)."""
    lines = ["| parameter | default | what it does |", "| --- | --- | --- |"]
    for name, spec in (template.get("Parameters") or {}).items():
        default = spec.get("Default")
        shown = "(empty)" if default in ("", None) else f"`{default}`"
        text = " ".join(str(spec.get("Description") or "").split()).replace("|", "\\|")
        lines.append(f"| `{name}` | {shown} | {text} |")
    return "\n".join(lines) + "\n"

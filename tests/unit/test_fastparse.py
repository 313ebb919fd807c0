"""edge.fastparse: the fact clients' JSON parser gives what botocore's own parser gives.

For every operation of the JSON-protocol fact services (ECS, Route 53 Resolver, WAF), a
response body is generated from the operation's output shape (every member present, to a
depth; timestamps as epoch seconds, blobs as base64, as AWS sends them) and parsed by both
parsers with the same timestamp parser: the results must be equal. Then the one documented
difference (unknown members and JSON nulls kept), the fallback for shapes a plan cannot
follow, and the real request path of a client edge.aws.client made.
"""

from __future__ import annotations

import base64
import json

import boto3
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.parsers import JSONParser
from fargate_audit.edge import aws
from fargate_audit.edge.fastparse import FactJSONParser, FactParserFactory, _Unsupported, compile_plan

SERVICES = ("ecs", "route53resolver", "wafv2")
MAX_DEPTH = 7


def sample(shape, depth: int = 0, path: str = ""):
    """A JSON value for ``shape`` as AWS would send it: every member, lists of two."""
    kind = shape.type_name
    if kind == "structure":
        if depth > MAX_DEPTH or getattr(shape, "is_tagged_union", False):
            return {}
        return {
            member.serialization.get("name", name): sample(member, depth + 1, f"{path}.{name}")
            for name, member in shape.members.items()
        }
    if kind == "list":
        return [] if depth > MAX_DEPTH else [sample(shape.member, depth + 1, path + "[]") for _ in range(2)]
    if kind == "map":
        return {} if depth > MAX_DEPTH else {"k1": sample(shape.value, depth + 1, path + "{}")}
    if kind == "timestamp":
        return 1761998400.25 + depth
    if kind == "blob":
        return base64.b64encode(f"blob{path}".encode()).decode()
    if kind == "boolean":
        return depth % 2 == 0
    if kind in ("integer", "long"):
        return depth + 7
    if kind in ("float", "double"):
        return depth + 0.5
    return f"s{path}"


def operations():
    session = botocore.session.get_session()
    for service in SERVICES:
        model = session.get_service_model(service)
        for name in model.operation_names:
            output = model.operation_model(name).output_shape
            if output is not None:
                yield pytest.param(service, name, id=f"{service}.{name}")


def _both(service: str, operation: str, body: bytes):
    model = botocore.session.get_session().get_service_model(service)
    shape = model.operation_model(operation).output_shape
    response = {"status_code": 200, "headers": {"x-amzn-requestid": "r-1"}, "body": body}
    ours = FactParserFactory()
    ours.set_parser_defaults(timestamp_parser=aws.iso_timestamp)
    theirs = JSONParser(timestamp_parser=aws.iso_timestamp)
    return ours.create_parser("json").parse(dict(response), shape), theirs.parse(dict(response), shape)


@pytest.mark.parametrize(("service", "operation"), list(operations()))
def test_every_fact_service_output_parses_as_botocore_parses_it(service, operation):
    model = botocore.session.get_session().get_service_model(service)
    body = json.dumps(sample(model.operation_model(operation).output_shape)).encode()
    ours, theirs = _both(service, operation, body)
    assert ours == theirs


def test_the_describe_tasks_plan_converts_only_the_timestamps():
    model = botocore.session.get_session().get_service_model("ecs")
    plan = compile_plan(model.operation_model("DescribeTasks").output_shape, {})
    assert plan[0] == "struct" and set(plan[1]) == {"tasks"}  # failures: nothing to convert
    task = plan[1]["tasks"][1][1]
    assert {"createdAt", "startedAt", "connectivityAt", "pullStartedAt", "stoppedAt"} <= set(task)
    assert "containers" in task and "attachments" not in task  # attachments hold no timestamp


def test_unknown_members_are_kept_the_documented_difference():
    body = json.dumps({"tasks": [{"taskArn": "t", "createdAt": 1761998400, "newField": {"a": 1}}]}).encode()
    ours, theirs = _both("ecs", "DescribeTasks", body)
    assert theirs["tasks"] == [{"taskArn": "t", "createdAt": "2025-11-01T12:00:00+00:00"}]
    assert ours["tasks"] == [{"taskArn": "t", "createdAt": "2025-11-01T12:00:00+00:00", "newField": {"a": 1}}]
    assert ours["ResponseMetadata"] == theirs["ResponseMetadata"]


@pytest.mark.parametrize(
    ("operation", "document"),
    [
        ("ListTasks", {"taskArns": None}),  # the collector reads .get("taskArns", [])
        ("DescribeTasks", {"tasks": [{"taskArn": "t", "group": None}], "failures": None}),
    ],
)
def test_a_body_holding_null_parses_as_botocore_parses_it(operation, document):
    """botocore leaves null members out: a `.get(name, [])` must never meet None."""
    ours, theirs = _both("ecs", operation, json.dumps(document).encode())
    assert ours == theirs and "null" not in json.dumps(ours, default=str)


def test_a_shape_the_plan_cannot_follow_is_parsed_by_botocore():
    class Member:
        def __init__(self, name, type_name, serialization=None, members=None):
            self.name, self.type_name = name, type_name
            self.serialization = serialization or {}
            self.members = members or {}
            self.is_document_type = False

    renamed = Member("Out", "structure", members={"When": Member("T", "timestamp", {"name": "when"})})
    with pytest.raises(_Unsupported):
        compile_plan(renamed, {})
    parser = FactJSONParser({}, {}, timestamp_parser=aws.iso_timestamp)
    assert parser._plan(renamed) is False  # botocore's walk then parses it


def test_a_client_made_by_edge_aws_parses_its_responses_by_plan():
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="eu-west-1"
    )
    ecs = aws.client(session, "ecs", "eu-west-1")

    class Raw:
        def stream(self, **_):
            yield json.dumps({"tasks": [{"taskArn": "t", "startedAt": 1761998400, "extra": 1}]}).encode()

    ecs.meta.events.register(
        "before-send.ecs.DescribeTasks", lambda request, **_: AWSResponse(request.url, 200, {}, Raw())
    )
    parsed = ecs.describe_tasks(cluster="c", tasks=["t"])
    assert parsed["tasks"] == [{"taskArn": "t", "startedAt": "2025-11-01T12:00:00+00:00", "extra": 1}]
    assert parsed["ResponseMetadata"]["HTTPStatusCode"] == 200


# --------------------------------------------------------------------------- EC2 (XML)

EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"


def xml_sample(shape, tag: str, depth: int = 0, path: str = "") -> str:
    """``shape`` serialized as EC2 writes it: members by their wire names, lists as a wrapper
    element of items, booleans as true/false, timestamps as ISO-8601 text."""
    kind = shape.type_name
    if kind == "structure":
        if depth > MAX_DEPTH or getattr(shape, "is_tagged_union", False):
            return f"<{tag}></{tag}>"
        inner = "".join(
            xml_sample(member, member.serialization.get("name", name), depth + 1, f"{path}.{name}")
            for name, member in shape.members.items()
            if member.type_name != "map"
        )
        return f"<{tag}>{inner}</{tag}>"
    if kind == "list":
        item = shape.member.serialization.get("name", "member")
        items = (
            ""
            if depth > MAX_DEPTH
            else "".join(xml_sample(shape.member, item, depth + 1, path) for _ in range(2))
        )
        return f"<{tag}>{items}</{tag}>"
    if kind == "timestamp":
        text = "2025-11-01T12:00:00.000Z"
    elif kind == "blob":
        text = base64.b64encode(f"blob{path}".encode()).decode()
    elif kind == "boolean":
        text = "true" if depth % 2 == 0 else "false"
    elif kind in ("integer", "long"):
        text = str(depth + 7)
    elif kind in ("float", "double"):
        text = str(depth + 0.5)
    else:
        text = f"s{path}" if depth % 3 else ""  # some empty elements: botocore reads ""
    return f"<{tag}>{text}</{tag}>"


def ec2_operations():
    model = botocore.session.get_session().get_service_model("ec2")
    for name in model.operation_names:
        if name.startswith("Describe") and model.operation_model(name).output_shape is not None:
            yield pytest.param(name, id=f"ec2.{name}")


def _both_ec2(operation: str, body: bytes):
    from botocore.parsers import EC2QueryParser

    shape = botocore.session.get_session().get_service_model("ec2").operation_model(operation).output_shape
    response = {"status_code": 200, "headers": {}, "body": body}
    ours = FactParserFactory()
    ours.set_parser_defaults(timestamp_parser=aws.iso_timestamp)
    theirs = EC2QueryParser(timestamp_parser=aws.iso_timestamp)
    return ours.create_parser("ec2").parse(dict(response), shape), theirs.parse(dict(response), shape)


@pytest.mark.parametrize("operation", list(ec2_operations()))
def test_every_ec2_describe_output_parses_as_botocore_parses_it(operation):
    shape = botocore.session.get_session().get_service_model("ec2").operation_model(operation).output_shape
    members = "".join(
        xml_sample(member, member.serialization.get("name", name), 1, name)
        for name, member in shape.members.items()
        if member.type_name != "map"
    )
    body = f'<{operation}Response xmlns="{EC2_NS}"><requestId>r-1</requestId>{members}</{operation}Response>'
    ours, theirs = _both_ec2(operation, body.encode())
    assert ours == theirs


def test_a_repeated_tag_in_a_structure_is_left_to_botocore():
    body = (
        f'<DescribeVpcsResponse xmlns="{EC2_NS}"><requestId>r</requestId><vpcSet><item>'
        "<vpcId>vpc-1</vpcId><vpcId>vpc-2</vpcId></item></vpcSet></DescribeVpcsResponse>"
    ).encode()
    ours, theirs = _both_ec2("DescribeVpcs", body)
    # botocore's own (odd) reading, element nodes gathered in a list, whichever parses
    texts = [[node.text for node in parsed["Vpcs"][0]["VpcId"]] for parsed in (ours, theirs)]
    assert texts == [["vpc-1", "vpc-2"], ["vpc-1", "vpc-2"]]


def test_ec2_errors_are_botocores():
    body = (
        b"<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>no</Message></Error>"
        b"</Errors><RequestID>r-9</RequestID></Response>"
    )
    shape = (
        botocore.session.get_session().get_service_model("ec2").operation_model("DescribeVpcs").output_shape
    )
    factory = FactParserFactory()
    parsed = factory.create_parser("ec2").parse({"status_code": 403, "headers": {}, "body": body}, shape)
    assert (
        parsed["Error"]["Code"] == "UnauthorizedOperation"
        and parsed["ResponseMetadata"]["RequestId"] == "r-9"
    )

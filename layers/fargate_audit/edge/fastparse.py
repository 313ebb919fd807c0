"""Faster botocore response parsers for the fact reads: for the JSON-protocol services (ECS,
Route 53 Resolver, WAF) the body as ``json.loads`` gives it, with only the members the
model says are timestamps or blobs converted; for EC2 (XML), converters compiled once per
shape (see "EC2 (XML)" below).

botocore's JSON parser walks the output shape member by member for every response and
rebuilds every dict and list, although JSON already holds strings, numbers, booleans,
lists and maps as the model wants them; only timestamps (epoch seconds) and blobs (base64)
need converting. For a 5,000-task scan that walk is about a fifth of the scan's own CPU
(50 DescribeTasks pages: 0.22 s against 0.03 s for ``json.loads``).

:class:`FactParserFactory` compiles, once per output shape and client, a *plan*: where in
the shape timestamps and blobs are (``None`` where a part holds none, so it is kept as
parsed). A shape the plan cannot follow exactly (a member whose wire name differs, a tagged
union, a recursive shape, a map keyed by a converted type) is parsed by botocore as
before, and so is a body holding ``null`` (botocore leaves such members out, and a
``.get(name, [])`` would meet ``None``). One difference from botocore's walk, harmless to
the collector (which reads members by name with ``.get``): members the model does not know
are kept.

Error responses, event streams and the other protocols are botocore's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.parsers import EC2QueryParser, JSONParser, ResponseParserFactory

_BUILDING = object()  # a shape whose plan is being compiled (met again: recursive)


class _Unsupported(Exception):
    """The shape has a part the plan cannot reproduce exactly: botocore parses it."""


Plan = tuple | None  # ("ts",) | ("blob",) | ("struct", {member: plan}) | ("list", plan) | ("map", plan)


def _memoized(shape: Any, memo: dict, build: Callable[[], Any]) -> Any:
    """``memo[shape.name]``, built by ``build()`` on first use (one service's shapes);
    ``_Unsupported`` for a shape met again while it is being built (recursive), or when
    ``build`` raises it (then nothing is kept for the shape)."""
    name = shape.name
    if name in memo:
        found = memo[name]
        if found is _BUILDING:
            raise _Unsupported(f"{name} is recursive")
        return found
    memo[name] = _BUILDING
    try:
        built = build()
    except _Unsupported:
        del memo[name]
        raise
    memo[name] = built
    return built


def _output_plan(plans: dict, shape: Any, compile_output: Callable[[Any], Any]) -> Any:
    """``plans[shape.name]`` for an operation's output shape: ``compile_output(shape)`` on
    first use, False (botocore parses it) when that raises ``_Unsupported``."""
    key = shape.name
    if key not in plans:
        try:
            plans[key] = compile_output(shape)
        except _Unsupported:
            plans[key] = False
    return plans[key]


def compile_plan(shape: Any, memo: dict) -> Plan:
    """The plan of ``shape`` (see the module docstring); ``_Unsupported`` when it has a
    part the plan cannot follow exactly. ``memo``: plans by shape name (one service)."""
    return _memoized(shape, memo, lambda: _compile(shape, memo))


def _compile(shape: Any, memo: dict) -> Plan:
    kind = shape.type_name
    if kind == "timestamp":
        return ("ts",)
    if kind == "blob":
        return ("blob",)
    if kind == "structure":
        if shape.is_document_type:
            return None
        if getattr(shape, "is_tagged_union", False):
            raise _Unsupported(f"{shape.name} is a tagged union")
        members = {}
        for member_name, member in shape.members.items():
            if member.serialization.get("name", member_name) != member_name:
                raise _Unsupported(f"{shape.name}.{member_name} has another wire name")
            plan = compile_plan(member, memo)
            if plan is not None:
                members[member_name] = plan
        return ("struct", members) if members else None
    if kind == "list":
        plan = compile_plan(shape.member, memo)
        return ("list", plan) if plan is not None else None
    if kind == "map":
        if compile_plan(shape.key, memo) is not None:
            raise _Unsupported(f"{shape.name} has keys to convert")
        plan = compile_plan(shape.value, memo)
        return ("map", plan) if plan is not None else None
    return None  # string, integer, long, float, double, boolean: as JSON gives them


def apply_plan(plan: tuple, value: Any, timestamp, blob) -> Any:
    """``value`` (fresh from ``json.loads``, changed in place) converted as ``plan`` says."""
    if value is None:
        return None
    kind = plan[0]
    if kind == "ts":
        return timestamp(value)
    if kind == "blob":
        return blob(value)
    if kind == "struct":
        for member, sub in plan[1].items():
            found = value.get(member)
            if found is not None:
                value[member] = apply_plan(sub, found, timestamp, blob)
        return value
    if kind == "list":
        return [apply_plan(plan[1], item, timestamp, blob) for item in value]
    return {key: apply_plan(plan[1], item, timestamp, blob) for key, item in value.items()}


class FactJSONParser(JSONParser):
    """botocore's JSONParser whose bodies are converted by plan (see the module)."""

    def __init__(self, plans: dict, memo: dict, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._plans = plans  # output shape name -> its plan, or False
        self._memo = memo  # every shape's plan met while compiling them

    def _handle_json_body(self, raw_body, shape):
        plan = self._plan(shape)
        if plan is False or b"null" in raw_body:
            # botocore leaves out members whose value is null, and the collector reads
            # ``.get(name, [])``: a body with a null (rare; or "null" inside a string) is
            # botocore's to parse
            return super()._handle_json_body(raw_body, shape)
        parsed = self._parse_body_as_json(raw_body)
        if plan is None:
            return parsed
        return apply_plan(plan, parsed, self._timestamp_parser, self._blob_parser)

    def _plan(self, shape) -> Plan | bool:
        """The shape's plan, compiled on first use; False: botocore parses it."""
        return _output_plan(self._plans, shape, lambda output: compile_plan(output, self._memo))


# --------------------------------------------------------------------------- EC2 (XML)
#
# EC2's query protocol answers in XML; botocore walks each element with the shape (a dict
# of children by tag per structure, a key lookup per member). An XML plan is compiled once
# per shape instead: for a structure, its members by wire tag with their converters; for a
# list, its item converter (every child is an item, as botocore reads them); scalars by
# type. A shape with what the plan does not follow (flattened lists, XML attributes, maps,
# header locations, tagged unions, recursion) is parsed by botocore; so is a response
# where a structure repeats a tag (botocore would gather the nodes in a list).


class _Repeated(Exception):
    """A structure element repeats a child tag: botocore parses the response."""


def _xml_text(element) -> str:
    return element.text if element.text is not None else ""


def compile_xml_plan(shape: Any, memo: dict, parser: Any):
    """A converter ``element -> value`` for ``shape`` (see above); ``_Unsupported`` when
    the shape has a part it cannot follow. ``memo``: converters by shape name."""
    return _memoized(shape, memo, lambda: _compile_xml(shape, memo, parser))


def _compile_xml(shape: Any, memo: dict, parser: Any):
    kind = shape.type_name
    if kind == "structure":
        if getattr(shape, "is_tagged_union", False) or shape.metadata.get("exception", False):
            raise _Unsupported(f"{shape.name} is a union or an exception")
        by_tag: dict[str, tuple[str, Any]] = {}
        for member_name, member in shape.members.items():
            wire = member.serialization
            if wire.get("location") or wire.get("eventheader") or wire.get("xmlAttribute"):
                raise _Unsupported(f"{shape.name}.{member_name} is not a child element")
            if member.type_name == "list" and wire.get("flattened"):
                raise _Unsupported(f"{shape.name}.{member_name} is a flattened list")
            by_tag[wire.get("name", member_name)] = (member_name, compile_xml_plan(member, memo, parser))

        def structure(element, by_tag=by_tag):
            parsed: dict = {}
            seen: set = set()
            for child in element:
                tag = child.tag.rpartition("}")[2]
                if tag in seen:
                    raise _Repeated(tag)
                seen.add(tag)
                found = by_tag.get(tag)
                if found is not None:
                    parsed[found[0]] = found[1](child)
            return parsed

        return structure
    if kind == "list":
        if shape.serialization.get("flattened"):
            raise _Unsupported(f"{shape.name} is a flattened list")
        item = compile_xml_plan(shape.member, memo, parser)
        return lambda element, item=item: [item(child) for child in element]
    if kind == "map":
        raise _Unsupported(f"{shape.name} is a map")
    if kind == "boolean":
        return lambda element: _xml_text(element) == "true"
    if kind in ("integer", "long"):
        return lambda element: int(_xml_text(element))
    if kind in ("float", "double"):
        return lambda element: float(_xml_text(element))
    if kind == "timestamp":
        return lambda element: parser._timestamp_parser(_xml_text(element))
    if kind == "blob":
        return lambda element: parser._blob_parser(_xml_text(element))
    if kind in ("string", "character"):
        return _xml_text
    raise _Unsupported(f"{shape.name}: {kind}")


class FactEC2Parser(EC2QueryParser):
    """botocore's EC2QueryParser whose successful bodies are converted by XML plan."""

    def __init__(self, plans: dict, memo: dict, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._plans = plans  # output shape name -> its converter, or False
        self._memo = memo

    def _do_parse(self, response, shape):
        converter = self._converter(shape) if shape is not None else False
        if converter is False:
            return super()._do_parse(response, shape)
        root = self._parse_xml_string_to_dom(response["body"])
        try:
            parsed = converter(root)
        except _Repeated:
            return super()._do_parse(response, shape)
        self._inject_response_metadata(root, parsed)
        return parsed

    def _converter(self, shape):
        """The output shape's converter, compiled on first use; False: botocore parses it."""
        return _output_plan(self._plans, shape, self._compile_output)

    def _compile_output(self, shape):
        if "resultWrapper" in shape.serialization:
            raise _Unsupported(f"{shape.name} is wrapped")
        return compile_xml_plan(shape, self._memo, self)


class FactParserFactory(ResponseParserFactory):
    """A client endpoint's parser factory: JSON bodies through :class:`FactJSONParser`
    (plans kept for the client's life), other protocols botocore's."""

    def __init__(self) -> None:
        super().__init__()
        self._plans: dict = {}
        self._memo: dict = {}
        self._xml_plans: dict = {}
        self._xml_memo: dict = {}
        self._xml_parser: FactEC2Parser | None = None

    def create_parser(self, protocol_name):
        if protocol_name == "json":
            return FactJSONParser(self._plans, self._memo, **self._defaults)
        if protocol_name == "ec2":
            # one parser for the client's life: its XML converters call its timestamp parser
            if self._xml_parser is None:
                self._xml_parser = FactEC2Parser(self._xml_plans, self._xml_memo, **self._defaults)
            return self._xml_parser
        return super().create_parser(protocol_name)

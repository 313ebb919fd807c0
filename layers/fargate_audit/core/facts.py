"""The posture, defined once: its shape (TypedDicts) and its facts (declarations).

A *posture fact* is what a rule may ``require`` and what ``Posture.errors`` is keyed by
(docs/design.md section 2). Each is declared here once, in :data:`FACTS`, with

- ``actions``: the AWS API actions whose result it is derived from (a failed call spoils
  it). The task itself (``ecs:DescribeTasks``) and the listings that find the tasks are the
  :data:`SCOPE_ACTIONS`, declared once below;
- ``depends_on``: the ids of the resources whose change can change it (the re-audit index,
  ``DEP#<id>`` items of the recorder);
- ``history``: the paths a history entry compares, each with its extractor (in this order);
- ``asff_resources``: the network resources a failing rule requiring it names in a
  Security Hub finding (``eni``, ``security_groups``, ``subnet``, ``load_balancers``).

Derived from these, never listed by hand elsewhere: :data:`FACT_NAMES` (the ``facts`` enum
of ``rules/schema.json``), :data:`NETWORK_FACTS`, :func:`read_actions` (the README scan
policy, each function's read statements in ``template.yaml``), :func:`dependencies`,
:data:`HISTORY_PATHS`, :data:`ASFF_RESOURCES` and :func:`posture_schema` (the committed
``schemas/posture.schema.json``). ``scripts/sync_facts.py`` rewrites the committed copies;
tests fail while one is stale.

Pure and cheap: the TypedDicts cost nothing at run time (``build_posture`` returns plain
dicts) and nothing here runs per task but the extractors.
"""

from __future__ import annotations

import hashlib
import json
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, NamedTuple, TypedDict, Union

# --------------------------------------------------------------------------- the shape

Family = Literal["ipv4", "ipv6"]

PortInterval = TypedDict("PortInterval", {"protocol": str, "from": int, "to": int})


class PortsByFamily(TypedDict):
    ipv4: list[PortInterval]
    ipv6: list[PortInterval]


class Container(TypedDict):
    name: str | None
    image: str | None
    registry: str  # "docker.io" when the reference names no host
    digest: str | None  # "sha256:..." after "@"
    private_ecr: bool  # <12 digits>.dkr.ecr.<region>.amazonaws.com
    log_driver: str | None
    readonly_root_filesystem: bool


class EnvironmentVariable(TypedDict):
    """A NAME only: the value is read once to set ``trivial_value`` and then dropped."""

    container: str | None
    name: str | None
    source: Literal["definition", "override"]
    trivial_value: bool  # empty or one of true false yes no 0 1


class ClusterFacts(TypedDict):
    container_insights: str | None  # "enabled" | "enhanced" | "disabled" | None


class PublicAddress(TypedDict):
    ipv4: bool
    ipv6: bool


class SecurityGroupRef(TypedDict):
    id: str
    name: str | None


class WorldIngressRule(TypedDict):
    group_id: str | None
    family: Family
    cidr: str
    protocol: str  # normalised: "-1", "tcp", "udp", "icmp", a number
    ports: list[PortInterval]


WorldEgressRule = TypedDict(
    "WorldEgressRule",
    {
        "group_id": str | None,
        "family": Family,
        "cidr": str,
        "protocol": str,
        "from": int | None,  # None when AWS gives none
        "to": int | None,
    },
)


class _EgressPathKnown(TypedDict):
    path: str | None  # rules.md "Egress path"; None = unknown (errors.egress, or error below)
    targets: list[str]  # the ids followed (nat-.., igw-.., vpce-..)


class EgressPath(_EgressPathKnown, total=False):
    error: str  # IPv4: why the NAT gateway's own hop could not be followed (path None)
    via: list[str]  # IPv4 through a NAT gateway: its subnet and that subnet's route table


class EgressByFamily(TypedDict):
    ipv4: EgressPath
    ipv6: EgressPath


class Nacl(TypedDict):
    id: str | None
    inbound_world_allowed: PortsByFamily  # ports the NACL world decision allows


class FlowLog(TypedDict):
    id: str | None
    resource_id: str | None
    traffic_type: str | None
    status: str | None


class _VpcEndpointFields(TypedDict):
    id: str | None
    service_name: str | None
    service: str | None  # short name after com.amazonaws.<region>., e.g. "s3", "ecr.dkr"
    type: str | None
    state: str | None  # only usable states are listed
    route_table_ids: list[str]
    policy: dict[str, Any] | None  # the parsed PolicyDocument of an S3 Gateway endpoint (NET-09)
    policy_error: str | None


class VpcEndpoint(_VpcEndpointFields, total=False):
    # (NotRequired in a string annotation is not seen by Python 3.11's TypedDict)
    policy_digest: str  # another endpoint's policy: "sha256:..." of it, not the document


class QueryLogConfig(TypedDict):
    id: str | None
    config_id: str | None
    status: str | None


class Exposure(TypedDict):
    """A (front door, target port) through which the internet reaches the task (rules.md
    "Ingress through load balancers"; interface.md "Load-balancer exposure")."""

    load_balancer_arn: str
    load_balancer_type: Literal["application", "network"]
    listener_arn: str
    listener_port: int
    listener_protocol: str
    target_group_arn: str
    target_port: int
    families: list[Family]
    web_acl_arn: str | None  # None: no web ACL (always for a network load balancer)


class Network(TypedDict):
    eni_id: str | None
    private_ip: str | None
    subnet_id: str | None
    vpc_id: str | None
    public_ipv4: str | None
    ipv6_addresses: list[str]  # the ENI's IPv6 addresses and delegated prefixes (CIDR)
    public_address: PublicAddress
    security_groups: list[SecurityGroupRef]  # the ENI's groups (authoritative)
    world_ingress_rules: list[WorldIngressRule]
    world_ingress: PortsByFamily  # union over the attached groups
    world_egress_rules: list[WorldEgressRule]
    route_table_id: str | None  # explicit association, else the main table
    egress: EgressByFamily
    nacl: Nacl
    flow_logs: list[FlowLog]  # those on the ENI, its subnet or its VPC
    vpc_endpoints: list[VpcEndpoint]
    query_log_configs: list[QueryLogConfig]  # the VPC's Resolver query-log associations, any status
    exposures: list[Exposure]  # [] when none, or unknown (errors.load_balancers)
    load_balancer_resources: list[str]  # ids the exposures depend on (re-audit index)
    unknown_web_acls: list[str]  # ALBs of exposures whose web ACL is unknown (errors.web_acl)


class Posture(TypedDict):
    """One task's posture (docs/design.md section 2), as ``posture.build_posture`` returns it."""

    posture_version: Literal[1]
    task_arn: str | None
    cluster_arn: str | None
    cluster_name: str | None
    account_id: str | None
    region: str | None
    group: str | None  # "service:web" | "family:batch" (a custom group: its family's)
    task_group: str | None  # the task's own group when custom (RunTask group), else None
    workload: str  # "<cluster_name>/<group>"
    service_name: str | None  # from group "service:NAME"
    task_definition_arn: str | None
    launch_type: str | None
    last_status: str | None
    platform_family: Literal["LINUX", "WINDOWS"] | None  # None: unknown (errors.platform_family)
    platform_version: str | None  # None: not reported
    connectivity_at: str | None
    started_at: str | None
    containers: list[Container]
    environment: list[EnvironmentVariable]
    cluster: ClusterFacts
    network: Network
    errors: dict[str, str]  # posture fact -> message (keys: FACT_NAMES)


# --------------------------------------------------------------------------- the facts


class Fact(NamedTuple):
    name: str
    actions: tuple[str, ...]
    depends_on: Callable[[Network], Iterable[Any]] = lambda network: ()
    history: tuple[tuple[str, Callable[[Mapping], Any]], ...] = ()
    asff_resources: tuple[str, ...] = ()


def _net(posture: Mapping) -> Mapping:
    return posture.get("network") or {}


def _egress_history(entry: Any) -> Any:
    """A family's egress path as history compares it: without ``via`` (what the path
    depends on, not what it is), so recording it changed no task's history."""
    if not isinstance(entry, Mapping):
        return entry
    return {key: value for key, value in entry.items() if key != "via"}


def _containers(posture: Mapping) -> list:
    return posture.get("containers") or []


_ENDPOINT_HISTORY_KEYS = ("id", "service_name", "type", "state", "route_table_ids", "policy_error")


def policy_digest(document: Any) -> str:
    """``sha256:`` of a policy document in canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _endpoint_history(endpoint: Mapping) -> dict:
    """An endpoint as history compares it: its policy by digest, whether the posture keeps
    the document (an S3 Gateway endpoint's) or only its digest (any other's). A posture
    recorded when every endpoint kept its document gives the same digest: upgrading
    records no change."""
    entry = {key: endpoint.get(key) for key in _ENDPOINT_HISTORY_KEYS}
    policy = endpoint.get("policy")
    entry["policy_digest"] = policy_digest(policy) if policy is not None else endpoint.get("policy_digest")
    return entry


_ENI = "ec2:DescribeNetworkInterfaces"  # every network fact is read through the task's ENI

# The calls that find the tasks (a task's own fields come with it): no fact of their own.
SCOPE_ACTIONS = ("ecs:ListClusters", "ecs:ListTasks", "ecs:DescribeTasks")

# In this order: the order of the facts enum and of a history entry's paths.
FACTS: tuple[Fact, ...] = (
    Fact(
        "platform_version",
        ("ecs:DescribeTasks",),
        history=(("platform_version", lambda p: p.get("platform_version")),),
    ),
    # the task's platformFamily, else its task definition's runtimePlatform
    Fact("platform_family", ("ecs:DescribeTasks", "ecs:DescribeTaskDefinition")),
    Fact(
        "cluster",
        ("ecs:DescribeClusters",),
        history=(
            ("cluster.container_insights", lambda p: (p.get("cluster") or {}).get("container_insights")),
        ),
    ),
    Fact(
        "containers",
        ("ecs:DescribeTaskDefinition",),
        history=(
            ("containers.images", lambda p: {c.get("name"): c.get("image") for c in _containers(p)}),
            ("containers.registries", lambda p: sorted({c.get("registry") for c in _containers(p)} - {None})),
            (
                "containers.log_drivers",
                lambda p: {c.get("name"): c.get("log_driver") for c in _containers(p)},
            ),
        ),
    ),
    Fact(
        "eni",
        (_ENI,),
        depends_on=lambda n: (n.get("eni_id"), n.get("subnet_id"), n.get("vpc_id")),
        history=(
            ("network.subnet_id", lambda p: _net(p).get("subnet_id")),
            ("network.public_ipv4", lambda p: _net(p).get("public_ipv4")),
            ("network.ipv6_addresses", lambda p: _net(p).get("ipv6_addresses")),
            ("network.public_address", lambda p: _net(p).get("public_address")),
        ),
        asff_resources=("eni",),
    ),
    Fact(
        "security_groups",
        (_ENI, "ec2:DescribeSecurityGroups"),
        depends_on=lambda n: (sg.get("id") for sg in n.get("security_groups") or []),
        history=(
            (
                "network.security_groups",
                lambda p: sorted(sg.get("id") for sg in _net(p).get("security_groups") or []),
            ),
            ("network.world_ingress", lambda p: _net(p).get("world_ingress")),
            ("network.world_egress_rules", lambda p: _net(p).get("world_egress_rules")),
        ),
        asff_resources=("security_groups",),
    ),
    Fact(
        "route_table",
        (_ENI, "ec2:DescribeRouteTables"),
        depends_on=lambda n: (n.get("route_table_id"),),
        history=(("network.route_table_id", lambda p: _net(p).get("route_table_id")),),
        asff_resources=("subnet",),
    ),
    Fact(
        "egress",  # DescribeNatGateways: only when the path goes through a NAT gateway
        (_ENI, "ec2:DescribeRouteTables", "ec2:DescribeNatGateways"),
        depends_on=lambda n: (
            target
            for family in ("ipv4", "ipv6")
            for key in ("targets", "via")
            for target in ((n.get("egress") or {}).get(family) or {}).get(key) or []
        ),
        history=(
            ("network.egress.ipv4", lambda p: _egress_history((_net(p).get("egress") or {}).get("ipv4"))),
            ("network.egress.ipv6", lambda p: _egress_history((_net(p).get("egress") or {}).get("ipv6"))),
        ),
        asff_resources=("subnet",),
    ),
    Fact(
        "nacl",
        (_ENI, "ec2:DescribeNetworkAcls"),
        depends_on=lambda n: ((n.get("nacl") or {}).get("id"),),
        history=(
            ("network.nacl.id", lambda p: (_net(p).get("nacl") or {}).get("id")),
            (
                "network.nacl.inbound_world_allowed",
                lambda p: (_net(p).get("nacl") or {}).get("inbound_world_allowed"),
            ),
        ),
        asff_resources=("subnet",),
    ),
    Fact(
        "flow_logs",
        (_ENI, "ec2:DescribeFlowLogs"),
        # a flow log deleted: its id (a new one names the task's ENI, subnet or VPC, which
        # the eni fact depends on: app.events.parse_config_event's related ids)
        depends_on=lambda n: (fl.get("id") for fl in n.get("flow_logs") or []),
        history=(("network.flow_logs", lambda p: _net(p).get("flow_logs")),),
        asff_resources=("eni", "subnet"),
    ),
    Fact(
        "vpc_endpoints",
        (_ENI, "ec2:DescribeVpcEndpoints"),
        depends_on=lambda n: (ep.get("id") for ep in n.get("vpc_endpoints") or []),
        history=(
            (
                "network.vpc_endpoints",
                lambda p: [_endpoint_history(ep) for ep in _net(p).get("vpc_endpoints") or []],
            ),
        ),
        asff_resources=("subnet",),
    ),
    Fact(
        "dns_query_logging",
        (_ENI, "route53resolver:ListResolverQueryLogConfigAssociations"),
        history=(("network.query_log_configs", lambda p: _net(p).get("query_log_configs")),),
    ),
    Fact(
        # the task's front doors; the EC2 reads (the load balancers' groups, subnets, routes,
        # NACLs) spoil it only for a task registered in some target group
        "load_balancers",
        (
            _ENI,
            "elasticloadbalancing:DescribeTargetGroups",
            "elasticloadbalancing:DescribeTargetHealth",
            "elasticloadbalancing:DescribeTargetGroupAttributes",
            "elasticloadbalancing:DescribeLoadBalancers",
            "elasticloadbalancing:DescribeListeners",
            "elasticloadbalancing:DescribeRules",
            "ec2:DescribeSubnets",
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeRouteTables",
            "ec2:DescribeNetworkAcls",
        ),
        depends_on=lambda n: n.get("load_balancer_resources") or (),
        history=(("network.exposures", lambda p: _net(p).get("exposures")),),
        asff_resources=("load_balancers",),
    ),
    # GetWebACLForResource "uses GetWebACL, to verify that your account has permission to
    # access the retrieved web ACL" (WAFv2 API reference): without it an ALB that has a web
    # ACL answers AccessDenied, the very case NET-12 passes
    Fact(
        "web_acl",
        (_ENI, "wafv2:GetWebACLForResource", "wafv2:GetWebACL"),
        asff_resources=("load_balancers",),
    ),
)

# IAM actions no call of ours names but that AWS checks on the caller during one: action ->
# the call during which it is checked (their facts list both)
CHECKED_DURING: dict[str, str] = {"wafv2:GetWebACL": "wafv2:GetWebACLForResource"}

# --------------------------------------------------------------------------- derived

FACT_NAMES: tuple[str, ...] = tuple(fact.name for fact in FACTS)
BY_NAME: dict[str, Fact] = {fact.name: fact for fact in FACTS}

# The facts read through the task's ENI: when it is unavailable all of them are in error.
NETWORK_FACTS: tuple[str, ...] = tuple(fact.name for fact in FACTS if _ENI in fact.actions)

# Posture fact -> the network resource kinds a failing rule requiring it names.
ASFF_RESOURCES: dict[str, tuple[str, ...]] = {f.name: f.asff_resources for f in FACTS if f.asff_resources}

# What a history entry compares, in order: (path, extractor over a posture).
HISTORY_PATHS: tuple[tuple[str, Callable[[Mapping], Any]], ...] = (
    ("task_definition_arn", lambda p: p.get("task_definition_arn")),
    *(path for fact in FACTS for path in fact.history),
    ("errors", lambda p: sorted(p.get("errors") or {})),
)


def read_actions(facts: Iterable[str] | None = None, scope: Iterable[str] | None = None) -> list[str]:
    """Sorted IAM actions that collecting ``facts`` (default: all) with the ``scope`` calls
    (default: :data:`SCOPE_ACTIONS`) needs."""
    names = FACT_NAMES if facts is None else facts
    calls = SCOPE_ACTIONS if scope is None else scope
    return sorted({action for name in names for action in BY_NAME[name].actions} | set(calls))


def dependencies(posture: Mapping | None) -> list[str]:
    """Sorted ids of the resources whose change can change the posture's facts."""
    network = (posture or {}).get("network") or {}
    ids = {i for fact in FACTS for i in fact.depends_on(network)}
    return sorted(i for i in ids if isinstance(i, str) and i)


def scan_policy() -> dict:
    """The read-only IAM policy of ``fargate-audit scan`` (README.md)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "FargateAuditScanReadOnly",
                "Effect": "Allow",
                "Action": read_actions(),
                "Resource": "*",
            }
        ],
    }


def scan_policy_text() -> str:
    return json.dumps(scan_policy(), indent=2) + "\n"


# --------------------------------------------------------------------------- JSON Schema


def _type_schema(hint: Any, defs: dict[str, dict]) -> dict:
    origin = typing.get_origin(hint)
    if hint is type(None):
        return {"type": "null"}
    if hint is str:
        return {"type": "string"}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is Any:
        return {}
    if origin is Literal:
        values = list(typing.get_args(hint))
        return {"const": values[0]} if len(values) == 1 else {"enum": values}
    if origin in (Union, types.UnionType):
        options = [_type_schema(arg, defs) for arg in typing.get_args(hint)]
        nullable = {"type": "null"} in options
        rest = [o for o in options if o != {"type": "null"}]
        if nullable and len(rest) == 1 and set(rest[0]) == {"type"}:
            return {"type": [rest[0]["type"], "null"]}
        if nullable and len(rest) == 1 and "enum" in rest[0]:
            return {"enum": [*rest[0]["enum"], None]}
        return {"anyOf": options}
    if origin is list:
        (item,) = typing.get_args(hint)
        return {"type": "array", "items": _type_schema(item, defs)}
    if origin is dict:
        _, value = typing.get_args(hint)
        values = _type_schema(value, defs)
        return {"type": "object", "additionalProperties": values} if values else {"type": "object"}
    if typing.is_typeddict(hint):
        name = hint.__name__
        if name not in defs:
            defs[name] = {}  # reserved: the order of $defs is the order first met
            hints = typing.get_type_hints(hint)
            schema: dict[str, Any] = {"type": "object"}
            if hint.__doc__:
                schema["description"] = " ".join(hint.__doc__.split())
            schema |= {
                "additionalProperties": False,
                "required": [key for key in hints if key in hint.__required_keys__],
                "properties": {key: _type_schema(value, defs) for key, value in hints.items()},
            }
            defs[name] = schema
        return {"$ref": f"#/$defs/{name}"}
    raise TypeError(f"no JSON Schema for {hint!r}")


def posture_schema() -> dict:
    """The JSON Schema of :class:`Posture` (committed as ``schemas/posture.schema.json``)."""
    defs: dict[str, dict] = {}
    _type_schema(Posture, defs)
    root = defs.pop("Posture")
    root["properties"]["errors"]["propertyNames"] = {"enum": list(FACT_NAMES)}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "posture.schema.json",
        "title": f"fargate-audit task posture, version {root['properties']['posture_version']['const']}",
        **root,
        "$defs": defs,
    }


def posture_schema_text() -> str:
    return json.dumps(posture_schema(), indent=2) + "\n"

"""The check functions of the rule catalog (shared/spec/rules.md), one per rule.

Each check reads a Posture (docs/design.md section 2) and the rule's own parameters,
already resolved for the task (``{account}``/``{region}`` substituted, defaults applied):

    check(posture, params) -> (status, evidence)

``status`` is ``PASSED``, ``FAILED`` or ``NOT_APPLICABLE``; ``evidence`` a JSON-serialisable
dict. The engine has already turned every fact the rule ``requires`` that is in
``posture["errors"]`` into ``ERROR``, so a check only sees collected facts; when a fact
it reads is present but unusable it raises :class:`FactError` (the engine reports
``ERROR``). Checks are pure: no I/O, no clock, and they never mutate the posture. Each
gathers every violation before deciding.

Applicability functions (``applicability(posture, params) -> bool``) say whether a rule
concerns the task at all; ``False`` gives ``NOT_APPLICABLE``.

A rule whose ``evaluation`` is ``workload-discovery`` (EGR-01) reads a Discovery instead of
a Posture: ``{"account_id", "region", "workload", "destinations": [{"name", "query_type",
...}]}`` (docs/design.md section 6), built by the dns_logs function from DNS query logs.

The vocabulary is closed: :data:`CHECKS` and :data:`APPLICABILITY` list every function a
rule file may name (``rules/schema.json`` enumerates the same names).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any

from fargate_audit.core.netalgebra import contains, intersect, merge, subtract, union

PASSED = "PASSED"
FAILED = "FAILED"
NOT_APPLICABLE = "NOT_APPLICABLE"

FAMILIES = ("ipv4", "ipv6")
ADMIN_PORTS = (22, 3389)
UNUSABLE_ENDPOINT_STATES = frozenset({"deleted", "deleting", "failed", "rejected", "expired"})

Evidence = dict[str, Any]
CheckResult = tuple[str, Evidence]


class FactError(Exception):
    """A fact the check needs is present but unusable (e.g. an unparsable platform
    version). The engine reports the rule as ``ERROR`` with ``evidence.error`` = str(exc),
    which reads ``"<fact>: <message>"``."""

    def __init__(self, fact: str, message: str) -> None:
        super().__init__(f"{fact}: {message}")
        self.fact = fact
        self.message = message


def _verdict(violated: bool) -> str:
    return FAILED if violated else PASSED


def _network(posture: Mapping) -> Mapping:
    return posture.get("network") or {}


def _public(posture: Mapping, family: str) -> bool:
    return bool((_network(posture).get("public_address") or {}).get(family))


def _egress(posture: Mapping, family: str) -> dict:
    entry = (_network(posture).get("egress") or {}).get(family) or {}
    return {"path": entry.get("path"), "targets": list(entry.get("targets") or [])}


def _family_ports(mapping: Mapping | None, family: str) -> list[dict]:
    return list((mapping or {}).get(family) or [])


# --------------------------------------------------------------------------- NET


def public_address(posture: Mapping, params: Mapping) -> CheckResult:
    """NET-01: the ENI has an IPv4 public-IP association or any IPv6 address."""
    network = _network(posture)
    families = [family for family in FAMILIES if _public(posture, family)]
    addresses: list[str] = []
    if "ipv4" in families and network.get("public_ipv4"):
        addresses.append(network["public_ipv4"])
    if "ipv6" in families:
        addresses.extend(network.get("ipv6_addresses") or [])
    evidence = {"eni_id": network.get("eni_id"), "public_ip": addresses, "families": families}
    return _verdict(bool(families)), evidence


def internet_reachable(posture: Mapping, params: Mapping) -> CheckResult:
    """NET-02: for some family F, a public address of F AND the F default route's path is
    ``internet-gateway`` AND (world ingress of F) intersected with (NACL world-allowed
    inbound of F) is non-empty. ``open_ports`` is the union over both families."""
    network = _network(posture)
    world_ingress = network.get("world_ingress") or {}
    nacl_allowed = (network.get("nacl") or {}).get("inbound_world_allowed") or {}
    open_sets: list[list[dict]] = []
    families: list[str] = []
    for family in FAMILIES:
        if not _public(posture, family):
            continue
        if _egress(posture, family)["path"] != "internet-gateway":
            continue
        ports = intersect(_family_ports(world_ingress, family), _family_ports(nacl_allowed, family))
        if ports:
            families.append(family)
            open_sets.append(ports)
    open_ports = union(*open_sets)
    return _verdict(bool(open_ports)), {"open_ports": open_ports, "families": families}


def world_ingress_unapproved_ports(posture: Mapping, params: Mapping) -> CheckResult:
    """NET-03: a world ingress rule of an attached group covers a port outside
    ``allowed_public_ports``. Independent of public address and routing."""
    allowed = merge(params["allowed_public_ports"])
    offending_groups: set[str] = set()
    open_sets: list[list[dict]] = []
    for rule in _network(posture).get("world_ingress_rules") or []:
        outside = subtract(rule.get("ports") or [], allowed)
        if outside:
            open_sets.append(outside)
            offending_groups.add(rule.get("group_id"))
    open_ports = union(*open_sets)
    evidence = {"open_ports": open_ports, "security_groups": sorted(g for g in offending_groups if g)}
    return _verdict(bool(open_ports)), evidence


def _covers_all_tcp(rule: Mapping) -> bool:
    protocol = str(rule.get("protocol"))
    if protocol == "-1":
        return True
    return protocol in ("tcp", "6") and rule.get("from") == 0 and rule.get("to") == 65535


def unrestricted_egress(posture: Mapping, params: Mapping) -> CheckResult:
    """NET-04: one world egress rule with protocol all, or TCP 0-65535 (a single rule;
    UDP-only rules and split TCP ranges do not fail it)."""
    offending = [
        {key: rule.get(key) for key in ("group_id", "family", "cidr", "protocol", "from", "to")}
        for rule in _network(posture).get("world_egress_rules") or []
        if _covers_all_tcp(rule)
    ]
    return _verdict(bool(offending)), {"rules": offending}


def uninspected_internet_egress(posture: Mapping, params: Mapping) -> CheckResult:
    """NET-05: IPv4 leaves through an internet gateway with a public IPv4, or through a NAT
    gateway whose next hop is not in ``inspected_egress_paths``; IPv6 leaves through an
    internet or egress-only internet gateway from an ENI with an IPv6 address."""
    inspected = set(params["inspected_egress_paths"])
    paths = {family: _egress(posture, family) for family in FAMILIES}
    failing: list[str] = []
    ipv4 = paths["ipv4"]["path"] or ""
    if (ipv4 == "internet-gateway" and _public(posture, "ipv4")) or (
        ipv4.startswith("nat-gateway>") and ipv4 not in inspected
    ):
        failing.append("ipv4")
    if _public(posture, "ipv6") and paths["ipv6"]["path"] in (
        "internet-gateway",
        "egress-only-internet-gateway",
    ):
        failing.append("ipv6")
    return _verdict(bool(failing)), {"paths": paths, "families": failing}


def default_security_group(posture: Mapping, params: Mapping) -> CheckResult:
    """NET-06: an attached security group is named ``default``."""
    groups = [
        {"id": group.get("id"), "name": group.get("name")}
        for group in _network(posture).get("security_groups") or []
        if group.get("name") == "default"
    ]
    return _verdict(bool(groups)), {"security_groups": groups}


def flow_logs_incomplete(posture: Mapping, params: Mapping) -> CheckResult:
    """NET-07: no flow log on the ENI, its subnet or its VPC with TrafficType ALL and
    FlowLogStatus ACTIVE (absent status = active; DeliverLogsStatus not considered)."""
    network = _network(posture)
    scope = {network.get(key) for key in ("eni_id", "subnet_id", "vpc_id")} - {None}
    found = [
        {key: log.get(key) for key in ("id", "resource_id", "traffic_type", "status")}
        for log in network.get("flow_logs") or []
        if log.get("resource_id") in scope
    ]
    complete = any(log["traffic_type"] == "ALL" and log["status"] in (None, "ACTIVE") for log in found)
    return _verdict(not complete), {"flow_logs": found}


def nacl_admin_ports_open(posture: Mapping, params: Mapping) -> CheckResult:
    """NET-08: the NACL world decision allows inbound TCP 22 or TCP 3389, IPv4 or IPv6."""
    nacl = _network(posture).get("nacl") or {}
    allowed = nacl.get("inbound_world_allowed") or {}
    open_ports: list[dict] = []
    families: list[str] = []
    for family in FAMILIES:
        ports = [p for p in ADMIN_PORTS if contains(_family_ports(allowed, family), "tcp", p)]
        if ports:
            families.append(family)
            open_ports.extend({"protocol": "tcp", "from": p, "to": p} for p in ports)
    open_ports = merge(open_ports)
    return _verdict(bool(open_ports)), {
        "nacl_id": nacl.get("id"),
        "open_ports": open_ports,
        "families": families,
    }


# --------------------------------------------------------------------------- NET-09 / NET-10


def _usable(endpoint: Mapping) -> bool:
    return str(endpoint.get("state") or "").lower() not in UNUSABLE_ENDPOINT_STATES


def _s3_gateway_endpoints(posture: Mapping) -> list[Mapping]:
    """Usable S3 Gateway endpoints whose RouteTableIds list the task subnet's route table."""
    network = _network(posture)
    route_table = network.get("route_table_id")
    found = [
        endpoint
        for endpoint in network.get("vpc_endpoints") or []
        if _usable(endpoint)
        and endpoint.get("service") == "s3"
        and str(endpoint.get("type") or "").lower() == "gateway"
        and route_table is not None
        and route_table in (endpoint.get("route_table_ids") or [])
    ]
    return sorted(found, key=lambda e: str(e.get("id")))


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _has_wildcard(text: str) -> bool:
    return "*" in text or "?" in text


def _s3_resource_unapproved(resource: Any, approved: list[str]) -> bool:
    """NET-09 (c)/(d) for one ``Resource`` of an ``Allow`` statement.

    ``*`` is unapproved. Other values count only when they are S3 ARNs (service ``s3``, or
    a wildcard that matches it: a policy ARN may use wildcards in any segment). A bucket
    ARN (empty region and account segments) has a bucket part: the resource segment
    before the first ``/``; a ``*`` or ``?`` in it is unapproved (c), and so is a bucket
    that matches no ``approved_s3_buckets`` glob when that list is non-empty (d). An S3
    ARN that cannot be a bucket ARN (an access point, ``arn:aws:s3:region:account:...``)
    names no bucket: unapproved when its region, account or name holds a wildcard, or
    when buckets are approved (it matches none of them).
    """
    if not isinstance(resource, str):
        return False
    if resource == "*":
        return True
    parts = resource.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return False
    _, partition, service, region, account, rest = parts
    if not fnmatchcase("s3", service) or not partition:
        return False
    if not (fnmatchcase("", region) and fnmatchcase("", account)):
        # Not a bucket ARN (access point, Object Lambda, batch job, ...): names no bucket.
        name = "/".join(rest.split("/", 2)[:2])
        return _has_wildcard(region + account + name) or bool(approved)
    bucket = rest.split("/", 1)[0]
    if _has_wildcard(bucket):
        return True
    return bool(approved) and not any(fnmatchcase(bucket, pattern) for pattern in approved)


def _unapproved_resources(policy: Mapping, approved: list[str]) -> list[str]:
    found: list[str] = []
    for statement in _as_list(policy.get("Statement")):
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        if "NotResource" in statement:
            found.extend(f"NotResource: {value}" for value in _as_list(statement["NotResource"]))
            continue
        found.extend(r for r in _as_list(statement.get("Resource")) if _s3_resource_unapproved(r, approved))
    return list(dict.fromkeys(found))


def _s3_confinement(posture: Mapping, approved: list[str]) -> dict:
    """NET-09's conditions: the endpoint(s) found, unapproved resources and reasons."""
    route_table = _network(posture).get("route_table_id")
    endpoints = _s3_gateway_endpoints(posture)
    if not endpoints:
        return {
            "endpoint_id": None,
            "route_table_id": route_table,
            "unapproved_resources": [],
            "reasons": [f"no S3 gateway endpoint is associated with route table {route_table}"],
        }
    resources: list[str] = []
    reasons: list[str] = []
    for endpoint in endpoints:
        if endpoint.get("policy_error"):
            raise FactError(
                "vpc_endpoints", f"{endpoint.get('id')}: policy unreadable: {endpoint['policy_error']}"
            )
        policy = endpoint.get("policy")
        if policy is None:
            reasons.append(f"{endpoint.get('id')} has no policy (full access)")
            continue
        if not isinstance(policy, Mapping):
            raise FactError("vpc_endpoints", f"{endpoint.get('id')}: policy is not a JSON object")
        unapproved = _unapproved_resources(policy, approved)
        if unapproved:
            resources.extend(unapproved)
            reasons.append(f"{endpoint.get('id')} policy allows unapproved resources")
    return {
        "endpoint_id": endpoints[0].get("id"),
        "route_table_id": route_table,
        "unapproved_resources": list(dict.fromkeys(resources)),
        "reasons": reasons,
    }


def s3_not_confined(posture: Mapping, params: Mapping) -> CheckResult:
    """NET-09 (a) no S3 gateway endpoint on the subnet's route table, (b) no policy,
    (c) an Allow with NotResource, ``*`` or a wildcard bucket, (d) a bucket outside a
    non-empty ``approved_s3_buckets``. Deny statements and principals are ignored."""
    evidence = _s3_confinement(posture, list(params["approved_s3_buckets"]))
    return _verdict(bool(evidence["reasons"])), evidence


def _private_ecr_images(posture: Mapping) -> list[dict]:
    return [
        {"container": c.get("name"), "image": c.get("image")}
        for c in posture.get("containers") or []
        if c.get("private_ecr")
    ]


def uses_private_ecr_image(posture: Mapping, params: Mapping) -> bool:
    """NET-10 applicability: some container image is in a private ECR registry."""
    return bool(_private_ecr_images(posture))


def _has_interface_endpoint(posture: Mapping, service: str) -> bool:
    region = posture.get("region")
    return any(
        _usable(endpoint)
        and endpoint.get("service") == service
        and str(endpoint.get("type") or "").lower() == "interface"
        and str(endpoint.get("service_name") or "").endswith(f".{region}.{service}")
        for endpoint in _network(posture).get("vpc_endpoints") or []
    )


def ecr_pulls_over_internet(posture: Mapping, params: Mapping) -> CheckResult:
    """NET-10: private ECR images, and the VPC lacks an ecr.dkr or ecr.api Interface
    endpoint of the task's region, or has no S3 gateway endpoint on the subnet's route
    table (NET-09 condition a)."""
    missing = [svc for svc in ("ecr.dkr", "ecr.api") if not _has_interface_endpoint(posture, svc)]
    if not _s3_gateway_endpoints(posture):
        missing.append("s3")
    images = _private_ecr_images(posture)
    return _verdict(bool(images and missing)), {"missing_endpoints": missing, "images": images}


# --------------------------------------------------------------------------- IMG


@lru_cache(maxsize=256)
def _registry_regex(pattern: str) -> re.Pattern[str]:
    """``*`` = one or more characters other than ``.``; everything else literal;
    case-insensitive (both sides lower-cased)."""
    return re.compile("[^.]+".join(re.escape(part) for part in pattern.lower().split("*")))


def registry_approved(registry: str, patterns: Iterable[str]) -> bool:
    """True when the whole registry (host and port) matches one of ``patterns``."""
    text = (registry or "").lower()
    return any(_registry_regex(pattern).fullmatch(text) for pattern in patterns)


def unapproved_registry(posture: Mapping, params: Mapping) -> CheckResult:
    """IMG-01: some container image's registry matches no ``approved_registries`` pattern."""
    patterns = list(params["approved_registries"])
    images = [
        {"container": c.get("name"), "image": c.get("image"), "registry": c.get("registry")}
        for c in posture.get("containers") or []
        if not registry_approved(c.get("registry") or "", patterns)
    ]
    return _verdict(bool(images)), {"images": images}


def image_not_pinned(posture: Mapping, params: Mapping) -> CheckResult:
    """IMG-02: some container image has no ``@sha256:`` digest."""
    images = [
        {"container": c.get("name"), "image": c.get("image")}
        for c in posture.get("containers") or []
        if "@sha256:" not in (c.get("image") or "")
    ]
    return _verdict(bool(images)), {"images": images}


# --------------------------------------------------------------------------- LOG


def logs_not_collected(posture: Mapping, params: Mapping) -> CheckResult:
    """LOG-01: some container definition has no ``logConfiguration.logDriver``."""
    containers = [c.get("name") for c in posture.get("containers") or [] if not c.get("log_driver")]
    return _verdict(bool(containers)), {"containers": containers}


def container_insights_off(posture: Mapping, params: Mapping) -> CheckResult:
    """LOG-02: the cluster's containerInsights is neither ``enabled`` nor ``enhanced``."""
    setting = (posture.get("cluster") or {}).get("container_insights")
    return _verdict(setting not in ("enabled", "enhanced")), {"container_insights": setting}


# --------------------------------------------------------------------------- CFG

_VERSION = re.compile(r"[0-9]+(?:\.[0-9]+)*")


def _version_tuple(text: str) -> tuple[int, ...]:
    numbers = [int(part) for part in text.split(".")]
    while len(numbers) > 1 and numbers[-1] == 0:  # 1.4 == 1.4.0
        numbers.pop()
    return tuple(numbers)


def platform_version_outdated(posture: Mapping, params: Mapping) -> CheckResult:
    """CFG-01: ``platformVersion`` below the minimum of the task's platform family
    (dotted numbers); ``LATEST`` passes; an absent or unparsable version is an ERROR.

    An unknown family (``platform_family`` None: the task reports none and its task
    definition could not be read) is judged under both minimums: when they agree that
    verdict stands (evidence ``minimums`` names both); when they differ the result is an
    ERROR naming the call that failed (``posture["errors"]["platform_family"]``)."""
    version = posture.get("platform_version")
    family = posture.get("platform_family")
    if version is None:
        raise FactError("platform_version", "not reported by AWS")
    if version != "LATEST" and (not isinstance(version, str) or not _VERSION.fullmatch(version)):
        raise FactError("platform_version", f"{version!r} is not a dotted version number")

    def below(minimum: str) -> bool:
        return version != "LATEST" and _version_tuple(version) < _version_tuple(minimum)

    if family is None:
        minimums = {
            "LINUX": params["min_platform_version"],
            "WINDOWS": params["min_platform_version_windows"],
        }
        verdicts = {name: below(minimum) for name, minimum in minimums.items()}
        if verdicts["LINUX"] != verdicts["WINDOWS"]:
            failing = "LINUX" if verdicts["LINUX"] else "WINDOWS"
            passing = "WINDOWS" if failing == "LINUX" else "LINUX"
            problem = (posture.get("errors") or {}).get("platform_family") or "not known"
            raise FactError(
                "platform_family",
                f"{problem} (unknown family: platform version {version} is below the {failing} "
                f"minimum {minimums[failing]} but not the {passing} minimum {minimums[passing]})",
            )
        return _verdict(verdicts["LINUX"]), {
            "platform_version": version,
            "platform_family": None,
            "minimums": dict(minimums),
        }
    windows = str(family).upper().startswith("WINDOWS")
    minimum = params["min_platform_version_windows" if windows else "min_platform_version"]
    evidence = {"platform_version": version, "platform_family": family, "minimum": minimum}
    return _verdict(below(minimum)), evidence


@lru_cache(maxsize=16)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def secrets_in_environment(posture: Mapping, params: Mapping) -> CheckResult:
    """CFG-02: a definition or override environment variable whose name is in
    ``secret_env_names`` or contains a match of ``secret_env_pattern``, unless its value
    was trivial. Evidence names container, variable and source; never a value."""
    names = set(params["secret_env_names"])
    pattern = _compiled(params["secret_env_pattern"])
    variables = [
        {"container": var.get("container"), "name": var.get("name"), "source": var.get("source")}
        for var in posture.get("environment") or []
        if not var.get("trivial_value")
        and (var.get("name") in names or pattern.search(var.get("name") or ""))
    ]
    return _verdict(bool(variables)), {"variables": variables}


def writable_root_filesystem(posture: Mapping, params: Mapping) -> CheckResult:
    """CFG-03: some container lacks ``readonlyRootFilesystem: true``."""
    containers = [
        c.get("name")
        for c in posture.get("containers") or []
        if c.get("readonly_root_filesystem") is not True
    ]
    return _verdict(bool(containers)), {"containers": containers}


# --------------------------------------------------------------------------- EGR

QUERY_LOG_LIVE_STATUSES = frozenset({"ACTIVE", "CREATING"})
MAX_EVIDENCE_DOMAINS = 50


def dns_queries_not_logged(posture: Mapping, params: Mapping) -> CheckResult:
    """EGR-02: no Resolver query-log configuration is associated with the task's VPC (an
    association counts while its status is ACTIVE or CREATING)."""
    network = _network(posture)
    found = [
        {key: item.get(key) for key in ("id", "config_id", "status")}
        for item in network.get("query_log_configs") or []
    ]
    logged = any(str(item["status"] or "").upper() in QUERY_LOG_LIVE_STATUSES for item in found)
    return _verdict(not logged), {"vpc_id": network.get("vpc_id"), "query_log_configs": found}


def normalize_domain(name: str | None) -> str:
    """A DNS name as compared: stripped, lower-cased, one trailing dot removed."""
    text = (name or "").strip().lower()
    return text[:-1] if text.endswith(".") else text


def domain_matches(name: str, pattern: str) -> bool:
    """rules.md EGR-01: ``*.d`` matches every name ending in ``.d`` (not ``d`` itself), a
    plain name only itself; case-insensitive, trailing dot ignored on both sides."""
    name, pattern = normalize_domain(name), normalize_domain(pattern)
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return len(name) > len(suffix) and name.endswith(suffix)
    return bool(name) and name == pattern


def _registry_host(pattern: str) -> str:
    """The host of an ``approved_registries`` pattern (``host[:port]``)."""
    host, sep, port = pattern.rpartition(":")
    return host if sep and (port.isdigit() or port == "*") else pattern


def domain_approved(name: str, domains: Iterable[str], registries: Iterable[str] = ()) -> bool:
    """EGR-01: ``name`` matches an ``approved_domains`` pattern or the host of an
    ``approved_registries`` pattern (with IMG-01's own ``*`` = one label semantics)."""
    if any(domain_matches(name, pattern) for pattern in domains):
        return True
    text = normalize_domain(name)
    return any(_registry_regex(_registry_host(pattern)).fullmatch(text) for pattern in registries)


def unapproved_domains(discovery: Mapping, params: Mapping) -> CheckResult:
    """EGR-01 (workload-discovery): a name the workload's tasks resolved matches no pattern
    of ``approved_domains`` nor the host of an ``approved_registries`` pattern. Evidence:
    the unapproved names (sorted, at most 50) and their count."""
    domains = list(params["approved_domains"])
    registries = list(params["approved_registries"])
    names = {normalize_domain(d.get("name")) for d in discovery.get("destinations") or []} - {""}
    unapproved = sorted(name for name in names if not domain_approved(name, domains, registries))
    evidence = {
        "unapproved_domains": unapproved[:MAX_EVIDENCE_DOMAINS],
        "unapproved_count": len(unapproved),
    }
    return _verdict(bool(unapproved)), evidence


# --------------------------------------------------------------------------- vocabulary

CheckFunction = Callable[[Mapping, Mapping], CheckResult]
ApplicabilityFunction = Callable[[Mapping, Mapping], bool]

CHECKS: dict[str, CheckFunction] = {
    "public_address": public_address,
    "internet_reachable": internet_reachable,
    "world_ingress_unapproved_ports": world_ingress_unapproved_ports,
    "unrestricted_egress": unrestricted_egress,
    "uninspected_internet_egress": uninspected_internet_egress,
    "default_security_group": default_security_group,
    "flow_logs_incomplete": flow_logs_incomplete,
    "nacl_admin_ports_open": nacl_admin_ports_open,
    "s3_not_confined": s3_not_confined,
    "ecr_pulls_over_internet": ecr_pulls_over_internet,
    "unapproved_registry": unapproved_registry,
    "image_not_pinned": image_not_pinned,
    "logs_not_collected": logs_not_collected,
    "container_insights_off": container_insights_off,
    "platform_version_outdated": platform_version_outdated,
    "secrets_in_environment": secrets_in_environment,
    "writable_root_filesystem": writable_root_filesystem,
    "dns_queries_not_logged": dns_queries_not_logged,
    "unapproved_domains": unapproved_domains,
}

APPLICABILITY: dict[str, ApplicabilityFunction] = {
    "uses_private_ecr_image": uses_private_ecr_image,
}

# Checks whose verdict and evidence depend on these posture parts (dotted paths) and the
# rule's parameters, and on nothing else of the posture. A scan's postures share such
# parts between the tasks of a subnet, a set of security groups or a task definition
# (posture.build_posture's memo), so the engine evaluates these checks once per distinct
# part instead of once per task. tests/unit/test_engine.py runs each of them on every
# fixture reduced to exactly these parts: a check that reads anything else fails it.
INPUTS: dict[str, tuple[str, ...]] = {
    "world_ingress_unapproved_ports": ("network.world_ingress_rules",),
    "unrestricted_egress": ("network.world_egress_rules",),
    "nacl_admin_ports_open": ("network.nacl",),
    "s3_not_confined": ("network.route_table_id", "network.vpc_endpoints"),
    "container_insights_off": ("cluster.container_insights",),
    "unapproved_registry": ("containers",),
    "image_not_pinned": ("containers",),
    "logs_not_collected": ("containers",),
    "writable_root_filesystem": ("containers",),
}

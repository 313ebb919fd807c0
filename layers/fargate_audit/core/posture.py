"""The normaliser: one raw task bundle (docs/design.md section 1) -> one Posture (section 2).

Every hard fact (protocol ``-1``, port ranges, IPv6, world CIDRs, main-table fallback,
NACL ordering, the NAT next hop) is derived here once, so that each rule reduces to a
comparison. Pure: no AWS calls, no clock, no environment; the input is never mutated and
the output is JSON-serialisable and deterministic (every list sorted).

Environment variable *values* are read only to decide ``trivial_value`` and are then
dropped: they never reach the posture, an error message or a log.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from fargate_audit.core import facts, ingress, netalgebra, routes
from fargate_audit.core.facts import Posture
from fargate_audit.core.workloads import workload_group

POSTURE_VERSION = 1

# Posture facts derived from the task's ENI (design.md: "When eni is in error every
# network fact above is in error"): those read through it, "eni" first (core/facts.py).
NETWORK_FACTS = facts.NETWORK_FACTS

ENI_ATTACHMENT_TYPES = frozenset({"elasticnetworkinterface", "eni"})
UNUSABLE_ENDPOINT_STATES = frozenset({"deleted", "deleting", "failed", "rejected", "expired"})
TRIVIAL_ENV_VALUES = frozenset({"true", "false", "yes", "no", "0", "1"})

_PRIVATE_ECR = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$", re.IGNORECASE)
# "com.amazonaws.<region>.<service>" (China: "cn.com.amazonaws.<region>.<service>").
_AWS_SERVICE_NAME = re.compile(r"^(?:cn\.)?com\.amazonaws\.[a-z]{2}(?:-[a-z]+)+-\d+\.(?P<service>.+)$")

_NOT_COLLECTED = "not collected (absent from the raw bundle)"


# ---------------------------------------------------------------------------
# small public helpers (also useful to rules and tests)


def image_registry(image: str | None) -> str:
    """Registry of an image reference (rules.md "Images"), as written in the reference.

    ``host[:port]`` when the reference contains ``/`` and the part before the first ``/``
    contains ``.`` or ``:`` or is ``localhost``; otherwise ``docker.io``.
    """
    text = image or ""
    if "/" in text:
        first = text.split("/", 1)[0]
        if "." in first or ":" in first or first == "localhost":
            return first
    return "docker.io"


def image_digest(image: str | None) -> str | None:
    """The ``sha256:...`` digest after ``@`` in an image reference, else None."""
    text = image or ""
    if "@" not in text:
        return None
    digest = text.split("@", 1)[1].strip()
    return digest if digest.startswith("sha256:") else None


def is_private_ecr(registry: str | None) -> bool:
    """True for ``<12 digits>.dkr.ecr.<region>.amazonaws.com`` (any account, any region) as
    the registry host, with or without a port (``...amazonaws.com:443/web``)."""
    return bool(registry) and _PRIVATE_ECR.match(registry.partition(":")[0]) is not None


def is_trivial_env_value(value: object) -> bool:
    """True when an environment value is empty or one of ``true false yes no 0 1``
    (case-insensitive), as it is written: ``" "`` is not empty and ``" yes "`` is not
    ``yes`` (rules.md CFG-02)."""
    text = "" if value is None else str(value)
    return text == "" or text.lower() in TRIVIAL_ENV_VALUES


def endpoint_service(service_name: str | None) -> str | None:
    """Short service of an AWS endpoint service name: ``com.amazonaws.eu-west-1.ecr.dkr``
    -> ``ecr.dkr``; None for names not of that form (e.g. PrivateLink partner services)."""
    match = _AWS_SERVICE_NAME.match((service_name or "").strip())
    return match.group("service") if match else None


# ---------------------------------------------------------------------------
# internals


class _Errors:
    """Posture fact -> messages, in the order found; rendered as one line per fact."""

    def __init__(self) -> None:
        self._by_fact: dict[str, list[str]] = {}

    def add(self, fact: str, message: str) -> None:
        messages = self._by_fact.setdefault(fact, [])
        if message not in messages:
            messages.append(message)

    def as_dict(self) -> dict[str, str]:
        return {fact: "; ".join(self._by_fact[fact]) for fact in sorted(self._by_fact)}

    def extend(self, found: Mapping[str, list[str]]) -> None:
        for fact, messages in found.items():
            for message in messages:
                self.add(fact, message)


def _memoized(memo: dict | None, key: tuple, anchor: object, errors: _Errors, compute):
    """``compute(errors)``, once per ``key`` in one ``memo`` (see :func:`build_posture`).

    The tasks of one subnet, VPC or set of security groups share their derived network
    facts: those are computed once per scan and the same (never mutated) objects are
    shared by the postures, which saves both the work and the memory at thousands of
    tasks. ``anchor`` (the raw VPC facts the key names by ``id``) is kept alive with the
    entry so that its id cannot be reused while the memo lives; the errors the
    computation found are replayed into each task's ``errors``.
    """
    if memo is None:
        return compute(errors)
    hit = memo.get(key)
    if hit is None:
        found = _Errors()
        hit = memo[key] = (compute(found), found._by_fact, anchor)
    errors.extend(hit[1])
    return hit[0]


def _iso(value: object) -> str | None:
    """A timestamp as ISO-8601 UTC: epoch seconds (API), ISO strings (events, collector)
    and datetimes are all accepted; an unparseable string is kept as given."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, tz=UTC).isoformat()
        except (ValueError, OverflowError, OSError):  # out of any date's range
            return None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return value
    else:
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC).isoformat()
    except (OverflowError, ValueError):  # e.g. 9999-12-31T23:59:59-01:00: past the calendar in UTC
        return value if isinstance(value, str) else None


def _arn_field(arn: str | None, index: int) -> str | None:
    parts = (arn or "").split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        return None
    return parts[index] or None


def _last_path_element(arn: str | None) -> str | None:
    resource = _arn_field(arn, 5)
    return resource.rsplit("/", 1)[-1] if resource else None


def _sort_key_none_last(*values: object) -> tuple:
    return tuple((v is None, "" if v is None else v) for v in values)


def _eni_attachment(task: Mapping) -> Mapping | None:
    for attachment in task.get("attachments") or []:
        if str(attachment.get("type", "")).strip().lower() in ENI_ATTACHMENT_TYPES:
            return attachment
    return None


def _attachment_details(attachment: Mapping | None) -> dict[str, str]:
    details: dict[str, str] = {}
    for item in (attachment or {}).get("details") or []:
        name = item.get("name")
        if name and name not in details:
            details[name] = item.get("value")
    return details


# ---------------------------------------------------------------------------
# containers, environment, cluster


def _containers(task_definition: Mapping | None) -> list[dict]:
    containers = []
    for definition in (task_definition or {}).get("containerDefinitions") or []:
        image = definition.get("image")
        registry = image_registry(image)
        containers.append(
            {
                "name": definition.get("name"),
                "image": image,
                "registry": registry,
                "digest": image_digest(image),
                "private_ecr": is_private_ecr(registry),
                "log_driver": (definition.get("logConfiguration") or {}).get("logDriver") or None,
                "readonly_root_filesystem": definition.get("readonlyRootFilesystem") is True,
            }
        )
    return sorted(containers, key=lambda c: _sort_key_none_last(c["name"], c["image"]))


def _environment(task: Mapping, task_definition: Mapping | None) -> list[dict]:
    sources = [
        ("definition", (task_definition or {}).get("containerDefinitions") or []),
        ("override", (task.get("overrides") or {}).get("containerOverrides") or []),
    ]
    variables = []
    for source, containers in sources:
        for container in containers:
            for variable in container.get("environment") or []:
                variables.append(
                    {
                        "container": container.get("name"),
                        "name": variable.get("name"),
                        "source": source,
                        # the value is read here, once, and never kept
                        "trivial_value": is_trivial_env_value(variable.get("value")),
                    }
                )
    return sorted(
        variables,
        key=lambda v: _sort_key_none_last(v["container"], v["name"], v["source"], v["trivial_value"]),
    )


def _container_insights(cluster: Mapping | None) -> str | None:
    for setting in (cluster or {}).get("settings") or []:
        if setting.get("name") == "containerInsights":
            return setting.get("value")
    return None


def _platform_family(
    task: Mapping, task_definition: Mapping | None, definition_problem: str | None
) -> str | None:
    """``WINDOWS`` or ``LINUX`` (rules.md "Platform family"); ``None`` (unknown) when the
    task reports no ``platformFamily`` and its task definition could not be read
    (``definition_problem``): the definition's ``runtimePlatform`` might have said Windows."""
    family = task.get("platformFamily")
    if not family:
        if definition_problem:
            return None
        family = ((task_definition or {}).get("runtimePlatform") or {}).get("operatingSystemFamily")
    if isinstance(family, str) and family.strip().upper().startswith("WINDOWS"):
        return "WINDOWS"
    return "LINUX"


# ---------------------------------------------------------------------------
# network


def _egress_path(
    route_table: Mapping,
    family: str,
    route_tables: list[Mapping],
    vpc_id: str | None,
    nat_gateways: list[Mapping],
    nat_problem: str | None,
) -> dict:
    """The family's default route path (rules.md "Egress path"). An IPv4 NAT gateway's own
    hop that cannot be followed leaves the path unknown (None) with the family's
    ``error``: its first hop is known (not an internet gateway, which NET-02 needs), the
    class after it is not (which NET-05 needs); the other family is not concerned."""
    route = routes.default_route(route_table, family)
    if route is None:
        return {"path": "none", "targets": []}
    path, target = routes.classify_route(route)
    targets = [target] if target else []
    if path != "nat-gateway" or family != "ipv4":
        return {"path": path, "targets": targets}

    # IPv4 through a NAT gateway: follow one hop, to the default route of the table the
    # NAT gateway leaves by (its subnet's, or a regional NAT gateway's own).
    if nat_problem:
        return {"path": None, "targets": targets, "error": nat_problem}
    nat = next((n for n in nat_gateways if n.get("NatGatewayId") == target), None)
    if nat is None:
        problem = (
            f"NAT gateway {target} (default route of {route_table.get('RouteTableId')}) "
            f"not found among the VPC's NAT gateways"
        )
        return {"path": None, "targets": targets, "error": problem}
    nat_table, problem = _nat_route_table(route_tables, nat, vpc_id)
    # what the followed hop depends on (a change to either re-audits the task): the NAT
    # gateway's subnet (a table associated with it) and the table its traffic leaves by
    via = [
        i
        for i in (nat.get("SubnetId"), (nat_table or {}).get("RouteTableId") or nat.get("RouteTableId"))
        if isinstance(i, str) and i
    ]
    if nat_table is None:
        return {"path": None, "targets": targets, "error": problem, "via": via}
    hop = routes.default_route(nat_table, "ipv4")
    if hop is None:
        return {"path": "nat-gateway>none", "targets": targets, "via": via}
    hop_path, hop_target = routes.classify_route(hop)
    return {
        "path": f"nat-gateway>{hop_path}",
        "targets": targets + ([hop_target] if hop_target else []),
        "via": via,
    }


def _nat_route_table(route_tables: list[Mapping], nat: Mapping, vpc_id: str | None):
    """The route table a NAT gateway's traffic leaves by, or None and why. A zonal NAT
    gateway sits in a subnet: that subnet's table (explicit, else the VPC's main one). A
    regional NAT gateway (``AvailabilityMode`` ``regional``) has no subnet: AWS creates a
    route table for it, which DescribeNatGateways names (``RouteTableId``). A NAT gateway
    without a subnet is never followed through the VPC's main table: an SDK older than
    regional NAT gateways drops ``AvailabilityMode`` and ``RouteTableId``, and the main
    table is not where its traffic leaves."""
    nat_id = nat.get("NatGatewayId")
    subnet_id = nat.get("SubnetId")
    own_table = nat.get("RouteTableId")
    if not subnet_id:
        if not own_table:
            return None, (
                f"NAT gateway {nat_id} has no subnet and names no route table (a regional NAT gateway "
                f"read by an SDK that predates them?)"
            )
        table = next((rt for rt in route_tables if rt.get("RouteTableId") == own_table), None)
        if table is None:
            return None, f"route table {own_table} of regional NAT gateway {nat_id} not found"
        return table, None
    table = routes.route_table_for_subnet(route_tables, subnet_id, vpc_id)
    if table is None:
        return None, (
            f"no route table for subnet {subnet_id} of NAT gateway {nat_id} "
            f"(no explicit association and no main route table)"
        )
    return table, None


def _sg_rules(groups: Iterable[Mapping]) -> tuple[list[dict], list[dict]]:
    """World ingress rules (with port coverage) and world egress rules of the groups."""
    ingress: list[dict] = []
    egress: list[dict] = []
    for group in groups:
        group_id = group.get("GroupId")
        for permission in group.get("IpPermissions") or []:
            protocol = netalgebra.normalize_protocol(permission.get("IpProtocol"))
            ports = netalgebra.port_coverage(protocol, permission.get("FromPort"), permission.get("ToPort"))
            for family, cidr in _world_cidrs(permission):
                ingress.append(
                    {
                        "group_id": group_id,
                        "family": family,
                        "cidr": cidr,
                        "protocol": protocol,
                        "ports": ports,
                    }
                )
        for permission in group.get("IpPermissionsEgress") or []:
            protocol = netalgebra.normalize_protocol(permission.get("IpProtocol"))
            for family, cidr in _world_cidrs(permission):
                egress.append(
                    {
                        "group_id": group_id,
                        "family": family,
                        "cidr": cidr,
                        "protocol": protocol,
                        "from": _int_or_none(permission.get("FromPort")),
                        "to": _int_or_none(permission.get("ToPort")),
                    }
                )
    ingress.sort(
        key=lambda r: (
            _sort_key_none_last(r["group_id"], r["family"], r["cidr"], r["protocol"]),
            [(p["protocol"], p["from"], p["to"]) for p in r["ports"]],
        )
    )
    egress.sort(
        key=lambda r: _sort_key_none_last(
            r["group_id"], r["family"], r["cidr"], r["protocol"], r["from"], r["to"]
        )
    )
    return ingress, egress


def _world_cidrs(permission: Mapping) -> list[tuple[str, str]]:
    """(family, cidr) of the permission's world ranges; prefix lists and group pairs never are."""
    found = []
    for ip_range in permission.get("IpRanges") or []:
        if netalgebra.is_world(ip_range.get("CidrIp"), "ipv4"):
            found.append(("ipv4", ip_range["CidrIp"].strip()))
    for ip_range in permission.get("Ipv6Ranges") or []:
        if netalgebra.is_world(ip_range.get("CidrIpv6"), "ipv6"):
            found.append(("ipv6", ip_range["CidrIpv6"].strip()))
    return found


def _int_or_none(value: object) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _vpc_endpoint(endpoint: Mapping) -> dict:
    policy = None
    policy_error = None
    document = endpoint.get("PolicyDocument")
    if isinstance(document, Mapping):
        policy = copy.deepcopy(dict(document))
    elif isinstance(document, str) and document.strip():
        try:
            parsed = json.loads(document)
        except ValueError as exc:
            policy_error = f"PolicyDocument is not valid JSON: {exc}"
        else:
            if isinstance(parsed, dict):
                policy = parsed
            else:
                policy_error = f"PolicyDocument is not a JSON object (got {type(parsed).__name__})"
    service_name = endpoint.get("ServiceName")
    service = endpoint_service(service_name)
    kind = endpoint.get("VpcEndpointType")
    entry = {
        "id": endpoint.get("VpcEndpointId"),
        "service_name": service_name,
        "service": service,
        "type": kind,
        "state": endpoint.get("State"),
        "route_table_ids": sorted(endpoint.get("RouteTableIds") or []),
        "policy": policy,
        "policy_error": policy_error,
    }
    if policy is not None and not (service == "s3" and str(kind or "").lower() == "gateway"):
        # Only an S3 Gateway endpoint's policy is read by a rule (NET-09). Every task of the
        # VPC holds every endpoint: 50 interface endpoints of 20 KB policies would make its
        # record larger than DynamoDB's 400 KB item. A digest still shows a change.
        entry["policy"] = None
        entry["policy_digest"] = facts.policy_digest(policy)
    return entry


_VPC_RAW_FACTS = ("security_groups", "route_tables", "nat_gateways", "network_acls", "vpc_endpoints")


def _sg_facts(groups: list[Mapping]) -> tuple[list[dict], dict, list[dict]]:
    """(world ingress rules, world ingress ports per family, world egress rules) of groups."""
    ingress_rules, egress_rules = _sg_rules(groups)
    world_ingress = {
        family: netalgebra.union(*(r["ports"] for r in ingress_rules if r["family"] == family))
        for family in netalgebra.FAMILIES
    }
    return ingress_rules, world_ingress, egress_rules


def _nacl_fact(acls: list[Mapping], subnet_id: str | None, vpc_id: str | None) -> dict | None:
    acl = routes.nacl_for_subnet(acls, subnet_id, vpc_id)
    if acl is None:
        return None
    return {
        "id": acl.get("NetworkAclId"),
        "inbound_world_allowed": {
            family: netalgebra.nacl_world_allowed(acl.get("Entries") or [], False, family)
            for family in netalgebra.FAMILIES
        },
    }


def _vpc_endpoints(endpoints: list[Mapping], vpc_id: str | None) -> list[dict]:
    return sorted(
        (
            _vpc_endpoint(ep)
            for ep in endpoints
            if str(ep.get("State") or "").strip().lower() not in UNUSABLE_ENDPOINT_STATES
            and (not vpc_id or ep.get("VpcId") in (None, vpc_id))
        ),
        key=lambda e: _sort_key_none_last(e["id"], e["service_name"]),
    )


def _empty_network(eni_id=None, private_ip=None, subnet_id=None, vpc_id=None) -> dict:
    return {
        "eni_id": eni_id,
        "private_ip": private_ip,
        "subnet_id": subnet_id,
        "vpc_id": vpc_id,
        "public_ipv4": None,
        "ipv6_addresses": [],
        "public_address": {"ipv4": False, "ipv6": False},
        "security_groups": [],
        "world_ingress_rules": [],
        "world_ingress": {"ipv4": [], "ipv6": []},
        "world_egress_rules": [],
        "route_table_id": None,
        "egress": {"ipv4": {"path": None, "targets": []}, "ipv6": {"path": None, "targets": []}},
        "nacl": {"id": None, "inbound_world_allowed": {"ipv4": [], "ipv6": []}},
        "flow_logs": [],
        "vpc_endpoints": [],
        "query_log_configs": [],
        "exposures": [],
        "load_balancer_resources": [],
        "unknown_web_acls": [],
    }


def _public_ipv4(eni: Mapping) -> str | None:
    public_ip = (eni.get("Association") or {}).get("PublicIp")
    if public_ip:
        return public_ip
    for address in eni.get("PrivateIpAddresses") or []:
        if address.get("Primary") and (address.get("Association") or {}).get("PublicIp"):
            return address["Association"]["PublicIp"]
    return None


def _network(raw: Mapping, task: Mapping, raw_errors: Mapping, errors: _Errors, memo: dict | None) -> dict:
    eni = raw.get("eni")
    vpc = raw.get("vpc")
    attachment = _eni_attachment(task)
    details = _attachment_details(attachment)

    # -- the ENI itself; without it no network fact can be trusted
    eni_problem = None
    if "eni" in raw_errors:
        eni_problem = str(raw_errors["eni"])
    elif attachment is None:
        eni_problem = "task has no ElasticNetworkInterface attachment"
    elif not eni:
        eni_problem = f"ENI {details.get('networkInterfaceId')} {_NOT_COLLECTED}"
    if eni_problem or eni is None:
        eni_problem = eni_problem or "ENI unknown"
        errors.add("eni", eni_problem)
        for fact in NETWORK_FACTS[1:]:
            errors.add(fact, f"task ENI unavailable: {eni_problem}")
        return _empty_network(
            eni_id=details.get("networkInterfaceId"),
            private_ip=details.get("privateIPv4Address"),
            subnet_id=details.get("subnetId"),
            vpc_id=(vpc or {}).get("vpc_id"),
        )

    network = _empty_network(
        eni_id=eni.get("NetworkInterfaceId") or details.get("networkInterfaceId"),
        private_ip=eni.get("PrivateIpAddress") or details.get("privateIPv4Address"),
        subnet_id=eni.get("SubnetId") or details.get("subnetId"),
        vpc_id=eni.get("VpcId") or (vpc or {}).get("vpc_id"),
    )
    eni_id, subnet_id, vpc_id = network["eni_id"], network["subnet_id"], network["vpc_id"]

    public_ipv4 = _public_ipv4(eni)
    ipv6 = {a.get("Ipv6Address") for a in eni.get("Ipv6Addresses") or [] if a.get("Ipv6Address")}
    if eni.get("Ipv6Address"):
        ipv6.add(eni["Ipv6Address"])
    # a delegated prefix (Ipv6Prefixes) gives the ENI IPv6 addresses too: listed as the prefix
    ipv6.update(p.get("Ipv6Prefix") for p in eni.get("Ipv6Prefixes") or [] if p.get("Ipv6Prefix"))
    network["public_ipv4"] = public_ipv4
    network["ipv6_addresses"] = sorted(ipv6)
    network["public_address"] = {"ipv4": bool(public_ipv4), "ipv6": bool(ipv6)}

    def vpc_list(raw_fact: str) -> tuple[list[Mapping], str | None]:
        if raw_fact in raw_errors:
            return [], str(raw_errors[raw_fact])
        if vpc is None:
            return [], f"VPC facts {_NOT_COLLECTED}"
        return vpc.get(raw_fact) or [], None  # read only: no copy per task

    # -- security groups: the ENI's groups are authoritative
    sg_list, sg_problem = vpc_list("security_groups")
    if sg_problem:
        errors.add("security_groups", sg_problem)
    # what the shared facts depend on: the VPC's raw facts (by identity) and their errors
    vpc_key = (id(vpc), *(str(raw_errors.get(fact)) for fact in _VPC_RAW_FACTS))
    by_id = _memoized(
        memo,
        ("sg-index", *vpc_key),
        vpc,
        errors,
        lambda _: {sg.get("GroupId"): sg for sg in sg_list if sg.get("GroupId")},
    )
    attached: dict[str, dict] = {}
    found: list[Mapping] = []
    missing: list[str] = []
    for group in eni.get("Groups") or []:
        group_id = group.get("GroupId")
        if not group_id or group_id in attached:
            continue
        sg = by_id.get(group_id)
        attached[group_id] = {"id": group_id, "name": group.get("GroupName") or (sg or {}).get("GroupName")}
        if sg is not None:
            found.append(sg)
        elif not sg_problem:
            missing.append(group_id)
    if missing:
        # a group the VPC's listing lacks, whose read by id failed: that call's error
        unread = (vpc or {}).get("security_group_errors") or {}
        why = sorted({unread[group_id] for group_id in missing if group_id in unread})
        sg_problem = f"security group(s) {', '.join(sorted(missing))} attached to {eni_id} " + (
            f"not read: {'; '.join(why)}" if why else "not found by DescribeSecurityGroups"
        )
        errors.add("security_groups", sg_problem)
    ingress_rules, world_ingress, egress_rules = _memoized(
        memo, ("sg-rules", *vpc_key, tuple(id(g) for g in found)), vpc, errors, lambda _: _sg_facts(found)
    )
    network["security_groups"] = [attached[g] for g in sorted(attached)]
    network["world_ingress_rules"] = ingress_rules
    network["world_ingress"] = world_ingress
    network["world_egress_rules"] = egress_rules

    # -- route table and egress paths
    route_tables, rt_problem = vpc_list("route_tables")
    route_table = None
    if rt_problem:
        rt_message = rt_problem
    elif not subnet_id:
        rt_message = f"subnet of ENI {eni_id} unknown"
    else:

        def route(found: _Errors) -> tuple[Mapping | None, dict | None]:
            table = routes.route_table_for_subnet(route_tables, subnet_id, vpc_id)
            if table is None:
                return None, None
            nat_gateways, nat_problem = vpc_list("nat_gateways")
            return table, {
                family: _egress_path(table, family, route_tables, vpc_id, nat_gateways, nat_problem)
                for family in netalgebra.FAMILIES
            }

        route_table, egress = _memoized(memo, ("route", *vpc_key, subnet_id, vpc_id), vpc, errors, route)
        rt_message = (
            None
            if route_table
            else f"no route table associated with {subnet_id} and no main route table in {vpc_id}"
        )
    if route_table is None:
        errors.add("route_table", rt_message)
        errors.add("egress", rt_message)
    else:
        network["route_table_id"] = route_table.get("RouteTableId")
        network["egress"] = egress

    # -- network ACL
    acls, acl_problem = vpc_list("network_acls")
    if acl_problem:
        errors.add("nacl", acl_problem)
    else:
        nacl = _memoized(
            memo,
            ("nacl", *vpc_key, subnet_id, vpc_id),
            vpc,
            errors,
            lambda _: _nacl_fact(acls, subnet_id, vpc_id),
        )
        if nacl is None:
            errors.add(
                "nacl", f"no network ACL associated with {subnet_id} and no default network ACL in {vpc_id}"
            )
        else:
            network["nacl"] = nacl

    # -- flow logs on the ENI, its subnet or its VPC
    flow_logs, fl_problem = vpc_list("flow_logs")
    if fl_problem:
        errors.add("flow_logs", fl_problem)
    resources = {r for r in (eni_id, subnet_id, vpc_id) if r}
    network["flow_logs"] = sorted(
        (
            {
                "id": fl.get("FlowLogId"),
                "resource_id": fl.get("ResourceId"),
                "traffic_type": fl.get("TrafficType"),
                "status": fl.get("FlowLogStatus"),
            }
            for fl in flow_logs
            if fl.get("ResourceId") in resources
        ),
        key=lambda f: _sort_key_none_last(f["id"], f["resource_id"]),
    )

    # -- VPC endpoints in a usable state
    endpoints, ep_problem = vpc_list("vpc_endpoints")
    if ep_problem:
        errors.add("vpc_endpoints", ep_problem)
    network["vpc_endpoints"] = _memoized(
        memo, ("endpoints", *vpc_key, vpc_id), vpc, errors, lambda _: _vpc_endpoints(endpoints, vpc_id)
    )

    # -- Resolver query-log associations of the VPC (EGR-02)
    if "query_log_associations" in raw_errors:
        errors.add("dns_query_logging", str(raw_errors["query_log_associations"]))
    elif vpc is None or "query_log_associations" not in vpc:
        errors.add("dns_query_logging", f"Resolver query-log associations {_NOT_COLLECTED}")
    else:
        network["query_log_configs"] = sorted(
            (
                {
                    "id": association.get("Id"),
                    "config_id": association.get("ResolverQueryLogConfigId"),
                    "status": association.get("Status"),
                }
                for association in vpc.get("query_log_associations") or []
                if not vpc_id or association.get("ResourceId") in (None, vpc_id)
            ),
            key=lambda q: _sort_key_none_last(q["id"], q["config_id"]),
        )
    # -- the front doors: load balancers through which the internet reaches the task
    addresses = [network["private_ip"], *network["ipv6_addresses"]]
    targets = _memoized(
        memo,
        ("targets", id(vpc), vpc_id),
        vpc,
        errors,
        lambda _: ingress.target_index(
            ((vpc or {}).get("load_balancing") or {}).get("target_groups") or [], vpc_id
        ),
    )
    exposed = ingress.exposures(vpc, raw_errors, [a for a in addresses if a], found, sg_problem, targets)
    # what the exposures depend on, known or not (the re-audit index keeps them)
    network["load_balancer_resources"] = exposed["resources"]
    if exposed["error"]:
        errors.add("load_balancers", exposed["error"])
    else:
        network["exposures"] = exposed["exposures"]
    if exposed["web_acl_error"]:
        errors.add("web_acl", exposed["web_acl_error"])
        network["unknown_web_acls"] = exposed["unknown_web_acls"]
    return network


# ---------------------------------------------------------------------------
# the normaliser


def build_posture(raw: Mapping, memo: dict | None = None) -> Posture:
    """The Posture (core/facts.py, docs/design.md section 2) of one raw task bundle (section 1).

    ``memo``: optional, one dict per batch of bundles collected together (a scan). The
    network facts derived from the shared VPC facts (security-group rules, route and
    egress path, NACL decision, endpoints) are then computed once per subnet, VPC or set
    of groups and shared, unchanged, by the postures; the result is equal either way.

    ``raw["task"]`` may be a ``DescribeTasks`` task (attachment type
    ``ElasticNetworkInterface``, epoch or ISO timestamps) or an ECS task state change
    event's ``detail`` (attachment type ``eni``, ISO timestamps). Facts that could not be
    collected are listed in ``errors`` under the posture fact they spoil.
    """
    task: Mapping = raw.get("task") or {}
    task_definition = raw.get("task_definition")
    cluster = raw.get("cluster")
    raw_errors: Mapping = raw.get("errors") or {}
    errors = _Errors()

    task_arn = task.get("taskArn")
    cluster_arn = task.get("clusterArn") or (cluster or {}).get("clusterArn")
    cluster_name = _last_path_element(cluster_arn) or (cluster or {}).get("clusterName")
    own_group = task.get("group")
    group = workload_group(own_group, task.get("taskDefinitionArn"))
    service_name = (
        group[len("service:") :] if isinstance(group, str) and group.startswith("service:") else None
    )

    definition_problem = None
    if "task_definition" in raw_errors:
        definition_problem = str(raw_errors["task_definition"])
    elif not task_definition:
        definition_problem = f"task definition {task.get('taskDefinitionArn')} {_NOT_COLLECTED}"
    if definition_problem:
        errors.add("containers", definition_problem)
    platform_family = _platform_family(task, task_definition, definition_problem)
    if platform_family is None:
        errors.add("platform_family", definition_problem)
    if "cluster" in raw_errors:
        errors.add("cluster", str(raw_errors["cluster"]))
    elif not cluster:
        errors.add("cluster", f"cluster {cluster_arn} {_NOT_COLLECTED}")
    platform_version = task.get("platformVersion") or None
    if platform_version is None:
        errors.add("platform_version", "platformVersion not reported by AWS")

    network = _network(raw, task, raw_errors, errors, memo)

    return {
        "posture_version": POSTURE_VERSION,
        "task_arn": task_arn,
        "cluster_arn": cluster_arn,
        "cluster_name": cluster_name,
        "account_id": raw.get("account_id") or _arn_field(task_arn, 4),
        "region": raw.get("region") or _arn_field(task_arn, 3),
        "group": group,
        "task_group": own_group if own_group != group else None,
        "workload": f"{cluster_name}/{group}",
        "service_name": service_name,
        "task_definition_arn": task.get("taskDefinitionArn"),
        "launch_type": task.get("launchType"),
        "last_status": task.get("lastStatus"),
        "platform_family": platform_family,
        "platform_version": platform_version,
        "connectivity_at": _iso(task.get("connectivityAt")),
        "started_at": _iso(task.get("startedAt")),
        "containers": _memoized(
            memo,
            ("containers", id(task_definition)),
            task_definition,
            errors,
            lambda _: _containers(task_definition),
        ),
        "environment": _environment(task, task_definition),
        "cluster": {"container_insights": _container_insights(cluster)},
        "network": network,
        "errors": errors.as_dict(),
    }

"""Ingress through load balancers (shared/spec/rules.md, "Ingress through load
balancers"): the exposures of one task, from the raw Elastic Load Balancing facts of its
VPC. Pure: the input is never mutated, every list in the output is sorted.

The raw facts (``vpc["load_balancing"]``, read by edge/collect.py once per region):

    target_groups            ip target groups of the VPC, each with ``Targets`` (its
                             DescribeTargetHealth descriptions)
    load_balancers           {ARN: DescribeLoadBalancers item}; an internet-facing one
                             that can reach an audited task carries ``Listeners``, each
                             with ``Rules`` (application load balancers' HTTP(S) listeners)
    target_group_attributes  {ARN: {key: value}} of the TCP and TLS groups of network
                             load balancers that an audited task is registered in
    subnets                  {id: DescribeSubnets item} of those load balancers' subnets
    web_acls                 {ALB ARN: web ACL ARN or None}; an exposed ALB absent from
                             it and from web_acl_errors was not read: unknown, not None
    errors                   {"*" or a resource id: one-line error}: "*" spoils every
                             task of the VPC (its target groups or their targets could
                             not be read), an id only the tasks registered behind it
    web_acl_errors           {ALB ARN: one-line error} of GetWebACLForResource

A resource that disappeared between the calls that read it is simply absent (no front
door), never an error.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fargate_audit.core import netalgebra, routes

# Listener protocol -> its transport protocols; TCP_UDP and TCP_QUIC are both.
TRANSPORTS: dict[str, tuple[str, ...]] = {
    "HTTP": ("tcp",),
    "HTTPS": ("tcp",),
    "TCP": ("tcp",),
    "TLS": ("tcp",),
    "UDP": ("udp",),
    "QUIC": ("udp",),
    "TCP_UDP": ("tcp", "udp"),
    "TCP_QUIC": ("tcp", "udp"),
}
LOAD_BALANCER_TYPES = ("application", "network")  # gateway load balancers: out of scope
INACTIVE_TARGET_STATES = frozenset({"draining", "unused"})
ALWAYS_PRESERVED = frozenset({"UDP", "TCP_UDP", "QUIC", "TCP_QUIC"})  # NLB group protocols
PRESERVE_CLIENT_IP = "preserve_client_ip.enabled"
NOT_COLLECTED = "load balancer facts not collected (absent from the raw bundle)"
NOT_READ = "not collected (absent from web_acls and web_acl_errors)"


def normalize_address(value: Any) -> str | None:
    """An address as targets and ENIs are compared: IPv6 compressed (AWS may write it
    either way); IPv4 as AWS writes it, dotted decimal (not parsed: thousands of tasks)."""
    text = str(value).strip() if value is not None else ""
    if ":" not in text:
        return text or None
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return None


def _family(address: str) -> str:
    return "ipv6" if ":" in address else "ipv4"


def transports(protocol: str | None) -> tuple[str, ...]:
    return TRANSPORTS.get(str(protocol or "").upper(), ())


Registration = tuple[Mapping, str, int]  # (target group, registered address, target port)


def target_index(target_groups: Iterable[Mapping], vpc_id: str | None) -> dict[str, list[Registration]]:
    """Address -> its registrations: the ip groups of the VPC whose targets hold it in a
    state other than draining or unused (built once per VPC: a task looks itself up)."""
    index: dict[str, list[Registration]] = {}
    for group in target_groups:
        if str(group.get("TargetType") or "").lower() != "ip" or group.get("VpcId") != vpc_id:
            continue
        for description in group.get("Targets") or []:
            target = description.get("Target") or {}
            address = normalize_address(target.get("Id"))
            state = str((description.get("TargetHealth") or {}).get("State") or "").lower()
            if address and state not in INACTIVE_TARGET_STATES and target.get("Port") is not None:
                index.setdefault(address, []).append((group, address, int(target["Port"])))
    return index


def registrations(index: Mapping[str, list[Registration]], addresses: Iterable[str]) -> list[Registration]:
    """The task's registrations (rules.md "Target groups of a task"; the target port is
    the registered target's)."""
    if not index:
        return []
    own = dict.fromkeys(a for a in map(normalize_address, addresses) if a)
    return [registration for address in own for registration in index.get(address, ())]


def forwards_to(listener: Mapping, group_arn: str) -> bool:
    """One of the listener's actions (its default actions, or any rule's) forwards to the
    group: ``TargetGroupArn``, or a ``ForwardConfig`` entry whose weight is absent or not 0."""
    actions = list(listener.get("DefaultActions") or [])
    for rule in listener.get("Rules") or []:
        actions.extend(rule.get("Actions") or [])
    for action in actions:
        if str(action.get("Type") or "").lower() != "forward":
            continue
        if action.get("TargetGroupArn") == group_arn:
            return True
        for entry in (action.get("ForwardConfig") or {}).get("TargetGroups") or []:
            if entry.get("TargetGroupArn") == group_arn and entry.get("Weight") not in (0, "0"):
                return True
    return False


def public_families(load_balancer: Mapping) -> list[str]:
    """The families of the load balancer's public addresses."""
    address_type = str(load_balancer.get("IpAddressType") or "ipv4").lower()
    families = [] if address_type == "dualstack-without-public-ipv4" else ["ipv4"]
    if address_type in ("dualstack", "dualstack-without-public-ipv4"):
        families.append("ipv6")
    return families


def _covers(permission: Mapping, protocol: str, port: int) -> bool:
    coverage = netalgebra.port_coverage(
        netalgebra.normalize_protocol(permission.get("IpProtocol")),
        permission.get("FromPort"),
        permission.get("ToPort"),
    )
    return netalgebra.contains(coverage, protocol, port)


def _cidrs(permission: Mapping, family: str) -> list[str]:
    if family == "ipv4":
        return [r.get("CidrIp") for r in permission.get("IpRanges") or [] if r.get("CidrIp")]
    return [r.get("CidrIpv6") for r in permission.get("Ipv6Ranges") or [] if r.get("CidrIpv6")]


def _contains_any(cidr: str, blocks: Iterable[str]) -> bool:
    try:
        network = ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        return False
    for block in blocks:
        try:
            inner = ipaddress.ip_network(block, strict=False)
        except ValueError:
            continue
        if inner.version == network.version and inner.subnet_of(network):
            return True
    return False


def subnet_blocks(subnet: Mapping, family: str) -> list[str]:
    if family == "ipv4":
        return [subnet["CidrBlock"]] if subnet.get("CidrBlock") else []
    return [
        a["Ipv6CidrBlock"]
        for a in subnet.get("Ipv6CidrBlockAssociationSet") or []
        if a.get("Ipv6CidrBlock")
        and str((a.get("Ipv6CidrBlockState") or {}).get("State") or "associated").lower() == "associated"
    ]


class _Unknown(Exception):
    """A fact the exposures need could not be collected: the message names the call."""


class _Vpc:
    """The task's VPC facts the definitions read, each lookup failing with :class:`_Unknown`."""

    def __init__(self, vpc: Mapping, raw_errors: Mapping, elb: Mapping) -> None:
        self.vpc, self.raw_errors, self.elb = vpc, raw_errors, elb
        self.vpc_id = vpc.get("vpc_id")
        self.errors: Mapping = elb.get("errors") or {}
        self._groups: dict | None = None

    def _list(self, raw_fact: str) -> list:
        if raw_fact in self.raw_errors:
            raise _Unknown(str(self.raw_errors[raw_fact]))
        return self.vpc.get(raw_fact) or []

    def fault(self, resource: str | None) -> None:
        if resource and resource in self.errors:
            raise _Unknown(str(self.errors[resource]))

    def group(self, group_id: str) -> Mapping:
        if self._groups is None:
            self._groups = {g.get("GroupId"): g for g in self._list("security_groups")}
        found = self._groups.get(group_id)
        if found is None:
            raise _Unknown(
                f"security group {group_id} of a load balancer not found by DescribeSecurityGroups"
            )
        return found

    def subnet(self, subnet_id: str) -> Mapping:
        self.fault(subnet_id)
        found = (self.elb.get("subnets") or {}).get(subnet_id)
        if found is None:
            raise _Unknown(f"DescribeSubnets: load balancer subnet {subnet_id} not returned")
        return found

    def route_table(self, subnet_id: str) -> Mapping:
        table = routes.route_table_for_subnet(self._list("route_tables"), subnet_id, self.vpc_id)
        if table is None:
            raise _Unknown(f"no route table associated with {subnet_id} and no main route table")
        return table

    def nacl(self, subnet_id: str) -> Mapping:
        acl = routes.nacl_for_subnet(self._list("network_acls"), subnet_id, self.vpc_id)
        if acl is None:
            raise _Unknown(f"no network ACL associated with {subnet_id} and no default network ACL")
        return acl


def _subnet_ids(load_balancer: Mapping) -> list[str]:
    return sorted({z["SubnetId"] for z in load_balancer.get("AvailabilityZones") or [] if z.get("SubnetId")})


def may_face_internet(load_balancer: Mapping) -> bool:
    """Scheme ``internet-facing`` and a state other than ``failed`` (the collector reads
    the listeners of these only)."""
    return (
        str(load_balancer.get("Scheme") or "").lower() == "internet-facing"
        and str((load_balancer.get("State") or {}).get("Code") or "").lower() != "failed"
    )


def internet_facing(
    load_balancer: Mapping, listener: Mapping, transport: str, family: str, vpc: _Vpc
) -> bool:
    """rules.md "Internet-facing", for a transport and an IP family."""
    if not may_face_internet(load_balancer):
        return False
    if family not in public_families(load_balancer):
        return False
    port = listener.get("Port")
    if port is None:
        return False
    reachable = False
    for subnet_id in _subnet_ids(load_balancer):
        route = routes.default_route(vpc.route_table(subnet_id), family)
        if route is None or routes.classify_route(route)[0] != "internet-gateway":
            continue
        entries = vpc.nacl(subnet_id).get("Entries") or []
        if netalgebra.nacl_decision(entries, False, family, transport, int(port)) == "allow":
            reachable = True
            break
    if not reachable:
        return False
    group_ids = load_balancer.get("SecurityGroups") or []
    if not group_ids:
        return str(load_balancer.get("Type") or "").lower() == "network"
    unknown: _Unknown | None = None  # an unknown group matters only if no known one admits
    for group_id in group_ids:
        try:
            permissions = vpc.group(group_id).get("IpPermissions") or []
        except _Unknown as exc:
            unknown = unknown or exc
            continue
        if any(
            _covers(permission, transport, int(port))
            and any(netalgebra.is_world(cidr, family) for cidr in _cidrs(permission, family))
            for permission in permissions
        ):
            return True
    if unknown:
        raise unknown
    return False


def admits(
    task_groups: list[Mapping],
    load_balancer: Mapping,
    transport: str,
    target_port: int,
    target_family: str,
    client_family: str,
    preserved: Callable[[], bool],
    vpc: _Vpc,
) -> bool:
    """rules.md "The task admits" its front door for a transport, for clients of
    ``client_family``: a preserving NLB group hands the task the addresses of clients of
    the target's own family, which a CIDR merely containing the load balancer's subnets
    does not admit. ``preserved()`` (which may raise _Unknown: its attribute unread) is
    asked only when the answer depends on it: a world rule or the load balancer's group
    admits either way, and no narrow CIDR admits nothing either way."""
    lb_groups = set(load_balancer.get("SecurityGroups") or [])
    narrow: list[str] = []  # CIDRs that admit only by containing a load balancer subnet
    for group in task_groups:
        for permission in group.get("IpPermissions") or []:
            if not _covers(permission, transport, target_port):
                continue
            if any(pair.get("GroupId") in lb_groups for pair in permission.get("UserIdGroupPairs") or []):
                return True
            for cidr in _cidrs(permission, target_family):
                if netalgebra.is_world(cidr, target_family):
                    return True
                narrow.append(cidr)
    if not narrow or (client_family == target_family and preserved()):
        return False
    # the subnets are read only now, and an unknown one matters only if no known one admits:
    # the answer does not depend on the order of the rules or of the subnets
    blocks: list[str] = []
    unknown: _Unknown | None = None
    for subnet_id in _subnet_ids(load_balancer):
        try:
            blocks += subnet_blocks(vpc.subnet(subnet_id), target_family)
        except _Unknown as exc:
            unknown = unknown or exc
    if any(_contains_any(cidr, blocks) for cidr in narrow):
        return True
    if unknown:
        raise unknown
    return False


def preserves_client_addresses(group: Mapping, load_balancer: Mapping, vpc: _Vpc) -> bool:
    if str(load_balancer.get("Type") or "").lower() != "network":
        return False
    protocol = str(group.get("Protocol") or "").upper()
    if protocol in ALWAYS_PRESERVED:
        return True
    if protocol not in ("TCP", "TLS"):
        return False
    arn = group.get("TargetGroupArn")
    vpc.fault(arn)
    attributes = (vpc.elb.get("target_group_attributes") or {}).get(arn)
    if attributes is None:
        raise _Unknown(f"DescribeTargetGroupAttributes: attributes of {arn} not collected")
    return str(attributes.get(PRESERVE_CLIENT_IP, "false")).strip().lower() == "true"


def _sort_key(exposure: Mapping) -> tuple:
    return (
        exposure["load_balancer_arn"],
        exposure["listener_port"],
        exposure["target_group_arn"],
        exposure["target_port"],
        exposure["listener_arn"],
    )


class _Walk:
    """The walk from each registration of the task back to the internet."""

    def __init__(self, facts: _Vpc, task_groups: list[Mapping]) -> None:
        self.facts = facts
        self.task_groups = task_groups
        self.load_balancers: Mapping = facts.elb.get("load_balancers") or {}
        self.web_acls: Mapping = facts.elb.get("web_acls") or {}
        self.web_acl_errors: Mapping = facts.elb.get("web_acl_errors") or {}
        self.resources: set[str] = set()
        self.found: dict[tuple, dict] = {}
        self.unknown_web_acls: set[str] = set()

    def registration(self, group: Mapping, address: str, target_port: int) -> None:
        self.resources.add(group.get("TargetGroupArn"))
        for lb_arn in dict.fromkeys(group.get("LoadBalancerArns") or []):
            self.facts.fault(lb_arn)
            load_balancer = self.load_balancers.get(lb_arn)
            kind = str((load_balancer or {}).get("Type") or "").lower()
            if load_balancer is None or kind not in LOAD_BALANCER_TYPES:
                continue  # gone between the calls, or a gateway load balancer
            self.resources.add(lb_arn)
            if may_face_internet(load_balancer):  # else its listeners were not read
                self.load_balancer(load_balancer, group, address, target_port)

    def load_balancer(self, load_balancer: Mapping, group: Mapping, address: str, target_port: int) -> None:
        facts = self.facts
        self.resources.update(load_balancer.get("SecurityGroups") or [])
        all_listeners = load_balancer.get("Listeners") or []
        self.resources.update(listener.get("ListenerArn") for listener in all_listeners)
        listeners = [
            listener for listener in all_listeners if forwards_to(listener, group.get("TargetGroupArn"))
        ]
        if not listeners:
            return  # no front door: its subnets' routes and NACLs cannot change the exposures
        for subnet_id in _subnet_ids(load_balancer):
            self.resources.update(
                (
                    subnet_id,
                    facts.route_table(subnet_id).get("RouteTableId"),
                    facts.nacl(subnet_id).get("NetworkAclId"),
                )
            )
        known: list[bool] = []

        def preserved() -> bool:  # read once, and only when an admission depends on it
            if not known:
                known.append(preserves_client_addresses(group, load_balancer, facts))
            return known[0]

        target_family = _family(address)
        for listener in listeners:
            families = {
                family
                for transport in transports(listener.get("Protocol"))
                for family in netalgebra.FAMILIES
                if internet_facing(load_balancer, listener, transport, family, facts)
                and admits(
                    self.task_groups,
                    load_balancer,
                    transport,
                    target_port,
                    target_family,
                    family,
                    preserved,
                    facts,
                )
            }
            if families:
                self.exposure(load_balancer, listener, group, target_port, families)

    def exposure(self, load_balancer, listener, group, target_port: int, families: set[str]) -> None:
        lb_arn = load_balancer.get("LoadBalancerArn")
        kind = str(load_balancer.get("Type")).lower()
        key = (lb_arn, listener.get("ListenerArn"), group.get("TargetGroupArn"), target_port)
        exposure = self.found.setdefault(
            key,
            {
                "load_balancer_arn": lb_arn,
                "load_balancer_type": kind,
                "listener_arn": listener.get("ListenerArn"),
                "listener_port": int(listener["Port"]),
                "listener_protocol": str(listener.get("Protocol") or "").upper(),
                "target_group_arn": group.get("TargetGroupArn"),
                "target_port": target_port,
                "families": [],
                "web_acl_arn": self.web_acls.get(lb_arn) if kind == "application" else None,
            },
        )
        exposure["families"] = sorted(set(exposure["families"]) | families)
        if kind == "application" and (lb_arn in self.web_acl_errors or lb_arn not in self.web_acls):
            self.unknown_web_acls.add(lb_arn)  # unreadable, or not read: not "names none"

    def web_acl_error(self, lb_arn: str) -> str:
        error = self.web_acl_errors.get(lb_arn)
        return str(error) if error else f"GetWebACLForResource: web ACL of {lb_arn} {NOT_READ}"


def _known_resources(walk: _Walk, registered: list) -> list[str]:
    found = set(walk.resources)
    for group, _, _ in registered:
        found.add(group.get("TargetGroupArn"))
        for lb_arn in group.get("LoadBalancerArns") or []:
            found.add(lb_arn)
            load_balancer = walk.load_balancers.get(lb_arn) or {}
            found.update(load_balancer.get("SecurityGroups") or [])
            found.update(listener.get("ListenerArn") for listener in load_balancer.get("Listeners") or [])
            found.update(_subnet_ids(load_balancer))
    return sorted(r for r in found if r)


def exposures(
    vpc: Mapping | None,
    raw_errors: Mapping,
    addresses: Iterable[str],
    task_groups: list[Mapping],
    task_groups_problem: str | None,
    index: Mapping[str, list[Registration]] | None = None,
) -> dict:
    """The task's exposures: ``{"exposures": [...], "resources": [ids],
    "unknown_web_acls": [ALB ARNs], "error": str|None, "web_acl_error": str|None}``.

    ``vpc``: the raw facts of the task's VPC (with ``load_balancing``); ``raw_errors``: the
    bundle's errors; ``addresses``: the task's private IPv4 and IPv6 addresses;
    ``task_groups``: its attached security groups (DescribeSecurityGroups items), with
    ``task_groups_problem`` when they are not all known. ``resources``: the ids whose
    change can change the exposures (target groups, load balancers, listeners, the load
    balancers' security groups, subnets, route tables and NACLs), for the re-audit index.
    ``error``: why the exposures are unknown (then ``exposures`` is empty);
    ``web_acl_error``: a web ACL of an exposed ALB could not be read; ``unknown_web_acls``:
    those ALBs (their exposures' ``web_acl_arn`` is then None). ``index``: the VPC's
    :func:`target_index` when the caller shares one between tasks."""
    out: dict[str, Any] = {
        "exposures": [],
        "resources": [],
        "unknown_web_acls": [],
        "error": None,
        "web_acl_error": None,
    }
    elb = (vpc or {}).get("load_balancing")
    if "load_balancing" in raw_errors:
        return out | {"error": str(raw_errors["load_balancing"])}
    if vpc is None or elb is None:
        return out | {"error": NOT_COLLECTED}
    if "*" in (elb.get("errors") or {}):
        return out | {"error": str(elb["errors"]["*"])}
    if index is None:
        index = target_index(elb.get("target_groups") or [], vpc.get("vpc_id"))
    registered = registrations(index, addresses)
    if not registered:
        return out  # registered nowhere: nothing else can change that
    facts = _Vpc(vpc, raw_errors, elb)
    walk = _Walk(facts, task_groups)
    try:
        if task_groups_problem:
            raise _Unknown(task_groups_problem)
        for group, address, target_port in registered:
            walk.registration(group, address, target_port)
    except _Unknown as exc:
        # the exposures are unknown, but not what they depend on: what the walk found, and
        # for every registration its target group, load balancers, their security groups,
        # listeners and subnets (a later change of any re-audits the task; the index would
        # otherwise lose them while the fact is unknown)
        return out | {"error": str(exc), "resources": _known_resources(walk, registered)}
    unknown = sorted(walk.unknown_web_acls)
    return out | {
        "exposures": sorted(walk.found.values(), key=_sort_key),
        "resources": sorted(r for r in walk.resources if r),
        "unknown_web_acls": unknown,
        "web_acl_error": walk.web_acl_error(unknown[0]) if unknown else None,
    }

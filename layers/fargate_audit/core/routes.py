"""Which route and network ACL apply to a subnet, and where a route leads (rules.md
"Egress path"): shared by the task's own subnet (posture) and a load balancer's subnets
(ingress). Pure."""

from __future__ import annotations

from collections.abc import Mapping

from fargate_audit.core import netalgebra

# Route target fields, in the order consulted; the first one present names the target,
# and its id prefix gives the egress path class (rules.md "Egress path").
ROUTE_TARGET_FIELDS = (
    "GatewayId",
    "EgressOnlyInternetGatewayId",
    "NatGatewayId",
    "TransitGatewayId",
    "NetworkInterfaceId",
    "InstanceId",
    "VpcPeeringConnectionId",
    "LocalGatewayId",
    "CarrierGatewayId",
    "CoreNetworkArn",
    "OdbNetworkArn",
)
TARGET_PREFIX_CLASSES = (
    ("igw-", "internet-gateway"),
    ("eigw-", "egress-only-internet-gateway"),
    ("nat-", "nat-gateway"),
    ("vpce-", "inspection-endpoint"),
    ("tgw-", "transit-gateway"),
    ("eni-", "appliance"),
    ("i-", "appliance"),
    ("pcx-", "peering"),
)


def route_table_for_subnet(route_tables: list[Mapping], subnet_id: str | None, vpc_id: str | None):
    """The table explicitly associated with the subnet, else the VPC's main table."""
    candidates = [rt for rt in route_tables if not vpc_id or rt.get("VpcId") in (None, vpc_id)]

    def live(association: Mapping) -> bool:
        state = (association.get("AssociationState") or {}).get("State")
        return str(state or "associated").lower() not in ("disassociated", "failed")

    if subnet_id:
        for rt in candidates:
            if any(a.get("SubnetId") == subnet_id and live(a) for a in rt.get("Associations") or []):
                return rt
    for rt in candidates:
        if any(a.get("Main") is True and live(a) for a in rt.get("Associations") or []):
            return rt
    return None


# Routes a virtual private gateway propagates (BGP): AWS prefers a static route of the
# same destination to them ("How route priority works", VPC User Guide).
PROPAGATED_ORIGIN = "enablevgwroutepropagation"


def default_route(route_table: Mapping, family: str) -> Mapping | None:
    """The active route for 0.0.0.0/0 or ::/0 (an absent State counts as active): a static
    one (CreateRoute, CreateRouteTable) before one a virtual private gateway propagated,
    whatever their order in the table, as AWS routes."""
    key = "DestinationCidrBlock" if family == "ipv4" else "DestinationIpv6CidrBlock"
    propagated = None
    for route in route_table.get("Routes") or []:
        state = str(route.get("State") or "active").strip().lower()
        if state == "active" and netalgebra.is_world(route.get(key), family):
            if str(route.get("Origin") or "").strip().lower() != PROPAGATED_ORIGIN:
                return route
            propagated = propagated or route
    return propagated


def classify_route(route: Mapping) -> tuple[str, str | None]:
    """(egress path class, target id) of one route."""
    for field in ROUTE_TARGET_FIELDS:
        target = route.get(field)
        if target:
            lowered = str(target).strip().lower()
            for prefix, path in TARGET_PREFIX_CLASSES:
                if lowered.startswith(prefix):
                    return path, target
            return "other", target
    return "other", None


def nacl_for_subnet(acls: list[Mapping], subnet_id: str | None, vpc_id: str | None) -> Mapping | None:
    """The NACL associated with the subnet, else the VPC's default NACL."""
    candidates = [acl for acl in acls if not vpc_id or acl.get("VpcId") in (None, vpc_id)]
    if subnet_id:
        for acl in candidates:
            if any(a.get("SubnetId") == subnet_id for a in acl.get("Associations") or []):
                return acl
    return next((acl for acl in candidates if acl.get("IsDefault") is True), None)

"""Property tests of the egress-path derivation in fargate_audit.core.posture.build_posture,
against a brute-force model written from shared/spec/rules.md ("Route table of the task's
subnet", "Default route", "Egress path").

Each example is a VPC of random route tables in DescribeRouteTables' shape: explicit
subnet associations (some of them stale, ``disassociated``), a main table or none, default
routes of both families to random targets (active, blackhole, or without ``State``) among
narrower decoys, and NAT gateways in random subnets (or missing from DescribeNatGateways).
A second strategy pins the task's IPv4 default route to a NAT gateway so that the one-hop
rule meets every class of next hop. The rest of the raw bundle is tests/unit/test_posture.py's
baseline. ``pytest --hypothesis-show-statistics`` shows the paths the examples reached.
"""

from __future__ import annotations

from fargate_audit.core.posture import build_posture
from hypothesis import event, given
from hypothesis import strategies as st
from unit.test_posture import ACCOUNT, PUBLIC_SUBNET, SUBNET, VPC, bundle, route, route_table

OTHER_SUBNET = "subnet-0aaaabbbbccccdddd"
SUBNETS = (SUBNET, PUBLIC_SUBNET, OTHER_SUBNET)  # the task's subnet is SUBNET
NAT_IDS = ("nat-0aaaaaaaaaaaaaaa1", "nat-0bbbbbbbbbbbbbbb2")
WORLD = {"ipv4": "0.0.0.0/0", "ipv6": "::/0"}

# Route targets in DescribeRouteTables' shape, each with the egress-path class that
# rules.md gives its id: (class, target fields).
TARGETS = {
    "igw": ("internet-gateway", {"GatewayId": "igw-0a9b8c7d6e5f40312"}),
    "eigw": ("egress-only-internet-gateway", {"EgressOnlyInternetGatewayId": "eigw-0d1e2f3a4b5c6d7e8"}),
    "nat-a": ("nat-gateway", {"NatGatewayId": NAT_IDS[0]}),
    "nat-b": ("nat-gateway", {"NatGatewayId": NAT_IDS[1]}),
    "vpce": ("inspection-endpoint", {"GatewayId": "vpce-0gwlb000000000001"}),
    "tgw": ("transit-gateway", {"TransitGatewayId": "tgw-0123456789abcdef0"}),
    "eni": ("appliance", {"NetworkInterfaceId": "eni-0appliance00000001"}),
    "instance": (
        "appliance",
        {
            "InstanceId": "i-0123456789abcdef0",
            "InstanceOwnerId": ACCOUNT,
            "NetworkInterfaceId": "eni-0inst01",
        },
    ),
    "pcx": ("peering", {"VpcPeeringConnectionId": "pcx-0123456789abcdef0"}),
    "lgw": ("other", {"LocalGatewayId": "lgw-0123456789abcdef0"}),
    "cagw": ("other", {"CarrierGatewayId": "cagw-0123456789abcdef0"}),
    "core": (
        "other",
        {"CoreNetworkArn": f"arn:aws:networkmanager::{ACCOUNT}:core-network/core-network-0a1b"},
    ),
    "vgw": ("other", {"GatewayId": "vgw-0123456789abcdef0"}),
}
DECOY_DESTINATIONS = ("0.0.0.0/1", "10.1.0.0/16", "::/1", "2001:db8::/32")


# --- strategies ---------------------------------------------------------------------------


def maybe(strategy, none_in=10):
    """``strategy`` or, about once in ``none_in`` draws, None (None last, so that examples
    shrink towards the value)."""
    return st.tuples(st.sampled_from(range(none_in)), strategy).map(
        lambda t: None if t[0] == none_in - 1 else t[1]
    )


def drawn_route(destination, target, state):
    built = route(destination, state=state, ipv6=":" in destination, **TARGETS[target][1])
    return {"route": built, "target": target}


# Mostly active; blackhole counts as no route; None: no State key (counts as active).
states = st.sampled_from(("active", "active", "active", "blackhole", None))
# As often a NAT gateway as anything else, so that the one-hop rule is exercised often.
ipv4_targets = st.one_of(
    st.sampled_from(("nat-a", "nat-b")), st.sampled_from(sorted(set(TARGETS) - {"nat-a", "nat-b"}))
)


@st.composite
def table_routes(draw, ipv4=ipv4_targets):
    """A table's routes: maybe an IPv4 and an IPv6 default route, maybe narrower decoys
    (one route per destination, as AWS keeps them)."""
    drawn = []
    if draw(st.integers(0, 4)):
        drawn.append(drawn_route(WORLD["ipv4"], draw(ipv4), draw(states)))
    if draw(st.booleans()):
        drawn.append(drawn_route(WORLD["ipv6"], draw(st.sampled_from(sorted(TARGETS))), draw(states)))
    for destination in draw(st.lists(st.sampled_from(DECOY_DESTINATIONS), max_size=2, unique=True)):
        drawn.append(drawn_route(destination, draw(st.sampled_from(sorted(TARGETS))), draw(states)))
    return draw(st.permutations(drawn))


def blank_table(rtb_id, routes):
    """The model's view of a route table; raw_tables() renders it in boto3's shape."""
    return {"id": rtb_id, "routes": routes, "subnets": [], "stale": [], "main": False}


@st.composite
def vpcs(draw):
    """(tables, NAT gateways) of a random VPC, in the model's view."""
    count = draw(st.sampled_from((3, 4, 2, 1)))  # several tables, so that the NAT's may differ
    ids = [f"rtb-0{i:016d}" for i in range(count)]
    tables = [blank_table(rtb_id, draw(table_routes())) for rtb_id in ids]
    # A subnet is explicitly associated with at most one table; stale associations linger.
    # Distinct tables for distinct subnets more often than not (a permutation), or none.
    order = draw(st.permutations(ids))
    for i, subnet in enumerate(SUBNETS):
        live = draw(maybe(st.sampled_from((order[i % count], *ids)), none_in=3))  # None: main
        if live is not None:
            tables[ids.index(live)]["subnets"].append(subnet)
        stale = draw(maybe(st.sampled_from(ids), none_in=2))
        if stale is not None and stale != live:
            tables[ids.index(stale)]["stale"].append(subnet)
    main = draw(maybe(st.sampled_from(ids), none_in=5))  # no main table: an error case
    if main is not None:
        tables[ids.index(main)]["main"] = True
    nats = []
    for nat_id in NAT_IDS:
        subnet = draw(maybe(st.sampled_from((PUBLIC_SUBNET, OTHER_SUBNET, SUBNET))))  # None: not described
        if subnet is not None:
            nats.append({"NatGatewayId": nat_id, "SubnetId": subnet})
    return tables, nats


@st.composite
def nat_vpcs(draw):
    """(tables, NAT gateways) where the task's IPv4 default route is an active NAT gateway in
    another subnet, whose table (explicit, else main) has random routes: the one-hop rule."""
    task_table = blank_table(
        "rtb-0task", [drawn_route(WORLD["ipv4"], "nat-a", draw(st.sampled_from(("active", None))))]
    )
    task_table["subnets"].append(SUBNET)
    nat_table = blank_table("rtb-0nat", draw(table_routes(ipv4=st.sampled_from(sorted(TARGETS)))))
    decoy = blank_table("rtb-0decoy", draw(table_routes()))
    if draw(st.booleans()):
        nat_table["subnets"].append(PUBLIC_SUBNET)
        decoy["main"] = True
    else:
        nat_table["main"] = True
        decoy["stale"].append(PUBLIC_SUBNET)
    tables = draw(st.permutations([task_table, nat_table, decoy]))
    return tables, [{"NatGatewayId": NAT_IDS[0], "SubnetId": PUBLIC_SUBNET}]


def raw_tables(tables):
    """DescribeRouteTables ``RouteTables[]`` of the model's tables."""
    rendered = []
    for table in tables:
        raw = route_table(table["id"], [r["route"] for r in table["routes"]], table["subnets"], table["main"])
        raw["Associations"] += [
            {
                "Main": False,
                "RouteTableAssociationId": f"rtbassoc-0stale{table['id'][-6:]}{i}",
                "RouteTableId": table["id"],
                "SubnetId": subnet,
                "AssociationState": {"State": "disassociated"},
            }
            for i, subnet in enumerate(table["stale"])
        ]
        rendered.append(raw)
    return rendered


def nat_gateway(nat_id, subnet):
    """One DescribeNatGateways ``NatGateways[]`` item."""
    return {
        "CreateTime": "2024-05-01T09:00:00+00:00",
        "NatGatewayAddresses": [],
        "NatGatewayId": nat_id,
        "State": "available",
        "SubnetId": subnet,
        "VpcId": VPC,
        "ConnectivityType": "public",
    }


def posture_of(tables, nats):
    raw = bundle()
    raw["vpc"]["route_tables"] = raw_tables(tables)
    raw["vpc"]["nat_gateways"] = [nat_gateway(n["NatGatewayId"], n["SubnetId"]) for n in nats]
    return build_posture(raw)


# --- the model ------------------------------------------------------------------------------


def table_of(tables, subnet):
    """The table explicitly associated with the subnet, otherwise the main table."""
    for table in tables:
        if subnet in table["subnets"]:
            return table
    return next((table for table in tables if table["main"]), None)


def default_route(table, family):
    """The active (or state-less) route for the family's world CIDR; blackhole is no route."""
    key = "DestinationCidrBlock" if family == "ipv4" else "DestinationIpv6CidrBlock"
    for r in table["routes"]:
        if r["route"].get(key) == WORLD[family] and r["route"].get("State", "active") == "active":
            return r
    return None


def expected_path(tables, nats, family):
    """rules.md "Egress path"; None where the posture must report an egress error."""
    table = table_of(tables, SUBNET)
    if table is None:
        return None
    first = default_route(table, family)
    if first is None:
        return "none"
    path = TARGETS[first["target"]][0]
    if path != "nat-gateway" or family != "ipv4":
        return path
    nat_id = TARGETS[first["target"]][1]["NatGatewayId"]
    nat = next((n for n in nats if n["NatGatewayId"] == nat_id), None)
    if nat is None:
        return None
    nat_table = table_of(tables, nat["SubnetId"])
    if nat_table is None:
        return None
    hop = default_route(nat_table, "ipv4")
    return "nat-gateway>" + ("none" if hop is None else TARGETS[hop["target"]][0])


# --- properties -----------------------------------------------------------------------------


def assert_egress_is_the_model(tables, nats):
    posture = posture_of(tables, nats)
    expected = {family: expected_path(tables, nats, family) for family in WORLD}
    for family, path in expected.items():
        event(f"{family} path {path}")
    assert {family: posture["network"]["egress"][family]["path"] for family in WORLD} == expected
    # An unknown path is an error, never a guess; a known one carries no error. The NAT hop
    # that cannot be followed is the family's own error (its first hop is known).
    # (no route table for the subnet at all: the whole egress fact is in error)
    whole = "egress" in posture["errors"]
    for family, path in expected.items():
        entry = posture["network"]["egress"][family]
        assert (whole or bool(entry.get("error"))) is (path is None), (family, entry)
    if whole:
        assert set(expected.values()) == {None} and "route_table" in posture["errors"]
    task_table = table_of(tables, SUBNET)
    assert posture["network"]["route_table_id"] == (task_table["id"] if task_table else None)
    assert ("route_table" in posture["errors"]) is (task_table is None)
    return posture


@given(vpcs())
def test_egress_path_per_family_is_the_spec_model(vpc):
    assert_egress_is_the_model(*vpc)


@given(nat_vpcs())
def test_nat_gateway_is_followed_one_hop_through_its_subnets_table(vpc):
    posture = assert_egress_is_the_model(*vpc)
    assert posture["network"]["egress"]["ipv4"]["path"].startswith("nat-gateway>")


@given(st.one_of(vpcs(), nat_vpcs()))
def test_egress_targets_are_the_ids_followed(vpc):
    tables, nats = vpc
    egress = posture_of(tables, nats)["network"]["egress"]
    table = table_of(tables, SUBNET)
    for family in WORLD:
        path, targets = egress[family]["path"], egress[family]["targets"]
        if table is None or path == "none":
            assert targets == []
            continue
        first = TARGETS[default_route(table, family)["target"]][1]
        if path is None:  # the NAT gateway or its subnet's table is unknown: the NAT only
            assert targets == [first["NatGatewayId"]]
        elif path.startswith("nat-gateway>") and path != "nat-gateway>none":
            nat = next(n for n in nats if n["NatGatewayId"] == targets[0])
            hop = TARGETS[default_route(table_of(tables, nat["SubnetId"]), "ipv4")["target"]][1]
            assert targets == [first["NatGatewayId"], targets[1]]
            assert targets[1] in hop.values()
        else:
            assert len(targets) == 1
            assert targets[0] in first.values()

"""Property tests of fargate_audit.core.netalgebra against brute-force models of the spec
(shared/spec/rules.md "Shared definitions": port coverage, world, NACL world decision).

An interval list is modelled as the set of ``(protocol, port)`` pairs it covers. The
full TCP/UDP universe is 131,072 pairs, too many to enumerate per example, so each model
is evaluated on *probe ports*: 0, 65535 and every interval bound of the inputs AND the
outputs, with their neighbours. Membership of any interval list can only change at a
``from`` or just after a ``to``, so two lists whose bounds are all probed agree on every
port exactly when they agree on the probes. Ports are drawn mostly from a small range
(frequent overlaps and adjacencies) and the 65535 edge, sometimes from the whole range.
"""

from __future__ import annotations

import copy
import ipaddress

from fargate_audit.core import netalgebra as na
from hypothesis import given
from hypothesis import strategies as st

PORT_MIN, PORT_MAX = 0, 65535
PROTOCOLS = ("tcp", "udp")
WORLD = {"ipv4": "0.0.0.0/0", "ipv6": "::/0"}
# Interval-list protocol spellings the public operations accept, and what each means.
SPELLINGS = {"tcp": "tcp", "udp": "udp", "6": "tcp", "17": "udp", "TCP": "tcp", "Udp": "udp"}

# --- strategies ---------------------------------------------------------------------------

ports = st.one_of(
    st.integers(PORT_MIN, 24),
    st.integers(PORT_MAX - 5, PORT_MAX),
    st.integers(PORT_MIN, PORT_MAX),
)


@st.composite
def intervals(draw, spellings=tuple(SPELLINGS)):
    lo, hi = sorted((draw(ports), draw(ports)))
    return {"protocol": draw(st.sampled_from(spellings)), "from": lo, "to": hi}


interval_lists = st.lists(intervals(), max_size=8)
canonical_inputs = st.lists(intervals(spellings=PROTOCOLS), max_size=8).map(na.merge)

whitespace = st.text(alphabet=" \t\r\n", max_size=3)


@st.composite
def cidr_texts(draw):
    """CIDR text of either family, as AWS writes it or not: normalised networks, host bits
    set, exploded IPv6, prefix 0 included (so world texts do come up)."""
    version = draw(st.sampled_from((4, 6)))
    address = draw(st.ip_addresses(v=version))
    prefix = draw(st.integers(0, 32 if version == 4 else 128))
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    return draw(
        st.sampled_from([f"{address}/{prefix}", network.with_prefixlen, network.exploded, network.compressed])
    )


# Non-world CIDRs of each family for NACL entries, the near misses included (arbitrary
# CIDR texts are the subject of the is_world properties above).
NARROW = {
    "ipv4": ("0.0.0.0/1", "128.0.0.0/1", "0.0.0.0/32", "10.0.0.0/8", "203.0.113.0/24"),
    "ipv6": ("::/1", "8000::/1", "::/128", "2001:db8::/32", "fd00::/8"),
}


@st.composite
def nacl_entries(draw):
    """One DescribeNetworkAcls ``NetworkAclEntry`` in boto3's shape."""
    family = draw(st.sampled_from(("ipv4", "ipv6")))
    protocol = draw(st.sampled_from(("-1", "6", "17", "1")))
    entry = {
        "Egress": draw(st.booleans()),
        "Protocol": protocol,
        "RuleAction": draw(st.sampled_from(("allow", "deny"))),
        "RuleNumber": draw(st.one_of(st.integers(1, 30), st.integers(100, 32766))),
        "CidrBlock" if family == "ipv4" else "Ipv6CidrBlock": (
            WORLD[family] if draw(st.booleans()) else draw(st.sampled_from(NARROW[family]))
        ),
    }
    if protocol in ("6", "17"):
        lo, hi = sorted((draw(ports), draw(ports)))
        entry["PortRange"] = {"From": lo, "To": hi}
    elif protocol == "1":
        entry["IcmpTypeCode"] = {"Code": -1, "Type": -1}
    return entry


# AWS: rule numbers are unique per direction (IPv4 and IPv6 entries share the numbering).
nacl_entry_lists = st.lists(nacl_entries(), max_size=12, unique_by=lambda e: (e["Egress"], e["RuleNumber"]))

# --- brute-force models -------------------------------------------------------------------


def probes(*iv_lists, bounds=()):
    edges = {PORT_MIN, PORT_MAX, *bounds}
    for ivs in iv_lists:
        for iv in ivs:
            edges.update((iv["from"], iv["to"]))
    return sorted({e + d for e in edges for d in (-1, 0, 1) if PORT_MIN <= e + d <= PORT_MAX})


def covers(ivs, protocol, port):
    return any(SPELLINGS[iv["protocol"]] == protocol and iv["from"] <= port <= iv["to"] for iv in ivs)


def port_set(ivs, probe_ports):
    return {(p, port) for p in PROTOCOLS for port in probe_ports if covers(ivs, p, port)}


def assert_canonical(ivs):
    """rules.md: per protocol merged (no overlap, no adjacency), sorted by protocol then from."""
    assert isinstance(ivs, list)
    for iv in ivs:
        assert set(iv) == {"protocol", "from", "to"}
        assert iv["protocol"] in PROTOCOLS
        assert type(iv["from"]) is int and type(iv["to"]) is int
        assert PORT_MIN <= iv["from"] <= iv["to"] <= PORT_MAX
    assert [(iv["protocol"], iv["from"]) for iv in ivs] == sorted((iv["protocol"], iv["from"]) for iv in ivs)
    for a, b in zip(ivs, ivs[1:], strict=False):
        if a["protocol"] == b["protocol"]:
            assert b["from"] > a["to"] + 1, (a, b)


# --- interval-list operations ---------------------------------------------------------------


@given(interval_lists)
def test_merge_keeps_the_port_set_and_is_canonical(ivs):
    before = copy.deepcopy(ivs)
    merged = na.merge(ivs)
    assert ivs == before  # inputs are never mutated
    assert_canonical(merged)
    at = probes(ivs, merged)
    assert port_set(merged, at) == port_set(ivs, at)


@given(interval_lists)
def test_canonical_form_is_unique(ivs):
    merged = na.merge(ivs)
    assert na.merge(merged) == merged
    assert na.merge(list(reversed(ivs))) == merged
    assert na.union(merged, ivs) == merged


@given(st.lists(interval_lists, max_size=4))
def test_union_is_set_union(lists):
    result = na.union(*lists)
    assert_canonical(result)
    at = probes(result, *lists)
    assert port_set(result, at) == set().union(*(port_set(ivs, at) for ivs in lists))
    assert result == na.union(*reversed(lists))


@given(interval_lists, interval_lists)
def test_intersect_is_set_intersection(a, b):
    result = na.intersect(a, b)
    assert_canonical(result)
    at = probes(a, b, result)
    assert port_set(result, at) == port_set(a, at) & port_set(b, at)
    assert result == na.intersect(b, a)


@given(interval_lists, interval_lists)
def test_subtract_is_set_difference(a, b):
    result = na.subtract(a, b)
    assert_canonical(result)
    at = probes(a, b, result)
    assert port_set(result, at) == port_set(a, at) - port_set(b, at)


@given(canonical_inputs, canonical_inputs)
def test_subtract_and_intersect_partition_the_first_list(a, b):
    assert na.union(na.subtract(a, b), na.intersect(a, b)) == a
    assert na.intersect(na.subtract(a, b), b) == []


@given(interval_lists, st.sampled_from(tuple(SPELLINGS)), ports)
def test_contains_is_membership(ivs, protocol, port):
    assert na.contains(ivs, protocol, port) == covers(ivs, SPELLINGS[protocol], port)


# --- port coverage --------------------------------------------------------------------------

optional_bound = st.one_of(st.none(), st.just(-1), ports)


@given(st.sampled_from(["-1", -1, "all", " -1 "]), optional_bound, optional_bound)
def test_protocol_all_covers_every_tcp_and_udp_port_whatever_the_bounds(protocol, lo, hi):
    assert na.port_coverage(protocol, lo, hi) == [
        {"protocol": "tcp", "from": PORT_MIN, "to": PORT_MAX},
        {"protocol": "udp", "from": PORT_MIN, "to": PORT_MAX},
    ]


@given(
    st.sampled_from([("tcp", "tcp"), ("6", "tcp"), (6, "tcp"), ("udp", "udp"), ("17", "udp"), (17, "udp")])
)
def test_tcp_and_udp_without_bounds_cover_their_whole_protocol(spelling):
    protocol, canonical = spelling
    full = [{"protocol": canonical, "from": PORT_MIN, "to": PORT_MAX}]
    assert na.port_coverage(protocol) == full
    assert na.port_coverage(protocol, -1, -1) == full


@given(
    st.sampled_from([("tcp", "tcp"), ("6", "tcp"), (6, "tcp"), ("udp", "udp"), ("17", "udp"), (17, "udp")]),
    ports,
    ports,
)
def test_tcp_and_udp_cover_from_to(spelling, lo, hi):
    protocol, canonical = spelling
    coverage = na.port_coverage(protocol, lo, hi)
    assert_canonical(coverage)
    at = probes(coverage, bounds=(lo, hi))
    expected = {(canonical, port) for port in at if lo <= port <= hi}  # empty when from > to
    assert port_set(coverage, at) == expected


@given(
    st.one_of(
        st.sampled_from(["1", 1, "icmp", "ICMP", "58", "icmpv6", "ipv6-icmp"]),
        st.integers(0, 255)
        .filter(lambda n: n not in (6, 17))
        .flatmap(lambda n: st.sampled_from([n, str(n)])),
    ),
    optional_bound,
    optional_bound,
)
def test_icmp_and_other_protocols_cover_no_port(protocol, lo, hi):
    assert na.port_coverage(protocol, lo, hi) == []


# --- world ----------------------------------------------------------------------------------


@given(st.sampled_from(sorted(WORLD.items())), whitespace, whitespace)
def test_world_is_exactly_the_two_all_address_cidrs_whitespace_stripped(item, before, after):
    family, cidr = item
    text = before + cidr + after
    other = "ipv6" if family == "ipv4" else "ipv4"
    assert na.is_world(text) is True
    assert na.is_world(text, family) is True
    assert na.is_world(text, other) is False


@given(cidr_texts(), whitespace, whitespace)
def test_a_cidr_is_world_only_when_written_exactly_as_world(cidr, before, after):
    text = before + cidr + after
    for family, world in WORLD.items():
        assert na.is_world(text, family) is (cidr == world)
    assert na.is_world(text) is (cidr in WORLD.values())


@given(
    st.one_of(
        st.none(),
        st.integers(),
        st.just(["0.0.0.0/0"]),
        st.builds(lambda n: f"pl-{n:017x}", st.integers(0, 2**68 - 1)),
        st.builds(lambda n: f"sg-{n:017x}", st.integers(0, 2**68 - 1)),
    )
)
def test_non_cidrs_are_never_world(value):
    assert na.is_world(value) is False
    assert na.is_world(value, "ipv4") is False
    assert na.is_world(value, "ipv6") is False


# --- NACL world decision --------------------------------------------------------------------


def first_match(entries, egress, family, protocol, port):
    """rules.md, literally: this direction's entries in ascending RuleNumber, only those whose
    CIDR is world for the family; the first that covers protocol and port decides; else deny."""
    cidr_key = "CidrBlock" if family == "ipv4" else "Ipv6CidrBlock"
    number = {"tcp": "6", "udp": "17"}[protocol]
    for entry in sorted(entries, key=lambda e: e["RuleNumber"]):
        if entry["Egress"] != egress or entry.get(cidr_key) != WORLD[family]:
            continue
        if entry["Protocol"] == "-1" or (
            entry["Protocol"] == number and entry["PortRange"]["From"] <= port <= entry["PortRange"]["To"]
        ):
            return entry["RuleAction"]
    return "deny"


def entry_bounds(entries):
    return [b for e in entries if "PortRange" in e for b in (e["PortRange"]["From"], e["PortRange"]["To"])]


@given(nacl_entry_lists, st.booleans(), st.sampled_from(("ipv4", "ipv6")))
def test_nacl_world_allowed_is_the_per_port_first_match_walk(entries, egress, family):
    before = copy.deepcopy(entries)
    allowed = na.nacl_world_allowed(entries, egress, family)
    assert entries == before
    assert_canonical(allowed)
    at = probes(allowed, bounds=entry_bounds(entries))
    expected = {
        (p, port)
        for p in PROTOCOLS
        for port in at
        if first_match(entries, egress, family, p, port) == "allow"
    }
    assert port_set(allowed, at) == expected


@given(
    nacl_entry_lists, st.booleans(), st.sampled_from(("ipv4", "ipv6")), st.sampled_from(PROTOCOLS), st.data()
)
def test_nacl_decision_is_the_first_match_walk(entries, egress, family, protocol, data):
    port = data.draw(st.one_of(ports, st.sampled_from(entry_bounds(entries) or [0])), label="port")
    expected = first_match(entries, egress, family, protocol, port)
    assert na.nacl_decision(entries, egress, family, protocol, port) == expected
    assert na.contains(na.nacl_world_allowed(entries, egress, family), protocol, port) is (
        expected == "allow"
    )


@given(nacl_entry_lists, st.booleans(), st.sampled_from(("ipv4", "ipv6")), st.data())
def test_nacl_decision_does_not_depend_on_entry_order(entries, egress, family, data):
    shuffled = data.draw(st.permutations(entries), label="shuffled")
    assert na.nacl_world_allowed(shuffled, egress, family) == na.nacl_world_allowed(entries, egress, family)


@given(nacl_entry_lists, st.booleans(), st.sampled_from(("ipv4", "ipv6")), st.data())
def test_narrow_and_other_family_entries_never_change_the_decision(entries, egress, family, data):
    cidr_key = "CidrBlock" if family == "ipv4" else "Ipv6CidrBlock"
    kept = [e for e in entries if e["Egress"] == egress and e.get(cidr_key) == WORLD[family]]
    assert na.nacl_world_allowed(entries, egress, family) == na.nacl_world_allowed(kept, egress, family)

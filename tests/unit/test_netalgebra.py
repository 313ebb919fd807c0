"""Unit tests of fargate_audit.core.netalgebra: intervals, world CIDRs, protocols, NACL decision.

Semantics: shared/spec/rules.md "Shared definitions". The randomised cases compare the
interval arithmetic against brute-force per-port models written here from the spec.
"""

import random

import pytest
from fargate_audit.core import netalgebra as na

FULL = 65535


def iv(protocol, lo, hi):
    return {"protocol": protocol, "from": lo, "to": hi}


def entry(number, action, protocol="-1", cidr="0.0.0.0/0", egress=False, ports=None, icmp=None):
    """One NetworkAclEntry as boto3's DescribeNetworkAcls returns it."""
    e = {"Egress": egress, "Protocol": protocol, "RuleAction": action, "RuleNumber": number}
    if ":" in cidr:
        e["Ipv6CidrBlock"] = cidr
    else:
        e["CidrBlock"] = cidr
    if ports is not None:
        e["PortRange"] = {"From": ports[0], "To": ports[1]}
    if icmp is not None:
        e["IcmpTypeCode"] = {"Code": icmp[1], "Type": icmp[0]}
    return e


def default_nacl_entries():
    """The entries of a VPC's default NACL (IPv4 and IPv6, both directions)."""
    out = []
    for egress in (False, True):
        out += [
            entry(100, "allow", egress=egress),
            entry(101, "allow", cidr="::/0", egress=egress),
            entry(32767, "deny", egress=egress),
            entry(32768, "deny", cidr="::/0", egress=egress),
        ]
    return out


# --- protocols -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("-1", "-1"),
        ("all", "-1"),
        ("ALL", "-1"),
        (" -1 ", "-1"),
        (-1, "-1"),
        ("6", "tcp"),
        ("tcp", "tcp"),
        ("TCP", "tcp"),
        (6, "tcp"),
        ("17", "udp"),
        ("udp", "udp"),
        ("1", "icmp"),
        ("icmp", "icmp"),
        ("58", "icmpv6"),
        ("icmpv6", "icmpv6"),
        ("ipv6-icmp", "icmpv6"),
        ("50", "50"),
        ("006", "tcp"),
    ],
)
def test_normalize_protocol_maps_aws_spellings_to_one_name(raw, expected):
    assert na.normalize_protocol(raw) == expected


def test_normalize_protocol_reads_absent_protocol_as_all():
    assert na.normalize_protocol(None) == "-1"


# --- world -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cidr", "family"),
    [("0.0.0.0/0", "ipv4"), ("::/0", "ipv6"), (" 0.0.0.0/0 ", "ipv4"), ("::/0\n", "ipv6")],
)
def test_is_world_accepts_exact_world_cidrs_ignoring_whitespace(cidr, family):
    assert na.is_world(cidr, family)
    assert na.is_world(cidr)


@pytest.mark.parametrize(
    ("cidr", "family"),
    [
        ("0.0.0.0/1", "ipv4"),
        ("128.0.0.0/1", "ipv4"),
        ("::/1", "ipv6"),
        ("8000::/1", "ipv6"),
        ("0.0.0.0/00", "ipv4"),
        ("0:0:0:0:0:0:0:0/0", "ipv6"),
        ("10.0.0.0/8", "ipv4"),
        ("pl-6da54004", "ipv4"),
        ("sg-0123456789abcdef0", "ipv4"),
        ("", "ipv4"),
        (None, "ipv4"),
        ("::/0", "ipv4"),
        ("0.0.0.0/0", "ipv6"),
    ],
)
def test_is_world_rejects_everything_but_the_exact_world_cidr_of_the_family(cidr, family):
    assert not na.is_world(cidr, family)


def test_is_world_rejects_unknown_family():
    with pytest.raises(ValueError, match="family"):
        na.is_world("0.0.0.0/0", "ipv5")


# --- port coverage ---------------------------------------------------------------------


def test_protocol_all_covers_every_tcp_and_udp_port():
    assert na.port_coverage("-1") == [iv("tcp", 0, FULL), iv("udp", 0, FULL)]
    # AWS sends no ports for -1, but -1 ports with explicit bounds still cover everything
    assert na.port_coverage("-1", 22, 22) == [iv("tcp", 0, FULL), iv("udp", 0, FULL)]


def test_numeric_tcp_and_udp_protocols_cover_their_port_range():
    assert na.port_coverage("6", 22, 22) == [iv("tcp", 22, 22)]
    assert na.port_coverage("17", 53, 53) == [iv("udp", 53, 53)]
    assert na.port_coverage("tcp", 1024, 2048) == [iv("tcp", 1024, 2048)]


@pytest.mark.parametrize("protocol", ["icmp", "1", "icmpv6", "58", "50", "47"])
def test_icmp_and_other_protocols_cover_no_tcp_or_udp_port(protocol):
    assert na.port_coverage(protocol, -1, -1) == []
    assert na.port_coverage(protocol, 8, 0) == []


@pytest.mark.parametrize(("lo", "hi"), [(None, None), (-1, -1), (None, 80), (-1, 80)])
def test_tcp_without_ports_or_with_minus_one_covers_the_full_range(lo, hi):
    assert na.port_coverage("tcp", lo, hi) == [iv("tcp", 0, FULL)]


def test_tcp_range_with_from_above_to_covers_nothing():
    assert na.port_coverage("udp", 100, 90) == []


def test_nacl_entry_coverage_reads_port_range():
    assert na.nacl_entry_coverage(entry(100, "allow", "6", ports=(22, 23))) == [iv("tcp", 22, 23)]
    assert na.nacl_entry_coverage(entry(100, "allow", "1", icmp=(-1, -1))) == []


# --- interval operations ---------------------------------------------------------------


def test_merge_joins_adjacent_intervals():
    assert na.merge([iv("tcp", 22, 22), iv("tcp", 23, 25)]) == [iv("tcp", 22, 25)]


def test_merge_joins_overlapping_and_contained_intervals():
    assert na.merge([iv("tcp", 10, 20), iv("tcp", 15, 30), iv("tcp", 12, 13)]) == [iv("tcp", 10, 30)]


def test_merge_keeps_gapped_intervals_apart():
    assert na.merge([iv("tcp", 22, 22), iv("tcp", 24, 24)]) == [iv("tcp", 22, 22), iv("tcp", 24, 24)]


def test_merge_never_joins_different_protocols_and_sorts_by_protocol_then_from():
    got = na.merge([iv("udp", 23, 23), iv("tcp", 443, 443), iv("tcp", 22, 22), iv("udp", 1, 1)])
    assert got == [iv("tcp", 22, 22), iv("tcp", 443, 443), iv("udp", 1, 1), iv("udp", 23, 23)]


def test_merge_normalises_protocol_spelling():
    assert na.merge([iv("6", 1, 2), iv("TCP", 3, 4)]) == [iv("tcp", 1, 4)]


def test_merge_of_nothing_is_empty():
    assert na.merge([]) == []
    assert na.union() == []


@pytest.mark.parametrize(
    "bad",
    [iv("tcp", 25, 22), iv("tcp", -1, 22), iv("tcp", 0, 65536), iv("tcp", "22", 22), iv("tcp", True, 22)],
)
def test_interval_rejects_invalid_bounds(bad):
    with pytest.raises(ValueError):
        na.merge([bad])


def test_union_intersect_subtract_on_examples():
    sg = [iv("tcp", 0, FULL), iv("udp", 0, FULL)]
    allowed = [iv("tcp", 80, 80), iv("tcp", 443, 443)]
    assert na.subtract(sg, allowed) == [
        iv("tcp", 0, 79),
        iv("tcp", 81, 442),
        iv("tcp", 444, FULL),
        iv("udp", 0, FULL),
    ]
    assert na.intersect(sg, allowed) == allowed
    assert na.intersect([iv("tcp", 1, 10)], [iv("udp", 1, 10)]) == []
    assert na.union([iv("tcp", 1, 5)], [iv("tcp", 6, 9)], [iv("udp", 1, 1)]) == [
        iv("tcp", 1, 9),
        iv("udp", 1, 1),
    ]


def test_contains_checks_protocol_and_port():
    ivs = [iv("tcp", 22, 25)]
    assert na.contains(ivs, "tcp", 22)
    assert na.contains(ivs, "6", 25)
    assert not na.contains(ivs, "tcp", 26)
    assert not na.contains(ivs, "udp", 22)


def test_full_range_is_all_tcp_and_udp():
    assert na.full_range() == [iv("tcp", 0, FULL), iv("udp", 0, FULL)]


# --- NACL world decision ---------------------------------------------------------------


def test_default_nacl_allows_every_port_in_both_families():
    for family in ("ipv4", "ipv6"):
        assert na.nacl_world_allowed(default_nacl_entries(), False, family) == na.full_range()


def test_nacl_first_match_deny_100_then_allow_200_excludes_only_the_denied_port():
    entries = [entry(200, "allow"), entry(100, "deny", "6", ports=(22, 22)), entry(32767, "deny")]
    allowed = na.nacl_world_allowed(entries, False, "ipv4")
    assert allowed == [iv("tcp", 0, 21), iv("tcp", 23, FULL), iv("udp", 0, FULL)]
    assert na.nacl_decision(entries, False, "ipv4", "tcp", 22) == "deny"
    assert na.nacl_decision(entries, False, "ipv4", "tcp", 23) == "allow"
    assert na.nacl_decision(entries, False, "ipv4", "udp", 22) == "allow"


def test_nacl_first_match_allow_100_beats_later_deny_200():
    entries = [entry(100, "allow", "6", ports=(3389, 3389)), entry(200, "deny", "6", ports=(0, 65535))]
    assert na.nacl_world_allowed(entries, False, "ipv4") == [iv("tcp", 3389, 3389)]
    assert na.nacl_decision(entries, False, "ipv4", "tcp", 3389) == "allow"


def test_nacl_narrower_entries_are_skipped():
    entries = [
        entry(50, "deny", "6", cidr="203.0.113.0/24", ports=(22, 22)),
        entry(60, "allow", "-1", cidr="10.0.0.0/8"),
        entry(70, "deny", "-1", cidr="0.0.0.0/1"),
        entry(100, "allow", "6", ports=(22, 22)),
    ]
    assert na.nacl_world_allowed(entries, False, "ipv4") == [iv("tcp", 22, 22)]
    assert na.nacl_decision(entries, False, "ipv4", "tcp", 22) == "allow"


def test_nacl_uncovered_ports_are_denied():
    entries = [entry(100, "allow", "6", ports=(443, 443))]
    assert na.nacl_world_allowed(entries, False, "ipv4") == [iv("tcp", 443, 443)]
    assert na.nacl_decision(entries, False, "ipv4", "tcp", 80) == "deny"
    assert na.nacl_world_allowed([], False, "ipv4") == []
    assert na.nacl_decision([], False, "ipv4", "tcp", 443) == "deny"


def test_nacl_icmp_entries_decide_no_tcp_or_udp_port():
    entries = [entry(90, "deny", "1", icmp=(-1, -1)), entry(100, "allow", "17", ports=(53, 53))]
    assert na.nacl_world_allowed(entries, False, "ipv4") == [iv("udp", 53, 53)]


def test_nacl_ipv6_entries_apply_only_to_ipv6_and_ipv4_only_to_ipv4():
    entries = [
        entry(100, "allow", "6", cidr="::/0", ports=(22, 22)),
        entry(110, "allow", "6", ports=(80, 80)),
    ]
    assert na.nacl_world_allowed(entries, False, "ipv6") == [iv("tcp", 22, 22)]
    assert na.nacl_world_allowed(entries, False, "ipv4") == [iv("tcp", 80, 80)]
    assert na.nacl_decision(entries, False, "ipv6", "tcp", 80) == "deny"


def test_nacl_direction_selects_entries_by_egress_flag():
    entries = [entry(100, "allow", egress=True), entry(100, "allow", "6", ports=(443, 443))]
    assert na.nacl_world_allowed(entries, False, "ipv4") == [iv("tcp", 443, 443)]
    assert na.nacl_world_allowed(entries, True, "ipv4") == na.full_range()


def test_nacl_tcp_entry_without_port_range_covers_all_tcp():
    entries = [
        {"Egress": False, "Protocol": "6", "RuleAction": "allow", "RuleNumber": 5, "CidrBlock": "0.0.0.0/0"}
    ]
    assert na.nacl_world_allowed(entries, False, "ipv4") == [iv("tcp", 0, FULL)]


def test_nacl_world_allowed_does_not_mutate_entries():
    entries = [entry(200, "allow"), entry(100, "deny", "6", ports=(22, 22))]
    before = [dict(e) for e in entries]
    na.nacl_world_allowed(entries, False, "ipv4")
    assert entries == before


# --- randomised comparisons against brute-force models --------------------------------

SMALL = 40  # random intervals live in 0..SMALL; the models check every port up to PROBE
PROBE = list(range(SMALL + 6)) + [1000, FULL]


def _expand(ivs):
    return {(i["protocol"], p) for i in ivs for p in range(i["from"], min(i["to"], SMALL + 10) + 1)}


def _assert_canonical(ivs):
    keys = [(i["protocol"], i["from"]) for i in ivs]
    assert keys == sorted(keys)
    for a, b in zip(ivs, ivs[1:], strict=False):
        if a["protocol"] == b["protocol"]:
            assert a["to"] + 1 < b["from"], (a, b)  # neither overlapping nor adjacent


def _random_ivs(rng):
    out = []
    for _ in range(rng.randint(0, 6)):
        lo = rng.randint(0, SMALL)
        out.append(iv(rng.choice(["tcp", "udp"]), lo, rng.randint(lo, min(SMALL, lo + rng.randint(0, 12)))))
    return out


def test_interval_operations_match_per_port_sets_randomised():
    rng = random.Random(20240611)
    for _ in range(400):
        a, b = _random_ivs(rng), _random_ivs(rng)
        sa, sb = _expand(a), _expand(b)
        results = {
            "merge": (na.merge(a), sa),
            "union": (na.union(a, b), sa | sb),
            "intersect": (na.intersect(a, b), sa & sb),
            "subtract": (na.subtract(a, b), sa - sb),
        }
        for name, (got, want) in results.items():
            _assert_canonical(got)
            assert _expand(got) == want, (name, a, b, got)


def _reference_decision(entries, egress, family, protocol, port):
    """rules.md "NACL world decision", one port, written independently of the module."""
    world = {"ipv4": ("CidrBlock", "0.0.0.0/0"), "ipv6": ("Ipv6CidrBlock", "::/0")}[family]
    protocol_number = {"tcp": "6", "udp": "17"}[protocol]
    for e in sorted(entries, key=lambda e: e["RuleNumber"]):
        if e["Egress"] != egress or e.get(world[0]) != world[1]:
            continue
        if e["Protocol"] == "-1":
            covers = True
        elif e["Protocol"] == protocol_number:
            covers = e["PortRange"]["From"] <= port <= e["PortRange"]["To"]
        else:
            covers = False
        if covers:
            return e["RuleAction"]
    return "deny"


def _random_entries(rng):
    cidrs = ["0.0.0.0/0"] * 4 + ["::/0"] * 3 + ["10.0.0.0/8", "0.0.0.0/1", "::/1", "2001:db8::/32"]
    numbers = rng.sample(range(1, 300), rng.randint(0, 10))
    entries = []
    for number in numbers:
        protocol = rng.choice(["-1", "6", "6", "17", "17", "1", "58"])
        lo = rng.randint(0, SMALL)
        ports = (lo, rng.randint(lo, SMALL)) if protocol in ("6", "17") else None
        icmp = (-1, -1) if protocol in ("1", "58") else None
        entries.append(
            entry(
                number,
                rng.choice(["allow", "deny"]),
                protocol,
                cidr=rng.choice(cidrs),
                egress=rng.random() < 0.3,
                ports=ports,
                icmp=icmp,
            )
        )
    if rng.random() < 0.5:
        entries.append(entry(32767, "deny"))
    rng.shuffle(entries)
    return entries


def test_nacl_interval_decision_matches_per_port_reference_randomised():
    rng = random.Random(7)
    for _ in range(300):
        entries = _random_entries(rng)
        for family in ("ipv4", "ipv6"):
            for egress in (False, True):
                allowed = na.nacl_world_allowed(entries, egress, family)
                _assert_canonical(allowed)
                for protocol in ("tcp", "udp"):
                    for port in PROBE:
                        want = _reference_decision(entries, egress, family, protocol, port)
                        assert na.contains(allowed, protocol, port) == (want == "allow"), (
                            entries,
                            family,
                            egress,
                            protocol,
                            port,
                        )
                        if port % 7 == 0:  # the single-port API too, on a sample of ports
                            assert na.nacl_decision(entries, egress, family, protocol, port) == want

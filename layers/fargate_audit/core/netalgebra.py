"""Pure network algebra: port intervals, world CIDRs, protocols and the NACL world decision.

Semantics are those of ``shared/spec/rules.md`` ("Shared definitions"):

- a port interval ``iv`` is ``{"protocol": "tcp"|"udp", "from": int, "to": int}``;
  lists of intervals are kept *canonical*: overlapping or adjacent intervals of one
  protocol merged (22-22 and 23-25 give 22-25), sorted by protocol then ``from``;
- **world** is the CIDR ``0.0.0.0/0`` (IPv4) or ``::/0`` (IPv6), exactly;
- **port coverage**: protocol ``-1`` covers TCP and UDP 0-65535, ``tcp``/``udp`` cover
  ``from..to`` (absent or ``-1`` ports mean the full range), anything else covers nothing;
- **NACL world decision**: entries of one direction in ascending ``RuleNumber``, only
  those whose CIDR is world for the family; the first covering entry decides; uncovered
  ports are denied.

Every set operation works on whole intervals (no per-port loops), except
:func:`nacl_decision`, the single-port reference used by NET-08 and by the tests.
No I/O, no clock, no environment.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

PORT_MIN = 0
PORT_MAX = 65535
PORT_PROTOCOLS = ("tcp", "udp")
FAMILIES = ("ipv4", "ipv6")
WORLD_CIDRS = {"ipv4": "0.0.0.0/0", "ipv6": "::/0"}

# Spellings AWS uses for a protocol (IpPermission.IpProtocol, NetworkAclEntry.Protocol)
# mapped to one canonical name. Numbers not listed stay as their decimal string.
_PROTOCOL_ALIASES = {
    "-1": "-1",
    "all": "-1",
    "6": "tcp",
    "tcp": "tcp",
    "17": "udp",
    "udp": "udp",
    "1": "icmp",
    "icmp": "icmp",
    "58": "icmpv6",
    "icmpv6": "icmpv6",
    "ipv6-icmp": "icmpv6",
}

_CANONICAL = frozenset(PORT_PROTOCOLS)

# Internal form of an interval list: {protocol: [(from, to), ...]} sorted and merged.
_Ranges = dict[str, list[tuple[int, int]]]


def normalize_protocol(value: object) -> str:
    """Canonical protocol name: ``"-1"`` (all), ``"tcp"``, ``"udp"``, ``"icmp"``,
    ``"icmpv6"``, or the lower-cased value as given for anything else (e.g. ``"50"``).

    An absent protocol (``None``) is read as ``"-1"``: AWS always reports one, and the
    conservative reading of a rule without one is "everything".
    """
    if value is None:
        return "-1"
    text = str(value).strip().lower()
    if text.lstrip("-").isdigit():
        text = str(int(text))  # "006" -> "6"
    return _PROTOCOL_ALIASES.get(text, text)


def is_world(cidr: object, family: str | None = None) -> bool:
    """True when ``cidr`` is exactly ``0.0.0.0/0`` (family ``ipv4``) or ``::/0`` (``ipv6``).

    Surrounding whitespace is ignored; nothing else is normalised (``0.0.0.0/1``,
    ``::/1``, prefix-list ids and security-group references are never world).
    ``family=None`` accepts either family.
    """
    if not isinstance(cidr, str):
        return False
    text = cidr.strip()
    if family is None:
        return text in WORLD_CIDRS.values()
    if family not in WORLD_CIDRS:
        raise ValueError(f"unknown IP family {family!r} (expected 'ipv4' or 'ipv6')")
    return text == WORLD_CIDRS[family]


def interval(protocol: str, from_port: int, to_port: int) -> dict:
    """One validated port interval ``{"protocol", "from", "to"}``."""
    proto = normalize_protocol(protocol)
    for label, port in (("from", from_port), ("to", to_port)):
        if isinstance(port, bool) or not isinstance(port, int):
            raise ValueError(f"port interval {label!r} must be an integer, got {port!r}")
        if not PORT_MIN <= port <= PORT_MAX:
            raise ValueError(f"port interval {label!r} {port} is outside {PORT_MIN}-{PORT_MAX}")
    if from_port > to_port:
        raise ValueError(f"port interval {proto} {from_port}-{to_port}: 'from' is above 'to'")
    return {"protocol": proto, "from": from_port, "to": to_port}


def full_range(protocols: Iterable[str] = PORT_PROTOCOLS) -> list[dict]:
    """Every port of the given protocols (default TCP and UDP)."""
    return merge(interval(p, PORT_MIN, PORT_MAX) for p in protocols)


# ---------------------------------------------------------------------------
# internal range arithmetic on sorted, merged [(from, to)] lists


def _merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:  # overlapping or adjacent
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def _intersect_ranges(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _subtract_ranges(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    j = 0
    for lo, hi in a:
        cur = lo
        while j < len(b) and b[j][1] < cur:
            j += 1
        k = j
        while k < len(b) and b[k][0] <= hi:
            if b[k][0] > cur:
                out.append((cur, b[k][0] - 1))
            cur = max(cur, b[k][1] + 1)
            if cur > hi:
                break
            k += 1
        if cur <= hi:
            out.append((cur, hi))
    return out


def _to_ranges(ivs: Iterable[Mapping]) -> _Ranges:
    grouped: dict[str, list[tuple[int, int]]] = {}
    for iv in ivs:
        proto, lo, hi = iv["protocol"], iv["from"], iv["to"]
        # Fast path for canonical intervals (what postures hold); anything else is
        # normalised and validated by interval(), which raises on bad input.
        if not (
            proto in _CANONICAL and type(lo) is int and type(hi) is int and PORT_MIN <= lo <= hi <= PORT_MAX
        ):
            checked = interval(proto, lo, hi)
            proto, lo, hi = checked["protocol"], checked["from"], checked["to"]
        grouped.setdefault(proto, []).append((lo, hi))
    return {proto: _merge_ranges(ranges) for proto, ranges in grouped.items()}


def _from_ranges(ranges: _Ranges) -> list[dict]:
    return [{"protocol": proto, "from": lo, "to": hi} for proto in sorted(ranges) for lo, hi in ranges[proto]]


# ---------------------------------------------------------------------------
# public interval-list operations (inputs need not be canonical; outputs are)


def merge(ivs: Iterable[Mapping]) -> list[dict]:
    """Canonical form of an interval list: merged per protocol, sorted."""
    return _from_ranges(_to_ranges(ivs))


def union(*iv_lists: Iterable[Mapping]) -> list[dict]:
    """Ports in any of the lists."""
    return merge(iv for ivs in iv_lists for iv in ivs)


def intersect(a: Iterable[Mapping], b: Iterable[Mapping]) -> list[dict]:
    """Ports in both ``a`` and ``b``."""
    ra, rb = _to_ranges(a), _to_ranges(b)
    return _from_ranges({p: _intersect_ranges(ra[p], rb[p]) for p in ra if p in rb})


def subtract(a: Iterable[Mapping], b: Iterable[Mapping]) -> list[dict]:
    """Ports in ``a`` and not in ``b``."""
    ra, rb = _to_ranges(a), _to_ranges(b)
    return _from_ranges({p: _subtract_ranges(ranges, rb.get(p, [])) for p, ranges in ra.items()})


def contains(ivs: Iterable[Mapping], protocol: str, port: int) -> bool:
    """True when ``port`` of ``protocol`` lies in one of the intervals."""
    proto = normalize_protocol(protocol)
    return any(
        (iv["protocol"] if iv["protocol"] in _CANONICAL else normalize_protocol(iv["protocol"])) == proto
        and iv["from"] <= port <= iv["to"]
        for iv in ivs
    )


# ---------------------------------------------------------------------------
# coverage of one security-group permission or NACL entry


def _port_or_none(value: object) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        port = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    return None if port == -1 else port


def port_coverage(protocol: object, from_port: object = None, to_port: object = None) -> list[dict]:
    """TCP/UDP ports covered by a rule (rules.md "Port coverage").

    ``-1`` covers TCP and UDP 0-65535; ``tcp``/``udp`` cover ``from..to``, where an
    absent or ``-1`` bound means the full range and bounds are clipped to 0-65535 (a
    ``from`` above ``to`` covers nothing); ICMP and every other protocol cover nothing.
    """
    proto = normalize_protocol(protocol)
    if proto == "-1":
        return full_range()
    if proto not in PORT_PROTOCOLS:
        return []
    lo, hi = _port_or_none(from_port), _port_or_none(to_port)
    if lo is None or hi is None:
        return full_range((proto,))
    lo, hi = max(lo, PORT_MIN), min(hi, PORT_MAX)
    if lo > hi:
        return []
    return [{"protocol": proto, "from": lo, "to": hi}]


def nacl_entry_coverage(entry: Mapping) -> list[dict]:
    """TCP/UDP ports covered by one boto3 ``NetworkAclEntry`` (``Protocol``, ``PortRange``)."""
    port_range = entry.get("PortRange") or {}
    return port_coverage(entry.get("Protocol"), port_range.get("From"), port_range.get("To"))


def _world_entries(entries: Iterable[Mapping], egress: bool, family: str) -> list[Mapping]:
    """Entries of one direction whose CIDR is world for ``family``, in evaluation order."""
    if family not in WORLD_CIDRS:
        raise ValueError(f"unknown IP family {family!r} (expected 'ipv4' or 'ipv6')")
    cidr_key = "CidrBlock" if family == "ipv4" else "Ipv6CidrBlock"
    selected = [
        e
        for e in entries or []
        if bool(e.get("Egress", False)) == bool(egress) and is_world(e.get(cidr_key), family)
    ]
    # sorted() is stable: equal rule numbers (never produced by AWS) keep their input order.
    return sorted(selected, key=lambda e: int(e.get("RuleNumber", 32767)))


def _is_allow(entry: Mapping) -> bool:
    return str(entry.get("RuleAction", "")).strip().lower() == "allow"


def nacl_world_allowed(entries: Iterable[Mapping], egress: bool, family: str) -> list[dict]:
    """The TCP/UDP ports the NACL world decision allows, as a canonical interval list.

    ``entries`` is a boto3 ``NetworkAcl["Entries"]`` list; ``egress`` picks the direction
    (``False`` = inbound); ``family`` is ``"ipv4"`` or ``"ipv6"``. Computed as interval
    arithmetic: an *undecided* set starts as all TCP and UDP ports and shrinks by each
    world entry's coverage in rule order; an ``allow`` entry adds what it decided.
    """
    undecided = _to_ranges(full_range())
    allowed: _Ranges = {}
    for entry in _world_entries(entries, egress, family):
        covered = _to_ranges(nacl_entry_coverage(entry))
        for proto, ranges in covered.items():
            if proto not in undecided:
                continue
            if _is_allow(entry):
                decided = _intersect_ranges(undecided[proto], ranges)
                allowed[proto] = _merge_ranges(allowed.get(proto, []) + decided)
            undecided[proto] = _subtract_ranges(undecided[proto], ranges)
        if not any(undecided.values()):
            break
    return _from_ranges(allowed)


def nacl_decision(entries: Iterable[Mapping], egress: bool, family: str, protocol: str, port: int) -> str:
    """``"allow"`` or ``"deny"``: the NACL world decision for one protocol and port."""
    proto = normalize_protocol(protocol)
    for entry in _world_entries(entries, egress, family):
        if contains(nacl_entry_coverage(entry), proto, port):
            return "allow" if _is_allow(entry) else "deny"
    return "deny"

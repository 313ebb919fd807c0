"""Egress facts of VPC flow logs joined to DNS answers (rules.md EGR-03), pure.

- Which destinations are not internet egress (:data:`PRIVATE_NETWORKS`, :func:`is_private`).
- Which name a DNS answer gave a flow's address (:func:`name_for`): the name whose answer
  for the address was seen last at or before the flow started, within the lookback
  (``dns_answer_lookback``), the flow's own workload's answers first, else any source's in
  the VPC (Resolver logs only unique queries and processes cache answers, so another
  task's answer often is the one that named it).
- Which accepted flows went to addresses nobody resolved (:func:`unresolved_flows`).

Times are ISO text in UTC (``YYYY-MM-DDTHH:MM:SSZ``) and compare as text.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

# Not internet egress (rules.md EGR-03), besides the VPCs' own CIDRs
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "fd00::/8",
        "fe80::/10",
    )
)
MAX_EVIDENCE_FLOWS = 20
MAX_ANSWER_LOOKBACK = 7 * 86400  # DNS answers are kept 8 days (app.dnslogs.ANSWER_TTL_DAYS)
# an address's answers are kept per hour (first and last seen in it): a lookback shorter
# than that could end between two answers of one hour and miss the later one
MIN_ANSWER_LOOKBACK = 3600
DURATION = re.compile(r"^([0-9]+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def is_private(address: str, networks: Iterable = PRIVATE_NETWORKS) -> bool:
    """``address`` lies in one of ``networks`` (ValueError when it is not an address)."""
    ip = ipaddress.ip_address(address)
    return any(ip.version == net.version and ip in net for net in networks)


def duration_seconds(value: Any) -> int:
    """A duration parameter in seconds: an integer (seconds) or ``<n>s|m|h|d`` text.
    ValueError for anything else."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    found = DURATION.match(str(value).strip()) if isinstance(value, str) else None
    if found is None:
        raise ValueError(f"{value!r} is not a duration (seconds, or a number with s, m, h or d)")
    return int(found.group(1)) * _UNIT_SECONDS[found.group(2)]


def lookback_start(started: str, lookback_seconds: int) -> str:
    """The ISO time (UTC, to the second) ``lookback_seconds`` before ``started``."""
    moment = datetime.fromisoformat(started.replace("Z", "+00:00")) - timedelta(seconds=lookback_seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def name_for(
    answers: Iterable[Mapping[str, Any]], started: str, workload_key: str, lookback_seconds: int
) -> str | None:
    """The name of a flow's address: the name whose answer for it was seen last at or
    before ``started`` (the flow's first_seen) and no earlier than ``lookback_seconds``
    before it; answers from the flow's own workload's tasks first, else from any source in
    the VPC. ``answers``: the address's answer items (``{"name", "workload_key",
    "first_seen", "last_seen"}``, one per hour, name and source). An item's moment is its
    ``last_seen`` when that is not after ``started``, else its ``first_seen`` when that is
    not (an answer of the same hour, before the flow), else it names nothing. Ties: the
    smaller name."""
    found = name_source(answers, started, workload_key, lookback_seconds)
    return found[0] if found else None


def name_source(
    answers: Iterable[Mapping[str, Any]], started: str, workload_key: str, lookback_seconds: int
) -> tuple[str, bool] | None:
    """:func:`name_for`'s name and whether the workload's own answer gave it."""
    if not started:
        return None
    begin = lookback_start(started, lookback_seconds)
    best: dict[bool, tuple[str, str]] = {}
    for item in answers:
        first, last = str(item.get("first_seen") or ""), str(item.get("last_seen") or "")
        moment = last if last and last <= started else (first if first and first <= started else "")
        name = str(item.get("name") or "")
        if not moment or not name or moment < begin:
            continue
        own = item.get("workload_key") == workload_key
        current = best.get(own)
        if current is None or moment > current[0] or (moment == current[0] and name < current[1]):
            best[own] = (moment, name)
    if True in best:
        return best[True][1], True
    return (best[False][1], False) if False in best else None


def kept_name(flow: Mapping[str, Any]) -> str | None:
    """The name kept on a flow row when an answer named its first flow (``named``), while
    its first_seen is still that one (``named_first_seen``); else None. Answers are kept 8
    days and a row lives while traffic goes on: without it, a destination a service kept
    calling became one nobody resolved once the answer that named it expired. A name
    another workload's answer gave (``named_own`` false) stands only until the answers,
    read again, give one: the workload's own answer, delivered later, comes first."""
    name = flow.get("named")
    if name and flow.get("named_first_seen") and flow.get("named_first_seen") == flow.get("first_seen"):
        return str(name)
    return None


def kept_own(flow: Mapping[str, Any]) -> bool:
    """The row keeps a name its own workload's answer gave: no answer read can change it."""
    return kept_name(flow) is not None and flow.get("named_own") is True


def unresolved_flows(
    flows: Iterable[Mapping[str, Any]],
    workload_key: str,
    approved_cidrs: Iterable[str],
    lookback_seconds: int,
) -> list[dict]:
    """EGR-03: the workload's ``ACCEPT``ed flow rows to an internet address (not private)
    outside every ``approved_cidrs`` network that no answer in the flow's ``answers``
    named (:func:`name_for`) and that keeps none (:func:`kept_name`). Rows ``{"address",
    "protocol", "port", "bytes_out", "packets", "first_seen", "last_seen"}``, the most bytes
    first (then address, protocol, port). ValueError naming an approved CIDR that is not one
    or a flow address that is not an address."""
    approved = []
    for cidr in approved_cidrs:
        try:
            approved.append(ipaddress.ip_network(str(cidr).strip(), strict=False))
        except ValueError:
            raise ValueError(f"approved_egress_cidrs: {cidr!r} is not a CIDR") from None
    rows = []
    for flow in flows:
        if flow.get("action") != "ACCEPT":
            continue
        address = str(flow.get("address") or "")
        try:
            if is_private(address) or is_private(address, approved):
                continue
        except ValueError:
            raise ValueError(f"flow destination {address!r} is not an address") from None
        if kept_name(flow) or name_for(
            flow.get("answers") or (), str(flow.get("first_seen") or ""), workload_key, lookback_seconds
        ):
            continue
        rows.append(
            {
                "address": address,
                "protocol": flow.get("protocol"),
                "port": flow.get("port"),
                "bytes_out": int(flow.get("bytes_out") or 0),
                "packets": flow.get("packets"),
                "first_seen": flow.get("first_seen"),
                "last_seen": flow.get("last_seen"),
            }
        )
    return sorted(rows, key=lambda r: (-r["bytes_out"], r["address"], str(r["protocol"]), str(r["port"])))

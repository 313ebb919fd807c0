"""Egress discovery from VPC flow logs (the ``flow_logs`` function; design.md section 7).

A VPC flow log publishing to CloudWatch Logs writes one space-separated text record per
flow and capture window; a subscription filter hands batches of them to the function in
the same envelope as the Resolver query logs (``{"awslogs": {"data": base64(gzip(json))}}``,
decoded by ``dnslogs.decode_subscription``). Each ``message`` is one record whose fields
follow the flow log's ``LogFormat``.

Which format (:func:`choose_format`, given the flow logs ``ec2:DescribeFlowLogs`` finds
for the batch's ``logGroup``, ``edge.flowlog_lookup``): the LogFormat of the flow log(s)
delivering to the group when they have one (a flow log without one writes AWS's default
format, :data:`AWS_DEFAULT_FORMAT`, which has no ``flow-direction``); none found (a flow
log of another account delivering here): FLOW_LOG_FORMAT, else the documented format
(:data:`DOCUMENTED_FORMAT`, templates/vpc-flow-log.yaml's):

    ${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport}
    ${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status} ${vpc-id}
    ${flow-direction}

Flow logs of different formats on one group: their records cannot be told apart, so one
:class:`FlowFormatError` naming the group and the flow logs, unless FLOW_LOG_FORMAT is set
(it then says which format to read).

Any field order is read (the format names the fields); the fields :data:`NEEDED` must be in
it (a format without one is one :class:`FlowFormatError` naming the missing fields: the
batch is rejected, counted and dead-lettered, nothing of it recorded). ``flow-direction``,
``packets``, ``end`` and ``log-status`` are used when present; without ``flow-direction`` a
record is egress when its ``srcaddr`` is the ENI's own address (IPv4 or IPv6).

Pure part (no boto3, no clock): the format and its choice, the records (a malformed or truncated record is
counted and skipped, never fails the batch), attribution of each record by its
``interface-id`` to the task that owned the ENI when the flow started (the recorder's ENI
index, ``record.range_at``), the filter (``NODATA``/``SKIPDATA``, other ENIs or records
older than the index remembers, ingress, private and link-local destinations: not internet
egress; ``REJECT`` is kept as its own rows and counted apart) and aggregation per
(workload, destination address, protocol, port, action) before any write.

Items (``pk`` / ``sk``), beside the DNS ones (``stores.discovery``):

- ``DISC#<workload key>`` / ``FLOW#<address>#<protocol>#<port>#<action>``: ``packets``,
  ``bytes_out`` and ``flows`` (ADD), ``first_seen`` (kept from the first batch),
  ``last_seen``; ``ttl`` 30 days after it was last seen.
- ``DISC#<workload key>`` / ``SUMMARY``: ``flow_records`` added: every record of the
  workload's ENIs, egress or not (the DISCOVERED index lists the workload, as for DNS; a
  workload with flow data but no internet egress is known to have flow data).
- ``FLOWBATCH#<batch id>`` / ``CHUNK#<i>``: the marker of one applied chunk.

Idempotency and partial failure: as ``dnslogs`` (chunks of at most 99 updates, each one
transaction with its marker; chunk 0's marker carries the attribution read, so a
redelivery after a failure mid-batch applies only the chunks not yet applied, under the
first delivery's attribution).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from fargate_audit.app.dnslogs import (
    BATCH_TTL_DAYS,
    CHUNK_ACTIONS,
    DISCOVERY_TTL_DAYS,
    MAX_SNAPSHOT_BYTES,
    WriteStats,
)
from fargate_audit.app.events import EventError
from fargate_audit.core.egress import PRIVATE_NETWORKS, is_private
from fargate_audit.stores.discovery import (
    DISCOVERED_GSI_PK,
    FLOW_BATCH_PREFIX,
    SUMMARY_SK,
    DiscoveryStore,
    discovery_pk,
    flow_sk,
    in_order,
    marker_key,
)
from fargate_audit.stores.record import range_at
from fargate_audit.stores.table import to_attributes, ttl_after, utc_second

DOCUMENTED_FORMAT = (
    "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} "
    "${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status} ${vpc-id} "
    "${flow-direction}"
)
# What a flow log created without a LogFormat writes (AWS's default format: version 2 fields)
AWS_DEFAULT_FORMAT = (
    "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} "
    "${protocol} ${packets} ${bytes} ${start} ${end} ${action} ${log-status}"
)
NEEDED = ("interface-id", "srcaddr", "dstaddr", "dstport", "protocol", "bytes", "start", "action")
PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp"}
ACTIONS = ("ACCEPT", "REJECT")
NO_DATA = ("NODATA", "SKIPDATA")
_FIELD = re.compile(r"\$\{([a-z0-9-]+)\}")


class FlowFormatError(EventError):
    """The flow log's format lacks a field the function needs (or is not a format)."""


# --------------------------------------------------------------------------- format


def parse_format(text: str, what: str = "flow log format") -> tuple[str, ...]:
    """The field names of a flow log ``LogFormat`` (``${a} ${b} ...``), in order.
    FlowFormatError when it is not one or lacks a needed field (all missing ones named);
    ``what`` says whose format it is in the message."""
    tokens = (text or "").split()
    fields = tuple(m.group(1) if (m := _FIELD.fullmatch(t)) else "" for t in tokens)
    if not tokens or "" in fields:
        raise FlowFormatError(f"{what} {text!r} is not a list of ${{field}} names")
    missing = [name for name in NEEDED if name not in fields]
    if missing:
        raise FlowFormatError(f"{what} lacks the needed fields: {', '.join(missing)}")
    return fields


@dataclass(frozen=True, slots=True)
class FormatChoice:
    """The format a batch is read by; ``source`` says where it came from (the outcome's
    ``format_source``), ``what`` names it in an error message."""

    text: str
    source: str
    what: str


NO_FLOW_LOG = "no flow log found for the log group"


def log_format(flow_log: Mapping[str, Any]) -> str:
    """A DescribeFlowLogs entry's format: its ``LogFormat`` (AWS's default format when it
    has none), whitespace made single spaces (formats compare by their fields)."""
    return " ".join(str(flow_log.get("LogFormat") or AWS_DEFAULT_FORMAT).split())


def settled(flow_logs: Iterable[Mapping[str, Any]]) -> bool:
    """Whether a log group's flow logs give one format (an answer worth keeping long)."""
    return len({log_format(f) for f in flow_logs}) == 1


def choose_format(group: str, flow_logs: Iterable[Mapping[str, Any]], parameter: str | None) -> FormatChoice:
    """The format of a batch from log group ``group``, given the flow logs that deliver
    to it (DescribeFlowLogs entries: ``FlowLogId``, ``LogFormat``) and FLOW_LOG_FORMAT
    (``parameter``; None when unset).

    - the flow logs give one format (one flow log, or several alike): that one (no
      ``LogFormat``: AWS's default format, :data:`AWS_DEFAULT_FORMAT`), whatever the
      parameter says;
    - none found (e.g. the flow log is another account's, delivering here): the
      parameter, else :data:`DOCUMENTED_FORMAT`;
    - several formats: their records cannot be told apart, so one FlowFormatError naming
      the group and the flow logs, unless the parameter is set (it then says which to read).
    """
    found = sorted(flow_logs, key=lambda f: str(f.get("FlowLogId")))
    formats = {log_format(f) for f in found}
    ids = ", ".join(str(f.get("FlowLogId")) for f in found)
    if len(formats) == 1:
        source = f"flow log{'s' if len(found) > 1 else ''} {ids}"
        return FormatChoice(formats.pop(), source, f"the LogFormat of {source}")
    if not found and parameter:
        return FormatChoice(parameter, f"parameter ({NO_FLOW_LOG})", "FLOW_LOG_FORMAT")
    if not found:
        source = f"documented format ({NO_FLOW_LOG}, FLOW_LOG_FORMAT unset)"
        return FormatChoice(DOCUMENTED_FORMAT, source, "the documented format")
    if parameter:
        source = f"parameter (flow logs {ids} deliver to the log group in different formats)"
        return FormatChoice(parameter, source, "FLOW_LOG_FORMAT")
    raise FlowFormatError(
        f"log group {group}: flow logs {ids} deliver to it in different formats, so its "
        "records cannot be told apart; give each format its own log group, or set the "
        "FlowLogFormat parameter (FLOW_LOG_FORMAT) to the format to read"
    )


# --------------------------------------------------------------------------- records


# the reason of a record whose field count is not its format's: a format read from a flow
# log since deleted and created again with another format (AWS cannot change a flow log's
# format), for instance
FIELD_COUNT_MISMATCH = "fields where the format has"


@dataclass(frozen=True, slots=True)
class FlowRecord:
    """One flow-log record, as the pipeline uses it."""

    event_id: str
    interface_id: str
    srcaddr: str
    dstaddr: str
    dstport: int
    protocol: str  # "tcp", "udp", "icmp" or the number as text
    packets: int | None  # None: not in the format
    bytes: int
    start: str  # UTC seconds text
    end: str
    action: str  # ACCEPT | REJECT
    direction: str | None  # "ingress" | "egress" | None (not in the format)
    srcport: int | None = None  # None: not in the format, or "-"
    tcp_flags: int | None = None  # the OR of the interval's TCP flags; None: not in the format


@dataclass(frozen=True, slots=True)
class Skipped:
    """A record with no flow (``NODATA`` / ``SKIPDATA``)."""

    event_id: str
    status: str


def _int(fields: Mapping[str, str], name: str, high: int) -> int:
    text = fields[name]
    if not text.isdigit() or int(text) > high:
        raise ValueError(f"{name} is not a number from 0 to {high}")
    return int(text)


def _address(fields: Mapping[str, str], name: str) -> str:
    try:
        return str(ipaddress.ip_address(fields[name]))  # IPv6 in its compressed form
    except ValueError:
        raise ValueError(f"{name} is not an IP address") from None


def _port(fields: Mapping[str, str], name: str) -> int | None:
    """A port, or None for "-": AWS writes "-" where a field does not apply (a protocol
    without ports, such as ESP or GRE)."""
    return None if fields[name] == "-" else _int(fields, name, 65535)


def _epoch(fields: Mapping[str, str], name: str) -> str:
    seconds = _int(fields, name, 32503680000)  # year 3000
    return utc_second(datetime.fromtimestamp(seconds, UTC))


def parse_record(message: Any, fields: tuple[str, ...], event_id: str = "") -> FlowRecord | Skipped:
    """One log event's ``message`` -> FlowRecord (or Skipped for a record without data);
    ValueError (a short reason, never the content) when it is malformed or truncated."""
    if not isinstance(message, str):
        raise ValueError("message is not a string")
    values = message.split()
    if len(values) != len(fields):
        raise ValueError(f"{len(values)} {FIELD_COUNT_MISMATCH} {len(fields)}")
    record = dict(zip(fields, values, strict=True))
    status = record.get("log-status")
    if status is None:
        # a format without log-status: a NODATA/SKIPDATA record still has "-" in every
        # field but the ENI's and the interval's (AWS); it is that, not a malformed record
        data = ("srcaddr", "dstaddr", "action", "bytes")
        status = "NODATA" if all(record.get(name) == "-" for name in data) else "OK"
    if status in NO_DATA:
        return Skipped(str(event_id), status)
    if status != "OK":
        raise ValueError("log-status is not OK, NODATA or SKIPDATA")
    if not record["interface-id"].startswith("eni-"):
        raise ValueError("interface-id is not a network interface id")
    action = record["action"]
    if action not in ACTIONS:
        raise ValueError("action is not ACCEPT or REJECT")
    direction = record.get("flow-direction")
    if direction is not None and direction not in ("ingress", "egress"):
        raise ValueError("flow-direction is not ingress or egress")
    number = _int(record, "protocol", 255)
    start = _epoch(record, "start")
    end = _epoch(record, "end") if "end" in record else start
    return FlowRecord(
        event_id=str(event_id),
        interface_id=record["interface-id"],
        srcaddr=_address(record, "srcaddr"),
        dstaddr=_address(record, "dstaddr"),
        dstport=_port(record, "dstport") or 0,  # no port ("-"): 0, as AWS writes for ICMP
        protocol=PROTOCOLS.get(number, str(number)),
        packets=_int(record, "packets", 2**63) if "packets" in record else None,
        bytes=_int(record, "bytes", 2**63),
        start=start,
        end=max(end, start),
        action=action,
        direction=direction,
        srcport=_port(record, "srcport") if "srcport" in record else None,
        tcp_flags=_port(record, "tcp-flags") if "tcp-flags" in record else None,
    )


def parse_records(
    payload: Mapping[str, Any], fields: tuple[str, ...]
) -> tuple[list[FlowRecord], list[Skipped], list[dict]]:
    """(records, skipped, malformed) of a DATA_MESSAGE batch; a malformed record is listed
    as ``{"id", "reason"}`` (its content is never kept)."""
    records: list[FlowRecord] = []
    skipped: list[Skipped] = []
    malformed: list[dict] = []
    for event in payload.get("logEvents") or []:
        event_id = str(event.get("id", "")) if isinstance(event, Mapping) else ""
        try:
            if not isinstance(event, Mapping):
                raise ValueError("log event is not an object")
            parsed = parse_record(event.get("message"), fields, event_id)
        except ValueError as exc:
            malformed.append({"id": event_id, "reason": str(exc)})
            continue
        (skipped if isinstance(parsed, Skipped) else records).append(parsed)
    return records, skipped, malformed


# --------------------------------------------------------------------------- attribution


def eni_windows(records: Iterable[FlowRecord]) -> dict[str, tuple[str, str]]:
    """``{eni: (first flow start, last flow start)}`` of a batch."""
    windows: dict[str, tuple[str, str]] = {}
    for rec in records:
        low, high = windows.get(rec.interface_id, (rec.start, rec.start))
        windows[rec.interface_id] = (min(low, rec.start), max(high, rec.start))
    return windows


_RANGE_FIELDS = ("from", "to", "task_arn", "workload_key", "workload", "ip", "ipv6", "vpc_id", "vpc_cidrs")


def with_vpc_cidrs(
    ranges: Mapping[str, list[Mapping[str, Any]]], cidrs: Mapping[str, list[str]]
) -> dict[str, list[dict]]:
    """The ENI ranges with each one's VPC CIDRs (``vpc_cidrs``; ``cidrs``: by VPC id), kept
    in the attribution snapshot so a redelivery classifies destinations as the first did."""
    return {
        eni: [dict(r, vpc_cidrs=list(cidrs.get(str(r.get("vpc_id")), []))) for r in found]
        for eni, found in ranges.items()
    }


def range_vpcs(ranges: Mapping[str, list[Mapping[str, Any]]]) -> list[str]:
    """The VPC ids of the ENI ranges."""
    return sorted({str(r["vpc_id"]) for found in ranges.values() for r in found if r.get("vpc_id")})


def encode_snapshot(ranges: Mapping[str, list[Mapping[str, Any]]]) -> str | None:
    """The attribution of a batch (the ENI index ranges read), compressed for chunk 0's
    marker; None when it would not fit in an item."""
    doc = {eni: [[r.get(k) for k in _RANGE_FIELDS] for r in found] for eni, found in ranges.items()}
    text = base64.b64encode(zlib.compress(json.dumps(doc, separators=(",", ":")).encode("utf-8"), 6))
    return text.decode("ascii") if len(text) <= MAX_SNAPSHOT_BYTES else None


def decode_snapshot(text: str) -> dict[str, list[dict]]:
    doc = json.loads(zlib.decompress(base64.b64decode(text)))
    # a marker written before vpc_id (or vpc_cidrs) was kept has fewer fields: they read as None
    return {
        eni: [
            dict(zip(_RANGE_FIELDS, [*row, *[None] * (len(_RANGE_FIELDS) - len(row))], strict=True))
            for row in found
        ]
        for eni, found in doc.items()
    }


def private_networks(extra: Iterable[str] = ()) -> tuple:
    """The destinations that are not internet egress: the fixed list and ``extra`` CIDRs
    (the VPCs' own). ValueError naming a CIDR that is not one."""
    networks = list(PRIVATE_NETWORKS)
    for cidr in extra:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{cidr!r} is not a CIDR") from None
    return tuple(networks)


# --------------------------------------------------------------------------- aggregation


@dataclass
class FlowAggregate:
    """The batch's egress records of one (workload, address, protocol, port, action)."""

    workload_key: str
    workload: str
    address: str
    protocol: str
    port: int
    action: str
    flows: int = 0
    packets: int | None = None  # None: no record of the batch said (a format without packets)
    bytes_out: int = 0
    first_seen: str = ""
    last_seen: str = ""
    vpc_id: str | None = None  # the ENI's VPC (the ENI index), where its DNS answers are looked up

    def add(self, rec: FlowRecord) -> None:
        self.flows += 1
        if rec.packets is not None:
            self.packets = (self.packets or 0) + rec.packets
        self.bytes_out += rec.bytes
        self.first_seen = min(self.first_seen or rec.start, rec.start)
        self.last_seen = max(self.last_seen, rec.end)


@dataclass
class FlowAggregation:
    aggregates: dict[tuple[str, str, str, int, str], FlowAggregate]
    egress: int = 0  # records of internet egress attributed to a task (accepted or rejected)
    rejected: int = 0  # of those, REJECTed
    other_enis: int = 0  # ENIs no known task owned when the flow started (or forgotten)
    ingress: int = 0
    private: int = 0
    replies: int = 0  # outbound records answering an inbound connection of the batch
    # every workload whose ENIs the batch has records of (egress or not): [workload name,
    # records, first start, last end]; its summary counts them, so a workload with flow data
    # but no internet egress is known to have flow data (EGR-03 PASSED, not no result)
    seen: dict[str, list] = field(default_factory=dict)

    def workloads(self) -> list[str]:
        return sorted(self.seen)

    def counts(self) -> dict:
        return {
            "egress": self.egress,
            "rejected": self.rejected,
            "other_enis": self.other_enis,
            "ingress": self.ingress,
            "private": self.private,
            "replies": self.replies,
        }


def _in_own_vpc(address: str, owner: Mapping[str, Any]) -> bool:
    """``address`` lies in one of the CIDRs of the ENI's VPC (``vpc_cidrs`` of its range)."""
    cidrs = owner.get("vpc_cidrs") or ()
    return bool(cidrs) and is_private(address, _networks(tuple(cidrs)))


@lru_cache(maxsize=256)
def _networks(cidrs: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _is_egress(rec: FlowRecord, owner: Mapping[str, Any]) -> bool:
    if rec.direction is not None:
        return rec.direction == "egress"
    own = {owner.get("ip"), *(str(ipaddress.ip_address(a)) for a in owner.get("ipv6") or [])}
    return rec.srcaddr in own


_PORTLESS_ECHO = frozenset({"icmp", "1", "58"})  # ICMP, ICMPv6: records carry ports 0 and 0
# The lowest ephemeral port a client's connection comes from: Linux (Fargate's) uses 32768
# to 60999, Windows and IANA 49152 to 65535. A service listens below it, or on a port a
# client's could be as well (50051): then who opened the connection cannot be told.
EPHEMERAL_PORTS_FROM = 32768
_SYN, _ACK = 0x02, 0x10  # tcp-flags bits (AWS reports ACK only with SYN: SYN-ACK is 18)


def _answers_the_peer(rec: FlowRecord, peer_started: str) -> bool:
    """An outbound record whose connection's inbound record is in the batch (both ways
    of one connection look alike): the task's answers to a connection the peer opened, not
    egress it chose? By the handshake when the format has ``tcp-flags`` and the interval
    holds it (the task's SYN without ACK: it opened the connection; its SYN-ACK: it
    accepted it); otherwise by the ports: a client connects from an ephemeral port
    (``EPHEMERAL_PORTS_FROM`` and above) to a service's, so the task answers when its own
    port is below that and the peer's is not. With both ports ephemeral-looking (a call
    from 40000 to a server's 55555, or a service on 50051) who opened it cannot be told:
    it stays egress (a missed egress costs more than a reply counted as one); with both
    below, the lower port is the service's. A connection the task opened (from an
    ephemeral port, to the peer's service port) is its egress even when the peer's replies
    are in the batch. ICMP records carry no ports (0 and 0): by
    time, the task answers when the peer's inbound record (``peer_started``) started in an
    earlier second than its own (a ping's echo replies); in the same second it stays egress."""
    if rec.tcp_flags is not None and rec.protocol == "tcp" and rec.tcp_flags & _SYN:
        return bool(rec.tcp_flags & _ACK)
    if rec.protocol in _PORTLESS_ECHO and rec.srcport == rec.dstport:
        # the same second cannot tell who began: it stays egress (a missed egress, an ICMP
        # tunnel, costs more than a reply counted as one)
        return peer_started < rec.start
    if rec.srcport is None or rec.dstport is None:
        return False
    own_ephemeral, peer_ephemeral = rec.srcport >= EPHEMERAL_PORTS_FROM, rec.dstport >= EPHEMERAL_PORTS_FROM
    if own_ephemeral or peer_ephemeral:
        return peer_ephemeral and not own_ephemeral
    return rec.srcport < rec.dstport


def aggregate(
    records: Iterable[FlowRecord],
    ranges: Mapping[str, list[Mapping[str, Any]]],
    networks: tuple = PRIVATE_NETWORKS,
) -> FlowAggregation:
    """Every record attributed by its ENI and the flow's start (``range_at``: an ENI
    reused by a later task is that task's from its range on), filtered (other ENIs,
    ingress, private destinations and replies on inbound connections of the batch are
    counted, not kept) and added into its (workload,
    address, protocol, port, action): the writes are bounded by distinct destinations."""
    out = FlowAggregation(aggregates={})
    records = list(records)
    # each record's owner (None: no known task owned the ENI then) and direction, once
    owners = [
        owner
        if (owner := range_at(ranges.get(rec.interface_id) or (), rec.start)) and owner.get("workload_key")
        else None
        for rec in records
    ]
    outbound = [
        owner is not None and _is_egress(rec, owner) for rec, owner in zip(records, owners, strict=True)
    ]
    # connections the peer opened: (ENI, peer address, the task's port, the peer's port) of
    # inbound records. The task's answers on them are logged as its egress (flow-direction
    # is relative to the ENI), but they are the inbound connection's traffic, not egress it
    # chose: a public web task would otherwise "egress" to each client's ephemeral port
    inbound: dict[tuple, str] = {}  # ... -> the earliest start of such an inbound record
    for rec, owner, out_of_eni in zip(records, owners, outbound, strict=True):
        if owner is not None and rec.srcport is not None and not out_of_eni:
            key = (rec.interface_id, rec.srcaddr, rec.dstport, rec.srcport)
            inbound[key] = min(inbound.get(key, rec.start), rec.start)
    for rec, owner, out_of_eni in zip(records, owners, outbound, strict=True):
        if owner is None:
            out.other_enis += 1
            continue
        workload_key = str(owner["workload_key"])
        seen = out.seen.get(workload_key)
        if seen is None:
            seen = out.seen[workload_key] = [
                str(owner.get("workload") or workload_key),
                0,
                rec.start,
                rec.end,
            ]
        seen[1] += 1
        seen[2], seen[3] = min(seen[2], rec.start), max(seen[3], rec.end)
        if not out_of_eni:
            out.ingress += 1
            continue
        if is_private(rec.dstaddr, networks) or _in_own_vpc(rec.dstaddr, owner):
            out.private += 1
            continue
        peer_started = (
            inbound.get((rec.interface_id, rec.dstaddr, rec.srcport, rec.dstport))
            if rec.srcport is not None
            else None
        )
        if peer_started is not None and _answers_the_peer(rec, peer_started):
            out.replies += 1
            continue
        out.egress += 1
        out.rejected += rec.action == "REJECT"
        key = (workload_key, rec.dstaddr, rec.protocol, rec.dstport, rec.action)
        agg = out.aggregates.get(key)
        if agg is None:
            agg = out.aggregates[key] = FlowAggregate(key[0], seen[0], *key[1:])
            agg.vpc_id = str(owner["vpc_id"]) if owner.get("vpc_id") else None
        agg.add(rec)
    return out


# --------------------------------------------------------------------------- items


def _ttl_from(at: str, now: datetime) -> int:
    moment = datetime.fromisoformat(at.replace("Z", "+00:00")) if at else now
    return ttl_after(max(moment, now), DISCOVERY_TTL_DAYS)


def flow_update(agg: FlowAggregate, now: datetime) -> dict:
    """The UpdateItem of one flow destination: counters added, first_seen kept; packets
    only when the records carried them (a row no record counted packets of has none)."""
    values = {
        ":f": agg.flows,
        ":b": agg.bytes_out,
        ":fs": agg.first_seen,
        ":ls": agg.last_seen,
        ":addr": agg.address,
        ":proto": agg.protocol,
        ":port": agg.port,
        ":act": agg.action,
        ":wk": agg.workload_key,
        ":w": agg.workload,
        ":ttl": _ttl_from(agg.last_seen, now),
    }
    counters = "ADD flows :f, bytes_out :b"
    if agg.packets is not None:
        counters = "ADD flows :f, packets :p, bytes_out :b"
        values[":p"] = agg.packets
    vpc = ", vpc_id = :vpc" if agg.vpc_id else ""
    if agg.vpc_id:
        values[":vpc"] = agg.vpc_id
    return {
        "Update": {
            "Key": to_attributes(
                {
                    "pk": discovery_pk(agg.workload_key),
                    "sk": flow_sk(agg.address, agg.protocol, agg.port, agg.action),
                }
            ),
            "UpdateExpression": (
                f"{counters} SET first_seen = if_not_exists(first_seen, :fs), "
                "last_seen = :ls, address = :addr, #protocol = :proto, #port = :port, #action = :act, "
                f"workload_key = :wk, workload_name = :w, #ttl = :ttl{vpc}"
            ),
            "ExpressionAttributeNames": {
                "#protocol": "protocol",
                "#port": "port",
                "#action": "action",
                "#ttl": "ttl",
            },
            "ExpressionAttributeValues": to_attributes(values),
        }
    } | in_order(
        counters + " SET {first}address = :addr, #protocol = :proto, "
        f"#port = :port, #action = :act, workload_key = :wk, workload_name = :w, #ttl = :ttl{vpc}"
    )


def summary_update(workload_key: str, seen: list, now: datetime) -> dict:
    """The UpdateItem of the workload's discovery summary: ``flow_records`` adds the
    batch's records of the workload's ENIs (egress or not; ``seen`` = [workload name,
    records, first start, last end])."""
    workload, records, first, last = seen
    parts = workload_key.split("#")
    values = {
        ":n": records,
        ":fs": first,
        ":ls": last,
        ":w": workload,
        ":wk": workload_key,
        ":acct": parts[1],
        ":region": parts[2],
        ":g": DISCOVERED_GSI_PK,
        ":ttl": _ttl_from(last, now),
    }
    return {
        "Update": {
            "Key": to_attributes({"pk": discovery_pk(workload_key), "sk": SUMMARY_SK}),
            "UpdateExpression": (
                "ADD flow_records :n SET first_seen = if_not_exists(first_seen, :fs), last_seen = :ls, "
                "workload_name = :w, workload_key = :wk, account_id = :acct, #region = :region, "
                "gsi1pk = :g, gsi1sk = :wk, #ttl = :ttl"
            ),
            "ExpressionAttributeNames": {"#region": "region", "#ttl": "ttl"},
            "ExpressionAttributeValues": to_attributes(values),
        }
    } | in_order(
        "ADD flow_records :n SET {first}workload_name = :w, workload_key = :wk, account_id = :acct, "
        "#region = :region, gsi1pk = :g, gsi1sk = :wk, #ttl = :ttl"
    )


def marker_put(
    batch: str, index: int, total: int, records: int, now: datetime, snapshot: str | None = None
) -> dict:
    item = {
        **marker_key(batch, index, FLOW_BATCH_PREFIX),
        "chunks": total,
        "records": records,
        "applied_at": utc_second(now),
        "attribution": snapshot,
        "ttl": ttl_after(now, BATCH_TTL_DAYS),
    }
    return {"Put": {"Item": to_attributes(item), "ConditionExpression": "attribute_not_exists(pk)"}}


def plan_chunks(
    aggregation: FlowAggregation, now: datetime, capacity: int = CHUNK_ACTIONS
) -> list[list[dict]]:
    """The batch's updates (sorted; each workload's summary before its destinations; a
    workload with records but no internet egress has its summary alone) cut into chunks of
    at most ``capacity`` actions. Deterministic, as ``dnslogs.plan_chunks``."""
    by_workload: dict[str, list[FlowAggregate]] = {key: [] for key in sorted(aggregation.seen)}
    for key in sorted(aggregation.aggregates):
        agg = aggregation.aggregates[key]
        by_workload[agg.workload_key].append(agg)
    actions: list[dict] = []
    for workload_key, aggs in by_workload.items():
        actions.append(summary_update(workload_key, aggregation.seen[workload_key], now))
        actions += [flow_update(agg, now) for agg in aggs]
    return [actions[start : start + capacity] for start in range(0, len(actions), capacity)]


def write_batch(
    store: DiscoveryStore,
    batch: str,
    aggregation: FlowAggregation,
    records: int,
    now: datetime,
    snapshot: str | None,
    replan=None,
    applied: Iterable[int] = (),
) -> tuple[WriteStats, FlowAggregation]:
    """Apply a batch's chunks in order, each once (markers); as ``dnslogs.write_batch``."""
    chunks = plan_chunks(aggregation, now)
    stats = WriteStats(chunks=len(chunks))
    done = set(applied)
    index = 0
    while index < len(chunks):
        if index in done:
            stats.skipped += 1
            index += 1
            continue
        marker = marker_put(batch, index, len(chunks), records, now, snapshot if index == 0 else None)
        if store.apply_chunk(chunks[index], marker):
            stats.written += 1
            stats.actions += len(chunks[index]) + 1
        else:
            stats.skipped += 1
            if index == 0 and replan is not None:
                other = replan()
                if other is not None:
                    aggregation = other
                    chunks = plan_chunks(aggregation, now)
                    stats.chunks = len(chunks)
        index += 1
    return stats, aggregation

"""Egress discovery from Route 53 Resolver query logs (the ``dns_logs`` function).

Resolver query logging writes one JSON record per DNS query to a CloudWatch Logs group; a
subscription filter hands batches of them to the function as
``{"awslogs": {"data": base64(gzip(json))}}`` (event-shapes.md). Decoded, a batch is
``{"messageType", "owner", "logGroup", "logStream", "subscriptionFilters", "logEvents":
[{"id", "timestamp", "message"}]}``; ``CONTROL_MESSAGE`` batches are ignored.

Pure part (no boto3, no clock): decoding, parsing (a malformed record is counted and
skipped, never fails the batch), name normalisation, attribution of each query to the
task that held its source address at that moment (``record.range_at`` over the IP index
ranges), aggregation per (workload, name, query type) in memory, and the plan of the
batch's writes. Writer: ``stores.discovery.DiscoveryStore``, a few DynamoDB calls per batch.

Items (``pk`` / ``sk``), next to the recorder's (record.py):

- ``DISC#<workload key>`` / ``DEST#<name>#<query type>``: one destination of a workload:
  ``count`` (ADD), ``first_seen`` (kept from the first batch), ``last_seen``, a bounded
  sample of the answers' Rdata and (unattributed only) of the source addresses; ``ttl``
  30 days after it was last seen. The workload key is the recorder's ``WL#...`` key, or
  ``UNATTRIBUTED#<account>#<region>`` for queries from addresses no known task held.
- ``DISC#<workload key>`` / ``SUMMARY``: the workload's discovery summary; ``gsi1pk``
  ``DISCOVERED`` lists every workload with discoveries (``fargate-audit discovered``).
- ``DNSBATCH#<batch id>`` / ``CHUNK#<i>``: the marker of one applied chunk of a batch.
- ``ANSWER#<vpc>#<address>`` / ``AT#<hour>#<name>#<workload key>``: the DNS answers that
  named an address (A/AAAA ``Rdata``; the queried name owns the final addresses of its
  CNAME chain) in one VPC, per UTC hour, name and source workload (the task's workload,
  or the VPC's ``UNATTRIBUTED#...`` bucket): ``first_seen`` (kept) and ``last_seen`` of
  the answers in that hour, ``task_arn`` of the latest one; ``ttl`` ANSWER_TTL_DAYS after
  it was last seen. A batch writes one such item per distinct (VPC, address, hour, name,
  source) it saw, in the same chunks as the destinations (so once per batch). A flow's
  address is named from them (``name_for``) when ``discovered`` reads it.

Idempotency (a redelivered batch is not counted twice): the batch id is a hash of the
log group, stream and the sorted ids of its log events (CloudWatch Logs repeats them on
redelivery). The batch's updates are cut into chunks of at most 100 actions (the
TransactWriteItems limit); each chunk is one transaction that also puts its marker with
``attribute_not_exists(pk)``. A chunk whose marker exists was applied: the transaction is
cancelled as a whole and skipped. Chunks are a pure function of the records and of their
attribution; the attribution (the IP index ranges read) travels in chunk 0's marker, so a
redelivery after a task's first audit landed in between re-uses the first delivery's
attribution instead of moving counts from ``unattributed`` to the task (or back).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import ipaddress
import json
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fargate_audit.app.events import EventError
from fargate_audit.core.checks import normalize_domain
from fargate_audit.core.egress import kept_name, kept_own, lookback_start, name_for
from fargate_audit.stores import keys
from fargate_audit.stores.discovery import (
    DISCOVERED_GSI_PK,
    SUMMARY_SK,
    DiscoveryStore,
    answer_pk,
    answer_sk,
    destination_sk,
    discovery_pk,
    in_order,
    marker_key,
)
from fargate_audit.stores.record import range_at
from fargate_audit.stores.table import MAX_TRANSACT_ACTIONS, to_attributes, ttl_after, utc_second

DATA_MESSAGE, CONTROL_MESSAGE = "DATA_MESSAGE", "CONTROL_MESSAGE"
UNATTRIBUTED = "unattributed"
MAX_NAME_LENGTH = 253  # a DNS name (RFC 1035), without the trailing dot
MAX_QUERY_TYPE_LENGTH = 16
MAX_ANSWERS = 8  # Rdata values kept per destination (a sample, deduplicated)
MAX_RDATA_LENGTH = 255
MAX_SOURCES = 8  # source addresses kept per unattributed destination
# A/AAAA answer addresses kept per record: every one a resolver can give (a 4,096-byte
# EDNS answer holds at most about 250 A records), since a flow to an address dropped here
# would count as resolved by nobody (EGR-03)
MAX_ADDRESSES = 256
ANSWER_TTL_DAYS = 8  # answers older than this name nothing (dns_answer_lookback at most 7 days)
ADDRESS_TYPES = ("A", "AAAA")
DISCOVERY_TTL_DAYS = 30  # a destination not seen for 30 days is forgotten
BATCH_TTL_DAYS = 3  # CloudWatch Logs and Lambda retry a batch for at most hours
MAX_SNAPSHOT_BYTES = 300 * 1024  # the attribution kept in chunk 0's marker (item: 400 KB)
CHUNK_ACTIONS = MAX_TRANSACT_ACTIONS - 1  # one action of each transaction is its marker

Source = tuple[str, str]  # (vpc id, source address)


# --------------------------------------------------------------------------- decoding


def decode_subscription(event: Any) -> dict:
    """The decoded batch of a CloudWatch Logs subscription event. EventError (one line)
    when the event is not one: the whole event is unusable, unlike a malformed record."""
    if not isinstance(event, Mapping) or not isinstance(event.get("awslogs"), Mapping):
        raise EventError("not a CloudWatch Logs subscription event (no awslogs object)")
    data = event["awslogs"].get("data")
    if not isinstance(data, str) or not data:
        raise EventError("awslogs.data: missing or not a string")
    try:
        payload = json.loads(gzip.decompress(base64.b64decode(data, validate=True)))
    except (binascii.Error, OSError, EOFError, zlib.error, ValueError) as exc:
        raise EventError(f"awslogs.data: not base64 of gzipped JSON ({type(exc).__name__})") from None
    if not isinstance(payload, dict):
        raise EventError("awslogs.data: the decoded payload is not a JSON object")
    if payload.get("messageType") not in (DATA_MESSAGE, CONTROL_MESSAGE):
        raise EventError(
            f"messageType {payload.get('messageType')!r} is neither {DATA_MESSAGE} nor {CONTROL_MESSAGE}"
        )
    if payload["messageType"] == DATA_MESSAGE and not isinstance(payload.get("logEvents"), list):
        raise EventError("logEvents: missing or not a list")
    return payload


def encode_subscription(payload: Mapping[str, Any]) -> dict:
    """The subscription event CloudWatch Logs would deliver for ``payload`` (tests, demo)."""
    data = gzip.compress(json.dumps(payload, separators=(",", ":")).encode("utf-8"), mtime=0)
    return {"awslogs": {"data": base64.b64encode(data).decode("ascii")}}


def batch_id(payload: Mapping[str, Any]) -> str:
    """Identifies a batch across redeliveries: its log group, stream and event ids."""
    ids = sorted(str(e.get("id")) for e in payload.get("logEvents") or [] if isinstance(e, Mapping))
    text = json.dumps([payload.get("logGroup"), payload.get("logStream"), ids], separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class QueryRecord:
    """One Resolver query-log record, as the pipeline uses it."""

    event_id: str
    account_id: str
    region: str
    vpc_id: str
    srcaddr: str
    at: str  # query_timestamp, UTC seconds ("2025-06-02T08:14:03Z")
    name: str  # query_name normalised: lower case, no trailing dot
    query_type: str
    answers: tuple[str, ...]
    addresses: tuple[str, ...] = ()  # the A/AAAA answers' Rdata, normalised (the name owns them)


def normalize_name(name: Any) -> str:
    """A query name as recorded: lower case, trailing dot removed. ValueError when it is
    not a usable DNS name (empty, too long, whitespace or control characters)."""
    if not isinstance(name, str):
        raise ValueError("query_name is not a string")
    text = normalize_domain(name)
    if not text or text == ".":
        raise ValueError("query_name is empty")
    if len(text) > MAX_NAME_LENGTH:
        raise ValueError(f"query_name longer than {MAX_NAME_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise ValueError("query_name holds whitespace or control characters")
    return text


def _text(record: Mapping[str, Any], key: str, limit: int = 64) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key} missing or not a string")
    value = value.strip()
    if len(value) > limit:
        raise ValueError(f"{key} longer than {limit} characters")
    return value


_ACCOUNT_ID = re.compile(r"[0-9]{12}")


def _address_text(text: str) -> str:
    """A source address as the IP index keeps it: an IPv6 one compressed, lower case."""
    if ":" not in text:
        return text
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


# A query's time must lie where the index's and the tables' times can (four-digit years; the
# flow side bounds a flow's start to the year 3000 too): else the record is malformed, not
# a failure of the whole batch when its TTL or hour is computed.
_PLAUSIBLE_TIMES = ("2000-01-01T00:00:00Z", "3000-01-01T00:00:00Z")


def _timestamp(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("query_timestamp is not an ISO 8601 time")
    at = utc_second(value)
    if at is None and len(value) >= 19:
        at = utc_second(value[:19] + "Z")  # the documented example's "19:20:177Z" still reads
    if at is None:
        raise ValueError("query_timestamp is not an ISO 8601 time")
    if not (len(at) == 20 and _PLAUSIBLE_TIMES[0] <= at < _PLAUSIBLE_TIMES[1]):
        raise ValueError("query_timestamp is outside the years 2000 to 2999")
    return at


def parse_record(message: Any, event_id: str = "", owner: str | None = None) -> QueryRecord:
    """One log event's ``message`` -> QueryRecord; ValueError (a short reason, never the
    content) when it is not a Resolver query-log record."""
    if not isinstance(message, str):
        raise ValueError("message is not a string")
    try:
        record = json.loads(message)
    except ValueError:
        raise ValueError("message is not JSON") from None
    if not isinstance(record, dict):
        raise ValueError("message is not a JSON object")
    answers: list[str] = []
    addresses: list[str] = []
    listed = record.get("answers")
    if listed is not None and not isinstance(listed, list):
        raise ValueError("answers is not a list")
    for answer in listed or []:
        rdata = answer.get("Rdata") if isinstance(answer, Mapping) else None
        if isinstance(rdata, str) and rdata.strip() and rdata.strip() not in answers:
            answers.append(rdata.strip()[:MAX_RDATA_LENGTH])
        address = answer_address(answer)
        if address is not None and address not in addresses and len(addresses) < MAX_ADDRESSES:
            addresses.append(address)
    account = record.get("account_id") if isinstance(record.get("account_id"), str) else owner
    if account and not _ACCOUNT_ID.fullmatch(account):
        raise ValueError("account_id is not a 12-digit account id")
    return QueryRecord(
        event_id=str(event_id),
        account_id=str(account or ""),
        region=_text(record, "region"),
        vpc_id=_text(record, "vpc_id"),
        srcaddr=_address_text(_text(record, "srcaddr")),
        at=_timestamp(record.get("query_timestamp")),
        name=normalize_name(record.get("query_name")),
        query_type=_text(record, "query_type", MAX_QUERY_TYPE_LENGTH).upper(),
        answers=tuple(answers[:MAX_ANSWERS]),
        addresses=tuple(addresses),
    )


def answer_address(answer: Any) -> str | None:
    """The address of an A or AAAA answer (IPv6 in its compressed form, as flow logs
    write it), else None (CNAME and other types, malformed Rdata). In a CNAME chain the
    final A/AAAA answers are the queried name's: the query's name owns them."""
    if not isinstance(answer, Mapping) or str(answer.get("Type") or "").upper() not in ADDRESS_TYPES:
        return None
    rdata = answer.get("Rdata")
    if not isinstance(rdata, str):
        return None
    try:
        address = ipaddress.ip_address(rdata.strip())
    except ValueError:
        return None
    want = 4 if str(answer.get("Type")).upper() == "A" else 6
    return str(address) if address.version == want else None


def parse_records(payload: Mapping[str, Any]) -> tuple[list[QueryRecord], list[dict]]:
    """(records, malformed): every log event of a DATA_MESSAGE batch parsed; a malformed
    one is listed as ``{"id", "reason"}`` (its content is never kept)."""
    records: list[QueryRecord] = []
    malformed: list[dict] = []
    owner = payload.get("owner") if isinstance(payload.get("owner"), str) else None
    for event in payload.get("logEvents") or []:
        event_id = str(event.get("id", "")) if isinstance(event, Mapping) else ""
        try:
            if not isinstance(event, Mapping):
                raise ValueError("log event is not an object")
            records.append(parse_record(event.get("message"), event_id, owner))
        except ValueError as exc:
            malformed.append({"id": event_id, "reason": str(exc)})
    return records, malformed


# --------------------------------------------------------------------------- attribution


def source_windows(records: Iterable[QueryRecord]) -> dict[Source, tuple[str, str]]:
    """``{(vpc, address): (first query time, last query time)}`` of a batch."""
    windows: dict[Source, tuple[str, str]] = {}
    for rec in records:
        key = (rec.vpc_id, rec.srcaddr)
        low, high = windows.get(key, (rec.at, rec.at))
        windows[key] = (min(low, rec.at), max(high, rec.at))
    return windows


_RANGE_FIELDS = ("from", "to", "task_arn", "workload_key", "workload", "task_definition_arn")


def encode_snapshot(ranges: Mapping[Source, list[Mapping[str, Any]]]) -> str | None:
    """The attribution of a batch (the IP index ranges read per source), compressed for
    chunk 0's marker; None when it would not fit in an item."""
    doc = {
        f"{vpc}|{ip}": [[r.get(k) for k in _RANGE_FIELDS] for r in found]
        for (vpc, ip), found in ranges.items()
    }
    text = base64.b64encode(zlib.compress(json.dumps(doc, separators=(",", ":")).encode("utf-8"), 6))
    return text.decode("ascii") if len(text) <= MAX_SNAPSHOT_BYTES else None


def decode_snapshot(text: str) -> dict[Source, list[dict]]:
    doc = json.loads(zlib.decompress(base64.b64decode(text)))
    ranges: dict[Source, list[dict]] = {}
    for key, found in doc.items():
        vpc, _, ip = key.partition("|")
        ranges[(vpc, ip)] = [dict(zip(_RANGE_FIELDS, row, strict=True)) for row in found]
    return ranges


# --------------------------------------------------------------------------- aggregation


def unattributed_key(account_id: str, region: str) -> str:
    return f"UNATTRIBUTED#{account_id}#{region}"


@dataclass
class Aggregate:
    """The batch's queries of one (workload, name, query type)."""

    workload_key: str
    workload: str  # "cluster/group", or "unattributed"
    name: str
    query_type: str
    account_id: str
    region: str
    count: int = 0
    first_seen: str = ""
    last_seen: str = ""
    answers: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    @property
    def attributed(self) -> bool:
        return self.workload != UNATTRIBUTED

    def add(self, rec: QueryRecord) -> None:
        self.count += 1
        self.first_seen = min(self.first_seen or rec.at, rec.at)
        self.last_seen = max(self.last_seen, rec.at)
        for rdata in rec.answers:
            if len(self.answers) >= MAX_ANSWERS:
                break
            if rdata not in self.answers:
                self.answers.append(rdata)
        if not self.attributed and len(self.sources) < MAX_SOURCES and rec.srcaddr not in self.sources:
            self.sources.append(rec.srcaddr)


AnswerKey = tuple[str, str, str, str, str]  # (vpc, address, hour, name, source workload key)


@dataclass
class AnswerAggregate:
    """The batch's answers naming one address in one VPC, hour, name and source."""

    vpc_id: str
    address: str
    hour: str  # "2025-06-02T08"
    name: str
    workload_key: str  # the source: the task's workload, or the unattributed bucket
    first_seen: str = ""
    last_seen: str = ""
    task_arn: str | None = None  # the task of the latest answer (None: unattributed)

    def add(self, at: str, task_arn: str | None) -> None:
        self.first_seen = min(self.first_seen or at, at)
        if at >= self.last_seen:
            self.last_seen, self.task_arn = at, task_arn


@dataclass
class Aggregation:
    aggregates: dict[tuple[str, str, str], Aggregate]
    attributed: int = 0  # records attributed to a task
    unattributed: int = 0
    answers: dict[AnswerKey, AnswerAggregate] = field(default_factory=dict)

    def workloads(self, attributed_only: bool = False) -> list[str]:
        keys = {a.workload_key for a in self.aggregates.values() if a.attributed or not attributed_only}
        return sorted(keys)


def aggregate(
    records: Iterable[QueryRecord], ranges: Mapping[Source, list[Mapping[str, Any]]]
) -> Aggregation:
    """Every record attributed (the range of its source address holding its time, else
    ``unattributed``) and counted into its (workload, name, query type): the batch's
    writes are bounded by its distinct destinations, not its records."""
    out = Aggregation(aggregates={})
    for rec in records:
        found = range_at(ranges.get((rec.vpc_id, rec.srcaddr)) or (), rec.at)
        task_arn = None
        if found is not None and found.get("workload_key"):
            key, workload = str(found["workload_key"]), str(found.get("workload") or found["workload_key"])
            task_arn = str(found["task_arn"]) if found.get("task_arn") else None
            out.attributed += 1
        else:
            key, workload = unattributed_key(rec.account_id, rec.region), UNATTRIBUTED
            out.unattributed += 1
        for address in rec.addresses:
            answer_key = (rec.vpc_id, address, rec.at[:13], rec.name, key)
            answer = out.answers.get(answer_key)
            if answer is None:
                answer = out.answers[answer_key] = AnswerAggregate(*answer_key)
            answer.add(rec.at, task_arn)
        agg_key = (key, rec.name, rec.query_type)
        agg = out.aggregates.get(agg_key)
        if agg is None:
            agg = out.aggregates[agg_key] = Aggregate(
                key, workload, rec.name, rec.query_type, rec.account_id, rec.region
            )
        agg.add(rec)
    return out


# --------------------------------------------------------------------------- items


def _ttl_from(at: str, now: datetime) -> int:
    moment = datetime.fromisoformat(at.replace("Z", "+00:00")) if at else now
    return ttl_after(max(moment, now), DISCOVERY_TTL_DAYS)


def destination_update(agg: Aggregate, now: datetime) -> dict:
    """The UpdateItem of one destination: the count added, first_seen and the samples kept
    from the first batch, last_seen and the expiry moved on."""
    names = {"#c": "count", "#ttl": "ttl"}
    values: dict[str, Any] = {
        ":n": agg.count,
        ":fs": agg.first_seen,
        ":ls": agg.last_seen,
        ":name": agg.name,
        ":qt": agg.query_type,
        ":wk": agg.workload_key,
        ":w": agg.workload,
        ":ans": json.dumps(agg.answers, separators=(",", ":")),
        ":ttl": _ttl_from(agg.last_seen, now),
    }
    expression = (
        "ADD #c :n SET first_seen = if_not_exists(first_seen, :fs), last_seen = :ls, #ttl = :ttl, "
        "query_name = :name, query_type = :qt, workload_key = :wk, workload_name = :w, "
        "answers = if_not_exists(answers, :ans)"
    )
    late = (
        "ADD #c :n SET {first}#ttl = :ttl, query_name = :name, query_type = :qt, workload_key = :wk, "
        "workload_name = :w, answers = if_not_exists(answers, :ans)"
    )
    if not agg.attributed:
        values[":src"] = json.dumps(agg.sources, separators=(",", ":"))
        expression += ", sources = if_not_exists(sources, :src)"
        late += ", sources = if_not_exists(sources, :src)"
    return {
        "Update": {
            "Key": to_attributes(
                {"pk": discovery_pk(agg.workload_key), "sk": destination_sk(agg.name, agg.query_type)}
            ),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": to_attributes(values),
        }
    } | in_order(late)


def summary_update(workload_key: str, workload: str, aggregates: list[Aggregate], now: datetime) -> dict:
    """The UpdateItem of a workload's discovery summary (listed by the DISCOVERED index)."""
    first = min(a.first_seen for a in aggregates)
    last = max(a.last_seen for a in aggregates)
    account, region = aggregates[0].account_id, aggregates[0].region
    values = {
        ":q": sum(a.count for a in aggregates),
        ":fs": first,
        ":ls": last,
        ":w": workload,
        ":wk": workload_key,
        ":acct": account,
        ":region": region,
        ":g": DISCOVERED_GSI_PK,
        ":ttl": _ttl_from(last, now),
    }
    return {
        "Update": {
            "Key": to_attributes({"pk": discovery_pk(workload_key), "sk": SUMMARY_SK}),
            "UpdateExpression": (
                "ADD queries :q SET first_seen = if_not_exists(first_seen, :fs), last_seen = :ls, "
                "workload_name = :w, workload_key = :wk, account_id = :acct, #region = :region, "
                "gsi1pk = :g, gsi1sk = :wk, #ttl = :ttl"
            ),
            "ExpressionAttributeNames": {"#region": "region", "#ttl": "ttl"},
            "ExpressionAttributeValues": to_attributes(values),
        }
    } | in_order(
        "ADD queries :q SET {first}workload_name = :w, workload_key = :wk, account_id = :acct, "
        "#region = :region, gsi1pk = :g, gsi1sk = :wk, #ttl = :ttl"
    )


def answer_update(answer: AnswerAggregate, now: datetime) -> dict:
    """The UpdateItem of one (VPC, address, hour, name, source) answer item: first_seen
    the earliest answer and last_seen (with its task) the latest, whatever order batches
    arrive in (``stores.discovery.in_order``)."""
    values: dict[str, Any] = {
        ":fs": answer.first_seen,
        ":ls": answer.last_seen,
        ":name": answer.name,
        ":addr": answer.address,
        ":vpc": answer.vpc_id,
        ":wk": answer.workload_key,
        ":ttl": ttl_after(
            max(datetime.fromisoformat(answer.last_seen.replace("Z", "+00:00")), now), ANSWER_TTL_DAYS
        ),
    }
    task = "task_arn = :task" if answer.task_arn else ""
    if answer.task_arn:
        values[":task"] = answer.task_arn
    return {
        "Update": {
            "Key": to_attributes(
                {
                    "pk": answer_pk(answer.vpc_id, answer.address),
                    "sk": answer_sk(answer.hour, answer.name, answer.workload_key),
                }
            ),
            "UpdateExpression": (
                "SET first_seen = if_not_exists(first_seen, :fs), last_seen = :ls, query_name = :name, "
                "address = :addr, vpc_id = :vpc, workload_key = :wk, #ttl = :ttl"
                + (f", {task}" if task else " REMOVE task_arn")
            ),
            "ExpressionAttributeNames": {"#ttl": "ttl"},
            "ExpressionAttributeValues": to_attributes(values),
        }
    } | in_order(  # a batch older than the item: last_seen and its task stay the item's
        "SET {first}query_name = :name, address = :addr, vpc_id = :vpc, workload_key = :wk, #ttl = :ttl"
        + (", task_arn = if_not_exists(task_arn, :task)" if task else "")
    )


def flow_answers(
    answers_of: Callable[[str, str, str, str], list[dict]], lookback_seconds: int, now: datetime | None = None
) -> Callable[[Mapping[str, Any]], list[dict]]:
    """``answers(flow)`` for flow rows (``{"address", "vpc_id", "first_seen"}``): the
    address's answer items of the lookback window before the flow started, read through
    ``answers_of(vpc, address, since, until)`` (``DiscoveryStore.answers``: one Query per
    VPC, address and hour window, so the rows of one address on other ports or actions
    that started in the same hour share it; ``name_for`` then filters by the exact times).
    A flow without a VPC (recorded before the VPC was kept) or a start has none. ``now``:
    a flow that started ANSWER_TTL_DAYS before it has none either, without a read: the
    answers before it were delivered within hours and have expired since (a row named by
    one kept that name), so a destination a service calls for weeks is not read again on
    every batch."""
    read: dict[tuple[str, str, str, str], list[dict]] = {}
    oldest = (utc_second(now - timedelta(days=ANSWER_TTL_DAYS)) or "") if now is not None else ""

    def answers(flow: Mapping[str, Any]) -> list[dict]:
        vpc, address, started = flow.get("vpc_id"), flow.get("address"), flow.get("first_seen")
        if not vpc or not address or not started or kept_own(flow):  # its own kept name stands
            return []
        if str(started) < oldest:
            return []
        since = lookback_start(str(started), lookback_seconds)
        key = (str(vpc), str(address), since[:13], str(started)[:13])  # the Query's hour range
        if key not in read:
            read[key] = answers_of(str(vpc), str(address), since, str(started))
        return read[key]

    return answers


def flow_namer(
    answers_of: Callable[[str, str, str, str], list[dict]], workload_key: str, lookback_seconds: int
) -> Callable[[Mapping[str, Any]], str | None]:
    """``name_of(flow)`` for one workload's flow rows: the answers of :func:`flow_answers`
    named with ``core.egress.name_for`` (None: no answer named the address)."""
    answers = flow_answers(answers_of, lookback_seconds)

    def name_of(flow: Mapping[str, Any]) -> str | None:
        if kept_own(flow):
            return kept_name(flow)
        started = str(flow.get("first_seen") or "")
        return name_for(answers(flow), started, workload_key, lookback_seconds) or kept_name(flow)

    return name_of


def marker_put(
    batch: str, index: int, total: int, records: int, now: datetime, snapshot: str | None = None
) -> dict:
    item = {
        **marker_key(batch, index),
        "chunks": total,
        "records": records,
        "applied_at": utc_second(now),
        "attribution": snapshot,
        "ttl": ttl_after(now, BATCH_TTL_DAYS),
    }
    return {"Put": {"Item": to_attributes(item), "ConditionExpression": "attribute_not_exists(pk)"}}


def plan_chunks(aggregation: Aggregation, now: datetime, capacity: int = CHUNK_ACTIONS) -> list[list[dict]]:
    """The batch's updates (destinations sorted by workload, name and type, each
    workload's summary just before its first destination) cut into chunks of at most
    ``capacity`` actions. Deterministic: the same records and attribution give the same
    chunks, which is what lets a chunk marker stand for its chunk on redelivery."""
    by_workload: dict[str, list[Aggregate]] = {}
    for key in sorted(aggregation.aggregates):
        agg = aggregation.aggregates[key]
        by_workload.setdefault(agg.workload_key, []).append(agg)
    actions: list[dict] = []
    for workload_key, aggs in by_workload.items():
        actions.append(summary_update(workload_key, aggs[0].workload, aggs, now))
        actions += [destination_update(agg, now) for agg in aggs]
    actions += [answer_update(aggregation.answers[key], now) for key in sorted(aggregation.answers)]
    return [actions[start : start + capacity] for start in range(0, len(actions), capacity)]


def workload_parts(workload_key: str) -> dict:
    """``{"account_id", "region", "cluster_name", "group"}`` of a ``WL#...`` key (cluster
    and group None for the unattributed bucket)."""
    parts = workload_key.split("#")
    if parts[0] == "WL" and len(parts) == 5:
        account, region, cluster_name, group = keys.workload_parts(workload_key)
        return {"account_id": account, "region": region, "cluster_name": cluster_name, "group": group}
    if parts[0] == "UNATTRIBUTED" and len(parts) == 3:
        return {"account_id": parts[1], "region": parts[2], "cluster_name": None, "group": None}
    raise ValueError(f"not a discovery workload key: {workload_key!r}")


# --------------------------------------------------------------------------- writer


@dataclass
class WriteStats:
    chunks: int = 0
    written: int = 0  # chunks applied by this call
    skipped: int = 0  # chunks whose marker was there (an earlier delivery applied them)
    actions: int = 0  # item writes of the applied chunks (markers included)
    conflicts: int = 0


def write_batch(
    store: DiscoveryStore,
    batch: str,
    aggregation: Aggregation,
    records: int,
    now: datetime,
    snapshot: str | None,
    replan: Callable[[], Aggregation | None] | None = None,
    applied: Iterable[int] = (),
) -> tuple[WriteStats, Aggregation]:
    """Apply a batch's chunks in order, each once (markers), chunk 0 carrying the
    attribution snapshot. ``applied``: the chunks whose marker was read (skipped without a
    transaction). When chunk 0 turns out to be applied already (a concurrent delivery of
    the same batch won the race), ``replan()`` gives the aggregation under that
    delivery's attribution (None: keep ours) and the remaining chunks follow it.
    Returns the stats and the aggregation the chunks followed."""
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

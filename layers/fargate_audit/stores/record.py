"""The task history store: one table, single-table design (docs/design.md section 5).

Pure part (no boto3 call, no clock: ``now`` comes in): keys, item builders, the diff of
two audits and the plan of what one audit or one STOPPED event writes. Writer part: the
small :class:`Recorder` that takes the current item (read by the caller, or here), asks
the planner what to write and sends it through ``stores.table``, with optimistic
concurrency on the ``rev`` counter of the task's LATEST item.

Items (``pk`` / ``sk``):

- ``TASK#<task_arn>`` / ``LATEST``: posture (JSON), results (``{rule: status}`` JSON and
  the full result list as ``result_details`` JSON), digest, lifecycle RUNNING/STOPPED,
  task_version (ECS ``version``), observed_at, rev, the last cause, the dependency ids;
  ``gsi1pk`` = workload key / ``gsi1sk`` = task ARN while RUNNING (sparse index: the
  workload's running set); ``ttl`` 30 days once STOPPED.
- ``TASK#<task_arn>`` / ``HIST#<observed_at>#<rev>``: one change (at, cause, rules, facts);
  ``ttl`` 90 days.
- ``DEP#<resource_id>`` / ``TASK#<task_arn>``: which running task depends on a resource.
- ``IP#<vpc_id>#<address>`` / ``<from>#<task_arn>``: the IP-to-task index with time
  ranges (DNS query logs name a source address, not a task): the task's private IPv4
  address and each of its IPv6 addresses (compressed), all with the same range. ``from`` = the task's
  ``connectivityAt`` (its ENI is attached and resolving before ``startedAt``: image pulls),
  else its first observation; ``to`` = ``stoppedAt`` once the task is STOPPED. Written with
  the task's first RUNNING audit (LATEST keeps its key in ``ip_index``), closed by
  :meth:`Recorder.retire`; times are UTC seconds (``2025-06-02T08:14:03Z``), so a sort
  key orders ranges by start and :func:`range_at` finds the one holding a moment. An
  address reused by a later task is a new range, attributed to that task only.
- ``ENI#<eni id>`` / ``<from>#<task_arn>``: the ENI-to-task index, the same ranges keyed by
  the task's network interface (VPC flow logs name an ``interface-id``); it also holds the
  ENI's VPC, private IPv4 and IPv6 addresses (a flow record without ``flow-direction`` is
  egress when its source is one of them). Opened and closed with the IP index entry; LATEST
  keeps its key in ``eni_index``. A task recorded before this index existed gets its entry
  with its next audit.

Ordering rules (AWS delivers events at least once and unordered), all in
:func:`stale_reason`: a stored STOPPED is terminal; a higher stored ``task_version`` wins;
for equal versions (or when either is unknown) the newer ``observed_at`` wins; the same
ECS event delivered twice is a no-op.

- ``WORKLOADS#<account>#<region>`` / ``<workload key>``: the workloads a task was ever
  recorded in, by cluster, written with a task's first audit when findings are not
  published (they are what finds a workload whose tasks all stopped unseen; with findings
  published, their ACTIVE states are).

The finding state and the outbox (``WL#...`` / ``FINDING#...``, ``OUTBOX``) are the
findings package's (``findings.state``); the discovery items are ``stores.discovery``'s.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fargate_audit.core import facts as posture_facts
from fargate_audit.stores.keys import (
    workload_key,
    workload_parts,
)
from fargate_audit.stores.table import (
    GSI1,
    MAX_ITEM_BYTES,
    MAX_TRANSACT_ACTIONS,
    Cancelled,
    ItemTooLarge,
    RecordError,
    Table,
    iso,
    item_size,
    to_attributes,
    ttl_after,
    utc_second,
)
from fargate_audit.stores.table import dumps as _dumps
from fargate_audit.stores.table import iso_or_none as _iso_or_none
from fargate_audit.stores.table import key as _key
from fargate_audit.stores.table import loads as _loads

logger = logging.getLogger(__name__)

LATEST_SK = "LATEST"
RUNNING, STOPPED = "RUNNING", "STOPPED"

HISTORY_TTL_DAYS = 90
STOPPED_TTL_DAYS = 30
IP_INDEX_PREFIX = "IP#"
ENI_INDEX_PREFIX = "ENI#"

CAUSE_TYPES = ("ecs-event", "config-event", "sweep", "scan", "cli")
# Causes whose id names one delivery of one event: the same id twice is a duplicate.
_EVENT_CAUSES = frozenset({"ecs-event"})

CREATED, CHANGED, UNCHANGED, STALE = "created", "changed", "unchanged", "stale"
# record_audit / retire without ``stored``: LATEST is read first
UNREAD: Any = object()


# --------------------------------------------------------------------------- keys


def task_pk(task_arn: str) -> str:
    return f"TASK#{task_arn}"


def workloads_pk(account: str, region: str) -> str:
    return f"WORKLOADS#{account}#{region}"


def history_sk(observed_at: str, rev: int) -> str:
    """Sorts by observation time, then by rev (zero-padded) for equal times."""
    return f"HIST#{observed_at}#{rev:010d}"


def dependency_pk(resource_id: str) -> str:
    return f"DEP#{resource_id}"


def ip_pk(vpc_id: str, ip: str) -> str:
    return f"{IP_INDEX_PREFIX}{vpc_id}#{ip}"


def ip_sk(from_at: str, task_arn: str) -> str:
    return f"{from_at}#{task_arn}"


def eni_pk(eni_id: str) -> str:
    return f"{ENI_INDEX_PREFIX}{eni_id}"


# --------------------------------------------------------------------------- small helpers


def normalize_cause(cause: Mapping[str, Any]) -> dict:
    """``{"type", "id", "task_version", "event_time"}`` checked; unknown keys dropped."""
    kind = cause.get("type")
    if kind not in CAUSE_TYPES:
        raise ValueError(f"cause type {kind!r} is not one of {', '.join(CAUSE_TYPES)}")
    version = cause.get("task_version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise ValueError(f"cause task_version {version!r} is not an integer")
    return {
        "type": kind,
        "id": str(cause.get("id") or ""),
        "task_version": version,
        "event_time": _iso_or_none(cause.get("event_time")),
    }


def statuses(results: Mapping[str, str] | Iterable[Mapping[str, Any]] | None) -> dict[str, str]:
    """``{rule_id: status}`` from engine results (a list) or from such a mapping."""
    if results is None:
        return {}
    if isinstance(results, Mapping):
        return {str(rule): str(status) for rule, status in results.items()}
    return {str(r["rule_id"]): str(r["status"]) for r in results}


def _result_list(task_arn: str, results: Mapping[str, str] | Iterable[Mapping[str, Any]]) -> list[dict]:
    """The task's results as engine result dicts, sorted by rule id."""
    if isinstance(results, Mapping):
        listed = [{"task_arn": task_arn, "rule_id": rule, "status": st} for rule, st in results.items()]
    else:
        listed = [dict(r) for r in results]
    for result in listed:
        if result.get("task_arn") != task_arn:
            raise ValueError(
                f"result {result.get('rule_id')} is for {result.get('task_arn')}, not {task_arn}"
            )
    return sorted(listed, key=lambda r: str(r["rule_id"]))


def audit_digest(posture: Mapping[str, Any], results: list[dict]) -> str:
    """sha256 over the posture and the full results (evidence included)."""
    return hashlib.sha256(_dumps({"posture": posture, "results": results}).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- dependencies and diff


def dependencies(posture: Mapping[str, Any] | None) -> list[str]:
    """Sorted ids of the resources whose change can change this task's posture: ENI,
    subnet, VPC, security groups, route table, NACL, the egress targets followed (NAT
    gateway, gateway load balancer endpoint, internet/transit gateway, ...) and the VPC
    endpoints (each fact's ``depends_on`` in core/facts.py)."""
    return posture_facts.dependencies(posture)


# The curated facts a history entry tracks: (path, extractor over a posture), each
# declared with its posture fact in core/facts.py.
FACT_PATHS = posture_facts.HISTORY_PATHS


def diff(
    before_posture: Mapping[str, Any] | None,
    before_results: Mapping[str, str] | Iterable[Mapping[str, Any]] | None,
    after_posture: Mapping[str, Any] | None,
    after_results: Mapping[str, str] | Iterable[Mapping[str, Any]] | None,
) -> dict:
    """``{"rules": {rule_id: [before, after]}, "facts": [{"path", "before", "after"}]}``:
    only what changed. A missing side (the first audit; a stopped task) is ``None``."""
    old, new = statuses(before_results), statuses(after_results)
    rules = {
        rule: [old.get(rule), new.get(rule)]
        for rule in sorted(set(old) | set(new))
        if old.get(rule) != new.get(rule)
    }
    facts = []
    for path, extract in FACT_PATHS:
        before = extract(before_posture) if before_posture is not None else None
        after = extract(after_posture) if after_posture is not None else None
        if before != after:
            facts.append({"path": path, "before": before, "after": after})
    return {"rules": rules, "facts": facts}


# --------------------------------------------------------------------------- task items (pure)


def decode_latest(item: Mapping[str, Any] | None) -> dict | None:
    """A decoded LATEST item (plain values) -> the recorder's view of it."""
    if not item:
        return None
    return {
        "task_arn": item.get("task_arn"),
        "workload_key": item.get("workload"),
        "lifecycle": item.get("lifecycle"),
        "posture": _loads(item.get("posture")),
        "statuses": _loads(item.get("results"), {}),
        "results": _loads(item.get("result_details"), []),
        "digest": item.get("digest"),
        "task_version": item.get("task_version"),
        "observed_at": item.get("observed_at"),
        "stopped_at": item.get("stopped_at"),
        "rev": item.get("rev", 0),
        "cause": _loads(item.get("cause")),
        "deps": _loads(item.get("deps"), []),
        "ip_index": _loads(item.get("ip_index")),
        "eni_index": _loads(item.get("eni_index")),
    }


def latest_item(
    posture: Mapping[str, Any],
    results: list[dict],
    *,
    digest: str,
    cause: Mapping[str, Any],
    task_version: int | None,
    observed_at: str,
    rev: int,
    deps: list[str],
    ip_index: Mapping[str, str] | None = None,
    eni_index: Mapping[str, str] | None = None,
) -> dict:
    """The LATEST item of a RUNNING task (in the workload's running set via gsi1).
    ``ip_index`` / ``eni_index``: the keys (``{"pk", "sk"}``) of its IP and ENI index
    entries, once written."""
    key = workload_key(posture)
    item = {
        **_key(task_pk(posture["task_arn"]), LATEST_SK),
        "task_arn": posture["task_arn"],
        "workload": key,
        "lifecycle": RUNNING,
        "posture": _dumps(posture),
        "results": _dumps(statuses(results)),
        "result_details": _dumps(results),
        "digest": digest,
        "task_version": task_version,
        "observed_at": observed_at,
        "rev": rev,
        "cause": _dumps(cause),
        "deps": _dumps(deps),
        "ip_index": _dumps(dict(ip_index)) if ip_index else None,
        "eni_index": _dumps(dict(eni_index)) if eni_index else None,
        "gsi1pk": key,
        "gsi1sk": posture["task_arn"],
    }
    size = item_size(item)
    if size > MAX_ITEM_BYTES:
        raise ItemTooLarge(f"{posture['task_arn']}: LATEST item of {size} bytes exceeds {MAX_ITEM_BYTES}")
    return item


def history_item(
    task_arn: str, observed_at: str, rev: int, cause: Mapping, change: Mapping, key: str | None, now: datetime
) -> dict:
    item = {
        **_key(task_pk(task_arn), history_sk(observed_at, rev)),
        "task_arn": task_arn,
        "workload": key,
        "at": observed_at,
        "cause": _dumps(cause),
        "rules": _dumps(change["rules"]),
        "facts": _dumps(change["facts"]),
        "ttl": ttl_after(now, HISTORY_TTL_DAYS),
    }
    if item_size(item) > MAX_ITEM_BYTES:  # before and after of every fact: drop the values
        facts = [
            {"path": f["path"], "before": "(too large)", "after": "(too large)"} for f in change["facts"]
        ]
        item["facts"] = _dumps(facts)
    return item


def decode_history(item: Mapping[str, Any]) -> dict:
    """interface.md ``history`` entry: ``{"at", "cause", "rules", "facts"}``."""
    return {
        "at": item.get("at"),
        "cause": _loads(item.get("cause")),
        "rules": _loads(item.get("rules"), {}),
        "facts": _loads(item.get("facts"), []),
    }


def dependency_item(resource_id: str, task_arn: str, key: str | None) -> dict:
    return {
        **_key(dependency_pk(resource_id), task_pk(task_arn)),
        "resource_id": resource_id,
        "task_arn": task_arn,
        "workload": key,
    }


def ip_index_item(
    posture: Mapping[str, Any],
    from_at: str,
    to_at: str | None = None,
    now: datetime | None = None,
    ip: str | None = None,
) -> dict:
    """The IP index entry of a task: its private IPv4 address (or ``ip``, one of its IPv6
    addresses) in its VPC from ``from_at`` (to ``to_at`` once stopped; then it expires
    like the task's other items)."""
    network = posture.get("network") or {}
    vpc_id, task_arn = network["vpc_id"], posture["task_arn"]
    ip = ip or network["private_ip"]
    return {
        **_key(ip_pk(vpc_id, ip), ip_sk(from_at, task_arn)),
        "task_arn": task_arn,
        "workload": workload_key(posture),
        "workload_name": posture.get("workload"),
        "vpc_id": vpc_id,
        "ip": ip,
        "from": from_at,
        "to": to_at,
        "task_definition_arn": posture.get("task_definition_arn"),
        "ttl": ttl_after(now, STOPPED_TTL_DAYS) if to_at and now is not None else None,
    }


def ipv6_index_addresses(posture: Mapping[str, Any]) -> list[str]:
    """The task's IPv6 addresses as Resolver query logs write a source (compressed)."""
    found = []
    for address in (posture.get("network") or {}).get("ipv6_addresses") or []:
        try:
            found.append(str(ipaddress.ip_address(str(address).strip())))
        except ValueError:
            continue
    return sorted(set(found))


def _ip_index_put(
    stored: Mapping[str, Any] | None, posture: Mapping[str, Any], observed_at: str
) -> tuple[dict | None, list[dict]]:
    """The IP index entries an audit writes, (IPv4, [IPv6, ...]): only at the task's first
    audit (or the first since this index existed) that knows its VPC and an address. A
    Resolver query from any of its addresses is then the task's (an IPv6-only task's too)."""
    network = posture.get("network") or {}
    ipv6 = ipv6_index_addresses(posture)
    if (stored or {}).get("ip_index") or not network.get("vpc_id") or not (network.get("private_ip") or ipv6):
        return None, []
    from_at = utc_second(posture.get("connectivity_at")) or utc_second(observed_at)
    ipv4 = ip_index_item(posture, from_at) if network.get("private_ip") else None
    return ipv4, [ip_index_item(posture, from_at, ip=address) for address in ipv6]


def eni_index_item(
    posture: Mapping[str, Any], from_at: str, to_at: str | None = None, now: datetime | None = None
) -> dict:
    """The ENI index entry of a task: its network interface from ``from_at`` (to ``to_at``
    once stopped; then it expires like the task's other items), with the ENI's VPC and
    addresses."""
    network = posture.get("network") or {}
    eni_id, task_arn = network["eni_id"], posture["task_arn"]
    return {
        **_key(eni_pk(eni_id), ip_sk(from_at, task_arn)),
        "task_arn": task_arn,
        "workload": workload_key(posture),
        "workload_name": posture.get("workload"),
        "eni_id": eni_id,
        "vpc_id": network.get("vpc_id"),
        "ip": network.get("private_ip"),
        "ipv6": _dumps(sorted(network.get("ipv6_addresses") or [])),
        "from": from_at,
        "to": to_at,
        "task_definition_arn": posture.get("task_definition_arn"),
        "ttl": ttl_after(now, STOPPED_TTL_DAYS) if to_at and now is not None else None,
    }


def _eni_index_put(
    stored: Mapping[str, Any] | None, posture: Mapping[str, Any], observed_at: str
) -> dict | None:
    """The ENI index entry an audit writes: only the task's first one (or the first since
    this index existed) that knows its ENI."""
    network = posture.get("network") or {}
    if (stored or {}).get("eni_index") or not network.get("eni_id"):
        return None
    from_at = utc_second(posture.get("connectivity_at")) or utc_second(observed_at)
    return eni_index_item(posture, from_at)


def decode_eni_range(item: Mapping[str, Any]) -> dict:
    """An ENI index entry: ``{"task_arn", "workload_key", "workload", "eni_id", "vpc_id",
    "ip", "ipv6", "from", "to", "task_definition_arn"}`` (``to`` None while the task runs)."""
    return {
        "task_arn": item.get("task_arn"),
        "workload_key": item.get("workload"),
        "workload": item.get("workload_name"),
        "eni_id": item.get("eni_id"),
        "vpc_id": item.get("vpc_id"),
        "ip": item.get("ip"),
        "ipv6": _loads(item.get("ipv6"), []),
        "from": item.get("from"),
        "to": item.get("to"),
        "task_definition_arn": item.get("task_definition_arn"),
    }


def decode_ip_range(item: Mapping[str, Any]) -> dict:
    """An IP index entry: ``{"task_arn", "workload_key", "workload", "vpc_id", "ip", "from",
    "to", "task_definition_arn"}`` (``to`` None while the task runs)."""
    return {
        "task_arn": item.get("task_arn"),
        "workload_key": item.get("workload"),
        "workload": item.get("workload_name"),
        "vpc_id": item.get("vpc_id"),
        "ip": item.get("ip"),
        "from": item.get("from"),
        "to": item.get("to"),
        "task_definition_arn": item.get("task_definition_arn"),
    }


def range_at(ranges: Iterable[Mapping[str, Any]], moment: str) -> Mapping[str, Any] | None:
    """The range holding ``moment`` (UTC seconds text): the latest to start at or before it,
    if it had not ended before it; None when the address belonged to no known task then."""
    best = None
    for entry in ranges:
        if entry.get("from") and entry["from"] <= moment and (best is None or entry["from"] > best["from"]):
            best = entry
    if best is None or (best.get("to") and best["to"] < moment):
        return None
    return best


@dataclass(frozen=True)
class WritePlan:
    """What one audit or STOPPED event writes. ``expected_rev`` None: LATEST must not
    exist yet; else its ``rev`` must still be this (optimistic concurrency)."""

    status: str
    task_arn: str
    workload_key: str | None
    reason: str | None = None
    expected_rev: int | None = None
    latest: dict | None = None
    history: dict | None = None
    dep_puts: list[dict] = field(default_factory=list)
    dep_deletes: list[dict] = field(default_factory=list)
    change: dict | None = None
    ip_index: dict | None = None  # the IP index entry to put (opened, or closed on stop)
    ip6_index: list[dict] = field(default_factory=list)  # those of its IPv6 addresses
    eni_index: dict | None = None  # the ENI index entry to put (opened, or closed on stop)
    moved_from: str | None = None  # the workload the task was recorded in before, when another

    @property
    def writes(self) -> list[tuple[str, dict]]:
        """(``"put"``|``"delete"``, item or key) in transaction order: LATEST first."""
        actions: list[tuple[str, dict]] = []
        if self.latest is not None:
            actions.append(("put", self.latest))
        if self.history is not None:
            actions.append(("put", self.history))
        if self.ip_index is not None:
            actions.append(("put", self.ip_index))
        actions += [("put", item) for item in self.ip6_index]
        if self.eni_index is not None:
            actions.append(("put", self.eni_index))
        actions += [("put", item) for item in self.dep_puts]
        actions += [("delete", key) for key in self.dep_deletes]
        return actions


def stale_reason(stored: Mapping[str, Any] | None, cause: Mapping[str, Any], observed_at: str) -> str | None:
    """Why an audit observed at ``observed_at`` for ``cause`` must not overwrite ``stored``
    (decoded LATEST), or None when it may."""
    if stored is None:
        return None
    if stored.get("lifecycle") == STOPPED:
        return "task already recorded STOPPED"
    stored_version, version = stored.get("task_version"), cause.get("task_version")
    stored_at = stored.get("observed_at") or ""
    if stored_version is not None and version is not None:
        if stored_version > version:
            return f"task version {version} is older than the recorded {stored_version}"
        if stored_version < version:
            return None
        previous = stored.get("cause") or {}
        if (
            cause.get("type") in _EVENT_CAUSES
            and cause.get("id")
            and (previous.get("type"), previous.get("id")) == (cause.get("type"), cause.get("id"))
        ):
            return f"duplicate delivery of event {cause['id']}"
        if cause.get("type") == "ecs-event":
            # a task event tells the task's own state, which this version already recorded
            # (e.g. a Config or sweep re-audit read it since, with fresher facts than this
            # container's cache): auditing it again could only move the posture back
            return f"task version {version} already audited ({previous.get('type') or 'unknown cause'})"
    if stored_at > observed_at:
        return f"observed at {observed_at}, before the recorded {stored_at}"
    return None


def plan_audit(
    stored: Mapping[str, Any] | None,
    posture: Mapping[str, Any],
    results: Mapping[str, str] | Iterable[Mapping[str, Any]],
    cause: Mapping[str, Any],
    now: datetime,
) -> WritePlan:
    """What recording this audit writes, given the stored LATEST (decoded, or None)."""
    task_arn = posture["task_arn"]
    key = workload_key(posture)
    cause = normalize_cause(cause)
    observed_at = iso(now)
    reason = stale_reason(stored, cause, observed_at)
    if reason:
        return WritePlan(STALE, task_arn, (stored or {}).get("workload_key") or key, reason=reason)

    # a newer task version observed a moment before the recorded audit (concurrent
    # invocations) still moves time forward, so history stays in write order
    observed_at = max(observed_at, (stored or {}).get("observed_at") or "")
    listed = _result_list(task_arn, results)
    digest = audit_digest(posture, listed)
    deps = dependencies(posture)
    version = cause["task_version"]
    if version is None and stored is not None:
        version = stored.get("task_version")
    rev = (stored or {}).get("rev", 0) + 1
    expected = stored.get("rev") if stored is not None else None
    # recorded in another workload before (a custom group, named by its family's since): the
    # index entries are written again under this one, the caller retires it from the old
    moved_from = (stored or {}).get("workload_key")
    moved_from = moved_from if moved_from and moved_from != key else None
    indexed = None if moved_from else stored
    ip_put, ip6_puts = _ip_index_put(indexed, posture, observed_at)
    first_put = ip_put or (ip6_puts[0] if ip6_puts else None)
    ip_ref = _key(first_put["pk"], first_put["sk"]) if first_put else (stored or {}).get("ip_index")
    eni_put = _eni_index_put(indexed, posture, observed_at)
    eni_ref = _key(eni_put["pk"], eni_put["sk"]) if eni_put else (stored or {}).get("eni_index")
    latest = latest_item(
        posture,
        listed,
        digest=digest,
        cause=cause,
        task_version=version,
        observed_at=observed_at,
        rev=rev,
        deps=deps,
        ip_index=ip_ref,
        eni_index=eni_ref,
    )
    if stored is not None and stored.get("digest") == digest and not moved_from:
        return WritePlan(
            UNCHANGED,
            task_arn,
            key,
            expected_rev=expected,
            latest=latest,
            ip_index=ip_put,
            ip6_index=ip6_puts,
            eni_index=eni_put,
        )

    change = diff(
        stored.get("posture") if stored else None, stored.get("statuses") if stored else None, posture, listed
    )
    history = None
    if stored is None or change["rules"] or change["facts"]:
        history = history_item(task_arn, observed_at, rev, cause, change, key, now)
    before = set((stored or {}).get("deps") or [])
    return WritePlan(
        CREATED if stored is None else CHANGED,
        task_arn,
        key,
        expected_rev=expected,
        latest=latest,
        history=history,
        dep_puts=[dependency_item(r, task_arn, key) for r in deps if r not in before],
        dep_deletes=[_key(dependency_pk(r), task_pk(task_arn)) for r in sorted(before - set(deps))],
        change=change,
        ip_index=ip_put,
        ip6_index=ip6_puts,
        eni_index=eni_put,
        moved_from=moved_from,
    )


def plan_stop(
    stored: Mapping[str, Any] | None,
    task_arn: str,
    task_version: int | None,
    stopped_at: Any,
    cause: Mapping[str, Any],
    now: datetime,
    key: str | None = None,
) -> WritePlan:
    """What a STOPPED event writes. STOPPED is terminal: it applies whatever the version
    order, a second one is a no-op, and one arriving before any audit leaves a tombstone
    (so a late RUNNING is stale)."""
    cause = normalize_cause(cause)
    observed_at = iso(now)
    ttl = ttl_after(now, STOPPED_TTL_DAYS)
    if stored is not None and stored.get("lifecycle") == STOPPED:
        return WritePlan(
            STALE, task_arn, stored.get("workload_key") or key, reason="task already recorded STOPPED"
        )
    if stored is None:
        tombstone = {
            **_key(task_pk(task_arn), LATEST_SK),
            "task_arn": task_arn,
            "workload": key,
            "lifecycle": STOPPED,
            "task_version": task_version,
            "observed_at": observed_at,
            "stopped_at": _iso_or_none(stopped_at),
            "rev": 1,
            "cause": _dumps(cause),
            "deps": _dumps([]),
            "ttl": ttl,
        }
        return WritePlan(CREATED, task_arn, key, latest=tombstone)

    key = stored.get("workload_key") or key
    versions = [v for v in (stored.get("task_version"), task_version) if v is not None]
    rev = stored.get("rev", 0) + 1
    posture = stored.get("posture")
    latest = {
        **_key(task_pk(task_arn), LATEST_SK),
        "task_arn": task_arn,
        "workload": key,
        "lifecycle": STOPPED,
        "posture": _dumps(posture) if posture is not None else None,
        "results": _dumps(stored.get("statuses") or {}),
        "result_details": _dumps(stored.get("results") or []),
        "digest": stored.get("digest"),
        "task_version": max(versions) if versions else None,
        "observed_at": max(observed_at, stored.get("observed_at") or ""),
        "stopped_at": _iso_or_none(stopped_at),
        "rev": rev,
        "cause": _dumps(cause),
        "deps": _dumps([]),
        "ip_index": _dumps(stored["ip_index"]) if stored.get("ip_index") else None,
        "eni_index": _dumps(stored["eni_index"]) if stored.get("eni_index") else None,
        "ttl": ttl,
    }
    ip_closed, ip6_closed = None, []
    if stored.get("ip_index") and posture is not None:  # the addresses are free from now on
        from_at = str(stored["ip_index"]["sk"]).split("#", 1)[0]
        to_at = max(utc_second(stopped_at) or utc_second(latest["observed_at"]), from_at)
        if (posture.get("network") or {}).get("private_ip"):
            ip_closed = ip_index_item(posture, from_at, to_at, now)
        ip6_closed = [
            ip_index_item(posture, from_at, to_at, now, ip=a) for a in ipv6_index_addresses(posture)
        ]
    eni_closed = None
    if stored.get("eni_index") and posture is not None:  # the ENI is released from now on
        from_at = str(stored["eni_index"]["sk"]).split("#", 1)[0]
        to_at = utc_second(stopped_at) or utc_second(latest["observed_at"])
        eni_closed = eni_index_item(posture, from_at, max(to_at, from_at), now)
    change = diff(None, stored.get("statuses"), None, None)
    change["facts"] = [{"path": "lifecycle", "before": RUNNING, "after": STOPPED}]
    history = history_item(task_arn, latest["observed_at"], rev, cause, change, key, now)
    return WritePlan(
        CHANGED,
        task_arn,
        key,
        expected_rev=stored.get("rev"),
        latest=latest,
        history=history,
        dep_deletes=[_key(dependency_pk(r), task_pk(task_arn)) for r in stored.get("deps") or []],
        change=change,
        ip_index=ip_closed,
        ip6_index=ip6_closed,
        eni_index=eni_closed,
    )


# --------------------------------------------------------------------------- writer


@dataclass(frozen=True)
class RecordOutcome:
    """``status``: created | changed | unchanged | stale. ``writes``: items written."""

    status: str
    task_arn: str
    workload_key: str | None
    reason: str | None = None
    rev: int | None = None
    history_written: bool = False
    rules: dict = field(default_factory=dict)
    facts: list = field(default_factory=list)
    deps_added: list[str] = field(default_factory=list)
    deps_removed: list[str] = field(default_factory=list)
    moved_from: str | None = None  # the workload the task was recorded in before (WritePlan)
    writes: int = 0
    attempts: int = 1

    @property
    def changed(self) -> bool:
        """True when the task's recorded posture or results changed (findings may too)."""
        return self.status in (CREATED, CHANGED)


class _Conflict(Exception):
    """LATEST changed between our read and our write."""


class Recorder:
    """The task history writer and reader, on the one table (:class:`Table`).

    ``max_attempts`` bounds the optimistic-concurrency retries of one audit or stop; the
    table's ``backoff`` spaces them (its ``sleep`` is replaceable in tests).
    """

    def __init__(self, table: Table, *, max_attempts: int = 5) -> None:
        self.table = table
        self.max_attempts = max_attempts

    @property
    def table_name(self) -> str:
        return self.table.name

    @property
    def sleep(self) -> Callable[[float], None]:
        return self.table.sleep

    @sleep.setter
    def sleep(self, sleep: Callable[[float], None]) -> None:
        self.table.sleep = sleep

    # ---------------------------------------------------------------- task lifecycle

    def record_audit(
        self,
        posture: Mapping[str, Any],
        results: Mapping[str, str] | Iterable[Mapping[str, Any]],
        cause: Mapping[str, Any],
        now: datetime,
        stored: Mapping[str, Any] | None = UNREAD,
    ) -> RecordOutcome:
        """Record one audit of one task (results: the engine's results for this task).
        ``stored``: the task's LATEST (decoded; None: there is none) when the caller has
        just read it; the first attempt plans on it, and LATEST is read again only after
        a concurrent write. Omitted: read here."""
        results = list(results) if not isinstance(results, Mapping) else results
        return self._run(
            posture["task_arn"], lambda before: plan_audit(before, posture, results, cause, now), stored
        )

    def retire(
        self,
        task_arn: str,
        task_version: int | None,
        stopped_at: Any,
        cause: Mapping[str, Any],
        now: datetime,
        workload_key: str | None = None,
        stored: Mapping[str, Any] | None = UNREAD,
    ) -> RecordOutcome:
        """Record that a task stopped. The outcome's ``workload_key`` is the stored one, else
        the ``workload_key`` given (e.g. from :func:`workload_key_from_cluster_arn`);
        ``stale`` when the task is already recorded STOPPED (a redelivered page, a STOPPED
        event handled in between). ``stored``: as for :meth:`record_audit`."""
        return self._run(
            task_arn,
            lambda before: plan_stop(before, task_arn, task_version, stopped_at, cause, now, workload_key),
            stored,
        )

    def _run(
        self, task_arn: str, planner: Callable[[dict | None], WritePlan], stored: Any = UNREAD
    ) -> RecordOutcome:
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1 or stored is UNREAD:
                stored = self.latest(task_arn)
            plan = planner(stored)
            if plan.status == STALE:
                logger.debug("stale: %s: %s", task_arn, plan.reason)
                return RecordOutcome(STALE, task_arn, plan.workload_key, reason=plan.reason, attempts=attempt)
            try:
                written = self._apply(plan)
            except _Conflict:
                logger.info("concurrent write on %s (attempt %d of %d)", task_arn, attempt, self.max_attempts)
                self.table.backoff(attempt)
                continue
            change = plan.change or {}
            return RecordOutcome(
                plan.status,
                task_arn,
                plan.workload_key,
                rev=plan.latest["rev"],
                history_written=plan.history is not None,
                rules=change.get("rules", {}),
                facts=change.get("facts", []),
                deps_added=[i["resource_id"] for i in plan.dep_puts],
                deps_removed=[k["pk"].split("#", 1)[1] for k in plan.dep_deletes],
                moved_from=plan.moved_from,
                writes=written,
                attempts=attempt,
            )
        raise RecordError(f"{task_arn}: LATEST kept changing under {self.max_attempts} attempts to record")

    def _condition(self, plan: WritePlan) -> dict:
        if plan.expected_rev is None:
            return {"ConditionExpression": "attribute_not_exists(pk)"}
        return {
            "ConditionExpression": "attribute_not_exists(pk) OR rev = :rev",
            "ExpressionAttributeValues": {":rev": {"N": str(plan.expected_rev)}},
        }

    def _apply(self, plan: WritePlan) -> int:
        actions = plan.writes
        if len(actions) == 1:
            if not self.table.put(plan.latest, **self._condition(plan)):
                raise _Conflict
            return 1
        in_transaction, overflow = actions[:MAX_TRANSACT_ACTIONS], actions[MAX_TRANSACT_ACTIONS:]
        # dependency index entries past the transaction limit. The puts go first: once
        # LATEST names a dependency, a retry plans no put for it, so a put lost after the
        # commit would be lost for good; one written before a commit that then fails is an
        # extra index entry (at worst a needless re-audit). A delete lost after the commit
        # is the same kind of extra entry.
        self._batch(overflow, "put")
        items = []
        for index, (kind, value) in enumerate(in_transaction):
            if kind == "put":
                put = {"Item": to_attributes(value)}
                if index == 0:
                    put.update(self._condition(plan))
                items.append({"Put": put})
            else:
                items.append({"Delete": {"Key": to_attributes(value)}})
        try:
            self.table.transact(items)
        except Cancelled as exc:
            if set(exc.reasons) & {"ConditionalCheckFailed", "TransactionConflict"}:
                raise _Conflict from exc
            raise exc.cause from None
        self._batch(overflow, "delete")
        return len(actions)

    def _batch(self, actions: list[tuple[str, dict]], kind: str) -> None:
        """The ``kind`` (put or delete) actions of ``actions`` in BatchWriteItem calls."""
        chosen = [value for what, value in actions if what == kind]
        if not chosen:
            return
        if kind == "put":
            self.table.batch_write([{"PutRequest": {"Item": to_attributes(v)}} for v in chosen])
        else:
            self.table.batch_write([{"DeleteRequest": {"Key": to_attributes(v)}} for v in chosen])

    # ---------------------------------------------------------------- facts changed

    def mark_facts_changed(self, region: str, now: datetime) -> None:
        """A Config change of a network resource in ``region`` was handled at ``now``: a task
        audited for the first time after it, in any account (a shared VPC's resources are
        its owner's, its tasks the participants'), reads no VPC fact cached before it
        (:meth:`facts_changed_at`). Only moves forward (concurrent events)."""
        at = iso(now)
        self.table.put(
            {"pk": f"FACTSCHANGED#{region}", "sk": "AT", "at": at, "ttl": ttl_after(now, 1)},
            ConditionExpression="attribute_not_exists(pk) OR #at < :at",
            ExpressionAttributeNames={"#at": "at"},
            ExpressionAttributeValues={":at": {"S": at}},
        )

    def facts_changed_at(self, region: str) -> str | None:
        """When a Config change in the region was last handled (ISO), or None."""
        item = self.table.get({"pk": f"FACTSCHANGED#{region}", "sk": "AT"})
        return str(item["at"]) if item and item.get("at") else None

    # ---------------------------------------------------------------- task reads

    def latest(self, task_arn: str) -> dict | None:
        """The task's LATEST item, decoded (strongly consistent read), or None."""
        item = self.table.get(_key(task_pk(task_arn), LATEST_SK))
        return decode_latest(item) if item else None

    def running_tasks(self, workload_key: str) -> list[dict]:
        """``[{"task_arn", "posture", "results"}]`` of the workload's RUNNING tasks (gsi1,
        eventually consistent), by task ARN. ``results``: the engine's result dicts."""
        items = self.table.query(
            IndexName=GSI1,
            KeyConditionExpression="gsi1pk = :pk",
            ExpressionAttributeValues={":pk": {"S": workload_key}},
        )
        tasks = []
        for item in items:
            latest = decode_latest(item)
            if latest["lifecycle"] == RUNNING and latest["posture"] is not None:
                tasks.append(
                    {
                        "task_arn": latest["task_arn"],
                        "posture": latest["posture"],
                        "results": latest["results"],
                    }
                )
        return sorted(tasks, key=lambda t: t["task_arn"])

    def running_task_arns(self, workload_key: str) -> list[str]:
        """The ARNs of the workload's RUNNING tasks (the Query of :meth:`running_tasks`,
        projected to the ARN and lifecycle: no posture is transferred or decoded), sorted."""
        items = self.table.query(
            IndexName=GSI1,
            KeyConditionExpression="gsi1pk = :pk",
            ExpressionAttributeValues={":pk": {"S": workload_key}},
            ProjectionExpression="task_arn, #lifecycle",
            ExpressionAttributeNames={"#lifecycle": "lifecycle"},
        )
        return sorted(item["task_arn"] for item in items if item.get("lifecycle") == RUNNING)

    def register_workload(self, workload: str) -> None:
        """Note that a task was recorded in ``workload`` (its cluster's registry entry; one
        PutItem, idempotent)."""
        account, region, cluster_name, _ = workload_parts(workload)
        self.table.put({"pk": workloads_pk(account, region), "sk": workload, "cluster_name": cluster_name})

    def registered_workloads(self, account: str, region: str) -> dict[str, list[str]]:
        """{cluster name: workload keys} of :meth:`register_workload` in one account and
        region (one Query, keys only)."""
        items = self.table.query(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": workloads_pk(account, region)}},
        )
        found: dict[str, list[str]] = {}
        for item in items:
            found.setdefault(item["cluster_name"], []).append(item["sk"])
        return found

    def workloads_of(self, task_arns: list[str]) -> list[str]:
        """The workload keys recorded for the tasks (their LATEST items, BatchGetItem of 100
        projected to the key; a task never recorded has none), each once."""
        items = self.table.batch_get(
            [_key(task_pk(arn), LATEST_SK) for arn in task_arns],
            projection="#workload",
            names={"#workload": "workload"},
        )
        return sorted({item["workload"] for item in items if item.get("workload")})

    def tasks_for_resource(self, resource_id: str) -> list[str]:
        """ARNs of the running tasks recorded as depending on ``resource_id``."""
        items = self.table.query(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": dependency_pk(resource_id)}},
        )
        return sorted(item["task_arn"] for item in items)

    def ip_ranges(self, vpc_id: str, ip: str, until: str, since: str | None = None) -> list[dict]:
        """The IP index ranges of an address that may hold a moment in ``[since, until]``
        (UTC seconds text): newest first, down to the first one starting at or before
        ``since`` (``until`` when None). Strongly consistent; usually one small read."""
        since = since or until
        ranges: list[dict] = []
        for item in self.table.query_iter(
            KeyConditionExpression="pk = :pk AND sk <= :upper",
            ExpressionAttributeValues={
                ":pk": {"S": ip_pk(vpc_id, ip)},
                ":upper": {"S": f"{until}#~"},  # "~" sorts after every task ARN character
            },
            ScanIndexForward=False,
            ConsistentRead=True,
            Limit=10,
        ):
            entry = decode_ip_range(item)
            ranges.append(entry)
            if entry["from"] and entry["from"] <= since:
                break
        return ranges

    def eni_ranges(self, eni_id: str, until: str, since: str | None = None) -> list[dict]:
        """The ENI index ranges of a network interface that may hold a moment in ``[since,
        until]`` (as :meth:`ip_ranges`): newest first, down to the first one starting at or
        before ``since``. Strongly consistent; usually one small read."""
        since = since or until
        ranges: list[dict] = []
        for item in self.table.query_iter(
            KeyConditionExpression="pk = :pk AND sk <= :upper",
            ExpressionAttributeValues={
                ":pk": {"S": eni_pk(eni_id)},
                ":upper": {"S": f"{until}#~"},
            },
            ScanIndexForward=False,
            ConsistentRead=True,
            Limit=10,
        ):
            entry = decode_eni_range(item)
            ranges.append(entry)
            if entry["from"] and entry["from"] <= since:
                break
        return ranges

    def history(self, task_arn: str) -> list[dict]:
        """The task's recorded changes, oldest first (interface.md ``history``)."""
        items = self.table.query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :hist)",
            ExpressionAttributeValues={":pk": {"S": task_pk(task_arn)}, ":hist": {"S": "HIST#"}},
            ConsistentRead=True,
        )
        return [decode_history(item) for item in items]

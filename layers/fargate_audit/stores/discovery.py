"""The egress discovery store (the ``dns_logs`` function's items, app/dnslogs.py), on the
one table through ``stores.table``.

Items (``pk`` / ``sk``):

- ``DISC#<workload key>`` / ``DEST#<name>#<query type>``: one destination of a workload.
- ``DISC#<workload key>`` / ``SUMMARY``: the workload's discovery summary; ``gsi1pk``
  ``DISCOVERED`` lists every workload with discoveries (``fargate-audit discovered``).
- ``DNSBATCH#<batch id>`` / ``CHUNK#<i>``: the marker of one applied chunk of a batch.
- ``DISC#<workload key>`` / ``FLOW#<address>#<protocol>#<port>#<action>``: one internet
  destination of a workload seen in VPC flow logs (packets, bytes out, flows); once a DNS
  answer named its first flow, ``named`` (the name), ``named_first_seen`` (that
  first_seen) and ``named_own`` (the workload's own answer gave it), so the name outlives
  the answers (kept 8 days) while the row lives.
- ``FLOWBATCH#<batch id>`` / ``CHUNK#<i>``: the marker of one applied chunk of a flow batch.
- ``ANSWER#<vpc>#<address>`` / ``AT#<hour>#<name>#<workload key>``: DNS answers that named
  an address in a VPC, per UTC hour, name and source workload (``answers``).

What goes in them (aggregation, chunks, markers) is planned in ``app.dnslogs`` and
``app.flowlogs``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fargate_audit.core.errors import FargateAuditError
from fargate_audit.stores.table import GSI1, Cancelled, Table, to_attributes

DISCOVERED_GSI_PK = "DISCOVERED"
SUMMARY_SK = "SUMMARY"
DNS_BATCH_PREFIX = "DNSBATCH"
FLOW_BATCH_PREFIX = "FLOWBATCH"


class DiscoveryError(FargateAuditError):
    """A batch could not be written (transaction conflicts past the retry bound)."""


def discovery_pk(workload_key: str) -> str:
    return f"DISC#{workload_key}"


def destination_sk(name: str, query_type: str) -> str:
    return f"DEST#{name}#{query_type}"


def flow_sk(address: str, protocol: str, port: int, action: str) -> str:
    return f"FLOW#{address}#{protocol}#{port}#{action}"


def answer_pk(vpc_id: str, address: str) -> str:
    return f"ANSWER#{vpc_id}#{address}"


def answer_sk(hour: str, name: str, workload_key: str) -> str:
    return f"AT#{hour}#{name}#{workload_key}"


def marker_key(batch: str, index: int, prefix: str = DNS_BATCH_PREFIX) -> dict:
    return {"pk": f"{prefix}#{batch}", "sk": f"CHUNK#{index:05d}"}


def decode_destination(item: Mapping[str, Any]) -> dict:
    """A destination item -> ``{"name", "query_type", "count", "first_seen", "last_seen",
    "answers", "sources"}``."""
    return {
        "name": item.get("query_name"),
        "query_type": item.get("query_type"),
        "count": item.get("count", 0),
        "first_seen": item.get("first_seen"),
        "last_seen": item.get("last_seen"),
        "answers": json.loads(item.get("answers") or "[]"),
        "sources": json.loads(item.get("sources") or "[]"),
    }


def decode_flow(item: Mapping[str, Any]) -> dict:
    """A flow destination item -> ``{"address", "protocol", "port", "action", "flows",
    "packets", "bytes_out", "first_seen", "last_seen", "vpc_id", "named",
    "named_first_seen", "named_own"}``."""
    return {
        "address": item.get("address"),
        "protocol": item.get("protocol"),
        "port": int(item.get("port", 0)),
        "action": item.get("action"),
        "flows": int(item.get("flows", 0)),
        "packets": int(item["packets"]) if item.get("packets") is not None else None,  # None: not logged
        "bytes_out": int(item.get("bytes_out", 0)),
        "first_seen": item.get("first_seen"),
        "last_seen": item.get("last_seen"),
        "vpc_id": item.get("vpc_id"),
        "named": item.get("named"),
        "named_first_seen": item.get("named_first_seen"),
        "named_own": item.get("named_own"),
    }


def decode_summary(item: Mapping[str, Any]) -> dict:
    return {
        "workload_key": item.get("workload_key"),
        "workload": item.get("workload_name"),
        "account_id": item.get("account_id"),
        "region": item.get("region"),
        "queries": item.get("queries", 0),
        "flow_records": item.get("flow_records", 0),
        "first_seen": item.get("first_seen"),
        "last_seen": item.get("last_seen"),
    }


# what an update's own expression sets first_seen to (kept when there is one)
KEEP_FIRST_SEEN = "first_seen = if_not_exists(first_seen, :fs)"


def in_order(late_expression: str) -> dict:
    """A row's ``first_seen``/``last_seen`` as the earliest start and the latest end of its
    flows or queries, whatever order batches arrive in (a retried batch is minutes late; DynamoDB has
    no min or max). The update applies only when the batch neither ends before the row's
    ``last_seen`` nor begins before its ``first_seen`` (an in-order batch: the common case,
    one write); else the chunk is written again with the row's other forms, in turn
    (:meth:`DiscoveryStore.apply_chunk`): its own expression with ``first_seen`` lowered (a
    batch ending after the row that also began before it: a late flow with a new one),
    then, for a batch ending before the row, counters and an earlier ``first_seen`` when
    it began before it, then counters alone. The update's own expression sets
    ``KEEP_FIRST_SEEN``; ``late_expression`` has ``{first}`` where a form sets
    ``first_seen = :fs, ``."""
    return {
        "_condition": (
            "attribute_not_exists(last_seen) OR "
            "(last_seen <= :ls AND (attribute_not_exists(first_seen) OR first_seen <= :fs))"
        ),
        "_late": [
            (None, "last_seen <= :ls AND first_seen > :fs"),  # None: the own expression, first lowered
            (late_expression.format(first="first_seen = :fs, "), "last_seen > :ls AND first_seen > :fs"),
            (late_expression.format(first=""), "last_seen > :ls AND first_seen <= :fs"),
        ],
    }


MAX_LATE_ATTEMPTS = 8  # chunks written again for updates of batches older than their rows


def _in_form(action: Mapping, form: int) -> dict:
    """The transaction action of an Update in its ``form`` (0: its own, under its
    ``_condition``; k: its k-th ``_late`` form); other actions as they are."""
    if "_late" not in action and "_condition" not in action:
        return dict(action)
    ((kind, body),) = ((k, v) for k, v in action.items() if not k.startswith("_"))
    body = dict(body)
    if form == 0:
        body["ConditionExpression"] = action["_condition"]
    else:
        expression, condition = action["_late"][form - 1]
        if expression is None:  # its own expression, with an earlier first_seen
            if KEEP_FIRST_SEEN not in body["UpdateExpression"]:
                raise ValueError("an in_order update must keep first_seen with if_not_exists")
            expression = body["UpdateExpression"].replace(KEEP_FIRST_SEEN, "first_seen = :fs")
        body["UpdateExpression"] = expression
        if condition:
            body["ConditionExpression"] = condition
    return {kind: body}


class DiscoveryStore:
    """The discovery items' writer and reader, on the recorder's table and client."""

    def __init__(self, table: Table, *, max_attempts: int = 6) -> None:
        self.table = table
        self.max_attempts = max_attempts

    def markers(self, batch: str, prefix: str = DNS_BATCH_PREFIX) -> dict[int, dict]:
        """``{chunk index: marker}`` of the chunks of a batch already applied (one
        strongly consistent Query: the markers share their partition)."""
        items = self.table.query(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=to_attributes({":pk": marker_key(batch, 0, prefix)["pk"]}),
            ConsistentRead=True,
        )
        return {int(str(item["sk"]).split("#", 1)[1]): item for item in items}

    def apply_chunk(self, chunk: list[dict], marker: dict) -> bool:
        """One chunk and its marker in one transaction. False when the marker was already
        there (the chunk was applied by an earlier delivery); transaction conflicts with
        concurrent writers are retried with backoff, then DiscoveryError.

        An Update may carry ``_condition`` and ``_late`` forms (``[(expression, condition)]``,
        :func:`in_order`): it is written under its condition; when that fails the chunk is
        written again with that update's next form (the forms of a batch older than the row),
        and so on in turn, a bounded number of times."""
        forms = [0] * len(chunk)  # per action: 0 its own form, k its k-th late form
        conditioned = 0
        attempt = 1
        while True:
            try:
                self.table.transact(
                    [marker, *(_in_form(action, form) for action, form in zip(chunk, forms, strict=True))]
                )
                return True
            except Cancelled as exc:
                if exc.reasons and exc.reasons[0] == "ConditionalCheckFailed":
                    return False
                late = [i for i, reason in enumerate(exc.reasons[1:]) if reason == "ConditionalCheckFailed"]
                if late and conditioned < MAX_LATE_ATTEMPTS:
                    conditioned += 1
                    for i in late:
                        forms[i] = (forms[i] + 1) % (len(chunk[i].get("_late") or ()) + 1)
                    continue
                if attempt >= self.max_attempts:
                    codes = ", ".join(map(str, exc.reasons))
                    raise DiscoveryError(
                        f"TransactWriteItems: chunk cancelled {attempt} times ({codes})"
                    ) from exc.cause
                self.table.backoff(attempt)
                attempt += 1

    def destinations(self, workload_key: str) -> list[dict]:
        """The destinations recorded for a workload, by name then query type."""
        items = self.table.query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :d)",
            ExpressionAttributeValues=to_attributes({":pk": discovery_pk(workload_key), ":d": "DEST#"}),
        )
        found = [decode_destination(item) for item in items]
        return sorted(found, key=lambda d: (str(d["name"]), str(d["query_type"])))

    def flows(self, workload_key: str) -> list[dict]:
        """The flow destinations recorded for a workload, the most bytes first."""
        items = self.table.query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :f)",
            ExpressionAttributeValues=to_attributes({":pk": discovery_pk(workload_key), ":f": "FLOW#"}),
        )
        found = [decode_flow(item) for item in items]
        return sorted(found, key=lambda f: (-int(f["bytes_out"]), f["address"], f["protocol"], f["port"]))

    def keep_name(self, workload_key: str, flow: Mapping[str, Any], name: str, own: bool) -> bool:
        """Keep on a flow row the name a DNS answer gave its first flow (``flow``: as
        :meth:`flows` returns it; ``own``: the workload's own answer gave it). Only while
        the row's first_seen is still the one named (a late batch that moved it earlier
        brought a flow the name may not cover), and over a kept name only when this one is
        the workload's own and that one was not. False when the row changed under it (or
        was named already)."""
        first = str(flow.get("first_seen") or "")
        if not first:
            return False
        replaces = "attribute_not_exists(named_first_seen) OR named_first_seen <> :fs"
        if own:
            replaces += " OR attribute_not_exists(named_own) OR named_own = :no"
        values = {":n": name, ":fs": first, ":own": own} | ({":no": False} if own else {})
        return self.table.update(
            {
                "pk": discovery_pk(workload_key),
                "sk": flow_sk(
                    str(flow["address"]), str(flow["protocol"]), int(flow["port"]), str(flow["action"])
                ),
            },
            "SET named = :n, named_first_seen = :fs, named_own = :own",
            ConditionExpression=f"first_seen = :fs AND ({replaces})",
            ExpressionAttributeValues=to_attributes(values),
        )

    def answers(self, vpc_id: str, address: str, since: str, until: str) -> list[dict]:
        """The answer items naming ``address`` in ``vpc_id`` in the UTC hours from
        ``since`` to ``until`` (ISO times): ``{"name", "workload_key", "task_arn",
        "first_seen", "last_seen"}``."""
        items = self.table.query(
            KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues=to_attributes(
                {
                    ":pk": answer_pk(vpc_id, address),
                    ":lo": f"AT#{since[:13]}",
                    ":hi": f"AT#{until[:13]}#\uffff",
                }
            ),
        )
        return [
            {
                "name": item.get("query_name"),
                "workload_key": item.get("workload_key"),
                "task_arn": item.get("task_arn"),
                "first_seen": item.get("first_seen"),
                "last_seen": item.get("last_seen"),
            }
            for item in items
        ]

    def summary(self, workload_key: str) -> dict | None:
        """The workload's discovery summary (``decode_summary``), None when it has none."""
        items = self.table.query(  # a Query, not GetItem: the functions' policies grant Query
            KeyConditionExpression="pk = :pk AND sk = :s",
            ExpressionAttributeValues=to_attributes({":pk": discovery_pk(workload_key), ":s": SUMMARY_SK}),
        )
        return decode_summary(items[0]) if items else None

    def summaries(self) -> list[dict]:
        """Every workload with discoveries (the DISCOVERED index), by workload key."""
        items = self.table.query(
            IndexName=GSI1,
            KeyConditionExpression="gsi1pk = :g",
            ExpressionAttributeValues=to_attributes({":g": DISCOVERED_GSI_PK}),
        )
        return sorted((decode_summary(item) for item in items), key=lambda s: str(s["workload_key"]))

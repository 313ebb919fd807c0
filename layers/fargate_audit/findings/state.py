"""Finding state and the outbox: what the publisher delivered to Security Hub and what it
still has to deliver (interface.md "Security Hub findings"). Owned by the findings
package; stored in the one table through ``stores.table``.

Items (``pk`` / ``sk``):

- ``WL#...`` / ``FINDING#<rule_id>``: the Security Hub finding last delivered for a
  workload and rule (digest, compliance, record_state, updated_at, the finding JSON);
  ``gsi1pk`` ``FINDINGS`` / ``gsi1sk`` ``<record_state>#<finding id>``.
- ``OUTBOX`` / ``<finding id>#<UpdatedAt>``: a finding to deliver (written before the
  import, deleted after it). The UpdatedAt in the key makes every version its own entry,
  so one writer clearing the version it delivered never deletes a newer one that another
  writer queued meanwhile.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from fargate_audit.findings.asff import asff_time, finding_content_digest, parse_asff_time
from fargate_audit.stores.keys import finding_id_prefix, workload_key_of_finding
from fargate_audit.stores.table import (
    GSI1,
    MAX_ITEM_BYTES,
    RecordError,
    Table,
    item_size,
    ttl_after,
)
from fargate_audit.stores.table import dumps as _dumps
from fargate_audit.stores.table import key as _key
from fargate_audit.stores.table import loads as _loads

ACTIVE, ARCHIVED = "ACTIVE", "ARCHIVED"
FINDINGS_GSI_PK = "FINDINGS"
OUTBOX_PK = "OUTBOX"
# where the latest outbox flush stopped reading (findings.publish.Publisher._read_outbox)
OUTBOX_CURSOR_KEY = {"pk": "OUTBOXCURSOR", "sk": "CURSOR"}
ARCHIVED_FINDING_TTL_DAYS = 90


# --------------------------------------------------------------------------- keys


def finding_sk(rule_id: str) -> str:
    return f"FINDING#{rule_id}"


def finding_rule_id(finding: Mapping[str, Any]) -> str:
    """The rule of a finding: ProductFields ``fargate-audit/RuleId``, else the Id's end."""
    rule_id = (finding.get("ProductFields") or {}).get("fargate-audit/RuleId")
    return rule_id or str(finding["Id"]).rsplit("/", 1)[-1]


def outbox_sk(finding: Mapping[str, Any]) -> str:
    return f"{finding['Id']}#{finding['UpdatedAt']}"


# --------------------------------------------------------------------------- finding state (pure)


def finding_state(finding: Mapping[str, Any]) -> dict:
    """The state kept for a finding once Security Hub has it."""
    fields = finding.get("ProductFields") or {}
    return {
        "finding_id": finding["Id"],
        "rule_id": finding_rule_id(finding),
        "workload_key": workload_key_of_finding(finding["Id"]),
        "workload": fields.get("fargate-audit/Workload"),
        "digest": finding_content_digest(finding),
        "compliance": (finding.get("Compliance") or {}).get("Status"),
        "record_state": finding.get("RecordState") or ACTIVE,
        "severity": (finding.get("Severity") or {}).get("Label"),
        "title": finding.get("Title"),
        "created_at": finding.get("CreatedAt"),
        "first_observed_at": finding.get("FirstObservedAt"),
        "updated_at": asff_time(parse_asff_time(finding["UpdatedAt"])),
        "finding": dict(finding),
    }


def finding_state_item(key: str, state: Mapping[str, Any]) -> dict:
    archived = state["record_state"] == ARCHIVED
    return {
        **_key(key, finding_sk(state["rule_id"])),
        "finding_id": state["finding_id"],
        "rule_id": state["rule_id"],
        "workload_key": key,
        "workload": state.get("workload"),
        "digest": state["digest"],
        "compliance": state.get("compliance"),
        "record_state": state["record_state"],
        "severity": state.get("severity"),
        "title": state.get("title"),
        "created_at": state.get("created_at"),
        "first_observed_at": state.get("first_observed_at"),
        "updated_at": state["updated_at"],
        "finding": _dumps(state["finding"]),
        "gsi1pk": FINDINGS_GSI_PK,
        "gsi1sk": f"{state['record_state']}#{state['finding_id']}",
        # Security Hub keeps findings 90 days after their last update; so does the state
        "ttl": ttl_after(parse_asff_time(state["updated_at"]), ARCHIVED_FINDING_TTL_DAYS)
        if archived
        else None,
    }


def decode_finding_state(item: Mapping[str, Any]) -> dict:
    state = {
        name: item.get(name)
        for name in (
            "finding_id",
            "rule_id",
            "workload_key",
            "workload",
            "digest",
            "compliance",
            "record_state",
            "severity",
            "title",
            "created_at",
            "first_observed_at",
            "updated_at",
        )
    }
    state["finding"] = _loads(item.get("finding"), {})
    return state


def outbox_item(finding: Mapping[str, Any]) -> dict:
    item = {
        **_key(OUTBOX_PK, outbox_sk(finding)),
        "finding_id": finding["Id"],
        "updated_at": finding["UpdatedAt"],
        "workload_key": workload_key_of_finding(finding["Id"]),
        "finding": _dumps(finding),
    }
    if item_size(item) > MAX_ITEM_BYTES:
        raise RecordError(f"outbox: finding {finding['Id']} is too large for one item")
    return item


# --------------------------------------------------------------------------- store


class FindingStore:
    """The finding states and the outbox, on the one table (``stores.table.Table``)."""

    def __init__(self, table: Table) -> None:
        self.table = table

    # ---------------------------------------------------------------- finding state

    def finding_states(self, workload_key: str) -> dict[str, dict]:
        """``{rule_id: state}`` of the findings last delivered for a workload."""
        items = self.table.query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :f)",
            ExpressionAttributeValues={":pk": {"S": workload_key}, ":f": {"S": "FINDING#"}},
            ConsistentRead=True,
        )
        states = [decode_finding_state(item) for item in items]
        return {state["rule_id"]: state for state in states}

    def save_finding_state(self, workload_key: str, state: Mapping[str, Any]) -> bool:
        """Store a delivered finding's state unless a state with the same or a later
        ``updated_at`` is already there (Security Hub keeps the latest UpdatedAt too).
        False when a newer state won."""
        return self.table.put(
            finding_state_item(workload_key, state),
            ConditionExpression="attribute_not_exists(pk) OR updated_at < :u",
            ExpressionAttributeValues={":u": {"S": state["updated_at"]}},
        )

    def active_findings(self, id_prefix: str = "") -> list[dict]:
        """interface.md ``findings``: the ACTIVE findings with their workload and status,
        by finding Id (one Query on gsi1); ``id_prefix``: only those whose Id begins so
        (e.g. ``fargate-audit/<account>/<region>/<cluster>/``: one cluster's)."""
        items = self.table.query(
            IndexName=GSI1,
            KeyConditionExpression="gsi1pk = :pk AND begins_with(gsi1sk, :active)",
            ExpressionAttributeValues={
                ":pk": {"S": FINDINGS_GSI_PK},
                ":active": {"S": f"{ACTIVE}#{id_prefix}"},
            },
        )
        found = []
        for item in items:
            state = decode_finding_state(item)
            found.append(
                {
                    "finding_id": state["finding_id"],
                    "workload": state["workload"],
                    "workload_key": state["workload_key"],
                    "rule_id": state["rule_id"],
                    "status": state["compliance"],
                    "severity": state["severity"],
                    "title": state["title"],
                    "record_state": state["record_state"],
                    "updated_at": state["updated_at"],
                }
            )
        return found

    def active_workload_keys(self, id_prefix: str = "") -> list[str]:
        """The workload keys of the ACTIVE findings whose Id begins with ``id_prefix``, each
        once (the same Query as :meth:`active_findings`, projected to the key: the finding
        documents are not transferred)."""
        items = self.table.query(
            IndexName=GSI1,
            KeyConditionExpression="gsi1pk = :pk AND begins_with(gsi1sk, :active)",
            ExpressionAttributeValues={
                ":pk": {"S": FINDINGS_GSI_PK},
                ":active": {"S": f"{ACTIVE}#{id_prefix}"},
            },
            ProjectionExpression="workload_key",
        )
        return list(dict.fromkeys(item["workload_key"] for item in items if item.get("workload_key")))

    # ---------------------------------------------------------------- outbox

    def put_outbox(self, findings: Iterable[Mapping[str, Any]]) -> int:
        """Queue findings for delivery (before importing them). Returns the count."""
        requests = self.table.put_requests([outbox_item(f) for f in findings])
        self.table.batch_write(requests)
        return len(requests)

    def pending_outbox(
        self, limit: int | None = None, workload_key: str | None = None, after: str | None = None
    ) -> list[dict]:
        """Queued findings (by Id, then UpdatedAt), at most ``limit``; only one workload's
        when ``workload_key`` is given; only those whose outbox sort key is after ``after``."""
        if after is not None and workload_key is not None:
            raise ValueError("pending_outbox: after and workload_key exclude each other")
        condition = "pk = :pk"
        values = {":pk": {"S": OUTBOX_PK}}
        if after is not None:
            condition += " AND sk > :after"
            values[":after"] = {"S": after}
        elif workload_key is not None:
            condition += " AND begins_with(sk, :prefix)"
            values[":prefix"] = {"S": finding_id_prefix(workload_key)}
        items = self.table.query(
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ConsistentRead=True,
            limit=limit,
        )
        return [json.loads(item["finding"]) for item in items]

    def outbox_cursor(self) -> str | None:
        """The outbox sort key the latest flush stopped reading after (None: the start)."""
        item = self.table.get(OUTBOX_CURSOR_KEY, consistent=False)
        return str(item["after"]) if item and item.get("after") else None

    def save_outbox_cursor(self, after: str | None) -> None:
        """Where the next flush starts reading (last writer wins: any position is fine)."""
        self.table.put({**OUTBOX_CURSOR_KEY, "after": after or ""})

    def clear_outbox(self, ids: Iterable[str | Mapping[str, Any]]) -> int:
        """Delete delivered entries: each an outbox sort key (``<Id>#<UpdatedAt>``) or the
        finding itself. Returns the count."""
        keys = sorted({i if isinstance(i, str) else outbox_sk(i) for i in ids})
        self.table.batch_write(self.table.delete_requests([_key(OUTBOX_PK, k) for k in keys]))
        return len(keys)

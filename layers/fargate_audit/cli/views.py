"""The stored views behind ``history`` and ``findings``: the stack's table read back and
rendered (interface.md). Runtime CLI code: needs boto3 only, no ``[local]`` extra.

Table name (interface.md): ``--table``, else ``FARGATE_AUDIT_TABLE``, else
``fargate-audit-posture`` (what ``invoke`` creates).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from fargate_audit.core.errors import ConfigError, FargateAuditError
from fargate_audit.stores.keys import workload_key_of_finding, workload_parts

TABLE_ENV = "FARGATE_AUDIT_TABLE"
MISSING_TABLE = (
    "table {name} not found (deploy the stack or run `fargate-audit invoke` against an emulator first)"
)


def table_name(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """``--table``, else FARGATE_AUDIT_TABLE, else the local default name."""
    from fargate_audit.cli.template import DEFAULT_TABLE_NAME

    environ = os.environ if environ is None else environ
    return explicit or environ.get(TABLE_ENV) or DEFAULT_TABLE_NAME


# --------------------------------------------------------------------------- history, findings


def open_table(table: str, session=None):
    """The stores' :class:`~fargate_audit.stores.table.Table` ``table``, with a client from
    the standard chain (the stores are built on it)."""
    from fargate_audit.core.errors import CredentialsError
    from fargate_audit.edge.aws import NO_REGION_SET_MESSAGE, client, session_from_env
    from fargate_audit.stores.table import Table

    session = session if session is not None else session_from_env()
    if not session.region_name:
        raise CredentialsError(NO_REGION_SET_MESSAGE)
    return Table(table, client(session, "dynamodb", session.region_name))


def read_table(table, call: str, read):
    """``read()`` with the table's AWS errors turned into one line."""
    from fargate_audit.edge.aws import AWS_ERRORS, error_code, failure_message

    try:
        return read()
    except AWS_ERRORS as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise ConfigError(MISSING_TABLE.format(name=table.table_name)) from None
        raise FargateAuditError(failure_message(exc, call)) from None


def _short(value: Any, limit: int = 90) -> str:
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe_cause(cause: Mapping[str, Any] | None) -> str:
    cause = cause or {}
    text = str(cause.get("type") or "?")
    if cause.get("id"):
        text += f" {cause['id']}"
    if cause.get("task_version") is not None:
        text += f" (task version {cause['task_version']})"
    return text


def format_history(task_arn: str, entries: list[dict]) -> str:
    """``history --format table``: one block per recorded change, oldest first."""
    if not entries:
        return f"no recorded history for {task_arn}\n"
    lines = [f"history of {task_arn}"]
    for entry in entries:
        lines.append(f"{entry.get('at')}  {_describe_cause(entry.get('cause'))}")
        rules = entry.get("rules") or {}
        facts = entry.get("facts") or []
        if rules and all(before is None for before, _ in rules.values()):
            by_status: dict[str, list[str]] = {}
            for rule_id, (_, after) in sorted(rules.items()):
                by_status.setdefault(str(after), []).append(rule_id)
            parts = [f"{len(ids)} {status} ({', '.join(ids)})" for status, ids in sorted(by_status.items())]
            lines.append(f"    first audit: {'; '.join(parts)}")
            lines.append(f"    {len(facts)} facts recorded")
            continue
        for rule_id, (before, after) in sorted(rules.items()):
            lines.append(f"    rule {rule_id}: {before or '-'} -> {after or '-'}")  # None: no result
        for fact in facts:
            lines.append(
                f"    {fact.get('path')}: {_short(fact.get('before'))} -> {_short(fact.get('after'))}"
            )
        if not rules and not facts:
            lines.append("    (no change)")
    return "\n".join(lines) + "\n"


def findings_view(findings: list[dict]) -> list[dict]:
    """``findings --format json``: the active findings, worst first then by workload."""
    order = {"FAILED": 0, "NOT_AVAILABLE": 1, "PASSED": 2}
    items = [
        {
            "finding_id": f.get("finding_id"),
            # the place, where member accounts share workload names
            **dict(zip(("account_id", "region"), _place(f.get("finding_id")), strict=True)),
            "workload": f.get("workload"),
            "rule_id": f.get("rule_id"),
            "severity": f.get("severity"),
            "status": f.get("status"),
            "title": f.get("title"),
            "updated_at": f.get("updated_at"),
        }
        for f in findings
    ]
    return sorted(
        items,
        key=lambda f: (
            order.get(f["status"], 3),
            str(f["workload"]),
            str(f["account_id"]),
            str(f["region"]),
            str(f["rule_id"]),
        ),
    )


def _place(finding_id: Any) -> tuple[str | None, str | None]:
    """(account, region) of a finding Id (``keys.workload_key_of_finding``), else Nones."""
    try:
        account, region, _, _ = workload_parts(workload_key_of_finding(str(finding_id)))
    except ValueError:
        return None, None
    return account, region


def format_findings(findings: list[dict]) -> str:
    """``findings --format table``; the workloads named with their account and region when
    the findings are of several (member accounts may hold workloads of the same names)."""
    items = findings_view(findings)
    if not items:
        return "no active findings\n"
    placed = len({(f["account_id"], f["region"]) for f in items}) > 1
    header = ("WORKLOAD", "RULE", "SEVERITY", "STATUS", "UPDATED", "TITLE")
    rows = [
        (
            f"{f['account_id']}/{f['region']}/{f['workload']}" if placed else str(f["workload"]),
            str(f["rule_id"]),
            str(f["severity"]),
            str(f["status"]),
            str(f["updated_at"]),
            str(f["title"]),
        )
        for f in items
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i < len(widths) else cell for i, cell in enumerate(row))
        for row in [header, *rows]
    ]
    failed = sum(1 for f in items if f["status"] == "FAILED")
    lines.append(f"{len(items)} active findings, {failed} FAILED")
    return "\n".join(line.rstrip() for line in lines) + "\n"

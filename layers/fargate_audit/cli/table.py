"""The human table (``scan --format table``), rendered from a scan report dict.

Grouped by workload (cluster + task group); inside a workload one row per rule and
status, worst severity first, the same finding on many tasks aggregated into one row
("(12/12 tasks)"), PASSED and NOT_APPLICABLE counted rather than listed. Scan-level
errors and expired exemptions are listed, and a summary line ends the output.

Pure: colour is decided by the caller (``use_color``) and passed in.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from fargate_audit.core.report import SEVERITIES, exposure_known, severity_rank, summarize_evidence

RESET = "\033[0m"
_COLORS = {
    "CRITICAL": "\033[1;31m",
    "HIGH": "\033[31m",
    "MEDIUM": "\033[33m",
    "LOW": "\033[36m",
    "INFORMATIONAL": "\033[2m",
    "ERROR": "\033[35m",
    "PASSED": "\033[32m",
    "HEADER": "\033[1m",
    "DIM": "\033[2m",
    "WARN": "\033[1;33m",
}
MAX_VARIANTS = 5

# Control characters in what the report quotes (a task group, a variable name, an image:
# text an account's users wrote) would reach the terminal: an escape sequence could retitle
# or clear it, or hide lines. They are shown as \xNN; only the colour codes above, which
# the table itself writes, stay (and only when colour is on).
_OWN_CODES = "|".join(
    re.escape(code[2:-1]) for code in sorted({*_COLORS.values(), RESET}, key=len, reverse=True)
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_BUT_COLOR = re.compile(rf"\x1b(?!\[(?:{_OWN_CODES})m)|[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f-\x9f]")


def printable(text: str, color: bool = False) -> str:
    """``text`` for a terminal: control characters (but newlines, tabs and, with ``color``,
    the table's own colour codes) shown as ``\\xNN``."""
    pattern = _CONTROL_BUT_COLOR if color else _CONTROL
    return pattern.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def use_color(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """ANSI colour only on a terminal, and only when NO_COLOR is unset or empty."""
    if environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):
        return False


class _Paint:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, text: str, style: str) -> str:
        if not self.enabled or style not in _COLORS:
            return text
        return f"{_COLORS[style]}{text}{RESET}"


def _task_id(task_arn: str) -> str:
    return task_arn.rsplit("/", 1)[-1]


def _cluster_name(task: dict) -> str:
    return task.get("cluster_name") or task["cluster_arn"].rsplit("/", 1)[-1]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@dataclass
class _Row:
    """One rule and status of one workload: the tasks it hit, grouped by evidence."""

    sort_key: tuple
    label: str  # the severity for FAILED, "ERROR" for ERROR
    rule_id: str
    title: str
    hits: int
    variants: list[tuple[str, list[str]]]  # (evidence summary, task ARNs), most tasks first


def _rows(results: list[dict]) -> tuple[list[_Row], int, int, int]:
    """(rows, rules passed, rules not applicable, exempted results) of one workload."""
    by_rule: dict[str, list[dict]] = {}
    for result in results:
        by_rule.setdefault(result["rule_id"], []).append(result)
    rows: list[_Row] = []
    passed = not_applicable = exempted = 0
    for rule_id, rule_results in by_rule.items():
        statuses = Counter(r["status"] for r in rule_results)
        exempted += sum(1 for r in rule_results if (r.get("evidence") or {}).get("exempted"))
        if not statuses["FAILED"] and not statuses["ERROR"]:
            if statuses["PASSED"]:
                passed += 1
            else:
                not_applicable += 1
            continue
        for status in ("FAILED", "ERROR"):
            hits = sorted((r for r in rule_results if r["status"] == status), key=lambda r: r["task_arn"])
            if not hits:
                continue
            variants: dict[str, list[str]] = {}
            for r in hits:
                summary = summarize_evidence(r.get("evidence"), limit=100)
                variants.setdefault(summary, []).append(r["task_arn"])
            severity = hits[0]["severity"]
            rows.append(
                _Row(
                    sort_key=(-severity_rank(severity), rule_id, 0 if status == "FAILED" else 1),
                    label=severity if status == "FAILED" else "ERROR",
                    rule_id=rule_id,
                    title=hits[0].get("title") or "",
                    hits=len(hits),
                    variants=sorted(variants.items(), key=lambda kv: (-len(kv[1]), kv[0])),
                )
            )
    return sorted(rows, key=lambda r: r.sort_key), passed, not_applicable, exempted


def _workload_lines(results: list[dict], total_tasks: int, paint: _Paint) -> list[str]:
    rows, passed, not_applicable, exempted = _rows(results)
    label_width = max((len(r.label) for r in rows), default=0)
    title_width = max((len(r.title) for r in rows), default=0)
    indent = " " * (2 + label_width + 2)
    out: list[str] = []
    counts = [f"({row.hits}/{_plural(total_tasks, 'task')})" for row in rows]
    count_width = max((len(c) for c in counts), default=0)
    for row, count_text in zip(rows, counts, strict=True):
        label = paint(row.label.ljust(label_width), row.label)
        count = paint(count_text.ljust(count_width), "DIM")
        head = f"  {label}  {row.rule_id}  {row.title.ljust(title_width)}"
        if len(row.variants) == 1:
            out.append(f"{head}  {count}  {row.variants[0][0]}".rstrip())
            continue
        out.append(f"{head}  {count}")
        for summary, arns in row.variants[:MAX_VARIANTS]:
            who = f"task {_task_id(arns[0])}" if len(arns) == 1 else _plural(len(arns), "task")
            out.append(f"{indent}{summary or '(no evidence)'}  {paint(f'({who})', 'DIM')}")
        if len(row.variants) > MAX_VARIANTS:
            rest = sum(len(arns) for _, arns in row.variants[MAX_VARIANTS:])
            out.append(f"{indent}... and {_plural(rest, 'more task')}")
    tally = ["1 rule passed" if passed == 1 else f"{passed} rules passed"]
    if not_applicable:
        tally.append(f"{not_applicable} n/a")
    if exempted:
        tally.append(f"{exempted} exempted")
    out.append(f"  {paint(', '.join(tally), 'DIM' if rows else 'PASSED')}")
    return out


_LB_KINDS = {"application": "alb", "network": "nlb"}


def front_door(exposure: Mapping) -> str:
    """``alb web-prod :443 -> :8080`` (interface.md "Load-balancer exposure"), with the
    listener's protocol and, for an ALB, whether a web ACL guards it."""
    arn = str(exposure.get("load_balancer_arn") or "")
    parts = arn.split("/")
    name = parts[-2] if len(parts) >= 3 else arn
    kind = _LB_KINDS.get(str(exposure.get("load_balancer_type")), "lb")
    text = f"{kind} {name} :{exposure.get('listener_port')} -> :{exposure.get('target_port')}"
    notes = [str(exposure.get("listener_protocol") or "?")]
    if kind == "alb":
        notes.append("web ACL" if exposure.get("web_acl_arn") else "no web ACL")
    return f"{text} ({', '.join(notes)})"


def _front_door_lines(members: list[dict], paint: _Paint, results_by_task: dict | None = None) -> list[str]:
    """The workload's front doors: which tasks the internet reaches through a load
    balancer, and how (or that it could not be told: the load balancer facts, or only a
    web ACL, when NET-11 could still be judged)."""
    doors: dict[str, int] = {}
    unknown = acl_unknown = 0
    for task in members:
        if "exposures" in task and task["exposures"] is None:
            if exposure_known(task["task_arn"], (results_by_task or {}).get(task["task_arn"], ())):
                acl_unknown += 1
            else:
                unknown += 1
        for door in dict.fromkeys(front_door(e) for e in task.get("exposures") or []):
            doors[door] = doors.get(door, 0) + 1
    lines = []
    if doors:
        listed = ", ".join(
            f"{door} ({n}/{len(members)})" if n < len(members) else door for door, n in doors.items()
        )
        lines.append(f"  {paint('internet ->', 'WARN')} {listed}")
    if acl_unknown:
        who = _plural(acl_unknown, "task")
        lines.append(
            f"  {paint('internet -> ?', 'ERROR')} reached through a load balancer whose web ACL "
            f"could not be read ({who}; NET-12)"
        )
    if unknown:
        who = _plural(unknown, "task")
        lines.append(f"  {paint('internet -> ?', 'ERROR')} load balancer facts not collected ({who})")
    return lines


def _reachable_line(report: dict) -> str | None:
    counts = (report.get("summary") or {}).get("internet_reachable")
    keys = ("direct", "through_load_balancers", "direct_unknown", "through_load_balancers_unknown")
    if not counts or not any(counts.get(key) for key in keys):
        return None
    line = (
        f"Reachable from the internet: {_plural(counts.get('direct', 0), 'task')} at their own address, "
        f"{counts.get('through_load_balancers', 0)} through load balancers"
    )
    unknown = [
        f"{counts[key]} {what}"
        for key, what in (
            ("direct_unknown", "at their own address"),
            ("through_load_balancers_unknown", "through load balancers"),
        )
        if counts.get(key)
    ]
    return line + (f"; unknown (facts not read): {', '.join(unknown)}." if unknown else ".")


def _summary_line(report: dict, paint: _Paint) -> str:
    tasks = report.get("tasks") or []
    results = report.get("results") or []
    clusters = {t["cluster_arn"] for t in tasks}
    statuses = Counter(r["status"] for r in results)
    failed_by_sev = Counter(r["severity"] for r in results if r["status"] == "FAILED")
    sev_text = ", ".join(f"{failed_by_sev[s]} {s}" for s in reversed(SEVERITIES) if failed_by_sev[s])
    parts = [f"{statuses['FAILED']} FAILED" + (f" ({sev_text})" if sev_text else "")]
    parts.append(f"{statuses['ERROR']} ERROR")
    parts.append(f"{statuses['PASSED']} PASSED")
    if statuses["NOT_APPLICABLE"]:
        parts.append(f"{statuses['NOT_APPLICABLE']} n/a")
    skipped = (report.get("summary") or {}).get("skipped_tasks", 0)
    reasons = Counter(str(s.get("reason")) for s in report.get("skipped") or [] if s.get("reason"))
    ranked = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    why = ", ".join(f"{n} {reason}" for reason, n in ranked) if ranked else "not Fargate / not RUNNING"
    line = (
        f"{_plural(len(tasks), 'task')} in {_plural(len(clusters), 'cluster')}: "
        + ", ".join(parts)
        + f"; {skipped} skipped ({why})"
    )
    if statuses["FAILED"]:
        style = "CRITICAL" if failed_by_sev["CRITICAL"] else "HIGH"
    else:
        style = "ERROR" if statuses["ERROR"] else "PASSED"
    return paint(line, style)


def _error_lines(report: dict, paint: _Paint) -> list[str]:
    lines: list[str] = []
    errors = report.get("errors") or []
    if errors:
        lines.append(
            paint(f"{_plural(len(errors), 'scan error')} (tasks may be missing from this report):", "WARN")
        )
        for e in errors:
            where = " ".join(str(e[k]) for k in ("region", "resource") if e.get(k))
            lines.append(f"  ! {e.get('call', '?')} {where}: {e.get('message', '')}".rstrip())
    expired = report.get("expired_exemptions") or []
    if expired:
        lines.append(paint(f"{_plural(len(expired), 'expired exemption')} ignored:", "WARN"))
        for x in expired:
            lines.append(f"  ! {_describe_exemption(x)}")
    return lines


def _scope_lines(report: dict, paint: _Paint) -> list[str]:
    """An organization scan's block: one row per (account, region) asked for, with its
    tasks, FAILED and ERROR results, or the error that kept it from being scanned."""
    scopes = (report.get("summary") or {}).get("scopes")
    if not scopes:
        return []
    rows = [("ACCOUNT", "REGION", "TASKS", "FAILED", "ERROR", "")]
    for scope in scopes:
        if scope.get("error"):
            rows.append((scope["account_id"], scope["region"], "-", "-", "-", f"! {scope['error']}"))
            continue
        by_status = scope.get("by_status") or {}
        counts = (scope.get("tasks", 0), by_status.get("FAILED", 0), by_status.get("ERROR", 0))
        rows.append((scope["account_id"], scope["region"], *(str(n) for n in counts), ""))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    failed = sum(1 for scope in scopes if scope.get("error"))
    title = f"Accounts and regions: {len(scopes)} asked, " + (
        f"{failed} not scanned:" if failed else "all scanned:"
    )
    lines = [paint(title, "WARN" if failed else "HEADER")]
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [row[i].rjust(widths[i]) for i in (2, 3, 4)]
        text = ("  " + "  ".join(cells) + ("  " + row[5] if row[5] else "")).rstrip()
        lines.append(paint(text, "DIM") if index == 0 else (paint(text, "ERROR") if row[5] else text))
    lines.append("")
    return lines


def _describe_exemption(exemption: Any) -> str:
    if not isinstance(exemption, Mapping):
        return str(exemption)
    return (
        f"rule {exemption.get('rule', '*')} workload {exemption.get('workload', '*')} "
        f"expired {exemption.get('expires')}: {exemption.get('reason', '')}"
    ).rstrip(": ")


def render(report: dict, color: bool = False) -> str:
    """The table for a scan report (report.build_report); ends with a newline. Workloads
    come worst first (by their most severe FAILED result), then by name."""
    paint = _Paint(color)
    tasks = report.get("tasks") or []
    results_by_task: dict[str, list[dict]] = {}
    for result in report.get("results") or []:
        results_by_task.setdefault(result["task_arn"], []).append(result)

    workloads: dict[tuple, list[dict]] = {}
    for task in tasks:
        key = (_cluster_name(task), task["group"], task["region"], task["account_id"])
        workloads.setdefault(key, []).append(task)
    multi_place = len({(k[2], k[3]) for k in workloads}) > 1

    lines: list[str] = []
    if not tasks:
        regions = ", ".join((report.get("scope") or {}).get("regions") or []) or "-"
        lines.append(f"No running Fargate task in scope (regions: {regions}).")

    def worst_first(key: tuple) -> tuple:
        # Workloads with the most severe FAILED result lead (internet-reachable ones first).
        failed = [
            severity_rank(r["severity"])
            for t in workloads[key]
            for r in results_by_task.get(t["task_arn"], [])
            if r["status"] == "FAILED"
        ]
        return (-max(failed, default=-1), key)

    for key in sorted(workloads, key=worst_first):
        cluster, group, region, account = key
        members = workloads[key]
        where = f", {region} {account}" if multi_place else ""
        count = _plural(len(members), "task")
        lines.append(f"{paint(f'{cluster}/{group}', 'HEADER')}  {paint(f'({count}{where})', 'DIM')}")
        results = [r for t in members for r in results_by_task.get(t["task_arn"], [])]
        lines.extend(_front_door_lines(members, paint, results_by_task))
        lines.extend(_workload_lines(results, len(members), paint))
        lines.append("")
    lines.extend(_scope_lines(report, paint))
    lines.extend(_error_lines(report, paint))
    reachable = _reachable_line(report)
    if reachable:
        lines.append(reachable)
    lines.append(_summary_line(report, paint))
    return printable("\n".join(lines) + "\n", color)

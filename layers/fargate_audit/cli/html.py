"""The HTML report (``scan --format html``, ``report SCAN.json``): one self-contained page.

Pure: a scan report dict in (scan-report.schema.json, as ``--format json`` writes it), a
string out. The page holds its CSS, its script and its data inline and makes no request
when opened (no CDN, font or remote image). The data is a compact model of the report,
made here (:func:`page_model`): per workload its rules with status, evidence and finding
id; per task its results and a *picture*, the rows of its drawn network path (inbound,
outbound per IP family, AWS endpoints, front doors), each hop a node that a failing rule
marks. The script draws the pictures as SVG when a task is opened and filters without a
server (state in the URL fragment).

Escaping: the model goes into the page as JSON inside a ``<script type="application/json">``
element with ``<``, ``>`` and ``&`` written as ``\\u`` escapes (no name can close the element),
and the script puts every string into the page with ``textContent`` (never ``innerHTML``),
so a name holding ``<script>`` is shown as text. Evidence lines come from
``report.summarize_evidence``, which never shows a value (names only).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from importlib import resources
from typing import Any

from fargate_audit.cli.table import front_door
from fargate_audit.core.netalgebra import intersect
from fargate_audit.core.report import (
    SEVERITIES,
    STATUSES,
    exempted,
    exposure_known,
    format_ports,
    internet_reachable,
    reached_directly,
    severity_rank,
    summarize_evidence,
)
from fargate_audit.findings import asff

STATUS_CODES = {"FAILED": "F", "ERROR": "E", "PASSED": "P", "NOT_APPLICABLE": "N"}
_WORST_FIRST = ("FAILED", "ERROR", "PASSED", "NOT_APPLICABLE")
_PATH_NAMES = {
    "internet-gateway": "Internet gateway",
    "egress-only-internet-gateway": "Egress-only IGW",
    "nat-gateway": "NAT gateway",
    "inspection-endpoint": "Inspection endpoint",
    "transit-gateway": "Transit gateway",
    "appliance": "Appliance",
    "peering": "VPC peering",
    "other": "Other target",
}
_REACHES_INTERNET = ("internet-gateway", "egress-only-internet-gateway", "inspection-endpoint")
MAX_LINES = 6
MAX_ERRORS_SHOWN = 50  # the scan's errors listed on the page (the JSON report has them all)


def finding_id(task: Mapping, rule_id: str) -> str:
    """``fargate-audit/{account}/{region}/{cluster}/{group}/{rule}``, the ASFF finding's Id."""
    cluster = task.get("cluster_name") or str(task.get("cluster_arn", "")).rsplit("/", 1)[-1]
    return asff.finding_id(task["account_id"], task["region"], cluster, task["group"], rule_id)


def _task_id(arn: str) -> str:
    return str(arn).rsplit("/", 1)[-1]


def _arn_name(arn: Any) -> str:
    """``app/shop/0123`` -> ``shop`` (load balancer), ``targetgroup/web/0123`` -> ``web``."""
    parts = str(arn or "").split("/")
    return parts[-2] if len(parts) >= 3 else str(arn or "")


def _node(kind: str, title: str, lines: list | None = None, marks: list[str] | None = None) -> dict:
    """One hop of a picture: ``k`` kind, ``t`` title, ``l`` lines (``[text, bad]``), ``m``
    the rules failing on this hop."""
    shown = [line if isinstance(line, list) else [str(line), False] for line in lines or []]
    if len(shown) > MAX_LINES:
        shown = shown[: MAX_LINES - 1] + [[f"+{len(shown) - MAX_LINES + 1} more", False]]
    return {"k": kind, "t": title, "l": shown, "m": sorted(set(marks or []))}


def _ports_text(port: Mapping) -> str:
    return format_ports([port])


def _inbound(
    task: Mapping, network: Mapping, failed: Mapping[str, dict], results: Mapping[str, str] | None = None
) -> dict:
    """internet -> NACL inbound -> subnet -> security groups (world-open ports) -> ENI. A
    rule that could not be evaluated (ERROR) leaves its hop unknown, never drawn clean."""
    results = results or {}
    net02 = failed.get("NET-02")
    net03 = failed.get("NET-03")
    net08 = failed.get("NET-08")
    marked_ports = {
        rule: list((failed[rule] or {}).get("open_ports") or [])
        for rule in ("NET-02", "NET-03")
        if rule in failed
    }
    # NET-02 fails per IP family: only the ports of the families it names
    net02_families = set((net02 or {}).get("families") or ("ipv4", "ipv6"))
    unknown = [rule for rule in ("NET-02", "NET-03") if results.get(rule) == "ERROR"]
    world = network.get("world_ports")
    nacl_lines, nacl_marks = [], []
    if world:
        decisions = Counter(p.get("nacl") for p in world)
        nacl_lines = [
            f"{decision} {n} world port{'s' * (n > 1)}" for decision, n in sorted(decisions.items())
        ]
    if net08:
        nacl_marks.append("NET-08")
        nacl_lines.append([f"admits admin {format_ports(net08.get('open_ports') or [])}", True])
    nacl = _node(
        "nacl", f"NACL {network.get('nacl_id') or '?'}", nacl_lines or ["inbound world decision"], nacl_marks
    )
    subnet = _node("subnet", f"Subnet {task.get('subnet_id') or '?'}", [f"VPC {task.get('vpc_id') or '?'}"])
    groups = network.get("security_groups") or [
        {"id": g, "name": None} for g in task.get("security_group_ids") or []
    ]
    sg_lines: list = []
    sg_marks: list[str] = []
    if unknown:
        sg_lines.append([f"world-open ports unknown (ERROR: {', '.join(unknown)})", True])
    elif world is None:
        sg_lines.append("world ports not in this report")
    for group in groups:
        name = f" ({group['name']})" if group.get("name") else ""
        sg_lines.append(f"{group.get('id')}{name}")
        for port in world or []:
            if port.get("group_id") != group.get("id"):
                continue
            rules = [
                rule
                for rule, ports in marked_ports.items()
                if intersect([port], ports) and (rule != "NET-02" or port.get("family") in net02_families)
            ]
            family = "v6" if port.get("family") == "ipv6" else "v4"
            nacl_note = "" if port.get("nacl") == "allow" else f", NACL {port.get('nacl')}"
            text = f"  {_ports_text(port)} open to world {family}{nacl_note}"
            if rules:
                text += f" [{', '.join(rules)}]"
                sg_marks += rules
            sg_lines.append([text, bool(rules)])
    if world == [] and groups:
        sg_lines.append("  no world-open port")
    if "NET-06" in failed:
        sg_marks.append("NET-06")
        sg_lines.append(["default security group attached", True])
    sgs = _node("sg", "Security groups", sg_lines or ["none"], sg_marks)
    eni_marks = ["NET-01"] if "NET-01" in failed else []
    reachable = bool(net02) or (bool(net03) and bool(task.get("public_ip")))
    return {
        "label": "Inbound",
        "nodes": [_node("internet", "Internet"), nacl, subnet, sgs, _node("eni", "Task ENI", [], eni_marks)],
        "ok": not reachable and not unknown,
    }


def _outbound(task: Mapping, network: Mapping, family: str, failed: Mapping[str, dict]) -> dict | None:
    """ENI -> route table -> default route target (-> NAT's next hop) -> internet."""
    egress = (network.get("egress") or {}).get(family) or {}
    path = egress.get("path") if egress else (task.get("egress_paths") or {}).get(family)
    has_v6 = bool(network.get("ipv6_addresses"))
    if family == "ipv6" and path in (None, "none") and not has_v6:
        return None
    targets = list(egress.get("targets") or [])
    net05 = family in ((failed.get("NET-05") or {}).get("families") or [])
    net02 = family in ((failed.get("NET-02") or {}).get("families") or [])
    nodes = [
        _node("eni", "Task ENI"),
        _node(
            "rtb",
            f"Routes {network.get('route_table_id') or '?'}",  # an id's 21 characters fit the box
            ["0.0.0.0/0" if family == "ipv4" else "::/0"],
        ),
    ]
    if path is None:
        nodes.append(_node("none", "Default route unknown", [["not collected (see ERROR results)", True]]))
        return {"label": f"Outbound {family}", "nodes": nodes, "ok": False}
    if path == "none":
        nodes.append(_node("none", "No default route", ["no internet egress"]))
        return {"label": f"Outbound {family}", "nodes": nodes, "ok": True}
    hops = path.split(">")
    for index, hop in enumerate(hops):
        marks = []
        lines: list = [targets[index]] if index < len(targets) else []
        if net05 and index == 0:
            marks.append("NET-05")
            lines.append(["egress not inspected", True])
        if net02 and hop == "internet-gateway" and index == 0:
            marks.append("NET-02")
            lines.append(["routes the public address", True])
        if index > 0:
            lines.append("next hop of the NAT gateway's route table")
        nodes.append(_node(hop, _PATH_NAMES.get(hop, hop), lines, marks))
    last = hops[-1]
    if last in _REACHES_INTERNET:
        nodes.append(_node("internet", "Internet"))
    else:
        nodes.append(_node("beyond", "Beyond the VPC", ["per that network's routes"]))
    return {"label": f"Outbound {family}", "nodes": nodes, "ok": not net05}


def _endpoints(network: Mapping, failed: Mapping[str, dict], results: Mapping[str, str]) -> dict | None:
    unknown = [rule for rule in ("NET-09", "NET-10") if results.get(rule) == "ERROR"]
    if network.get("endpoints") is None and ("endpoints" in network or unknown):
        reason = f"ERROR: {', '.join(unknown)}" if unknown else "not collected"
        nodes = [
            _node("rtb", f"Routes {network.get('route_table_id') or '?'}"),
            _node("missing", "Endpoints unknown", [[reason, True]]),
        ]
        return {"label": "AWS endpoints", "nodes": nodes, "ok": False}
    endpoints = network.get("endpoints") or []
    missing = list((failed.get("NET-10") or {}).get("missing_endpoints") or [])
    if not endpoints and not missing and not unknown and results.get("NET-09") in (None, "NOT_APPLICABLE"):
        return None
    nodes = [_node("rtb", f"Routes {network.get('route_table_id') or '?'}")]  # an id's 21 characters fit
    net09 = failed.get("NET-09")
    for endpoint in endpoints:
        marks = []
        lines: list = [f"{endpoint.get('type') or ''} endpoint".strip()]
        if net09 is not None and endpoint.get("id") and endpoint.get("id") == net09.get("endpoint_id"):
            marks.append("NET-09")
            lines.extend([str(reason), True] for reason in net09.get("reasons") or ["S3 not confined"])
        nodes.append(_node("endpoint", f"{endpoint.get('service')} {endpoint.get('id')}", lines, marks))
    if net09 is not None and not net09.get("endpoint_id"):  # NET-09 (a): no S3 gateway endpoint here
        lines = [["S3 traffic takes the egress path", True]]
        nodes.append(_node("missing", "No S3 gateway endpoint", lines, ["NET-09"]))
    if missing:
        nodes.append(_node("missing", "Missing endpoints", [[m, True] for m in missing], ["NET-10"]))
    if len(nodes) == 1:
        nodes.append(_node("missing", "No S3/ECR endpoint", ["images pulled over the egress path"]))
    if unknown:  # endpoints read, a fact the verdicts need not (the route table): never drawn clean
        nodes.append(_node("missing", "Verdict unknown", [[f"ERROR: {', '.join(unknown)}", True]]))
    ok = not missing and not unknown and "NET-09" not in failed
    return {"label": "AWS endpoints", "nodes": nodes, "ok": ok}


def _front_doors(task: Mapping, failed: Mapping[str, dict]) -> list[dict]:
    if "exposures" in task and task["exposures"] is None:
        return [
            {
                "label": "Front doors",
                "nodes": [_node("none", "Unknown", [["load balancer facts not collected", True]])],
                "ok": False,
            }
        ]
    flagged = {
        rule: {
            e.get("listener_arn")
            for e in (failed.get(rule) or {}).get("exposures") or []
            if isinstance(e, Mapping)
        }
        for rule in ("NET-11", "NET-12")
        if rule in failed
    }
    rows = []
    for exposure in task.get("exposures") or []:
        marks = [rule for rule, listeners in flagged.items() if exposure.get("listener_arn") in listeners]
        alb = exposure.get("load_balancer_type") == "application"
        acl = exposure.get("web_acl_arn")
        lines: list = [[str(exposure.get("listener_protocol")), "NET-11" in marks]]
        if alb:
            lines.append([f"web ACL {_arn_name(acl) if acl else 'none'}", "NET-12" in marks])
        lines += [f"{family}" for family in exposure.get("families") or []]
        nodes = [
            _node("internet", "Internet"),
            _node("listener", f"Listener :{exposure.get('listener_port')}", lines, marks),
            _node("lb", f"{'ALB' if alb else 'NLB'} {_arn_name(exposure.get('load_balancer_arn'))}"),
            _node("tg", f"Target group {_arn_name(exposure.get('target_group_arn'))}"),
            _node("eni", f"Task port :{exposure.get('target_port')}"),
        ]
        rows.append({"label": "Front door", "nodes": nodes, "ok": not marks, "door": front_door(exposure)})
    return rows


def picture(task: Mapping, results: Mapping[str, str], failed: Mapping[str, dict]) -> list[dict]:
    """The rows of a task's drawn network path; ``results`` rule -> status, ``failed`` rule
    -> evidence of its FAILED results."""
    network = task.get("network") or {}
    if not task.get("eni_id"):
        return [
            {
                "label": "Network",
                "nodes": [_node("none", "No network interface", [["ENI not described", True]])],
                "ok": False,
            }
        ]
    rows = [_inbound(task, network, failed, results)]
    rows += _front_doors(task, failed)
    rows += [row for family in ("ipv4", "ipv6") if (row := _outbound(task, network, family, failed))]
    endpoints = _endpoints(network, failed, results)
    if endpoints:
        rows.append(endpoints)
    return rows


def _worst(statuses: Counter) -> str:
    return next((s for s in _WORST_FIRST if statuses.get(s)), "NOT_APPLICABLE")


class _Strings:
    """A table of repeated strings (evidence lines, pictures): each kept once."""

    def __init__(self) -> None:
        self.items: list = []
        self.index: dict[str, int] = {}

    def __call__(self, value: Any) -> int:
        key = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
        found = self.index.get(key)
        if found is None:
            found = self.index[key] = len(self.items)
            self.items.append(value)
        return found


def page_model(report: Mapping) -> dict:
    """The page's data: everything the script shows, and nothing more."""
    tasks = sorted(
        report.get("tasks") or [], key=lambda t: (str(t.get("workload") or t["group"]), t["task_arn"])
    )
    by_task: dict[str, list[dict]] = {}
    titles: dict[str, str] = {}
    severity_of: dict[str, str] = {}
    for result in report.get("results") or []:
        by_task.setdefault(result["task_arn"], []).append(result)
        titles.setdefault(result["rule_id"], result.get("title") or "")
        severity_of.setdefault(result["rule_id"], result["severity"])
    rule_ids = sorted(titles, key=lambda r: (-severity_rank(severity_of[r]), r))
    rule_index = {rule: i for i, rule in enumerate(rule_ids)}
    evidence = _Strings()
    pictures = _Strings()
    workloads: dict[str, dict] = {}
    task_rows = []
    first = {"direct": {}, "doors": {}, "secrets": {}, "egress": {}}
    failed_by_severity = Counter()
    for task in tasks:
        cluster = task.get("cluster_name") or str(task.get("cluster_arn", "")).rsplit("/", 1)[-1]
        name = str(task.get("workload") or f"{cluster}/{task['group']}")  # cluster_name is optional
        key = f"{task['account_id']}/{task['region']}/{name}"
        workload = workloads.setdefault(
            key,
            {"name": name, "account": task["account_id"], "region": task["region"], "cluster": cluster,
             "group": task["group"], "tasks": [], "rules": {}, "_statuses": {}, "_i": len(workloads)},
        )  # fmt: skip
        results = {r["rule_id"]: r for r in by_task.get(task["task_arn"], [])}
        statuses = {rule: r["status"] for rule, r in results.items()}
        failed = {rule: r.get("evidence") or {} for rule, r in results.items() if r["status"] == "FAILED"}
        codes = "".join(STATUS_CODES.get(statuses.get(rule, ""), "-") for rule in rule_ids)
        notes = []
        for rule, result in sorted(results.items()):
            status = result["status"]
            line = evidence(summarize_evidence(result.get("evidence"), limit=300))
            seen = workload["_statuses"].setdefault(rule, Counter())
            seen[status] += 1
            current = workload["rules"].get(rule)
            if current is None or _WORST_FIRST.index(status) < _WORST_FIRST.index(current[0]):
                workload["rules"][rule] = [status, line]
            if status in ("FAILED", "ERROR"):
                notes.append([rule_index[rule], STATUS_CODES[status], line])
            if status == "FAILED":
                failed_by_severity[result["severity"]] += 1
        _look_first(first, name, task, failed, results)
        workload["tasks"].append(len(task_rows))
        task_rows.append(
            {
                "id": _task_id(task["task_arn"]),
                "arn": task["task_arn"],
                "w": workload["_i"],
                "td": str(task.get("task_definition_arn") or "").rsplit("/", 1)[-1],
                "eni": task.get("eni_id"),
                "priv": task.get("private_ip"),
                "pub": task.get("public_ip"),
                "v6": list((task.get("network") or {}).get("ipv6_addresses") or []),
                "sg": [
                    f"{g.get('id')} {g.get('name') or ''}".strip()
                    for g in (task.get("network") or {}).get("security_groups")
                    or [{"id": g} for g in task.get("security_group_ids") or []]
                ],
                "img": list(task.get("images") or []),
                "r": codes,
                "n": notes,
                "p": pictures(picture(task, statuses, failed)),
            }
        )
    workload_rows = []
    for workload in workloads.values():
        rules = []
        for rule in rule_ids:
            if rule not in workload["rules"]:
                continue
            status, line = workload["rules"][rule]
            counts = workload["_statuses"][rule]
            place = {
                "account_id": workload["account"],
                "region": workload["region"],
                "cluster_name": workload["cluster"],
                "group": workload["group"],
            }
            rules.append(
                [rule_index[rule], STATUS_CODES[status], line, counts.get(status, 0), finding_id(place, rule)]
            )
        workload_rows.append(
            {k: workload[k] for k in ("name", "account", "region", "cluster", "tasks")} | {"rules": rules}
        )
    summary = report.get("summary") or {}
    results = report.get("results") or []
    # a saved report may leave the optional summaries out (the schema requires tasks and
    # by_status only): counted from its results and tasks, as the scan counts them
    by_rule = summary.get("by_rule")
    if by_rule is None:
        by_rule = {}
        for r in results:
            by_rule.setdefault(r["rule_id"], Counter())[r["status"]] += 1
        by_rule = {rule: dict(by_rule[rule]) for rule in sorted(by_rule)}
    by_status = summary.get("by_status") or dict(Counter(r["status"] for r in results))
    return {
        "generated_at": report.get("generated_at"),
        "scope": report.get("scope") or {},
        "summary": {
            "tasks": summary.get("tasks", len(tasks)),
            "skipped_tasks": summary.get("skipped_tasks", 0),
            "by_status": {s: by_status.get(s, 0) for s in STATUSES},
            "failed_by_severity": {s: failed_by_severity.get(s, 0) for s in reversed(SEVERITIES)},
            "by_rule": by_rule,
            "internet_reachable": summary.get("internet_reachable")
            or internet_reachable(report.get("tasks") or [], results),
        },
        # what could not be read: the scan's errors (a region's ListClusters, a cluster's
        # ListTasks, ...) and the (account, region) scopes that could not be scanned
        "errors": [
            [str(e.get("call") or ""), str(e.get("region") or ""), str(e.get("message") or "")]
            for e in (report.get("errors") or [])[:MAX_ERRORS_SHOWN]
            if isinstance(e, Mapping)
        ],
        "errors_total": len(report.get("errors") or []),
        # exemptions past their date, ignored by the scan (interface.md: reported)
        "expired": [
            [str(x.get("rule") or ""), str(x.get("workload") or ""), str(x.get("expires") or "")]
            for x in report.get("expired_exemptions") or []
            if isinstance(x, Mapping)
        ],
        "scopes": [
            [str(s.get("account_id")), str(s.get("region")), s.get("error")]
            for s in summary.get("scopes") or []
            if isinstance(s, Mapping)
        ],
        "rules": [[rule, titles[rule], severity_of[rule]] for rule in rule_ids],
        "workloads": workload_rows,
        "tasks": task_rows,
        "first": {kind: sorted([w, ", ".join(v)] for w, v in items.items()) for kind, items in first.items()},
        "ev": evidence.items,
        "pics": pictures.items,
    }


def _look_first(
    first: dict, workload: str, task: Mapping, failed: Mapping[str, dict], results: Mapping[str, dict]
) -> None:
    """What the demo's text summary lists under "What to look at", per workload: the same
    tasks ``internet_reachable`` counts (an exempted NET-02 is still reachable; a task whose
    exposures are null for a web ACL alone, NET-11 judged, is reached through a load
    balancer)."""
    net02 = results.get("NET-02") or {}
    if reached_directly(net02):
        ports = first["direct"].setdefault(workload, {})
        shown = format_ports((net02.get("evidence") or {}).get("open_ports") or [])
        ports[shown + (" (exempted)" if exempted(net02) else "")] = None
    for exposure in task.get("exposures") or []:
        first["doors"].setdefault(workload, {})[front_door(exposure)] = None
    if task.get("exposures", ()) is None and exposure_known(task["task_arn"], results.values()):
        first["doors"].setdefault(workload, {})["a load balancer whose web ACL could not be read"] = None
    if "CFG-02" in failed:
        names = first["secrets"].setdefault(workload, {})
        for variable in failed["CFG-02"].get("variables") or []:
            if isinstance(variable, Mapping) and variable.get("name"):
                names[str(variable["name"])] = None
    if "NET-05" in failed:
        paths = failed["NET-05"].get("paths") or {}
        for family in failed["NET-05"].get("families") or []:
            path = (paths.get(family) or {}).get("path") if isinstance(paths.get(family), Mapping) else None
            first["egress"].setdefault(workload, {})[f"{family} {path}"] = None


def _script_json(value: Any) -> str:
    """JSON that cannot end its ``<script>`` element or open a comment in it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def render(report: Mapping) -> str:
    """The whole page for a scan report dict."""
    data = _script_json(page_model(report))
    page, css, js = (_asset(name) for name in ("report.html", "report.css", "report.js"))
    return page.replace("/*CSS*/", css, 1).replace("/*JS*/", js, 1).replace("{{DATA}}", data, 1)


def _asset(name: str) -> str:
    """The page's template, stylesheet and script: package data beside this module."""
    return resources.files("fargate_audit.cli").joinpath("assets", name).read_text(encoding="utf-8")

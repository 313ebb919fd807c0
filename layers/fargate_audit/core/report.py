"""The scan report (``--format json``, ``scan-report.schema.json``) and the scan's exit code.

Pure: everything comes in as arguments (no clock, no environment, no boto3). The one
evidence summariser shared by the table and the ASFF builders lives here too, so a
rule's evidence reads the same in a terminal and in Security Hub.
"""

from __future__ import annotations

import itertools
import json
import operator
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, is_dataclass
from datetime import UTC, date, datetime
from importlib import resources
from typing import Any, TextIO

from fargate_audit.core.checks import usable
from fargate_audit.core.netalgebra import intersect, merge

REPORT_VERSION = 1

# Security Hub's severity labels, lowest first.
SEVERITIES = ("INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL")
STATUSES = ("FAILED", "ERROR", "PASSED", "NOT_APPLICABLE")
DEFAULT_FAIL_ON = "LOW"

SCHEMA_RESOURCE = "schemas/scan-report.schema.json"


def severity_rank(label: str) -> int:
    """0 for INFORMATIONAL .. 4 for CRITICAL (case-insensitive); ValueError otherwise."""
    try:
        return SEVERITIES.index(str(label).upper())
    except ValueError:
        raise ValueError(f"unknown severity {label!r} (one of {', '.join(SEVERITIES)})") from None


def exit_code(results: list[dict], fail_on: str = DEFAULT_FAIL_ON) -> int:
    """interface.md: 0 when no FAILED result is at or above ``fail_on``; 1 otherwise."""
    threshold = severity_rank(fail_on)
    for result in results:
        if result.get("status") == "FAILED" and severity_rank(result.get("severity", "")) >= threshold:
            return 1
    return 0


def iso_utc(now: datetime) -> str:
    """``2024-05-01T12:00:00Z`` (seconds precision); a naive datetime is taken as UTC."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_schema() -> dict:
    """The scan report's JSON Schema as shipped in the package (a copy of the shared spec)."""
    text = resources.files("fargate_audit").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    return json.loads(text)


def jsonable(value: Any) -> Any:
    """A deep copy where dates/datetimes become ISO strings and tuples/sets lists (YAML
    params give ``expires`` as a date)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(jsonable(v) for v in value)
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    return value


def task_entry(posture: dict, memo: dict | None = None) -> dict:
    """One ``tasks[]`` item of the report from a posture (design.md section 2)."""
    network = posture.get("network") or {}
    egress = network.get("egress") or {}
    entry = {
        "task_arn": posture["task_arn"],
        "cluster_arn": posture["cluster_arn"],
        "cluster_name": posture.get("cluster_name"),
        "account_id": posture["account_id"],
        "region": posture["region"],
        "group": posture["group"],
        "workload": posture.get("workload"),
        **({"task_group": posture["task_group"]} if posture.get("task_group") else {}),
        "task_definition_arn": posture["task_definition_arn"],
        "eni_id": network.get("eni_id"),
        "private_ip": network.get("private_ip"),
        "public_ip": network.get("public_ipv4"),
        "subnet_id": network.get("subnet_id"),
        "vpc_id": network.get("vpc_id"),
        "security_group_ids": sorted(
            {sg["id"] for sg in network.get("security_groups") or [] if sg.get("id")}
        ),
        "egress_paths": {
            family: (egress.get(family) or {}).get("path")
            for family in ("ipv4", "ipv6")
            if isinstance((egress.get(family) or {}).get("path"), str)
        },
    }
    entry["images"] = [c["image"] for c in posture.get("containers") or [] if c.get("image")]
    entry["network"] = network_view(network, errors=posture.get("errors") or {}, memo=memo)
    errors = posture.get("errors") or {}
    if "load_balancers" in errors or "web_acl" in errors:
        entry["exposures"] = None  # unknown: a fact that could change them was not collected
    else:
        entry["exposures"] = [{**e, "families": list(e["families"])} for e in network.get("exposures") or []]
    return {key: value for key, value in entry.items() if value is not None or key in _NULLABLE}


_NULLABLE = frozenset({"eni_id", "private_ip", "public_ip", "subnet_id", "vpc_id", "exposures"})

# VPC endpoints drawn on a task's picture: the ones NET-09 and NET-10 read.
_PICTURED_ENDPOINTS = ("s3", "ecr.api", "ecr.dkr")


def _nacl_decision(ports: list[dict], allowed: list[dict] | None) -> str:
    """``allow`` when the NACL's world decision admits every port of ``ports``, ``partial``
    when some, ``deny`` when none; ``unknown`` when the NACL was not read."""
    if allowed is None:
        return "unknown"
    admitted = intersect(ports, allowed)
    if not admitted:
        return "deny"
    return "allow" if admitted == merge(ports) else "partial"


def _shared(memo: dict | None, key: tuple, anchors: tuple, compute):
    """``compute()``, once per ``key`` in ``memo`` (one per report): the postures of a scan
    share their subnet's, groups' and VPC's facts (posture.build_posture's memo), so the
    parts of ``tasks[].network`` derived from them alone are built once and shared, never
    mutated. ``anchors`` (the objects the key names by ``id``) live as long as the entry."""
    if memo is None:
        return compute()
    hit = memo.get(key)
    if hit is None:
        hit = memo[key] = (compute(), anchors)
    return hit[0]


def network_view(network: Mapping, errors: Mapping | None = None, memo: dict | None = None) -> dict:
    """``tasks[].network``: what a drawing of the task's network path needs beyond the
    entry's ids (docs/design.md section 2): the IPv6 addresses, the security groups with
    their world-open ports (each with the subnet NACL's inbound world decision), the NACL
    and route table ids, the egress path and targets per family, and the S3/ECR VPC
    endpoints that apply to the task's subnet. Ids and ports only: nothing secret. A part
    whose facts could not be collected (the ENI or its security groups; the VPC endpoints)
    is null, not empty: "no world-open port" would be a claim the scan cannot make.
    ``memo``: one dict per report (see :func:`_shared`); the view is equal either way."""
    errors = errors or {}
    nacl = network.get("nacl") or {}
    rules = network.get("world_ingress_rules") or []
    nacl_known = "nacl" not in errors
    world_ports = _shared(
        memo,
        ("ports", id(rules), id(nacl), nacl_known),
        (rules, nacl),
        lambda: _world_ports(rules, nacl, nacl_known),
    )
    names = {sg.get("id"): sg.get("name") for sg in network.get("security_groups") or []}
    route_table = network.get("route_table_id")
    endpoints = network.get("vpc_endpoints") or []
    pictured = _shared(
        memo,
        ("endpoints", id(endpoints), route_table),
        (endpoints,),
        lambda: _pictured(endpoints, route_table),
    )
    egress = network.get("egress") or {}
    paths = _shared(memo, ("egress", id(egress)), (egress,), lambda: _egress_view(egress))
    unknown_groups = "eni" in errors or "security_groups" in errors
    unknown_endpoints = "eni" in errors or "vpc_endpoints" in errors
    return {
        "ipv6_addresses": list(network.get("ipv6_addresses") or []),
        "public_address": {
            family: bool((network.get("public_address") or {}).get(family)) for family in ("ipv4", "ipv6")
        },
        "security_groups": [{"id": gid, "name": name} for gid, name in names.items() if gid],
        "world_ports": None if unknown_groups else world_ports,
        "nacl_id": nacl.get("id"),
        "route_table_id": route_table,
        "egress": paths,
        "endpoints": None if unknown_endpoints else pictured,
    }


def _world_ports(rules: list, nacl: Mapping, nacl_known: bool) -> list[dict]:
    allowed = (nacl.get("inbound_world_allowed") or {}) if nacl_known and nacl.get("id") else None
    world_ports = []
    for rule in rules:
        family = rule.get("family")
        for interval in rule.get("ports") or []:
            world_ports.append(
                {
                    "group_id": rule.get("group_id"),
                    "family": family,
                    "protocol": interval.get("protocol"),
                    "from": interval.get("from"),
                    "to": interval.get("to"),
                    "nacl": _nacl_decision(
                        [interval], None if allowed is None else list(allowed.get(family) or [])
                    ),
                }
            )
    return world_ports


def _pictured(endpoints: list, route_table: str | None) -> list[dict]:
    """The S3/ECR endpoints that apply to the task's subnet (a gateway one: its route table)."""
    found = [
        {"id": e.get("id"), "service": e.get("service"), "type": e.get("type")}
        for e in endpoints
        if e.get("service") in _PICTURED_ENDPOINTS
        and usable(e)
        and (str(e.get("type") or "").lower() != "gateway" or route_table in (e.get("route_table_ids") or []))
    ]
    return sorted(found, key=lambda e: (str(e["service"]), str(e["id"])))


def _egress_view(egress: Mapping) -> dict:
    return {
        family: {
            "path": (egress.get(family) or {}).get("path"),
            "targets": list((egress.get(family) or {}).get("targets") or []),
        }
        for family in ("ipv4", "ipv6")
    }


_ENTRY_KEYS = ("task_arn", "rule_id", "status", "severity", "title", "evidence")


def _result_entry(result: dict, evidence: Any) -> dict:
    entry = {
        "task_arn": result["task_arn"],
        "rule_id": result["rule_id"],
        "status": result["status"],
        "severity": result["severity"],
    }
    if result.get("title"):
        entry["title"] = result["title"]
    entry["evidence"] = evidence
    return entry


def _streamable(result: dict) -> dict:
    """The result itself when it already is its report entry (the engine's results are:
    the same keys in the same order), else its entry."""
    if type(result) is dict and tuple(result) == _ENTRY_KEYS and result["title"] and result["evidence"]:
        return result
    return _result_entry(result, result.get("evidence") or {})


def summarize(tasks: list[dict], results: Iterable[dict], skipped_tasks: int) -> dict:
    results = results if isinstance(results, list) else list(results)
    by_status = dict.fromkeys(STATUSES, 0)
    by_rule: dict[str, dict[str, int]] = {}
    pairs = Counter(map(_rule_and_status, results))  # counted in C: 90,000 results at 5,000 tasks
    for (rule_id, status), count in sorted(pairs.items()):
        by_status[status] = by_status.get(status, 0) + count
        rule = by_rule.setdefault(rule_id, {})
        rule[status] = count
    return {
        "tasks": len(tasks),
        "skipped_tasks": skipped_tasks,
        "by_status": by_status,
        "by_rule": {rule_id: by_rule[rule_id] for rule_id in sorted(by_rule)},
        "internet_reachable": internet_reachable(tasks, results),
    }


def exposure_known(task_arn: str, results: Iterable[dict]) -> bool:
    """Whether the task's results show it has an exposure (NET-11 judged: PASSED or
    FAILED, NOT_APPLICABLE without one) when its ``exposures`` are null because only a web
    ACL could not be read (rules.md: NET-11 is unaffected then)."""
    return any(
        r["task_arn"] == task_arn and r["rule_id"] == "NET-11" and r["status"] in ("PASSED", "FAILED")
        for r in results
    )


def exempted(result: Mapping) -> bool:
    """A FAILED result an exemption turned PASSED (its evidence says so)."""
    return result.get("status") == "PASSED" and "exempted" in (result.get("evidence") or {})


def reached_directly(result: Mapping) -> bool:
    """A NET-02 result saying the internet reaches the task at its own address: FAILED, or
    exempted (an exemption accepts the exposure, it does not close it)."""
    return result.get("rule_id") == "NET-02" and (result.get("status") == "FAILED" or exempted(result))


def internet_reachable(tasks: list[dict], results: Iterable[dict]) -> dict:
    """Tasks the internet reaches at their own address (NET-02 FAILED, or exempted: an
    exemption accepts the exposure, it does not close it) and through load balancers (some
    exposure; or, its exposures null for a web ACL alone, NET-11 judged), counted apart
    (interface.md "Load-balancer exposure"); and, apart again, the tasks for which either
    could not be told (NET-02 ERROR; exposures null, NET-11 not judged): an unknown is not
    counted as unreachable."""
    direct: set[str] = set()
    direct_unknown: set[str] = set()
    judged: set[str] = set()
    for r in results:
        if reached_directly(r):
            direct.add(r["task_arn"])
        elif r["rule_id"] == "NET-02" and r["status"] == "ERROR":
            direct_unknown.add(r["task_arn"])
        elif r["rule_id"] == "NET-11" and r["status"] in ("PASSED", "FAILED"):
            judged.add(r["task_arn"])
    through = unknown = 0
    for t in tasks:
        if t.get("exposures"):
            through += 1
        elif t.get("exposures", ()) is None:
            if t["task_arn"] in judged:
                through += 1
            else:
                unknown += 1
    return {
        "direct": len(direct),
        "through_load_balancers": through,
        "direct_unknown": len(direct_unknown),
        "through_load_balancers_unknown": unknown,
    }


def _arn_place(arn: str) -> tuple[str, str]:
    """(account, region) of an ARN (``arn:aws:ecs:REGION:ACCOUNT:task/...``)."""
    parts = str(arn).split(":", 5)
    return (parts[4], parts[3]) if len(parts) == 6 else ("", "")


def summarize_scopes(
    scopes: list[dict], tasks: list[dict], results: Iterable[dict], skipped: list[dict]
) -> list[dict]:
    """``summary.scopes`` (interface.md "Organization scale"): one entry per (account,
    region) asked for, sorted, with its tasks, skipped tasks and results by status (all six
    keys always there, so that tools can read them: a scope that could not be scanned
    carries its ``error`` line and counts of 0, the tasks it saw)."""
    place_of = {t["task_arn"]: (t["account_id"], t["region"]) for t in tasks}
    task_counts = Counter(place_of.values())
    skipped_counts = Counter(_arn_place(s.get("task_arn", "")) for s in skipped)
    statuses = Counter((place_of.get(r["task_arn"]), r["status"]) for r in results)
    entries = []
    for scope in sorted(scopes, key=lambda s: (s["account_id"], s["region"])):
        place = (scope["account_id"], scope["region"])
        entry: dict[str, Any] = {"account_id": place[0], "region": place[1]}
        by_status = {status: statuses[(place, status)] for status in STATUSES}
        entry.update(tasks=task_counts[place], skipped_tasks=skipped_counts[place], by_status=by_status)
        entry["error"] = None if scope.get("error") is None else " ".join(str(scope["error"]).split())
        entries.append(entry)
    return entries


class _Entries:
    """The ``results`` of a report, made one at a time from the engine's results (sorted
    by task ARN and rule id), so that a streamed report never holds a second copy."""

    def __init__(self, results: list[dict], copy_evidence: bool):
        self.results = results
        self.copy_evidence = copy_evidence

    def __iter__(self) -> Iterator[dict]:
        copy_evidence = self.copy_evidence
        for result in self.results:
            evidence = result.get("evidence") or {}
            yield _result_entry(result, jsonable(evidence) if copy_evidence else evidence)


def _document(
    postures: list[dict],
    results: list[dict],
    *,
    now: datetime,
    scope: dict | None = None,
    skipped: list[dict] | int = 0,
    api_calls: dict[str, int] | None = None,
    duration_s: float = 0.0,
    errors: list[dict] | None = None,
    expired_exemptions: list[dict] | None = None,
    scopes: list[dict] | None = None,
    stream: bool,
    copy_evidence: bool = True,
) -> dict:
    scope = dict(scope or {})
    memo: dict = {}  # the network views' shared parts, for this report
    tasks = sorted((task_entry(p, memo) for p in postures), key=lambda t: t["task_arn"])
    accounts = set(scope.get("accounts") or []) | {t["account_id"] for t in tasks}
    regions = set(scope.get("regions") or []) | {t["region"] for t in tasks}
    clusters = set(scope.get("clusters") or []) | {t["cluster_arn"] for t in tasks}
    skipped_list = [] if isinstance(skipped, int) else list(skipped)
    skipped_count = skipped if isinstance(skipped, int) else len(skipped_list)
    ordered = _in_order(results)
    entries: Any = _Entries(ordered, copy_evidence=copy_evidence and not stream)
    summary = summarize(tasks, ordered, skipped_count)
    if scopes is not None:
        summary["scopes"] = summarize_scopes(scopes, tasks, ordered, skipped_list)
    return {
        "report_version": REPORT_VERSION,
        "generated_at": iso_utc(now),
        "scope": {
            "accounts": sorted(accounts),
            "regions": sorted(regions),
            "clusters": sorted(clusters),
        },
        "tasks": tasks,
        "results": entries if stream else list(entries),
        "summary": summary,
        "stats": {
            "api_calls": {name: int(n) for name, n in sorted((api_calls or {}).items())},
            "duration_s": round(max(float(duration_s), 0.0), 3),
        },
        "skipped": sorted(skipped_list, key=lambda s: str(s.get("task_arn", ""))),
        "errors": jsonable(list(errors or [])),
        "expired_exemptions": jsonable(list(expired_exemptions or [])),
    }


_result_order = operator.itemgetter("task_arn", "rule_id")
_rule_and_status = operator.itemgetter("rule_id", "status")


def _in_order(results: list[dict]) -> list[dict]:
    """``results`` sorted by task and rule: as they are when the engine made them (checked
    in one pass), else a sorted list of the same references."""
    keys = map(_result_order, results)
    previous = next(keys, None)
    for key in keys:
        if key < previous:
            return sorted(results, key=_result_order)
        previous = key
    return results


def build_report(
    postures: list[dict],
    results: list[dict],
    *,
    now: datetime,
    scope: dict | None = None,
    skipped: list[dict] | int = 0,
    api_calls: dict[str, int] | None = None,
    duration_s: float = 0.0,
    errors: list[dict] | None = None,
    expired_exemptions: list[dict] | None = None,
    scopes: list[dict] | None = None,
    json_ready: bool = True,
) -> dict:
    """The scan report dict (scan-report.schema.json, version 1).

    ``json_ready`` False: the results' evidence is the engine's own objects, not a
    JSON-ready copy (dates stay dates): for readers that only look, such as the table,
    which then need not copy 90,000 evidence dicts at 5,000 tasks.

    ``scope``: ``{"accounts", "regions", "clusters"}`` as the collector returns it;
    accounts and regions seen on the tasks are added. ``skipped``: the collector's
    ``[{"task_arn", "reason"}]`` (or just a count). ``errors``: the collector's scan-level
    errors (``{"call", "region", "resource", "message"}``); ``expired_exemptions``: the
    exemptions the engine ignored because they expired. Both are extra top-level keys,
    always present so that tools need not test for them. ``scopes``: an organization
    scan's ``[{"account_id", "region", "error"}]``, one per (account, region) asked for
    (``error`` None when it was scanned): ``summary.scopes`` then counts each one's tasks,
    skipped tasks and results by status (:func:`summarize_scopes`); absent otherwise.
    """
    return _document(
        postures, results, now=now, scope=scope, skipped=skipped, api_calls=api_calls,
        duration_s=duration_s, errors=errors, expired_exemptions=expired_exemptions, scopes=scopes,
        stream=False, copy_evidence=json_ready,
    )  # fmt: skip


def _json_default(value: Any) -> Any:
    """What :func:`jsonable` converts, converted as the encoder meets it (no deep copy)."""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(jsonable(v) for v in value)
    if isinstance(value, Mapping):
        return dict(value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_CHUNK = 1000  # tasks or results encoded per call


def write_report(stream: TextIO, postures: list[dict], results: list[dict], **kwargs: Any) -> None:
    """Write the report of :func:`build_report` (same arguments) to ``stream`` as JSON,
    the text ``json.dumps(build_report(...), indent=2, ensure_ascii=False)`` gives (but for
    the spelling of very small or large floats: ``0.00001`` for ``1e-05``, the same number),
    piece by piece: neither a second copy of the results nor the whole text is ever held.

    orjson encodes 1,000 tasks or results a call, about ten times the speed of the
    standard library's encoder (which, above all with ``indent``, took more CPU than the
    rest of a 5,000-task scan's pipeline together); each chunk is re-indented one level to
    sit inside the document."""
    import orjson

    document = _document(postures, results, stream=True, **kwargs)
    options = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
    options |= orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS

    def encode(value: Any) -> bytes:
        return orjson.dumps(value, default=_json_default, option=options).replace(b"\n", b"\n  ")

    write = _bytes_writer(stream)
    write(b"{")
    for index, (key, value) in enumerate(document.items()):
        write((b"," if index else b"") + b"\n  " + encode(key) + b": ")
        if key not in ("tasks", "results"):
            write(encode(value))
            continue
        items = iter(value) if key == "tasks" else map(_streamable, value.results)
        written = False
        while chunk := list(itertools.islice(items, _CHUNK)):
            text = encode(chunk)  # b"[\n    {...},\n    {...}\n  ]"
            write((b"," if written else b"[") + text[1:-4])
            written = True
        write(b"\n  ]" if written else b"[]")
    write(b"\n}\n")


def _bytes_writer(stream: TextIO):
    """A function writing UTF-8 bytes to ``stream``: straight to its binary buffer when it
    has one (a file, stdout: no decoding and re-encoding of the whole report), else
    decoded (an in-memory text stream)."""
    buffer = getattr(stream, "buffer", None)
    if buffer is None or getattr(stream, "encoding", "").lower().replace("-", "") != "utf8":
        return lambda data: stream.write(data.decode())
    stream.flush()  # whatever was written as text goes first
    return buffer.write


# --------------------------------------------------------------------------- evidence
#
# One short line per result, from the evidence keys the checks produce (catalog/<ID>/check.py). Keys
# that only repeat what the resources or other keys say (eni_id, families, ...) are not
# shown; an unknown key is shown generically so that a new rule's evidence is not lost.
# No key named like a value (``value``, ``values``, ...) is ever shown, at any depth:
# rule evidence carries names only (rules.md CFG-02) and this is the belt to those braces.

_NEVER_SHOWN = frozenset({"value", "values", "environment_value", "secret", "secrets"})
_NOT_SHOWN = frozenset(
    {
        "eni_id",
        "families",
        "route_table_id",
        "minimum",
        "minimums",
        "platform_family",
        "exempted",
        "endpoint_id",
    }
)


def format_ports(intervals: list[dict]) -> str:
    """``[tcp 22-22, tcp 3389-3389, udp 53-53]`` -> ``tcp 22, 3389; udp 53``."""
    by_protocol: dict[str, list[str]] = {}
    for iv in intervals or []:
        lo, hi = iv.get("from"), iv.get("to")
        text = "all" if (lo, hi) == (0, 65535) else (f"{lo}" if lo == hi else f"{lo}-{hi}")
        by_protocol.setdefault(str(iv.get("protocol")), []).append(text)
    return "; ".join(f"{proto} {', '.join(ports)}" for proto, ports in by_protocol.items())


def _listing(items: list[str], limit: int = 4) -> str:
    items = [i for i in items if i]
    more = f" +{len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _short(value: Any) -> str:
    if isinstance(value, Mapping):
        for key in ("name", "image", "id", "group_id", "path"):
            if isinstance(value.get(key), str):
                return value[key]
        return " ".join(f"{k}={v}" for k, v in sorted(value.items()) if isinstance(v, str | int | float))
    if isinstance(value, list):
        return _listing([_short(v) for v in value])
    return "" if value is None else str(value)


def _egress_rule(rule: Mapping) -> str:
    protocol = str(rule.get("protocol"))
    proto = "all" if protocol == "-1" else protocol
    lo, hi = rule.get("from"), rule.get("to")
    ports = "" if lo is None or proto == "all" else (f" {lo}" if lo == hi else f" {lo}-{hi}")
    group = f" ({rule['group_id']})" if rule.get("group_id") else ""
    return f"{proto}{ports} to {rule.get('cidr', 'world')}{group}"


def _paths(evidence: Mapping) -> str:
    paths = evidence.get("paths") or {}
    failing = evidence.get("families")
    shown = []
    for family in ("ipv4", "ipv6"):
        if isinstance(failing, list) and failing and family not in failing:
            continue
        entry = paths.get(family)
        path = entry.get("path") if isinstance(entry, Mapping) else entry
        if path:
            shown.append(f"{'path' if family == 'ipv4' else 'ipv6 path'} {path}")
    return "; ".join(shown)


def _security_groups(groups: list) -> str:
    names = []
    for group in groups or []:
        if isinstance(group, Mapping):
            gid, name = group.get("id") or group.get("group_id"), group.get("name")
            names.append(f"{gid} ({name})" if name and gid else str(gid or name))
        else:
            names.append(str(group))
    return f"security groups {_listing(names)}" if names else ""


def _flow_logs(logs: list) -> str:
    if not logs:
        return "no flow log"
    described = [f"{log.get('id')} {log.get('traffic_type')} {log.get('status') or 'ACTIVE'}" for log in logs]
    return f"flow logs {_listing(described, 3)}"


def _images(images: list) -> str:
    shown = []
    for image in images or []:
        if isinstance(image, Mapping):
            ref = str(image.get("image"))
            shown.append(f"{ref} ({image['registry']})" if image.get("registry") else ref)
        else:
            shown.append(str(image))
    return f"images {_listing(shown, 3)}" if shown else ""


def _variables(variables: list) -> str:
    names = [
        f"{v.get('container')}:{v.get('name')}"
        if isinstance(v, Mapping) and v.get("container")
        else _short(v)
        for v in variables or []
    ]
    return f"variables {_listing(names)}" if names else ""


def _platform(evidence: Mapping) -> str:
    version, minimum = evidence.get("platform_version"), evidence.get("minimum")
    minimums = evidence.get("minimums")
    if isinstance(minimums, Mapping) and minimums:  # CFG-01, platform family unknown
        floors = ", ".join(f"{family.lower()} {floor}" for family, floor in sorted(minimums.items()))
        return f"platform version {version} (family unknown; minimum {floors})"
    return f"platform version {version}" + (f" (minimum {minimum})" if minimum else "")


_RENDERERS: tuple[tuple[str, Any], ...] = (
    ("error", lambda e: f"error: {e['error']}"),
    ("open_ports", lambda e: f"open {format_ports(e['open_ports'])}" if e["open_ports"] else ""),
    (
        "public_ip",
        lambda e: f"public ip {_listing([str(a) for a in _as_list(e['public_ip'])])}"
        if _as_list(e["public_ip"])
        else "",
    ),
    ("paths", _paths),
    (
        "rules",
        lambda e: "egress " + _listing([_egress_rule(r) for r in e["rules"] if isinstance(r, Mapping)], 3)
        if e["rules"]
        else "",
    ),
    ("security_groups", lambda e: _security_groups(e["security_groups"])),
    ("nacl_id", lambda e: f"nacl {e['nacl_id']}"),
    ("flow_logs", lambda e: _flow_logs(e["flow_logs"])),
    ("reasons", lambda e: "; ".join(str(r) for r in e["reasons"])),
    (
        "unapproved_resources",
        lambda e: f"unapproved {_listing(list(map(str, e['unapproved_resources'])), 3)}"
        if e["unapproved_resources"]
        else "",
    ),
    (
        "missing_endpoints",
        lambda e: f"missing endpoints {_listing(list(map(str, e['missing_endpoints'])))}"
        if e["missing_endpoints"]
        else "",
    ),
    ("images", lambda e: _images(e["images"])),
    (
        "containers",
        lambda e: f"containers {_listing([_short(c) for c in e['containers']])}" if e["containers"] else "",
    ),
    ("container_insights", lambda e: f"container insights {e['container_insights'] or 'not set'}"),
    ("platform_version", _platform),
    ("variables", lambda e: _variables(e["variables"])),
)
_RENDERED = frozenset(key for key, _ in _RENDERERS)


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def summarize_evidence(evidence: Mapping | None, limit: int = 160) -> str:
    """A short human line for a result's evidence: ``open tcp 22, 3389``,
    ``path nat-gateway>internet-gateway``, ``error: eni: DescribeNetworkInterfaces: ...``.

    Deterministic; never shows a key named like an environment value.
    """
    evidence = _scrub(evidence or {})
    parts = []
    for key, render in _RENDERERS:
        if key in evidence and evidence[key] is not None:
            parts.append(render(evidence))
    for key in sorted(evidence):
        if key in _RENDERED or key in _NOT_SHOWN:
            continue
        text = _short(evidence[key])
        if text:
            parts.append(f"{key.replace('_', ' ')} {text}")
    exempted = evidence.get("exempted")
    if isinstance(exempted, Mapping):
        parts.append(f"exempted until {exempted.get('expires')}: {exempted.get('reason')}")
    line = "; ".join(p for p in parts if p)
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."


def _scrub(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _scrub(v) for k, v in value.items() if str(k).lower() not in _NEVER_SHOWN}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value

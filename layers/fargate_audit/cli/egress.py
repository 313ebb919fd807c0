"""``fargate-audit discovered``: what each workload was seen resolving, and allow lists.

Pure: the views and the exports are built from what ``stores.discovery.DiscoveryStore`` reads
(workload summaries and their destinations); no boto3 call, no clock (``now`` comes in).

DNS query logs show the *names* a task resolved and the record type it asked for, never
the protocol or port it then used: the protocol column is a hint (``A``/``AAAA`` are most
often HTTPS, hence ``HTTPS?``), never a fact. VPC flow logs (the ``flow_logs`` function)
show what was really sent: each workload's ``flows`` rows are (address, protocol, port,
action) with packets, bytes out and first/last seen (interface.md "Flow-log egress"). No
DNS answer names a flow's address yet (``name`` null, ``approved`` null), so every DNS row
is marked ``dns_only`` (``port`` null).

Exports (what was observed, so a team moves from discovery to enforcement in one step):

- ``network-firewall``: the input of Network Firewall's ``CreateRuleGroup``
  (``aws network-firewall create-rule-group --cli-input-json file://FILE``): a stateful
  rule group whose ``RulesSourceList`` allows (``ALLOWLIST``) the names on ``TLS_SNI`` and
  ``HTTP_HOST``.
- ``dns-firewall``: a domain list file for Route 53 Resolver DNS Firewall
  (``ImportFirewallDomains``, one domain per line).

Every observed name of the selected workloads is exported, exactly as observed: an allow
list of what the workload really resolved is the least privilege. ``approved_only`` keeps
only the approved names; ``wildcards`` folds the names an approved ``*.d`` pattern covers
into that pattern (Network Firewall ``.d``: ``d`` and every name under it; DNS Firewall
``*.d``), shorter but broader: ``*.amazonaws.com`` also admits any S3 bucket. The
``unattributed`` bucket is exported only when selected by name.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from fargate_audit.app.dnslogs import UNATTRIBUTED
from fargate_audit.core.checks import domain_approved, domain_matches, normalize_domain
from fargate_audit.core.egress import is_private

NETWORK_FIREWALL, DNS_FIREWALL = "network-firewall", "dns-firewall"
EXPORT_KINDS = (NETWORK_FIREWALL, DNS_FIREWALL)
TARGET_TYPES = ["TLS_SNI", "HTTP_HOST"]
MIN_CAPACITY = 100
# The hint shown for a DNS record type: what the name was probably looked up for.
_HINTS = {
    "A": "HTTPS?",
    "AAAA": "HTTPS?",
    "HTTPS": "HTTPS",
    "SVCB": "service binding",
    "CNAME": "alias",
    "SRV": "service (SRV)",
    "MX": "mail?",
    "TXT": "TXT lookup",
    "PTR": "reverse lookup",
    "NS": "delegation",
    "SOA": "zone lookup",
}
_DURATION = re.compile(r"^(\d+)\s*([mhd])$")


class SelectionError(ValueError):
    """A bad --since value (one line)."""


# --------------------------------------------------------------------------- selection


def parse_since(text: str | None, now: datetime) -> str | None:
    """``--since``: a duration back from ``now`` (``30m``, ``24h``, ``7d``) or an ISO date
    or time; returned as UTC seconds text, None when not given."""
    if not text:
        return None
    match = _DURATION.match(text.strip().lower())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        delta = {"m": timedelta(minutes=amount), "h": timedelta(hours=amount), "d": timedelta(days=amount)}[
            unit
        ]
        moment = now - delta
    else:
        try:
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise SelectionError(
                f"--since: {text!r} is neither a duration (30m, 24h, 7d) nor an ISO time"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def workload_selected(summary: Mapping[str, Any], pattern: str | None) -> bool:
    """``--workload``: a glob over the workload (``cluster/group``), its group alone
    (``service:web``), the workload in its account and region
    (``ACCOUNT/REGION/cluster/group``: one member's, where several accounts hold workloads
    of the same names) or ``unattributed``; without one every attributed workload."""
    workload = str(summary.get("workload") or "")
    if pattern is None:
        return workload != UNATTRIBUTED
    group = workload.split("/", 1)[1] if "/" in workload else workload
    placed = f"{summary.get('account_id')}/{summary.get('region')}/{workload}"
    return fnmatchcase(workload, pattern) or fnmatchcase(group, pattern) or fnmatchcase(placed, pattern)


def accounts_of(view: Iterable[Mapping[str, Any]]) -> list[str]:
    """The accounts the view's workloads are in (unattributed blocks name none)."""
    return sorted({str(b["account_id"]) for b in view if b.get("account_id")})


def select(
    summaries: Iterable[Mapping[str, Any]], pattern: str | None = None, include_unattributed: bool = False
) -> list[dict]:
    chosen = []
    for summary in summaries:
        if workload_selected(summary, pattern) or (
            include_unattributed and pattern is None and summary.get("workload") == UNATTRIBUTED
        ):
            chosen.append(dict(summary))
    return sorted(chosen, key=lambda s: (s.get("workload") == UNATTRIBUTED, str(s.get("workload"))))


# --------------------------------------------------------------------------- views


def approval_params(params: Mapping[str, Any], account: str | None, region: str | None) -> tuple[list, list]:
    """(approved_domains, approved_registries) resolved for a workload's account and region."""

    def resolve(values: Iterable[str]) -> list[str]:
        out = []
        for value in values:
            text = str(value)
            if account:
                text = text.replace("{account}", account)
            if region:
                text = text.replace("{region}", region)
            out.append(text)
        return out

    return resolve(params.get("approved_domains") or []), resolve(params.get("approved_registries") or [])


def protocol_hint(query_types: Iterable[str]) -> str:
    """``DNS A/AAAA (HTTPS?)``: the record types asked for, and what they suggest."""
    types = sorted({str(t).upper() for t in query_types if t}, key=lambda t: (t not in ("A", "AAAA"), t))
    if not types:
        return "DNS"
    hints: list[str] = []
    for t in types:
        hint = _HINTS.get(t)
        if hint and hint not in hints:
            hints.append(hint)
    text = "DNS " + "/".join(types)
    return f"{text} ({', '.join(hints)})" if hints else text


def sites(
    destinations: Iterable[Mapping[str, Any]],
    params: Mapping[str, Any],
    account: str | None,
    region: str | None,
    since: str | None = None,
) -> list[dict]:
    """One row per name (its record types merged): ``{"name", "query_types", "protocol",
    "first_seen", "last_seen", "count", "approved", "answers"}``, by name; destinations
    last seen before ``since`` are left out."""
    domains, registries = approval_params(params, account, region)
    rows: dict[str, dict] = {}
    for dest in destinations:
        if since and str(dest.get("last_seen") or "") < since:
            continue
        name = str(dest.get("name") or "")
        row = rows.setdefault(
            name,
            {
                "name": name,
                "query_types": [],
                "first_seen": None,
                "last_seen": None,
                "count": 0,
                "answers": [],
            },
        )
        row["query_types"].append(str(dest.get("query_type") or ""))
        firsts = [t for t in (row["first_seen"], dest.get("first_seen")) if t]
        lasts = [t for t in (row["last_seen"], dest.get("last_seen")) if t]
        row["first_seen"] = min(firsts) if firsts else None
        row["last_seen"] = max(lasts) if lasts else None
        row["count"] += int(dest.get("count") or 0)
        for answer in dest.get("answers") or []:
            if answer not in row["answers"]:
                row["answers"].append(answer)
    for row in rows.values():
        row["query_types"] = sorted(set(row["query_types"]) - {""})
        row["protocol"] = protocol_hint(row["query_types"])
        row["approved"] = domain_approved(row["name"], domains, registries)
    return [rows[name] for name in sorted(rows)]


def flow_rows(
    flows: Iterable[Mapping[str, Any]],
    since: str | None = None,
    name_of: Callable[[Mapping[str, Any]], str | None] | None = None,
    approved: Callable[[str], bool] | None = None,
    approved_cidrs: Iterable[str] = (),
) -> list[dict]:
    """One row per (destination, protocol, port, action) seen in flow logs, the most
    bytes first (interface.md "Flow-log egress"): ``{"name", "address", "addresses",
    "protocol", "port", "action", "flows", "packets", "bytes_out", "first_seen",
    "last_seen", "approved"}``. The destination is the name a DNS answer gave the address
    before the flow started (``name_of(flow)``, ``core.egress.name_for``): the addresses
    one name resolved to (a CNAME chain, several A records) make one row, counters summed,
    ``address`` null and ``addresses`` listing them; an address no answer named is its own
    row (``name`` null; ``approved`` true when ``approved_cidrs``, EGR-03's
    ``approved_egress_cidrs``, cover its address, else null). Flows last seen before
    ``since`` are left out."""
    networks = []
    for cidr in approved_cidrs:
        with contextlib.suppress(ValueError):  # the params file's loader names a bad one
            networks.append(ipaddress.ip_network(str(cidr).strip(), strict=False))
    rows: dict[tuple, dict] = {}
    for found in flows:
        if since and str(found.get("last_seen") or "") < since:
            continue
        name = name_of(found) if name_of is not None else None
        address = found.get("address")
        protocol, port, action = found.get("protocol"), found.get("port"), found.get("action")
        key = (name is None, name if name is not None else address, protocol, port, action)
        row = rows.get(key)
        if row is None:
            rows[key] = {
                "name": name,
                "address": None if name is not None else address,
                "addresses": [address],
                "protocol": protocol,
                "port": port,
                "action": action,
                "flows": found.get("flows", 0),
                "packets": found.get("packets"),  # None: the flow log's format has no packets
                "bytes_out": found.get("bytes_out", 0),
                "first_seen": found.get("first_seen"),
                "last_seen": found.get("last_seen"),
                "approved": (
                    approved(name)
                    if name is not None and approved is not None
                    else (True if name is None and _covered(address, networks) else None)
                ),
            }
            continue
        if address not in row["addresses"]:
            row["addresses"].append(address)
        for counter in ("flows", "bytes_out"):
            row[counter] += found.get(counter, 0)
        if found.get("packets") is not None:
            row["packets"] = (row["packets"] or 0) + found["packets"]
        seen = [t for t in (row["first_seen"], found.get("first_seen")) if t]
        row["first_seen"] = min(seen) if seen else None
        seen = [t for t in (row["last_seen"], found.get("last_seen")) if t]
        row["last_seen"] = max(seen) if seen else None
    for row in rows.values():
        row["addresses"].sort(key=str)
    return sorted(
        rows.values(),
        key=lambda r: (-int(r["bytes_out"]), str(r["name"] or r["address"]), str(r["protocol"]), r["port"]),
    )


def _covered(address: Any, networks: list) -> bool:
    try:
        return bool(networks) and is_private(str(address), networks)
    except ValueError:
        return False


def discovered_view(
    selected: Iterable[Mapping[str, Any]],
    destinations_of,
    params: Mapping[str, Any],
    since: str | None = None,
    flows_of=None,
    names_of=None,
) -> list[dict]:
    """``discovered --format json``: per workload its summary, its sites (DNS) and its
    flows (VPC flow logs). ``destinations_of(workload_key)`` / ``flows_of(workload_key)``
    read the workload's DNS destinations and flow destinations (None: no flow rows);
    ``names_of(workload_key)`` gives the ``name_of(flow)`` naming its flow rows (None:
    flow rows unnamed). A DNS row is ``dns_only`` when no flow row of the workload bears
    its name."""
    view = []
    for summary in selected:
        account, region = summary.get("account_id"), summary.get("region")
        rows = sites(destinations_of(summary["workload_key"]), params, account, region, since)
        domains, registries = approval_params(params, account, region)
        flows = (
            flow_rows(
                flows_of(summary["workload_key"]),
                since,
                name_of=names_of(summary["workload_key"]) if names_of is not None else None,
                approved=lambda name, d=domains, r=registries: domain_approved(name, d, r),
                approved_cidrs=params.get("approved_egress_cidrs") or (),
            )
            if flows_of is not None
            else []
        )
        named = {f["name"] for f in flows if f["name"]}
        for row in rows:
            # interface.md: a DNS row's protocol and port are null (DNS shows no protocol);
            # what its record types suggest stays apart, as a hint
            row |= {
                "protocol_hint": row["protocol"],
                "protocol": None,
                "port": None,
                "dns_only": row["name"] not in named,
            }
        view.append(
            {
                "workload": summary.get("workload"),
                "workload_key": summary.get("workload_key"),
                "account_id": summary.get("account_id"),
                "region": summary.get("region"),
                "queries": summary.get("queries"),
                "flow_records": summary.get("flow_records", 0),
                "first_seen": summary.get("first_seen"),
                "last_seen": summary.get("last_seen"),
                "sites": rows,
                "flows": flows,
            }
        )
    return view


def _short_time(value: Any) -> str:
    text = str(value or "-")
    return text.replace("T", " ").replace("Z", "") if text != "-" else text


def format_discovered(view: list[dict]) -> str:
    """``discovered --format table``: per workload ``Discovered N visited sites from W``
    and one row per name."""
    if not view:
        return (
            "no discovered destinations (are the dns_logs and flow_logs functions subscribed to the "
            "query logs and the flow logs?)\n"
        )
    lines: list[str] = []
    any_flows = False
    # several accounts or regions: each workload is named with its place (the same names
    # may be in each member account)
    places = {(b.get("account_id"), b.get("region")) for b in view}
    for block in view:
        workload = str(block["workload"])
        rows = block["sites"]
        flows = block.get("flows") or []
        any_flows = any_flows or bool(flows)
        source = "unattributed sources" if workload == UNATTRIBUTED else workload
        if len(places) > 1 and block.get("account_id"):
            source += f" ({block.get('account_id')} {block.get('region')})"
        unapproved = sum(1 for r in rows if not r["approved"])
        dns_only = sum(1 for r in rows if r.get("dns_only", True))
        if flows:
            lines.extend(_flow_table(flows, source))
            if not rows:
                continue
        lines.append(
            f"Discovered {len(rows)} visited site{'' if len(rows) == 1 else 's'} from {source}"
            + (f" ({unapproved} not approved)" if unapproved else "")
            + (f" - {dns_only} DNS only: no flow row bears the name" if flows else "")
        )
        header = ("NAME", "PROTOCOL (HINT)", "FIRST SEEN", "LAST SEEN", "COUNT", "APPROVED")
        table = [
            (
                r["name"],
                (r.get("protocol_hint") or r["protocol"] or "-")
                if r.get("dns_only", True)
                else "see flow rows",
                _short_time(r["first_seen"]),
                _short_time(r["last_seen"]),
                str(r["count"]),
                "yes" if r["approved"] else "NO",
            )
            for r in rows
        ]
        widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
        for row in [header, *table]:
            lines.append("  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        lines.append("")
    lines.append("DNS logs show the names resolved, not the protocol used: the protocol column is a hint.")
    if any_flows:
        lines.append("Flow logs show the protocol, port and bytes really sent to each internet address.")
    return "\n".join(lines) + "\n"


def _flow_table(flows: list[dict], source: str) -> list[str]:
    rejected = sum(1 for r in flows if r["action"] == "REJECT")
    lines = [
        f"Internet egress of {source} in flow logs: {len(flows)} destination{'' if len(flows) == 1 else 's'}"
        + (f" ({rejected} rejected)" if rejected else "")
    ]
    header = (
        "NAME OR ADDRESS",
        "PROTOCOL",
        "PORT",
        "ACTION",
        "PACKETS",
        "BYTES OUT",
        "FIRST SEEN",
        "LAST SEEN",
        "APPROVED",
    )
    table = [
        (
            str(r["name"] or r["address"]),
            str(r["protocol"]),
            str(r["port"]),
            str(r["action"]),
            "-" if r["packets"] is None else str(r["packets"]),
            str(r["bytes_out"]),
            _short_time(r["first_seen"]),
            _short_time(r["last_seen"]),
            "-" if r["approved"] is None else ("yes" if r["approved"] else "NO"),
        )
        for r in flows
    ]
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    for row in [header, *table]:
        lines.append("  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    lines.append("")
    return lines


# --------------------------------------------------------------------------- exports


# A name DNS Firewall (ImportFirewallDomains) and Network Firewall domain lists take:
# letters, digits and hyphens in dot-separated labels (a wildcard comes only from an
# approved ``*.d`` pattern, never from a queried name such as ``*.x`` or ``_dmarc.x``)
_EXPORTABLE = re.compile(r"^[a-z0-9-]{1,63}(\.[a-z0-9-]{1,63})*$")
MAX_EXPORT_NAME = 253


def export_domains(
    view: list[dict],
    params: Mapping[str, Any],
    approved_only: bool = False,
    wildcards: bool = False,
    skipped: list[str] | None = None,
) -> list[tuple[str, str | None]]:
    """``[(name, wildcard suffix or None)]`` of the names to export, deduplicated; with
    ``wildcards`` a name covered by an approved ``*.d`` pattern carries ``d``. Names a
    firewall's domain list does not take (underscores, a literal ``*``) are left out and
    appended to ``skipped`` when given."""
    found: dict[str, str | None] = {}
    for block in view:
        domains, _ = approval_params(params, block.get("account_id"), block.get("region"))
        suffixes = sorted(
            (normalize_domain(p)[2:] for p in domains if normalize_domain(p).startswith("*.")), key=len
        )
        for row in block["sites"]:
            if approved_only and not row["approved"]:
                continue
            name = normalize_domain(row["name"])
            suffix = (
                next((w for w in suffixes if domain_matches(name, f"*.{w}")), None) if wildcards else None
            )
            # exported as itself (no approved wildcard covers it): only a name a firewall takes
            if suffix is None and (len(name) > MAX_EXPORT_NAME or not _EXPORTABLE.match(name)):
                if skipped is not None and name not in skipped:
                    skipped.append(name)
                continue
            found.setdefault(name, suffix)
    return sorted(found.items())


def network_firewall_rule_group(
    domains: list[tuple[str, str | None]],
    name: str = "fargate-audit-discovered",
    description: str | None = None,
) -> dict:
    """``CreateRuleGroup`` input: a stateful domain-list rule group allowing the domains on
    TLS SNI and HTTP Host. Capacity leaves room to grow (it is fixed at creation;
    ``DryRun`` tells what the group needs)."""
    targets = sorted({f".{suffix}" if suffix else domain for domain, suffix in domains})
    capacity = max(MIN_CAPACITY, int(math.ceil(len(targets) * len(TARGET_TYPES) * 2 / 100.0)) * 100)
    return {
        "RuleGroupName": name,
        "Type": "STATEFUL",
        "Capacity": capacity,
        "Description": description or f"Domains observed by fargate-audit ({len(targets)} targets)",
        "RuleGroup": {
            "RulesSource": {
                "RulesSourceList": {
                    "Targets": targets,
                    "TargetTypes": list(TARGET_TYPES),
                    "GeneratedRulesType": "ALLOWLIST",
                }
            }
        },
    }


def dns_firewall_domain_list(domains: list[tuple[str, str | None]]) -> str:
    """The ImportFirewallDomains file: one domain per line, ``*.d`` for approved wildcards."""
    lines = sorted({f"*.{suffix}" if suffix else domain for domain, suffix in domains})
    return "\n".join(lines) + ("\n" if lines else "")


def validate_rule_group_request(request: Mapping[str, Any]) -> None:
    """Check a CreateRuleGroup input against botocore's network-firewall model, offline;
    botocore's ParamValidationError when it does not fit."""
    import botocore.session
    from botocore.validate import validate_parameters

    model = botocore.session.get_session().get_service_model("network-firewall")
    validate_parameters(dict(request), model.operation_model("CreateRuleGroup").input_shape)

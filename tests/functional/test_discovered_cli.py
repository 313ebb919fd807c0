"""`fargate-audit discovered` on moto: what the dns_logs function recorded, per workload,
as a table or JSON, and the two allow-list exports (validated against botocore's
network-firewall model; the DNS Firewall file is one domain per line)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from fargate_audit.cli import commands as cli
from fargate_audit.cli import egress
from support.env import TABLE
from support.world import emulated_world
from test_dns_logs_handler import batch, dns, record, running
from test_flow_logs_handler import batch as flow_batch
from test_flow_logs_handler import flow


@pytest.fixture(scope="module")
def world():
    with pytest.MonkeyPatch.context() as monkeypatch, emulated_world(monkeypatch) as built:
        web, etl = built.web[0], built.etl[0]
        running(built, web, etl)
        old = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
        at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        records = [
            record(built.vpc, web.private_ip, "registry-1.docker.io", at),
            record(built.vpc, web.private_ip, "registry-1.docker.io", at, "AAAA"),
            record(built.vpc, web.private_ip, "auth.docker.io", at),
            record(built.vpc, web.private_ip, "api.ecr.eu-west-1.amazonaws.com", at),
            record(built.vpc, web.private_ip, "legacy.example", old),
            record(built.vpc, etl.private_ip, "s3.eu-west-1.amazonaws.com", at),
            record(built.vpc, "10.20.9.250", "ntp.ubuntu.com", at),
        ]
        # the docker hub name's answer: a CNAME chain ending at the address web sends to
        records[0] = records[0] | {
            "answers": [
                {"Rdata": "registry-1.docker.io.cdn.example.", "Type": "CNAME", "Class": "IN"},
                {"Rdata": "52.94.218.7", "Type": "A", "Class": "IN"},
            ]
        }
        dns(built, batch(records * 2))
        ip = web.private_ip
        flows = [
            flow(web.eni, ip, "52.94.218.7", 443, packets=40, size=38000),
            flow(web.eni, ip, "52.94.218.7", 443, packets=2, size=200),
            flow(web.eni, ip, "198.51.100.23", 4444, action="REJECT", packets=3, size=180),
            flow(web.eni, ip, "2600:1f18:4a3:6900::5", 443, packets=5, size=900),
        ]
        assert built.flow_logs(flow_batch(flows))["status"] == "recorded"
        yield built


def run(*argv, code=0):
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["discovered", "--table", TABLE, *argv], stdout=out, stderr=err) == code, err.getvalue()
    return out.getvalue(), err.getvalue()


def test_the_table_shows_each_workloads_sites_with_hint_times_count_and_approval(world):
    out, _ = run()
    assert "Discovered 4 visited sites from prod-web/service:web (3 not approved)" in out
    assert "Discovered 1 visited site from prod-web/service:web" not in out
    sites = out[out.index("Discovered 4 visited sites from prod-web/service:web") :]
    line = next(line for line in sites.splitlines() if line.strip().startswith("auth.docker.io"))
    assert line.split()[1:4] == ["DNS", "A", "(HTTPS?)"] and line.split()[-2:] == ["2", "NO"]
    line = next(line for line in sites.splitlines() if line.strip().startswith("registry-1.docker.io"))
    assert line.split()[1:4] == ["see", "flow", "rows"] and line.split()[-2:] == ["4", "NO"]
    api = next(line for line in out.splitlines() if "api.ecr.eu-west-1.amazonaws.com" in line)
    assert api.split()[-1] == "yes"
    assert "unattributed" in out and "ntp.ubuntu.com" in out  # shown, never dropped
    assert "protocol column is a hint" in out


def test_workload_and_since_select(world):
    out, _ = run("--workload", "service:web", "--since", "1d", "--format", "json")
    (block,) = json.loads(out)
    assert block["workload"] == "prod-web/service:web"
    assert [s["name"] for s in block["sites"]] == [
        "api.ecr.eu-west-1.amazonaws.com",
        "auth.docker.io",
        "registry-1.docker.io",
    ]  # legacy.example was last seen 3 days ago
    site = block["sites"][-1]
    assert site["query_types"] == ["A", "AAAA"] and site["count"] == 4 and site["approved"] is False
    # interface.md: a DNS row's protocol and port are null (flow rows carry them); the
    # record types' hint is apart
    assert all((s["protocol"], s["port"]) == (None, None) for s in block["sites"])
    assert site["protocol_hint"].startswith("DNS ")
    (unknown,) = json.loads(run("--workload", "unattributed", "--format", "json")[0])
    assert unknown["sites"][0]["name"] == "ntp.ubuntu.com"


def test_a_params_file_changes_what_is_approved(world, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text('approved_domains: ["*.amazonaws.com", "*.aws", "*.docker.io"]\n')
    out, _ = run("--workload", "prod-web/*", "--params", str(params), "--format", "json")
    approved = {s["name"]: s["approved"] for s in json.loads(out)[0]["sites"]}
    assert approved["registry-1.docker.io"] is True and approved["legacy.example"] is False


def test_network_firewall_export_is_a_valid_create_rule_group_input(world, tmp_path):
    target = tmp_path / "web.json"
    out, err = run("--workload", "service:web", "--export", "network-firewall", str(target))
    request = json.loads(target.read_text())
    egress.validate_rule_group_request(request)  # botocore's model, offline
    assert request["Type"] == "STATEFUL" and request["Capacity"] >= 100
    source = request["RuleGroup"]["RulesSource"]["RulesSourceList"]
    assert source == {
        "Targets": [
            "api.ecr.eu-west-1.amazonaws.com",
            "auth.docker.io",
            "legacy.example",
            "registry-1.docker.io",
        ],
        "TargetTypes": ["TLS_SNI", "HTTP_HOST"],
        "GeneratedRulesType": "ALLOWLIST",
    }
    assert f"wrote 4 domains from 1 workloads to {target}" in err
    assert "Discovered 4 visited sites" in out


def test_wildcards_fold_approved_names_and_approved_only_drops_the_others(world, tmp_path):
    target = tmp_path / "web.json"
    run(
        "--workload",
        "service:web",
        "--wildcards",
        "--approved-only",
        "--export",
        "network-firewall",
        str(target),
    )
    source = json.loads(target.read_text())["RuleGroup"]["RulesSource"]["RulesSourceList"]
    assert source["Targets"] == [".amazonaws.com"]


def test_dns_firewall_export_is_one_domain_per_line(world, tmp_path):
    target = tmp_path / "domains.txt"
    run("--export", "dns-firewall", str(target))
    lines = target.read_text().splitlines()
    assert (
        lines == sorted(lines) and "registry-1.docker.io" in lines and "s3.eu-west-1.amazonaws.com" in lines
    )
    assert "ntp.ubuntu.com" not in lines  # unattributed only when selected by name
    assert all(" " not in line and line == line.lower() for line in lines)
    out, _ = run("--export", "dns-firewall", "-", "--workload", "unattributed")
    assert out == "ntp.ubuntu.com\n"


def test_a_workload_pattern_matching_nothing_writes_no_empty_allow_list(world, tmp_path):
    """A typo exported an empty list (exit 0), which ImportFirewallDomains' REPLACE would
    have made the domain list."""
    target = tmp_path / "domains.txt"
    _, err = run("--export", "dns-firewall", str(target), "--workload", "service:wbe", code=2)
    assert "matches no workload" in err and not target.exists()


def test_a_selection_with_no_domain_to_allow_writes_no_empty_allow_list(world, tmp_path):
    """A workload matched, but nothing of it is approved (or it queried nothing): the export
    was an empty ALLOWLIST (exit 0), which applied would block all its traffic."""
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"approved_domains": [], "approved_registries": []}))
    for kind, name in (("network-firewall", "rules.json"), ("dns-firewall", "domains.txt")):
        target = tmp_path / name
        _, err = run(
            "--export", kind, str(target), "--workload", "family:etl", "--approved-only",
            "--params", str(params), code=2,
        )  # fmt: skip
        assert "no approved domain name to allow among the 1 workload(s) selected" in err
        assert not target.exists()


def test_names_a_firewall_domain_list_does_not_take_are_left_out_of_exports():
    """DNS Firewall takes letters, digits, hyphens and dots (and a leading * it only gets
    from an approved *.d pattern): an underscore name broke the import, and a literal query
    for *.x became a wildcard nobody approved."""
    from fargate_audit.core import rules
    from fargate_audit.core.params import effective_params

    names = ["api.partner.example", "_dmarc.example.com", "*.evil.example", "x" * 64 + ".example"]
    view = [
        {
            "account_id": "123456789012",
            "region": "eu-west-1",
            "sites": [{"name": n, "approved": False} for n in names],
        }
    ]
    skipped: list[str] = []
    domains = egress.export_domains(view, effective_params(rules.load_catalog()), skipped=skipped)
    assert domains == [("api.partner.example", None)]
    assert skipped == names[1:]
    assert egress.dns_firewall_domain_list(domains) == "api.partner.example\n"
    # one an approved *.d covers is exported as that wildcard, whatever its own labels
    params = effective_params(rules.load_catalog(), {"approved_domains": ["*.example.com"]})
    view[0]["sites"] = [{"name": "_dmarc.example.com", "approved": True}]
    skipped.clear()
    domains = egress.export_domains(view, params, wildcards=True, skipped=skipped)
    assert (domains, skipped) == ([("_dmarc.example.com", "example.com")], [])
    assert egress.dns_firewall_domain_list(domains) == "*.example.com\n"


def test_an_export_to_stdout_is_the_only_document_there_in_any_format(world):
    out, _ = run("--export", "network-firewall", "-", "--format", "json")

    request = json.loads(out)  # one JSON document: the rule group request, not the view after it
    assert "RuleGroup" in request and request["Type"] == "STATEFUL"


def test_a_broken_rule_group_is_refused_by_the_offline_validation():
    from botocore.exceptions import ParamValidationError

    bad = egress.network_firewall_rule_group([("a.example", None)])
    bad["RuleGroup"]["RulesSource"]["RulesSourceList"]["GeneratedRulesType"] = 7
    with pytest.raises(ParamValidationError):
        egress.validate_rule_group_request(bad)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--export", "pfsense", "x"], "--export: 'pfsense' is not one of network-firewall, dns-firewall"),
        (["--since", "last tuesday"], "--since: 'last tuesday' is neither a duration"),
        (
            ["--workload", "service:wbe"],
            "--workload: 'service:wbe' matches no workload (known: batch/family:etl, prod-web/service:web",
        ),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(world, argv, fragment):
    _, err = run(*argv, code=2)
    assert err.count("\n") == 1 and fragment in err


def test_a_missing_table_is_one_line(world):
    err = io.StringIO()
    assert cli.main(["discovered", "--table", "no-such-table"], stdout=io.StringIO(), stderr=err) == 2
    assert "table no-such-table not found" in err.getvalue()


def test_flow_rows_carry_address_protocol_port_action_packets_and_bytes(world):
    out, _ = run("--workload", "service:web", "--format", "json")
    (block,) = json.loads(out)
    assert block["flow_records"] == 4
    assert [
        (f["address"], f["addresses"], f["protocol"], f["port"], f["action"], f["packets"], f["bytes_out"])
        for f in block["flows"]
    ] == [
        (None, ["52.94.218.7"], "tcp", 443, "ACCEPT", 42, 38200),  # named: the name is the destination
        ("2600:1f18:4a3:6900::5", ["2600:1f18:4a3:6900::5"], "tcp", 443, "ACCEPT", 5, 900),
        ("198.51.100.23", ["198.51.100.23"], "tcp", 4444, "REJECT", 3, 180),
    ]
    first, second = block["flows"][:2]
    # the DNS answer (through its CNAME) named the address before the flow started
    assert first["name"] == "registry-1.docker.io" and first["approved"] is False
    assert first["first_seen"] <= first["last_seen"]
    assert second["name"] is None and second["approved"] is None  # no answer named it
    assert {s["name"]: s["dns_only"] for s in block["sites"]} == {
        "registry-1.docker.io": False,
        "auth.docker.io": True,
        "api.ecr.eu-west-1.amazonaws.com": True,
        "legacy.example": True,
    }
    assert all(site["port"] is None for site in block["sites"])
    etl = json.loads(run("--workload", "family:etl", "--format", "json")[0])[0]
    assert etl["flows"] == [] and etl["flow_records"] == 0


def test_an_unnamed_address_that_approved_egress_cidrs_cover_is_approved(world, tmp_path):
    """EGR-03 takes approved_egress_cidrs as approved egress; the row said null."""
    params = tmp_path / "params.yaml"
    params.write_text('approved_egress_cidrs: ["2600:1f18:4a3:6900::/56"]\n')
    out, _ = run("--workload", "service:web", "--params", str(params), "--format", "json")
    approved = {f["address"]: f["approved"] for f in json.loads(out)[0]["flows"] if f["address"]}
    assert approved == {"2600:1f18:4a3:6900::5": True, "198.51.100.23": None}


def test_the_table_shows_flow_rows_before_the_dns_only_sites(world):
    out, _ = run("--workload", "service:web")
    assert "Internet egress of prod-web/service:web in flow logs: 3 destinations (1 rejected)" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("registry-1.docker.io"))
    assert row.split()[1:6] == ["tcp", "443", "ACCEPT", "42", "38200"] and row.split()[-1] == "NO"
    row = next(line for line in out.splitlines() if line.strip().startswith("2600:1f18:4a3:6900::5"))
    assert row.split()[-1] == "-"  # an unnamed address has no approval to show
    assert "(3 not approved) - 3 DNS only: no flow row bears the name" in out
    assert out.index("Internet egress of") < out.index("Discovered 4 visited sites")


def test_the_addresses_one_name_resolved_to_make_one_flow_row():
    """interface.md: one row per (destination, protocol, port, action), `address` when
    `name` is null: a name whose answers gave two addresses (a CNAME chain to two A
    records) is one destination, its counters summed, its times spanning both."""

    def flow(address, packets, size, first, last, port=443):
        return {
            "address": address,
            "protocol": "tcp",
            "port": port,
            "action": "ACCEPT",
            "flows": 1,
            "packets": packets,
            "bytes_out": size,
            "first_seen": first,
            "last_seen": last,
        }

    names = {"52.94.1.1": "api.partner.example", "52.94.1.2": "api.partner.example"}
    rows = egress.flow_rows(
        [
            flow("52.94.1.1", 7, 700, "2026-12-07T10:00:00Z", "2026-12-07T10:05:00Z"),
            flow("52.94.1.2", 5, 500, "2026-12-07T09:00:00Z", "2026-12-07T09:30:00Z"),
            flow("52.94.1.2", 1, 60, "2026-12-07T09:00:00Z", "2026-12-07T09:00:00Z", port=80),
            flow("203.0.113.9", 2, 100, "2026-12-07T08:00:00Z", "2026-12-07T08:00:00Z"),
        ],
        name_of=lambda f: names.get(f["address"]),
        approved=lambda name: name.endswith(".example"),
    )
    assert [(r["name"], r["address"], r["addresses"], r["port"]) for r in rows] == [
        ("api.partner.example", None, ["52.94.1.1", "52.94.1.2"], 443),
        (None, "203.0.113.9", ["203.0.113.9"], 443),
        ("api.partner.example", None, ["52.94.1.2"], 80),
    ]
    merged = rows[0]
    assert (merged["flows"], merged["packets"], merged["bytes_out"]) == (2, 12, 1200)
    assert (merged["first_seen"], merged["last_seen"]) == ("2026-12-07T09:00:00Z", "2026-12-07T10:05:00Z")
    assert merged["approved"] is True and rows[1]["approved"] is None


def test_member_accounts_with_the_same_workload_names_stay_apart():
    """Two member accounts each hold prod-web/service:web (the central table has both):
    `--workload ACCOUNT/REGION/cluster/group` selects one, the table names each workload's
    account and region, and an allow-list export of both accounts' workloads is refused
    (it would let each account reach the other's destinations)."""
    a, b = "111111111111", "222222222222"
    summaries = [
        {"workload_key": f"WL#{acct}#eu-west-1#prod-web#service:web", "workload": "prod-web/service:web",
         "account_id": acct, "region": "eu-west-1"}
        for acct in (a, b)
    ]  # fmt: skip
    assert egress.select(summaries, f"{a}/eu-west-1/prod-web/service:web") == [summaries[0]]
    assert egress.select(summaries, f"{b}/*") == [summaries[1]]
    assert egress.select(summaries, "service:web") == summaries
    view = [{**s, "sites": [], "flows": [{"name": None, "address": "52.1.1.1", "addresses": ["52.1.1.1"],
             "protocol": "tcp", "port": 443, "action": "ACCEPT", "flows": 1, "packets": 1, "bytes_out": 9,
             "first_seen": None, "last_seen": None, "approved": None}]} for s in summaries]  # fmt: skip
    text = egress.format_discovered(view)
    assert f"prod-web/service:web ({a} eu-west-1)" in text and f"prod-web/service:web ({b} eu-west-1)" in text
    assert egress.accounts_of(view) == [a, b] and egress.accounts_of(view[:1]) == [a]
    single = egress.format_discovered(view[:1])
    assert "(111111111111" not in single  # one account: the names as they are


def test_findings_of_member_accounts_name_their_account_and_region():
    from fargate_audit.cli import views

    findings = [
        {"finding_id": f"fargate-audit/{acct}/eu-west-1/prod-web/service:web/NET-01",
         "workload": "prod-web/service:web", "rule_id": "NET-01", "severity": "HIGH", "status": "FAILED",
         "title": "Task has a public IP address", "updated_at": "2026-12-07T10:00:00.000Z"}
        for acct in ("111111111111", "222222222222")
    ]  # fmt: skip
    items = views.findings_view(findings)
    assert [(f["account_id"], f["region"]) for f in items] == [
        ("111111111111", "eu-west-1"),
        ("222222222222", "eu-west-1"),
    ]
    text = views.format_findings(findings)
    assert "111111111111/eu-west-1/prod-web/service:web" in text
    assert "222222222222/eu-west-1/prod-web/service:web" in text
    assert "111111111111/" not in views.format_findings(findings[:1])


def test_an_export_spanning_member_accounts_is_refused(world, monkeypatch, tmp_path):
    member = {"workload": "prod-web/service:web", "region": "eu-west-1"}
    both = [
        {**member, "workload_key": f"WL#{acct}#eu-west-1#prod-web#service:web", "account_id": acct}
        for acct in ("111111111111", "222222222222")
    ]
    monkeypatch.setattr(egress, "select", lambda summaries, pattern, include_unattributed=False: both)
    target = tmp_path / "list.txt"
    _, err = run("--export", "dns-firewall", str(target), code=2)
    assert "in 2 accounts (111111111111, 222222222222)" in err and "--workload ACCOUNT/REGION" in err
    assert not target.exists()


def test_the_table_commands_show_control_characters_as_text(world, monkeypatch):
    """What discovered, history and findings print comes from names others wrote (a queried
    name, a task group): an escape sequence in it never reaches the terminal raw."""
    from fargate_audit.cli import views

    hostile = "name\x1b]0;owned\x07\x1b[2J\n"
    monkeypatch.setattr(egress, "format_discovered", lambda view: hostile)
    monkeypatch.setattr(views, "format_findings", lambda findings: hostile)
    monkeypatch.setattr(views, "format_history", lambda task_arn, entries: hostile)
    task_arn = f"arn:aws:ecs:eu-west-1:123456789012:task/prod-web/{'a' * 32}"
    for argv in (["discovered"], ["findings"], ["history", task_arn]):
        out, err = io.StringIO(), io.StringIO()
        assert cli.main([*argv, "--table", TABLE], stdout=out, stderr=err) == 0, err.getvalue()
        assert out.getvalue() == "name\\x1b]0;owned\\x07\\x1b[2J\n", argv

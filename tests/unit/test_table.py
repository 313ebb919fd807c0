"""The human table (``scan --format table``)."""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime

from fargate_audit.cli import table
from fargate_audit.core import report

ACCOUNT = "123456789012"
REGION = "eu-west-1"
NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
OPEN_22 = [{"protocol": "tcp", "from": 22, "to": 22}]


def posture(n: int, group: str = "service:web", cluster: str = "prod") -> dict:
    return {
        "posture_version": 1,
        "task_arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{cluster}/{n:032x}",
        "cluster_arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{cluster}",
        "cluster_name": cluster,
        "account_id": ACCOUNT,
        "region": REGION,
        "group": group,
        "workload": f"{cluster}/{group}",
        "task_definition_arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/x:1",
        "network": {"eni_id": f"eni-{n}", "security_groups": [], "egress": {}},
        "errors": {},
    }


def result(p: dict, rule_id: str, status: str, severity: str, **evidence) -> dict:
    return {
        "task_arn": p["task_arn"],
        "rule_id": rule_id,
        "status": status,
        "severity": severity,
        "title": f"Title {rule_id}",
        "evidence": evidence,
    }


def estate_report(**kwargs) -> dict:
    web = [posture(i) for i in range(1, 13)]
    batch = posture(99, group="family:batch", cluster="jobs")
    results = []
    for i, p in enumerate(web):
        results.append(result(p, "NET-03", "FAILED", "MEDIUM", open_ports=OPEN_22))
        results.append(result(p, "NET-01", "FAILED", "HIGH", public_ip=[f"54.0.0.{i}"]))
        results.append(result(p, "NET-02", "FAILED" if i < 2 else "PASSED", "CRITICAL", open_ports=OPEN_22))
        results.append(
            result(p, "NET-07", "ERROR" if i == 0 else "PASSED", "MEDIUM", error="flow_logs: denied")
        )
        results.append(result(p, "NET-10", "NOT_APPLICABLE", "LOW"))
        results.append(result(p, "LOG-02", "PASSED", "MEDIUM"))
    results.append(
        result(batch, "NET-05", "FAILED", "HIGH", paths={"ipv4": {"path": "nat-gateway>internet-gateway"}})
    )
    results.append(result(batch, "IMG-02", "FAILED", "LOW", images=[{"image": "nginx:1.25"}]))
    results.append(result(batch, "LOG-02", "PASSED", "MEDIUM"))
    args = dict(
        now=NOW,
        skipped=[{"task_arn": "a", "reason": "launch type EC2"}] * 3
        + [{"task_arn": "b", "reason": "lastStatus PENDING"}],
    )
    args.update(kwargs)
    return report.build_report([*web, batch], results, **args)


def test_the_table_reads_the_same_from_the_engines_own_evidence():
    """The CLI renders the table from a report whose evidence is not copied into JSON-ready
    form (scan.ScanOutcome.report_view): the text is the same as from the JSON-ready one,
    exempted results (a date in their evidence) included."""
    web = [posture(i) for i in range(1, 4)]
    exempted = {"reason": "bastion", "expires": date(2030, 1, 2)}
    results = [result(p, "NET-03", "PASSED", "MEDIUM", open_ports=OPEN_22, exempted=exempted) for p in web]
    results += [result(p, "NET-01", "FAILED", "HIGH", public_ip=["54.0.0.1"]) for p in web]
    ready = report.build_report(web, results, now=NOW)
    view = report.build_report(web, results, now=NOW, json_ready=False)

    def expires(doc):
        return {r["evidence"]["exempted"]["expires"] for r in doc["results"] if r["rule_id"] == "NET-03"}

    assert expires(view) == {date(2030, 1, 2)} and expires(ready) == {"2030-01-02"}
    assert table.render(view) == table.render(ready)


def test_output_is_grouped_by_workload_with_a_header_each():
    lines = table.render(estate_report()).splitlines()
    jobs = lines.index("jobs/family:batch  (1 task)")
    prod = lines.index("prod/service:web  (12 tasks)")
    jobs_block = "\n".join(lines[jobs : lines.index("", jobs)])
    assert "NET-05" in jobs_block and "IMG-02" in jobs_block and "NET-03" not in jobs_block
    prod_block = "\n".join(lines[prod : lines.index("", prod)])
    assert "NET-02" in prod_block and "NET-05" not in prod_block


def test_workloads_come_worst_first():
    lines = table.render(estate_report()).splitlines()
    # prod/service:web has a CRITICAL failure, jobs/family:batch at worst a HIGH one.
    assert lines.index("prod/service:web  (12 tasks)") < lines.index("jobs/family:batch  (1 task)")


def test_rows_are_sorted_by_severity_critical_first_then_rule_id():
    text = table.render(estate_report())
    rows = [line.split()[:2] for line in text.splitlines() if re.match(r"^  [A-Z]+ +[A-Z]{3}-\d\d", line)]
    assert rows == [
        ["CRITICAL", "NET-02"],
        ["HIGH", "NET-01"],
        ["MEDIUM", "NET-03"],
        ["ERROR", "NET-07"],
        ["HIGH", "NET-05"],
        ["LOW", "IMG-02"],
    ]


def test_identical_findings_of_a_workload_are_aggregated_into_one_row():
    text = table.render(estate_report())
    net03 = [line for line in text.splitlines() if "NET-03" in line]
    assert len(net03) == 1
    assert "(12/12 tasks)" in net03[0] and net03[0].endswith("open tcp 22")
    (net02,) = [line for line in text.splitlines() if "NET-02" in line]
    assert "(2/12 tasks)" in net02


def test_differing_evidence_is_listed_per_variant_and_capped():
    lines = table.render(estate_report()).splitlines()
    start = next(i for i, line in enumerate(lines) if "NET-01" in line)
    variants = lines[start + 1 : start + 1 + table.MAX_VARIANTS]
    assert all("public ip 54.0.0." in v and "(task 0000" in v for v in variants)
    assert lines[start + 1 + table.MAX_VARIANTS].strip() == "... and 7 more tasks"


def test_passed_and_not_applicable_rules_are_counted_not_listed():
    text = table.render(estate_report())
    assert "LOG-02" not in text and "NET-10" not in text
    assert "  1 rule passed, 1 n/a" in text.splitlines()  # prod: LOG-02 passed, NET-10 n/a


def test_error_rows_show_the_error():
    (line,) = [line for line in table.render(estate_report()).splitlines() if "NET-07" in line]
    assert line.lstrip().startswith("ERROR") and "(1/12 tasks)" in line and "error: flow_logs: denied" in line


def test_summary_line_counts_tasks_clusters_statuses_and_skipped():
    last = table.render(estate_report()).splitlines()[-1]
    assert last == (
        "13 tasks in 2 clusters: 28 FAILED (2 CRITICAL, 13 HIGH, 12 MEDIUM, 1 LOW), "
        "1 ERROR, 34 PASSED, 12 n/a; 4 skipped (3 launch type EC2, 1 lastStatus PENDING)"
    )


def test_scan_errors_and_expired_exemptions_are_listed_before_the_summary():
    doc = estate_report(
        errors=[{"call": "ListTasks", "region": REGION, "resource": "cluster/x", "message": "AccessDenied"}],
        expired_exemptions=[
            {"rule": "NET-03", "workload": "prod/*", "expires": "2024-01-01", "reason": "migration"}
        ],
    )
    lines = table.render(doc).splitlines()
    assert "1 scan error (tasks may be missing from this report):" in lines
    assert "  ! ListTasks eu-west-1 cluster/x: AccessDenied" in lines
    assert "  ! rule NET-03 workload prod/* expired 2024-01-01: migration" in lines
    assert lines.index("  ! ListTasks eu-west-1 cluster/x: AccessDenied") < len(lines) - 1


def test_no_ansi_codes_unless_colour_is_asked_for():
    doc = estate_report()
    assert not ANSI.search(table.render(doc, color=False))
    coloured = table.render(doc, color=True)
    assert ANSI.search(coloured)
    assert ANSI.sub("", coloured) == table.render(doc, color=False)


HOSTILE = "\x1b]0;owned\x07\x1b[2J\x1b[31m\x9b1m\rFAKE"  # retitle, clear, colour, CSI, CR


def test_control_characters_in_quoted_text_never_reach_the_terminal():
    """A task group or a variable name is text an account's users wrote: an escape sequence
    in it could retitle or clear the auditor's terminal, or hide lines."""
    web = posture(1, group="service:web" + HOSTILE)
    doc = report.build_report(
        [web], [result(web, "CFG-02", "FAILED", "HIGH", variables=["app:DB_PASSWORD" + HOSTILE])], now=NOW
    )
    for color in (False, True):
        text = table.render(doc, color=color)
        assert "\x07" not in text and "\r" not in text and "\x9b" not in text
        assert "\x1b]" not in text and "\x1b[2J" not in text
        assert text.count("\\x1b]0;owned\\x07\\x1b[2J") == 2  # the group header and the variable, shown
        assert ("\x1b[31m" in text) is color  # the table's own colours stay, only when asked for
    assert table.printable("a\tb\nc\x00") == "a\tb\nc\\x00"


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_use_color_only_on_a_tty_without_no_color():
    assert table.use_color(FakeTty(), {}) is True
    assert table.use_color(io.StringIO(), {}) is False
    assert table.use_color(FakeTty(), {"NO_COLOR": "1"}) is False
    assert table.use_color(FakeTty(), {"NO_COLOR": ""}) is True  # no-color.org: set and non-empty


def test_a_scan_without_tasks_says_so():
    doc = report.build_report([], [], now=NOW, scope={"regions": [REGION]})
    lines = table.render(doc).splitlines()
    assert lines[0] == f"No running Fargate task in scope (regions: {REGION})."
    assert lines[-1].startswith("0 tasks in 0 clusters: 0 FAILED, 0 ERROR, 0 PASSED")


def test_the_history_table_shows_a_rule_with_no_result_as_a_dash_not_python_none():
    from fargate_audit.cli.views import format_history

    entries = [
        {"at": "2026-06-01T10:00:00Z", "cause": None, "rules": {"CFG-01": ["PASSED", "FAILED"]}, "facts": []},
        {"at": "2026-06-01T11:00:00Z", "cause": None, "rules": {"CFG-01": ["FAILED", None]}, "facts": []},
    ]
    text = format_history("arn:aws:ecs:eu-west-1:123456789012:task/c/1", entries)
    assert "rule CFG-01: FAILED -> -" in text and "None" not in text

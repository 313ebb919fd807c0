"""The HTML report's page and model (cli/html.py), on the demo estate's report; the
browser tests (tests/browser) open the same page in Chromium."""

from __future__ import annotations

import copy
import io
import json
import re

import jsonschema
import pytest
from fargate_audit.cli import html
from fargate_audit.core import report as report_mod
from fargate_audit.local.estate import CANARY_SECRET

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


@pytest.fixture(scope="module")
def demo_report():
    from fargate_audit.local import demo

    return demo.build_and_scan().outcome.report


@pytest.fixture(scope="module")
def model(demo_report):
    return html.page_model(demo_report)


def _task_rows(model, workload: str) -> list[dict]:
    index = next(i for i, w in enumerate(model["workloads"]) if w["name"] == workload)
    return [t for t in model["tasks"] if t["w"] == index]


def _row(model, task: dict, label: str) -> dict:
    return next(r for r in model["pics"][task["p"]] if r["label"] == label)


def _node(row: dict, kind: str) -> dict:
    return next(n for n in row["nodes"] if n["k"] == kind)


def test_the_demo_report_with_its_network_views_is_valid_against_the_schema(demo_report):
    jsonschema.Draft202012Validator(report_mod.load_schema()).validate(demo_report)
    task = next(t for t in demo_report["tasks"] if t.get("public_ip"))
    assert set(task["network"]) == {
        "ipv6_addresses", "public_address", "security_groups", "world_ports", "nacl_id",
        "route_table_id", "egress", "endpoints",
    }  # fmt: skip
    assert all(p["nacl"] in ("allow", "deny", "partial", "unknown") for p in task["network"]["world_ports"])


def test_a_net02_task_marks_its_open_port_and_its_internet_gateway(model):
    (task, *_) = _task_rows(model, "prod-web/service:storefront")
    inbound = _row(model, task, "Inbound")
    groups = _node(inbound, "sg")
    assert "NET-02" in groups["m"]
    assert any(bad and "tcp 443" in text and "NET-02" in text for text, bad in groups["l"])
    outbound = _row(model, task, "Outbound ipv4")
    igw = _node(outbound, "internet-gateway")
    assert "NET-02" in igw["m"] and igw["l"][0][0].startswith("igw-")
    assert inbound["ok"] is False


def test_a_nat_path_marks_the_nat_hop_with_net05_and_draws_its_next_hop(model):
    (task, *_) = _task_rows(model, "batch/family:report-worker")
    outbound = _row(model, task, "Outbound ipv4")
    kinds = [n["k"] for n in outbound["nodes"]]
    assert kinds == ["eni", "rtb", "nat-gateway", "internet-gateway", "internet"]
    assert _node(outbound, "nat-gateway")["m"] == ["NET-05"]
    assert _node(outbound, "internet-gateway")["m"] == []


def test_route_table_titles_keep_the_whole_id_in_the_box(model):
    """The drawing clips a bold title at 32 characters (report.js): a route table's title
    with its 21-character id stays within it, so no id is drawn cut."""
    titles = {n["t"] for rows in model["pics"] for row in rows for n in row["nodes"] if n["k"] == "rtb"}
    assert titles and all(len(t) <= 32 and re.search(r"rtb-[0-9a-f]{17}$", t) for t in titles), titles


def test_a_task_behind_the_shop_alb_shows_its_front_door(model):
    (task, *_) = _task_rows(model, "prod-web/service:checkout-api")
    door = _row(model, task, "Front door")
    assert [n["k"] for n in door["nodes"]] == ["internet", "listener", "lb", "tg", "eni"]
    assert _node(door, "lb")["t"] == "ALB shop"
    assert _node(door, "listener")["t"] == "Listener :443"


def test_net11_and_net12_are_marked_on_the_listener_hop(model):
    (task, *_) = _task_rows(model, "legacy/service:billing")
    listener = _node(_row(model, task, "Front door"), "listener")
    assert listener["m"] == ["NET-11", "NET-12"]
    assert ["HTTP", True] in listener["l"] and ["web ACL none", True] in listener["l"]


def test_workloads_carry_their_rules_with_status_evidence_and_finding_ids(model):
    workload = next(w for w in model["workloads"] if w["name"] == "prod-web/service:storefront")
    by_rule = {model["rules"][r[0]][0]: r for r in workload["rules"]}
    _, status, evidence, count, finding = by_rule["NET-02"]
    assert status == "F" and count == len(workload["tasks"])
    assert model["ev"][evidence].startswith("open tcp 443")
    assert finding == "fargate-audit/123456789012/eu-west-1/prod-web/service:storefront/NET-02"


def test_the_summary_lists_what_to_look_at_first(model):
    first = model["first"]
    assert ["prod-web/service:storefront", "tcp 443"] in first["direct"]
    assert any(w == "prod-web/service:checkout-api" and "alb shop :443" in d for w, d in first["doors"])
    assert ["batch/family:etl", "DB_PASSWORD"] in first["secrets"]
    assert any(w == "batch/family:report-worker" for w, _ in first["egress"])
    assert sum(model["summary"]["failed_by_severity"].values()) == model["summary"]["by_status"]["FAILED"]


def test_the_page_is_self_contained_and_never_shows_a_secret_value(demo_report):
    page = html.render(demo_report)
    assert page.startswith("<!DOCTYPE html>")
    assert CANARY_SECRET not in page and "DB_PASSWORD" in page
    assert not re.search(r"https?://", page), "no URL at all in the page"
    assert not re.search(r"""\b(src|href|srcset|action)\s*=""", page, re.I)
    assert "@import" not in page and "url(" not in page
    assert "default-src 'none'" in page  # the page's CSP forbids any request too


def test_every_name_is_escaped(demo_report):
    hostile = copy.deepcopy(demo_report)
    task = hostile["tasks"][0]
    task["workload"] = f"batch/{HOSTILE}"
    task["images"] = [HOSTILE]
    task["task_definition_arn"] += HOSTILE
    result = next(r for r in hostile["results"] if r["task_arn"] == task["task_arn"])
    result["evidence"] = {"containers": [HOSTILE]}
    page = html.render(hostile)
    assert "<script>window" not in page and "<img" not in page
    assert page.count("<script") == 2  # the data element and the page's own script
    data = re.search(r'<script id="data" type="application/json">(.*?)</script>', page, re.S).group(1)
    shown = json.loads(data)  # the names come back intact, as text for the script to show
    assert f"batch/{HOSTILE}" in [w["name"] for w in shown["workloads"]]
    assert any(HOSTILE in t["img"] for t in shown["tasks"])


def test_a_report_without_network_views_still_renders(demo_report):
    older = copy.deepcopy(demo_report)
    for task in older["tasks"]:
        task.pop("network", None)
        task.pop("images", None)
    model = html.page_model(older)
    (task, *_) = _task_rows(model, "prod-web/service:storefront")
    groups = _node(_row(model, task, "Inbound"), "sg")
    assert ["world ports not in this report", False] in groups["l"]
    assert html.render(older).startswith("<!DOCTYPE html>")


def test_a_report_without_cluster_names_names_workloads_by_the_cluster_arn(demo_report):
    """cluster_name and workload are optional in the report schema."""
    bare = copy.deepcopy(demo_report)
    for task in bare["tasks"]:
        task.pop("cluster_name", None)
        task.pop("workload", None)
    names = {w["name"] for w in html.page_model(bare)["workloads"]}
    assert "prod-web/service:storefront" in names and not any(n.startswith("None/") for n in names)


def test_net09_is_marked_on_the_endpoint_it_names_or_on_the_missing_gateway_endpoint(demo_report, model):
    """NET-09 (a): no S3 gateway endpoint for the task's route table is a hop of its own;
    (b)-(d): the endpoint the evidence names carries the mark and the reasons."""
    by_task = {t["task_arn"]: t for t in demo_report["tasks"]}
    failed = [r for r in demo_report["results"] if r["rule_id"] == "NET-09" and r["status"] == "FAILED"]
    seen = set()
    for result in failed:
        task_id = result["task_arn"].rsplit("/", 1)[-1]
        row = next(t for t in model["tasks"] if t["id"] == task_id)
        endpoints = next(r for r in model["pics"][row["p"]] if r["label"] == "AWS endpoints")
        marked = [n for n in endpoints["nodes"] if "NET-09" in n["m"]]
        assert len(marked) == 1 and endpoints["ok"] is False, by_task[result["task_arn"]]["workload"]
        named = result["evidence"]["endpoint_id"]
        assert marked[0]["t"] == ("No S3 gateway endpoint" if named is None else f"s3 {named}")
        seen.add(named is None)
    assert seen == {True, False}  # the demo has both cases


def _lines(node: dict) -> list:
    return [line if isinstance(line, str) else line[0] for line in node["l"]]


def test_net02_marks_only_the_ports_of_the_families_it_failed_for(demo_report):
    """NET-02 fails per IP family: a task reachable over IPv6 only has its IPv4 world port
    drawn open but not marked NET-02 (it was, by port alone)."""
    doc = copy.deepcopy(demo_report)
    task = next(t for t in doc["tasks"] if t["workload"] == "prod-web/service:storefront")
    v4 = [p for p in task["network"]["world_ports"] if p["family"] == "ipv4"]
    assert v4
    task["network"]["world_ports"] = v4 + [{**p, "family": "ipv6"} for p in v4]
    (net02,) = [r for r in doc["results"] if r["task_arn"] == task["task_arn"] and r["rule_id"] == "NET-02"]
    net02["evidence"]["families"] = ["ipv6"]
    model = html.page_model(doc)
    pictured = [model["pics"][t["p"]] for t in _task_rows(model, task["workload"])]
    inbound = [r for picture in pictured for r in picture if r["label"] == "Inbound" and not r["ok"]]
    groups = _node(inbound[0], "sg")
    marked = [
        text for text, bad in (line for line in groups["l"] if not isinstance(line, str)) if "NET-02" in text
    ]
    assert marked and all("world v6" in text for text in marked)


def test_rules_that_could_not_be_evaluated_leave_their_hops_unknown(demo_report):
    """A task whose security groups (or ENI) and VPC endpoints could not be read: the
    report's network view says null, not 'no world-open port' / no endpoint, and the
    picture marks those hops unknown instead of drawing them clean."""
    posture_net = {"world_ingress_rules": [], "security_groups": [{"id": "sg-1", "name": "web"}]}
    view = report_mod.network_view(posture_net, errors={"security_groups": "DescribeSecurityGroups: denied"})
    assert view["world_ports"] is None and view["endpoints"] == []
    view = report_mod.network_view(posture_net, errors={"eni": "DescribeNetworkInterfaces: vanished"})
    assert view["world_ports"] is None and view["endpoints"] is None
    assert report_mod.network_view(posture_net)["world_ports"] == []

    doc = copy.deepcopy(demo_report)
    task = next(t for t in doc["tasks"] if t["workload"] == "prod-web/service:storefront")
    task["network"]["world_ports"] = None
    task["network"]["endpoints"] = None
    for result in doc["results"]:
        if result["task_arn"] == task["task_arn"] and result["rule_id"] in (
            "NET-02",
            "NET-03",
            "NET-09",
            "NET-10",
        ):
            result["status"], result["evidence"] = "ERROR", {"error": "security_groups: denied"}
    model = html.page_model(doc)
    index = next(i for i, w in enumerate(model["workloads"]) if w["name"] == task["workload"])
    pictures = [model["pics"][t["p"]] for t in model["tasks"] if t["w"] == index]
    unknown = [p for p in pictures if not _row_ok(p, "Inbound")]
    assert unknown
    inbound = next(r for r in unknown[0] if r["label"] == "Inbound")
    assert any(
        "world-open ports unknown (ERROR: NET-02, NET-03)" in text for text in _lines(_node(inbound, "sg"))
    )
    endpoints = next(r for r in unknown[0] if r["label"] == "AWS endpoints")
    assert endpoints["ok"] is False and _node(endpoints, "missing")["t"] == "Endpoints unknown"


def test_endpoints_read_while_their_verdicts_are_error_are_not_drawn_clean(demo_report):
    """DescribeRouteTables refused, DescribeVpcEndpoints read: the endpoints are listed but
    NET-09/NET-10 are ERROR. Before, the row was drawn clean (ok) with no word of it."""
    doc = copy.deepcopy(demo_report)
    task = next(t for t in doc["tasks"] if t["network"].get("endpoints"))
    for result in doc["results"]:
        if result["task_arn"] == task["task_arn"] and result["rule_id"] in ("NET-09", "NET-10"):
            result["status"], result["evidence"] = "ERROR", {"error": "route_table: denied"}
    model = html.page_model(doc)
    (row,) = [t for t in model["tasks"] if t["arn"] == task["task_arn"]]
    endpoints = _row(model, row, "AWS endpoints")
    assert endpoints["ok"] is False
    assert _lines(_node(endpoints, "missing")) == ["ERROR: NET-09, NET-10"]
    assert [n for n in endpoints["nodes"] if n["k"] == "endpoint"]  # what was read is still drawn


def _row_ok(picture: list, label: str) -> bool:
    return next(r for r in picture if r["label"] == label)["ok"]


def test_a_saved_report_without_the_optional_summaries_counts_them_from_its_results(demo_report, model):
    """scan-report.schema.json requires summary.tasks and by_status only: a report without
    by_rule and internet_reachable (older, or another tool's) shows the same counts, not
    zeros beside its own FAILED cards."""
    doc = copy.deepcopy(demo_report)
    del doc["summary"]["by_rule"], doc["summary"]["internet_reachable"]
    counted = html.page_model(doc)["summary"]
    assert counted["by_rule"] == model["summary"]["by_rule"] != {}
    assert counted["internet_reachable"] == model["summary"]["internet_reachable"]
    assert counted["internet_reachable"]["direct"] > 0


def test_what_to_look_at_first_lists_the_tasks_the_headline_counts(demo_report):
    """The headline counts an exempted NET-02 (still reachable) and a task whose exposures
    are null for a web ACL alone (NET-11 judged): the lists under it name them too, and the
    expired exemptions the scan ignored are on the page."""
    report = copy.deepcopy(demo_report)
    storefront = {t["task_arn"] for t in report["tasks"] if t["workload"] == "prod-web/service:storefront"}
    for r in report["results"]:
        if r["task_arn"] in storefront and r["rule_id"] == "NET-02":
            r["status"] = "PASSED"
            r["evidence"]["exempted"] = {"reason": "accepted", "expires": "2099-01-01"}
    checkout = next(t for t in report["tasks"] if t["workload"] == "prod-web/service:checkout-api")
    for t in report["tasks"]:
        if t["workload"] == "prod-web/service:checkout-api":
            t["exposures"] = None
    report["expired_exemptions"] = [
        {"rule": "NET-01", "workload": "batch/*", "reason": "r", "expires": "2020-01-01"}
    ]
    del report["summary"]["internet_reachable"]

    model = html.page_model(report)

    direct = dict(model["first"]["direct"])
    assert direct["prod-web/service:storefront"] == "tcp 443 (exempted)"
    assert model["summary"]["internet_reachable"]["direct"] >= len(storefront)
    doors = dict(model["first"]["doors"])
    assert doors[checkout["workload"]] == "a load balancer whose web ACL could not be read"
    assert model["expired"] == [["NET-01", "batch/*", "2020-01-01"]]


def test_report_of_a_saved_report_with_a_network_field_of_another_shape_is_one_error(demo_report, tmp_path):
    from fargate_audit.cli import commands

    report = copy.deepcopy(demo_report)
    report["tasks"][0]["network"] = "not an object"
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(report))
    err = io.StringIO()
    code = commands.main(
        ["report", str(path), "--output", str(tmp_path / "x.html")], stdout=io.StringIO(), stderr=err
    )
    assert code == 2
    assert err.getvalue().startswith(f"fargate-audit: error: {path}: not a scan report this version can draw")
    assert "Traceback" not in err.getvalue() and err.getvalue().count("\n") == 1

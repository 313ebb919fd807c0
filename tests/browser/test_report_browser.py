"""The HTML report in a real browser (headless Chromium, tests/support/browser.py): the
demo estate's report makes no request and logs no error, its filters and search show
exactly the expected tasks, the URL fragment restores a filter, and the drawn paths mark
the failing hops. Missing Chromium or Playwright fails these tests with the command to run."""

from __future__ import annotations

import copy

import pytest
from fargate_audit.cli import html
from support.browser import PageWatch, chromium

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


@pytest.fixture(scope="module")
def demo_report():
    from fargate_audit.local import demo

    return demo.build_and_scan().outcome.report


@pytest.fixture(scope="module")
def page_url(demo_report, tmp_path_factory):
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(html.render(demo_report), encoding="utf-8")
    return path.as_uri()


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture
def watch(browser, page_url):
    watched = PageWatch(browser, page_url)
    yield watched
    watched.page.close()


def _task_ids(report, predicate) -> set[str]:
    workload_of = {t["task_arn"]: t for t in report["tasks"]}
    return {
        r["task_arn"].rsplit("/", 1)[-1]
        for r in report["results"]
        if predicate(r, workload_of[r["task_arn"]])
    }


def test_the_page_makes_no_request_and_logs_no_error(watch, demo_report):
    page = watch.open()
    watch.open_task("prod-web/service:storefront")
    page.click("#f-expand")
    assert watch.requests == []
    assert watch.errors == []
    assert (
        page.locator("#f-count").text_content()
        == f"{len(demo_report['tasks'])} of {len(demo_report['tasks'])} tasks, 11 workloads"
    )


def test_a_rule_and_status_filter_then_a_search_show_exactly_the_expected_tasks(watch, demo_report):
    page = watch.open()
    page.select_option("#f-rule", "NET-02")
    page.select_option("#f-status", "FAILED")
    expected = _task_ids(demo_report, lambda r, t: r["rule_id"] == "NET-02" and r["status"] == "FAILED")
    assert len(expected) == 9
    assert watch.visible_tasks() == expected
    page.fill("#f-q", "storefront")
    storefront = {
        t["task_arn"].rsplit("/", 1)[-1] for t in demo_report["tasks"] if "storefront" in t["workload"]
    }
    assert watch.visible_tasks() == storefront & expected and storefront
    assert "rule=NET-02" in page.url and "status=FAILED" in page.url and "q=storefront" in page.url
    assert watch.errors == []


def test_search_finds_tasks_by_security_group_and_by_image(watch, demo_report):
    page = watch.open()
    task = next(t for t in demo_report["tasks"] if t["workload"] == "legacy/service:billing")
    group = task["security_group_ids"][0]
    page.fill("#f-q", group)
    assert watch.visible_tasks() == {
        t["task_arn"].rsplit("/", 1)[-1] for t in demo_report["tasks"] if group in t["security_group_ids"]
    }
    page.fill("#f-q", "ghcr.io/acme-corp/report-worker")
    assert watch.visible_tasks() == {
        t["task_arn"].rsplit("/", 1)[-1]
        for t in demo_report["tasks"]
        if any("ghcr.io/acme-corp/report-worker" in i for i in t["images"])
    }


def test_the_url_fragment_restores_a_filter(watch, demo_report):
    page = watch.open("#rule=NET-11&status=FAILED&cluster=legacy")
    assert page.input_value("#f-rule") == "NET-11"
    assert page.input_value("#f-status") == "FAILED"
    assert page.input_value("#f-cluster") == "legacy"
    expected = _task_ids(demo_report, lambda r, t: r["rule_id"] == "NET-11" and r["status"] == "FAILED")
    assert watch.visible_tasks() == expected and len(expected) == 3
    page.click("#f-clear")
    assert watch.visible_tasks() == {t["task_arn"].rsplit("/", 1)[-1] for t in demo_report["tasks"]}
    assert "#" not in page.url


def test_a_severity_filter_shows_the_tasks_failing_a_rule_of_that_severity(watch, demo_report):
    page = watch.open("#sev=CRITICAL")
    expected = _task_ids(demo_report, lambda r, t: r["severity"] == "CRITICAL" and r["status"] == "FAILED")
    assert watch.visible_tasks() == expected
    page.select_option("#f-account", "123456789012")
    assert watch.visible_tasks() == expected


def test_a_net02_task_picture_marks_the_open_port_and_the_internet_gateway(watch):
    watch.open()
    task = watch.open_task("prod-web/service:storefront")
    groups = task.locator("g.hop[data-kind='sg']")
    assert "NET-02" in groups.get_attribute("data-marks").split()
    assert "tcp 443 open to world" in groups.text_content()
    assert "fails NET-02" in groups.text_content()
    igw = task.locator("g[data-row='Outbound ipv4'] g.hop[data-kind='internet-gateway']")
    assert "NET-02" in igw.get_attribute("data-marks").split()
    assert "igw-" in igw.text_content()
    assert task.locator("rect.node.marked").count() >= 2


def test_a_nat_task_picture_marks_the_nat_hop_for_net05(watch):
    watch.open()
    task = watch.open_task("batch/family:report-worker")
    nat = task.locator("g[data-row='Outbound ipv4'] g.hop[data-kind='nat-gateway']")
    assert nat.get_attribute("data-marks") == "NET-05"
    assert "nat-" in nat.text_content()


def test_a_task_behind_the_shop_alb_shows_its_front_door(watch):
    watch.open()
    task = watch.open_task("prod-web/service:checkout-api")
    door = task.locator("g[data-row='Front door']")
    text = door.text_content()
    assert "Listener :443" in text and "ALB shop" in text and "Task port :8080" in text
    assert "web ACL" in text


def test_hostile_names_render_as_text_and_run_nothing(browser, demo_report, tmp_path):
    hostile = copy.deepcopy(demo_report)
    task = hostile["tasks"][0]
    task["workload"] = f"batch/{HOSTILE}"
    task["images"] = [HOSTILE]
    path = tmp_path / "hostile.html"
    path.write_text(html.render(hostile), encoding="utf-8")
    watch = PageWatch(browser, path.as_uri())
    page = watch.open()
    page.fill("#f-q", "__pwned")
    assert len(watch.visible_tasks()) == 1
    name = page.locator("details.workload:not([hidden]) > summary b").text_content()
    assert name == f"batch/{HOSTILE}"
    assert page.evaluate("window.__pwned") is None
    assert watch.requests == [] and watch.errors == []


def test_scopes_and_parts_not_read_are_listed_with_their_error(browser, demo_report, tmp_path):
    """An organization scan's refused account and a scan error are on the page, not only
    in the JSON report a `scan --format html` user does not have; the error text stays
    text."""
    report = copy.deepcopy(demo_report)
    account, region = report["tasks"][0]["account_id"], report["tasks"][0]["region"]
    report["summary"]["scopes"] = [
        {
            "account_id": account,
            "region": region,
            "tasks": 1,
            "skipped_tasks": 0,
            "by_status": {},
            "error": None,
        },
        {"account_id": "333333333333", "region": region, "error": f"sts:AssumeRole: AccessDenied: {HOSTILE}"},
    ]
    report["errors"] = [
        {
            "call": "ListTasks",
            "region": region,
            "resource": "batch",
            "message": "ListTasks: AccessDeniedException: no",
        }
    ]
    path = tmp_path / "scopes.html"
    path.write_text(html.render(report), encoding="utf-8")
    watch = PageWatch(browser, path.as_uri())
    page = watch.open()

    summary = page.locator("#summary").text_content()
    assert "Not read: 1 account and region scopes, 1 parts of the scope" in summary
    assert "333333333333" in summary and "sts:AssumeRole: AccessDenied" in summary
    assert "ListTasks (" + region + "): ListTasks: AccessDeniedException: no" in summary
    assert page.evaluate("window.__pwned") is None
    assert watch.requests == [] and watch.errors == []


def test_a_cluster_of_one_name_in_two_accounts_is_filtered_by_its_place(browser, demo_report, tmp_path):
    """An organization scan: clusters of one name in two accounts are two rows of By
    cluster, and each row's filter shows that cluster's tasks only."""
    report = copy.deepcopy(demo_report)
    account = demo_report["tasks"][0]["account_id"]
    mine = [t for t in report["tasks"] if t.get("cluster_name") == "batch"]
    theirs = copy.deepcopy(mine)
    for n, task in enumerate(theirs):
        task["account_id"] = "444444444444"
        task["cluster_arn"] = task["cluster_arn"].replace(f":{account}:", ":444444444444:")
        task["task_arn"] = task["cluster_arn"].replace(":cluster/", ":task/") + f"/{n:032x}"
    report["tasks"] += theirs
    path = tmp_path / "two-accounts.html"
    path.write_text(html.render(report), encoding="utf-8")
    watch = PageWatch(browser, path.as_uri())
    page = watch.open()

    options = page.locator("#f-cluster option").all_text_contents()
    batches = sorted(o for o in options if o.endswith("/batch"))
    assert batches == sorted(
        [f"444444444444/{mine[0]['region']}/batch", f"{account}/{mine[0]['region']}/batch"]
    )
    page.select_option("#f-cluster", f"444444444444/{mine[0]['region']}/batch")
    assert watch.visible_tasks() == {t["task_arn"].rsplit("/", 1)[-1] for t in theirs}
    page.select_option("#f-cluster", f"{account}/{mine[0]['region']}/batch")
    assert watch.visible_tasks() == {t["task_arn"].rsplit("/", 1)[-1] for t in mine}
    assert watch.errors == []


def test_summary_cards_set_their_filter_and_an_account_without_tasks_is_an_option(
    browser, demo_report, tmp_path
):
    """README: each name in the summary is a link that sets the filter: the status and
    severity cards too; a refused account (no task in the report) filters to none, where
    the filter used to fall back to "any" and show every task."""
    report = copy.deepcopy(demo_report)
    region = report["tasks"][0]["region"]
    report["summary"]["scopes"] = [
        {"account_id": "333333333333", "region": region, "error": "sts:AssumeRole: denied"}
    ]
    path = tmp_path / "cards.html"
    path.write_text(html.render(report), encoding="utf-8")
    watch = PageWatch(browser, path.as_uri())
    page = watch.open()

    page.locator("#summary .cards .card", has_text="CRITICAL").first.click()
    assert page.locator("#f-sev").input_value() == "CRITICAL"
    expected = _task_ids(report, lambda r, t: r["severity"] == "CRITICAL" and r["status"] == "FAILED")
    assert watch.visible_tasks() == expected
    page.locator("#summary .cards .card", has_text="ERROR results").first.click()
    assert page.locator("#f-status").input_value() == "ERROR" and page.locator("#f-sev").input_value() == ""
    page.select_option("#f-account", "333333333333")
    assert watch.visible_tasks() == set()
    assert watch.requests == [] and watch.errors == []


def test_a_task_with_an_ipv6_address_is_not_labelled_private(watch, demo_report):
    """rules.md: any IPv6 address on the ENI is a public address."""
    (task,) = [
        t
        for t in demo_report["tasks"]
        if t.get("ipv6_addresses") or (t.get("network") or {}).get("ipv6_addresses")
    ][:1]
    page = watch.open()
    watch.open_task(task["workload"])
    line = page.locator(
        f'details.task[data-task="{task["task_arn"].rsplit("/", 1)[-1]}"] summary'
    ).text_content()
    assert "public " in line and "private" not in line


def test_error_results_are_visible_before_anything_is_expanded(browser, demo_report, tmp_path):
    """A task whose rules all came back ERROR is not a green "0 failed", a workload with
    FAILED and ERROR rules says both, and the place and cluster tables count ERROR results."""
    report = copy.deepcopy(demo_report)
    task = next(t for t in report["tasks"] if t["workload"] == "prod-web/service:storefront")
    for result in report["results"]:
        if result["task_arn"] == task["task_arn"]:
            result["status"], result["evidence"] = "ERROR", {"error": "eni: denied"}
    errors = sum(r["status"] == "ERROR" for r in report["results"])
    path = tmp_path / "errors.html"
    path.write_text(html.render(report), encoding="utf-8")
    watch = PageWatch(browser, path.as_uri())
    page = watch.open()

    workload = page.locator("details.workload[data-workload='prod-web/service:storefront'] > summary")
    assert "ERROR" in workload.text_content()
    page.click("details.workload[data-workload='prod-web/service:storefront'] > summary")
    line = page.locator(f'details.task[data-task="{task["task_arn"].rsplit("/", 1)[-1]}"] summary')
    assert "0 failed" in line.text_content() and "ERROR" in line.text_content()
    assert line.locator(".s-P").count() == 0 and line.locator(".s-E").count() >= 1
    summary = page.locator("#summary")
    assert summary.locator("th", has_text="Error results").count() == 2
    cells = summary.locator("td.s-E, td span.s-E").all_text_contents()
    assert sum(int(c) for c in cells if c.isdigit()) == 2 * errors  # each table counts them all
    assert watch.requests == [] and watch.errors == []

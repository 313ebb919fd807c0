"""Fixtures of the fault-injection suite (see fault_harness.py and reliability.py).

``world``: the module's emulated account (one ``mock_aws`` per test module). ``run``: one
scenario on it (fresh table, Security Hub, queues; a new runtime). ``report``: called once
by every scenario after its own assertions; it runs the checks every scenario ends with
(no canary in any output, no PASSED result or finding over a failed fact, nothing lost)
and records the scenario's row. At session end the rows go to the file named by
``FARGATE_AUDIT_RELIABILITY_OUT`` when set (scripts/update_reliability_table.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from moto import mock_aws

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fault_harness  # noqa: E402
import reliability  # noqa: E402


@pytest.fixture(scope="module")
def world():
    with pytest.MonkeyPatch.context() as monkeypatch, mock_aws():
        built = fault_harness.build_estate(monkeypatch)
        try:
            yield built
        finally:
            from fargate_audit.local import estate

            estate.release_task_states(built.client("ecs"))


@pytest.fixture
def run(world, monkeypatch, capsys, caplog):
    from fargate_audit.core import rules

    monkeypatch.setattr(rules, "load_catalog", lambda *args, **kwargs: fault_harness.catalog())
    scenario_run = fault_harness.Run(world, monkeypatch, capsys, caplog)
    try:
        yield scenario_run
    finally:
        scenario_run.close()


@pytest.fixture
def report(run, request):
    reported: list[reliability.Row] = []

    def _report(scenario: reliability.Scenario, records_lost: int = 0) -> reliability.Row:
        assert not reported, "one report per scenario"
        leaked = run.leaks()
        wrong = run.passed_on_failed_facts()
        row = reliability.Row(scenario.name, scenario.category, scenario.outcome, records_lost, leaked)
        assert wrong == [], f"ERROR reported as PASSED: {wrong}"
        assert leaked == 0, f"{leaked} canary occurrence(s) in the outputs"
        assert records_lost == 0, f"{records_lost} records lost"
        reported.append(row)
        reliability.COLLECTED.append(row)
        return row

    yield _report
    if not reported and getattr(request.node, "rep_call_passed", False):
        pytest.fail("the scenario never reported its row")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.rep_call_passed = report.passed
    return report


def pytest_sessionfinish(session, exitstatus):
    out = os.environ.get(reliability.ROWS_ENV)
    if out and reliability.COLLECTED:
        Path(out).write_text(reliability.rows_to_json(reliability.COLLECTED), encoding="utf-8")

"""The README's reliability table is the suite's own (tests/faults/reliability.py), and the
suite's checks catch what they claim to catch."""

from __future__ import annotations

import json

import reliability
from fault_harness import CANARY_DEFINITION, CANARY_OVERRIDE, TABLE


def test_readme_reliability_table_is_current():
    text = reliability.README.read_text(encoding="utf-8")
    current = reliability.readme_block(text)
    expected = reliability.block(reliability.registry_rows())
    assert current is not None, "README.md has no reliability block: run scripts/update_reliability_table.py"
    assert current == expected, (
        "the README's reliability table is stale: run scripts/update_reliability_table.py"
    )


def test_the_registry_covers_every_category_and_the_summary_counts_them():
    rows = reliability.registry_rows()
    assert {r.category for r in rows} == set(reliability.CATEGORIES)
    malformed = sum(r.category == "malformed-input" for r in rows)
    faults = len(rows) - malformed
    assert reliability.summary(rows) == (
        f"{faults} fault scenarios, {malformed} malformed inputs, 0 records lost, 0 secrets leaked"
    )
    assert len(rows) - malformed >= 40 and malformed >= 30


def test_render_is_sorted_and_deterministic():
    rows = [
        reliability.Row("b | pipe", "security", "ok", 0, 0),
        reliability.Row("a", "malformed-input", "rejected", 0, 0),
        reliability.Row("z", "event", "stale", 0, 0),
        reliability.Row("A2", "event", "stale", 0, 0),
    ]
    table = reliability.render(rows)
    body = [line.split(" | ")[0].lstrip("| ") for line in table.splitlines()[2:6]]
    assert body == ["A2", "z", "b \\| pipe", "a"]  # by category, then name; pipes escaped
    assert table == reliability.render(list(reversed(rows)))
    assert table.endswith("**3 fault scenarios, 1 malformed inputs, 0 records lost, 0 secrets leaked**\n")


def test_check_rows_names_every_inconsistency():
    registry = {
        "one": reliability.Scenario("one", "event", "stale"),
        "two": reliability.Scenario("two", "event", "ok"),
        "three": reliability.Scenario("three", "event", "ok"),
    }
    rows = [
        reliability.Row("one", "event", "stale", 0, 0),
        reliability.Row("two", "event", "something else", 0, 0),
        reliability.Row("three", "event", "ok", 1, 2),
        reliability.Row("four", "event", "ok", 0, 0),
    ]
    assert reliability.check_rows(rows, registry) == [
        "three: 1 records lost, 2 secrets leaked",
        "two: reported event/'something else', declared 'ok'",
        "four: reported but not declared",
    ]
    assert reliability.check_rows(rows[:1], registry)[0] == "three: reported 0 times (once expected)"


def test_replace_block_appends_a_section_when_the_markers_are_missing():
    block = reliability.block([reliability.Row("a", "event", "ok", 0, 0)])
    appended = reliability.replace_block("# Title\n\ntext\n", block)
    assert appended == f"# Title\n\ntext\n\n## Reliability\n\n{block}\n"
    assert reliability.replace_block(appended, block) == appended
    other = reliability.block([reliability.Row("b", "event", "ok", 0, 0)])
    assert reliability.replace_block(appended, other) == f"# Title\n\ntext\n\n## Reliability\n\n{other}\n"


def test_the_leak_check_finds_a_canary_in_each_output(run, capsys):
    run.spy.info("line", extra={"value": CANARY_DEFINITION})
    print(CANARY_OVERRIDE)
    run.world.client("sqs").send_message(QueueUrl=run.world.events_dlq, MessageBody=CANARY_DEFINITION)
    run.world.client("dynamodb").put_item(
        TableName=TABLE, Item={"pk": {"S": "X"}, "sk": {"S": "Y"}, "v": {"S": CANARY_OVERRIDE}}
    )
    run.texts.append(f"report: {CANARY_DEFINITION}")
    run.outcomes.append({"status": CANARY_OVERRIDE})
    run.changed()

    assert run.leaks() == 6
    run.world.client("dynamodb").delete_item(TableName=TABLE, Key={"pk": {"S": "X"}, "sk": {"S": "Y"}})


def test_the_error_check_finds_a_passed_result_over_a_failed_fact(run):
    task = run.world.web[0]
    posture = json.loads(json.dumps(run.world.baseline[task.arn]["posture"]))
    posture["errors"]["security_groups"] = "DescribeSecurityGroups: AccessDenied"
    results = [
        {"task_arn": task.arn, "rule_id": "NET-03", "status": "PASSED", "severity": "MEDIUM", "title": "t"},
        {"task_arn": task.arn, "rule_id": "LOG-02", "status": "PASSED", "severity": "MEDIUM", "title": "t"},
    ]
    cause = {"type": "scan", "id": "x", "task_version": None, "event_time": None}
    run.rt.recorder.record_audit(posture, results, cause, run.clock.datetime())
    run.changed()

    wrong = run.passed_on_failed_facts()

    assert wrong == [f"{task.arn} NET-03 PASSED with {{'security_groups'}}"]

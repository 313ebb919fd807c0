"""Every fixture of every rule (rules/<ID>/rule.yaml), run through the engine's per-rule evaluation.

A fixture is a deep-merge patch over rules/base_posture.json (a workload-discovery
rule, EGR-01: over rules/base_discovery.json; objects merge key by key; lists and
scalars replace), optional parameter overrides (validated as a params file
would be, then resolved for the task like the engine does) and an optional evidence subset.
pass -> PASSED, fail -> FAILED with the expected evidence, not_applicable -> NOT_APPLICABLE,
error -> ERROR (its expected evidence usually the exact ``error`` line).
"""

import json
from pathlib import Path

import pytest
from fargate_audit.core.fixtures import EXPECTED_STATUS, contains_subset, deep_merge, read_bases
from fargate_audit.core.fixtures import run_fixture as _run_fixture
from fargate_audit.core.rules import WORKLOAD_DISCOVERY, load_catalog

REPO = Path(__file__).resolve().parents[2]
CATALOG = load_catalog(REPO / "rules")
CATALOG_SCHEMA = json.loads((REPO / "rules" / "schema.json").read_text())
BASES = read_bases(REPO / "rules")


def run_fixture(rule, fixture):
    return _run_fixture(CATALOG, rule, fixture, BASES)


def _cases():
    for rule in CATALOG.rules:
        for kind, fixtures in rule.fixtures.items():
            for fixture in fixtures:
                yield pytest.param(rule, kind, fixture, id=f"{rule.id}-{kind}-{fixture['name']}")


@pytest.mark.parametrize(("rule", "kind", "fixture"), list(_cases()))
def test_fixture_yields_its_expected_status_and_evidence(rule, kind, fixture):
    status, evidence = run_fixture(rule, fixture)
    assert status == EXPECTED_STATUS[kind], evidence
    expected = fixture.get("expect_evidence")
    if expected is not None:
        assert contains_subset(evidence, expected), f"evidence {evidence!r} lacks {expected!r}"


def test_deep_merge_replaces_lists_and_merges_objects():
    merged = deep_merge({"a": {"b": 1, "c": [1, 2]}, "d": 1}, {"a": {"c": [3]}, "e": 2})
    assert merged == {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}


def test_contains_subset_checks_list_length_order_and_missing_keys():
    assert contains_subset({"a": [1, 2], "b": 1}, {"a": [1, 2]})
    assert contains_subset({"a": [{"x": 1, "y": 2}]}, {"a": [{"x": 1}]})
    assert not contains_subset({"a": [1, 2]}, {"a": [1]})
    assert not contains_subset({"a": [1, 2]}, {"a": [2, 1]})
    assert not contains_subset({"a": 1}, {"b": None})


def test_fixture_runner_detects_a_wrong_expectation():
    """The parametrised test can fail: a FAILED fixture run as a pass fixture is caught."""
    rule = CATALOG.rule("NET-06")
    status, _ = run_fixture(rule, rule.fixtures["fail"][0])
    assert status != EXPECTED_STATUS["pass"]


def test_every_fixture_kind_the_schema_allows_has_an_expected_status():
    kinds = CATALOG_SCHEMA["properties"]["fixtures"]["properties"]
    assert set(kinds) == set(EXPECTED_STATUS)


def test_discovery_fixtures_run_on_a_discovery_not_a_posture():
    rule = CATALOG.rule("EGR-01")
    assert rule.evaluation == WORKLOAD_DISCOVERY and rule in CATALOG.discovery_rules
    assert rule not in CATALOG.posture_rules
    status, evidence = run_fixture(rule, rule.fixtures["fail"][0])
    assert status == "FAILED" and evidence["unapproved_domains"]

"""Every fixture of every rule (rules/<ID>/rule.yaml), run through the engine's per-rule evaluation.

A fixture is a deep-merge patch over tests/fixtures/base_posture.json (a workload-discovery
rule, EGR-01: over tests/fixtures/base_discovery.json; objects merge key by key; lists and
scalars replace), optional parameter overrides (validated as a params file
would be, then resolved for the task like the engine does) and an optional evidence subset.
pass -> PASSED, fail -> FAILED with the expected evidence, not_applicable -> NOT_APPLICABLE,
error -> ERROR (its expected evidence usually the exact ``error`` line).
"""

import copy
import json
from pathlib import Path

import pytest
from fargate_audit.core import engine
from fargate_audit.core.params import effective_params, resolve_params, validate_params
from fargate_audit.core.rules import WORKLOAD_DISCOVERY, load_catalog

REPO = Path(__file__).resolve().parents[2]
BASE_POSTURE = json.loads((REPO / "tests" / "fixtures" / "base_posture.json").read_text())
BASE_DISCOVERY = json.loads((REPO / "tests" / "fixtures" / "base_discovery.json").read_text())
CATALOG = load_catalog(REPO / "rules")
CATALOG_SCHEMA = json.loads((REPO / "rules" / "schema.json").read_text())
EXPECTED_STATUS = {"pass": "PASSED", "fail": "FAILED", "not_applicable": "NOT_APPLICABLE", "error": "ERROR"}


def deep_merge(base, patch):
    """A new object: dicts merged key by key, everything else replaced (lists too)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = {key: copy.deepcopy(value) for key, value in base.items()}
        for key, value in patch.items():
            merged[key] = deep_merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(patch)


def contains_subset(actual, expected):
    """Dicts: every expected key present with a matching value; lists: same length, item by
    item; scalars: equal (so order and count of listed items are always checked)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and contains_subset(actual[key], value) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(expected)
            and all(contains_subset(a, e) for a, e in zip(actual, expected, strict=True))
        )
    return actual == expected


def _cases():
    for rule in CATALOG.rules:
        for kind, fixtures in rule.fixtures.items():
            for fixture in fixtures:
                yield pytest.param(rule, kind, fixture, id=f"{rule.id}-{kind}-{fixture['name']}")


def run_fixture(rule, fixture):
    base = BASE_DISCOVERY if rule.evaluation == WORKLOAD_DISCOVERY else BASE_POSTURE
    posture = deep_merge(base, fixture.get("patch") or {})
    overrides = validate_params(fixture.get("params"), CATALOG, source=f"{rule.id} fixture {fixture['name']}")
    params = resolve_params(effective_params(CATALOG, overrides), posture)
    return engine.evaluate_rule(rule, posture, params)


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

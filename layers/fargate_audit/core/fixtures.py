"""A catalog's rule fixtures, run (``fargate-audit rules validate`` and the test suite).

A fixture (``fixtures`` of a rule.yaml) is a deep-merge patch over the catalog's base
posture (``base_posture.json``; a workload-discovery rule's over ``base_discovery.json``):
objects merge key by key, lists and scalars replace. Its optional ``params`` are validated
as a params file would be, then resolved for the task as the engine does; its optional
``expect_evidence`` must be a subset of the evidence. ``pass`` must give PASSED, ``fail``
FAILED, ``not_applicable`` NOT_APPLICABLE and ``error`` ERROR.

A catalog directory without its own base documents (a custom catalog that keeps only
rules) runs its fixtures over the shipped catalog's.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fargate_audit.core import engine
from fargate_audit.core.errors import ConfigError
from fargate_audit.core.params import effective_params, resolve_params, validate_params
from fargate_audit.core.rules import WORKLOAD_DISCOVERY, Catalog, Rule

BASE_POSTURE_FILE = "base_posture.json"
BASE_DISCOVERY_FILE = "base_discovery.json"
EXPECTED_STATUS = {"pass": "PASSED", "fail": "FAILED", "not_applicable": "NOT_APPLICABLE", "error": "ERROR"}
SHIPPED_CATALOG = Path(__file__).resolve().parents[1] / "catalog"


def deep_merge(base: Any, patch: Any) -> Any:
    """A new object: dicts merged key by key, everything else replaced (lists too)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = {key: copy.deepcopy(value) for key, value in base.items()}
        for key, value in patch.items():
            merged[key] = deep_merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(patch)


def contains_subset(actual: Any, expected: Any) -> bool:
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


def read_bases(rules_dir: str | Path | None = None) -> dict[str, dict]:
    """``{"posture": ..., "discovery": ...}``: the base documents of ``rules_dir``, each
    falling back to the shipped catalog's when the directory has none. A file that is
    not a JSON object is a ConfigError naming it."""
    bases = {}
    for kind, name in (("posture", BASE_POSTURE_FILE), ("discovery", BASE_DISCOVERY_FILE)):
        path = Path(rules_dir) / name if rules_dir is not None else None
        if path is None or not path.is_file():
            path = SHIPPED_CATALOG / name
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read the base {kind} of the fixtures: {exc}") from None
        if not isinstance(document, dict):
            raise ConfigError(f"{path}: the base {kind} of the fixtures must be a JSON object")
        bases[kind] = document
    return bases


def run_fixture(
    catalog: Catalog, rule: Rule, fixture: Mapping, bases: Mapping[str, dict]
) -> tuple[str, dict]:
    """(status, evidence) of ``rule`` on ``fixture``; a bad ``params`` is a ConfigError."""
    base = bases["discovery"] if rule.evaluation == WORKLOAD_DISCOVERY else bases["posture"]
    posture = deep_merge(base, fixture.get("patch") or {})
    overrides = validate_params(fixture.get("params"), catalog, source=f"{rule.id} fixture {fixture['name']}")
    params = resolve_params(effective_params(catalog, overrides), posture)
    return engine.evaluate_rule(rule, posture, params)


def fixture_problems(catalog: Catalog, bases: Mapping[str, dict]) -> tuple[int, list[str]]:
    """(fixtures run, one line per fixture that does not give its expected status and
    evidence, or that could not run: its rule, kind, name and what it gave instead)."""
    count, problems = 0, []
    for rule in catalog.rules:
        for kind, fixtures in rule.fixtures.items():
            for fixture in fixtures:
                count += 1
                where = f"{rule.source}: fixtures.{kind} {fixture.get('name')!r}"
                try:
                    status, evidence = run_fixture(catalog, rule, fixture, bases)
                except ConfigError as exc:
                    problems.append(f"{where}: {exc}")
                    continue
                except Exception as exc:  # noqa: BLE001 - a broken check is one line naming its fixture
                    problems.append(f"{where}: the check raised {type(exc).__name__}: {exc}")
                    continue
                expected = EXPECTED_STATUS.get(kind)
                if status != expected:
                    problems.append(
                        f"{where}: expected {expected}, got {status} (evidence {_short(evidence)})"
                    )
                    continue
                wanted = fixture.get("expect_evidence")
                if wanted is not None and not contains_subset(evidence, wanted):
                    problems.append(
                        f"{where}: evidence {_short(evidence)} lacks expect_evidence {_short(wanted)}"
                    )
    return count, problems


def _short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."

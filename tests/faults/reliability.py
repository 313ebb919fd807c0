"""The reliability table: produced by the fault suite, never typed by hand.

Every scenario of ``tests/faults/test_fault_*.py`` is declared with :func:`scenario`
(name, category, the outcome its test asserts) at import time: that is the suite's
scenario registry. Each test, once its assertions hold, reports one :class:`Row` with
what it measured (records lost, secrets leaked: both asserted zero) to ``COLLECTED``.

- :func:`render` turns rows into the Markdown table and its summary line
  ``N fault scenarios, M malformed inputs, 0 records lost, 0 secrets leaked``
  (deterministic: rows sorted by category then name, no timings);
- :func:`registry_rows` gives the rows the registry promises (what a passing suite
  reports), so the README's block can be checked without running the suite
  (``test_readme_reliability_table_is_current``);
- ``scripts/update_reliability_table.py`` runs the suite, checks the collected rows
  against the registry (:func:`check_rows`) and rewrites the README block between
  ``<!-- reliability:begin -->`` and ``<!-- reliability:end -->``.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE.parents[1] / "README.md"
CATEGORIES = ("event", "aws-fault", "security", "malformed-input")
BEGIN, END = "<!-- reliability:begin -->", "<!-- reliability:end -->"
ROWS_ENV = "FARGATE_AUDIT_RELIABILITY_OUT"  # where the suite writes its rows (the script sets it)


@dataclass(frozen=True)
class Scenario:
    name: str
    category: str
    outcome: str

    @property
    def id(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


@dataclass(frozen=True)
class Row:
    scenario: str
    category: str
    outcome: str
    records_lost: int
    secrets_leaked: int


REGISTRY: dict[str, Scenario] = {}
COLLECTED: list[Row] = []


def scenario(name: str, category: str, outcome: str) -> Scenario:
    """Declare a scenario (idempotent for an identical declaration)."""
    if category not in CATEGORIES:
        raise ValueError(f"{name}: category {category!r} is not one of {', '.join(CATEGORIES)}")
    declared = Scenario(name, category, outcome)
    existing = REGISTRY.get(name)
    if existing is not None and existing != declared:
        raise ValueError(f"scenario {name!r} declared twice, differently")
    REGISTRY[name] = declared
    return declared


def load_scenarios() -> dict[str, Scenario]:
    """The registry, after importing every ``test_fault_*.py`` module of the suite (under
    the names pytest gives them: the directory on sys.path, the file's stem)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    for path in sorted(HERE.glob("test_fault_*.py")):
        importlib.import_module(path.stem)
    return dict(REGISTRY)


def registry_rows(registry: dict[str, Scenario] | None = None) -> list[Row]:
    """The rows a passing suite reports: each scenario's asserted outcome, nothing lost,
    nothing leaked (a scenario whose test finds otherwise fails instead of reporting)."""
    registry = load_scenarios() if registry is None else registry
    return [Row(s.name, s.category, s.outcome, 0, 0) for s in registry.values()]


def check_rows(rows: list[Row], registry: dict[str, Scenario]) -> list[str]:
    """Problems of a suite run's rows against the registry (empty: consistent)."""
    problems = []
    by_name: dict[str, list[Row]] = {}
    for row in rows:
        by_name.setdefault(row.scenario, []).append(row)
    for name, declared in sorted(registry.items()):
        got = by_name.get(name, [])
        if len(got) != 1:
            problems.append(f"{name}: reported {len(got)} times (once expected)")
            continue
        (row,) = got
        if (row.category, row.outcome) != (declared.category, declared.outcome):
            problems.append(f"{name}: reported {row.category}/{row.outcome!r}, declared {declared.outcome!r}")
        if row.records_lost or row.secrets_leaked:
            problems.append(f"{name}: {row.records_lost} records lost, {row.secrets_leaked} secrets leaked")
    problems += [f"{name}: reported but not declared" for name in sorted(set(by_name) - set(registry))]
    return problems


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def summary(rows: list[Row]) -> str:
    malformed = sum(1 for r in rows if r.category == "malformed-input")
    lost = sum(r.records_lost for r in rows)
    leaked = sum(r.secrets_leaked for r in rows)
    return (
        f"{len(rows) - malformed} fault scenarios, {malformed} malformed inputs, "
        f"{lost} records lost, {leaked} secrets leaked"
    )


def render(rows: list[Row]) -> str:
    """The Markdown table (sorted by category, then scenario) and the summary line."""
    ordered = sorted(rows, key=lambda r: (CATEGORIES.index(r.category), r.scenario.lower()))
    lines = [
        "| scenario | category | outcome | records lost | secrets leaked |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    lines += [
        f"| {_cell(r.scenario)} | {r.category} | {_cell(r.outcome)} | {r.records_lost} | {r.secrets_leaked} |"
        for r in ordered
    ]
    return "\n".join(lines) + f"\n\n**{summary(rows)}**\n"


def block(rows: list[Row]) -> str:
    """The README block, markers included."""
    return f"{BEGIN}\n{render(rows)}{END}"


def readme_block(text: str) -> str | None:
    """The README's current block (markers included), None when the markers are absent."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return None
    return text[start : end + len(END)]


def replace_block(text: str, new_block: str) -> str:
    """``text`` with its block replaced; without markers, a "## Reliability" section
    holding the block is appended at the end."""
    current = readme_block(text)
    if current is not None:
        return text.replace(current, new_block, 1)
    return text.rstrip("\n") + "\n\n## Reliability\n\n" + new_block + "\n"


def rows_to_json(rows: list[Row]) -> str:
    return json.dumps([asdict(r) for r in rows], indent=1)


def rows_from_json(text: str) -> list[Row]:
    return [Row(**item) for item in json.loads(text)]

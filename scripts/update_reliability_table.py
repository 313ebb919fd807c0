#!/usr/bin/env python3
"""Run the fault-injection suite and rewrite README.md's reliability table from its rows.

    .venv/bin/python scripts/update_reliability_table.py [--check]

Runs ``pytest tests/faults`` (one process: every row lands in one file), checks that each
scenario of the suite's registry reported exactly once with the outcome it declares and
with nothing lost and nothing leaked, then replaces the block between
``<!-- reliability:begin -->`` and ``<!-- reliability:end -->`` in README.md (appending a
"## Reliability" section holding the markers when they are missing). Nothing else in the
README is touched. ``--check``: report whether the README is current, change nothing.
Exit 1 when the suite fails or its rows do not match the registry.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "faults"))
sys.path.insert(1, str(REPO / "tests"))  # `support`, imported by the fault modules (pytest's pythonpath)
sys.path.insert(2, str(REPO / "layers"))

import reliability  # noqa: E402

# The test comparing the README with the registry: the block this script is about to write.
CURRENT = "tests/faults/test_reliability_table.py::test_readme_reliability_table_is_current"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the README block is current")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder:
        rows_file = Path(folder) / "rows.json"
        env = dict(os.environ, **{reliability.ROWS_ENV: str(rows_file)})
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "tests/faults"]
        command += ["--deselect", CURRENT]
        done = subprocess.run(command, cwd=REPO, env=env, check=False)
        if done.returncode != 0:
            print("update_reliability_table: the fault suite failed; README not changed", file=sys.stderr)
            return 1
        rows = reliability.rows_from_json(rows_file.read_text(encoding="utf-8"))

    problems = reliability.check_rows(rows, reliability.load_scenarios())
    for problem in problems:
        print(f"update_reliability_table: {problem}", file=sys.stderr)
    if problems:
        return 1
    text = reliability.README.read_text(encoding="utf-8")
    updated = reliability.replace_block(text, reliability.block(rows))
    if args.check:
        current = updated == text
        print("README reliability table is " + ("current" if current else "stale"))
        return 0 if current else 1
    if updated != text:
        reliability.README.write_text(updated, encoding="utf-8")
    print(reliability.summary(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

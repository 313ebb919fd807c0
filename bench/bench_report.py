"""Benchmark: writing the JSON scan report (a script, not a test).

5,000 (``--tasks``) postures made from tests/fixtures/base_posture.json under distinct task
ARNs, evaluated by the whole catalog, then the report written three ways, each the best of
three runs (process CPU):

- ``json.dumps(build_report(...), indent=2)``: what the CLI did before (pure-Python encoder);
- ``json.dumps(build_report(...))``: the standard library's C encoder, no indentation;
- ``report.write_report``: what the CLI does (orjson, 1,000 items a call, streamed).

The texts of the first and the last are compared (they must be equal).

    .venv/bin/python bench/bench_report.py --tasks 5000
"""

from __future__ import annotations

import argparse
import copy
import gc
import io
import json
import time
from datetime import UTC, datetime
from pathlib import Path

from fargate_audit.core import engine, report, rules

BASE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "base_posture.json"


def _best(func, runs: int = 3) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(runs):
        started = time.process_time()
        value = func()
        best = min(best, time.process_time() - started)
    return best, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000)
    args = parser.parse_args()
    base = json.loads(BASE.read_text())
    postures = []
    for n in range(args.tasks):
        posture = copy.deepcopy(base)
        posture["task_arn"] = base["task_arn"].rsplit("/", 1)[0] + f"/{n:032x}"
        postures.append(posture)
    catalog = rules.load_catalog()
    results = engine.evaluate(catalog, postures).results
    now = datetime.now(UTC)
    gc.disable()  # as the CLI does for a scan

    def indented():
        document = report.build_report(postures, results, now=now)
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"

    def compact():
        return json.dumps(report.build_report(postures, results, now=now), ensure_ascii=False)

    def streamed():
        out = io.StringIO()
        report.write_report(out, postures, results, now=now)
        return out.getvalue()

    rows = []
    writers = (("json indent=2 (before)", indented), ("json compact", compact), ("write_report", streamed))
    for name, func in writers:
        seconds, text = _best(func)
        rows.append((name, seconds, len(text)))
        if name.startswith("json indent"):
            expected = text
        if name == "write_report":
            same = text == expected
    print(f"{args.tasks} tasks, {len(results)} results")
    print("writer | CPU s (best of 3) | MB")
    for name, seconds, size in rows:
        print(f"{name} | {seconds:.3f} | {size / 1e6:.1f}")
    print(f"write_report text equals json indent=2: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

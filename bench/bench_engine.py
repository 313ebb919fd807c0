"""Benchmark: the whole rule catalog over 10,000 task postures (a script, not a test).

The postures are copies of the demo estate's (built and scanned in-process by
demo.build_and_scan: 31 tasks in 11 workloads, every rule both passing and failing
somewhere), each copy with its own task ARN. Only engine.evaluate is timed, in CPU
seconds (time.process_time).

    .venv/bin/python bench/bench_engine.py [--postures 10000]

Prints numbers only; nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import gc
import sys
import time
from collections import Counter

from fargate_audit.core import engine, rules
from fargate_audit.local import demo

TARGET_CPU_S = 1.0


def varied_postures(count: int) -> list[dict]:
    """`count` postures cycling over the demo's, each with a distinct task ARN."""
    seeds = demo.build_and_scan().outcome.postures
    postures = []
    for index in range(count):
        posture = copy.deepcopy(seeds[index % len(seeds)])
        posture["task_arn"] = f"{posture['task_arn'].rsplit('/', 1)[0]}/bench{index:027d}"
        postures.append(posture)
    return postures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postures", type=int, default=10_000)
    args = parser.parse_args()

    postures = varied_postures(args.postures)
    catalog = rules.load_catalog()
    gc.collect()
    started = time.process_time()
    outcome = engine.evaluate(catalog, postures, params=None, today=dt.date(2026, 1, 1))
    cpu = time.process_time() - started

    statuses = Counter(result["status"] for result in outcome.results)
    verdict = "PASS" if cpu < TARGET_CPU_S else "MISS"
    print("postures | rules | results | CPU s | target | ")
    counts = f"{len(postures)} | {len(catalog.rules)} | {len(outcome.results)}"
    print(f"{counts} | {cpu:.3f} | < {TARGET_CPU_S} | {verdict}")
    print("results by status: " + ", ".join(f"{status} {n}" for status, n in sorted(statuses.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())

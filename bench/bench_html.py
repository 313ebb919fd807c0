"""Benchmark: the HTML report at scale (a script, not a test).

The demo estate's 31 tasks (its postures and results, varied: public and private tasks,
NAT, transit gateway, load balancers) copied under distinct task ARNs until ``--tasks``
tasks, one workload per 4 tasks (services renamed per copy), then for each size:
- ``html.render``: CPU time (best of three) and the page's size;
- in headless Chromium (when it and Playwright are installed: ``make browser``): the time
  from navigation to the page ready (summary, filters and workload list drawn), to a
  filter applied (rule NET-02 FAILED), and to a task's drawn path opened.

    PYTHONPATH=layers:tests .venv/bin/python bench/bench_html.py --tasks 1000 5000
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

from fargate_audit.cli import html
from fargate_audit.core import report


def _scaled(postures: list[dict], results: list[dict], tasks: int) -> tuple[list[dict], list[dict]]:
    by_task: dict[str, list[dict]] = {}
    for result in results:
        by_task.setdefault(result["task_arn"], []).append(result)
    out_postures, out_results = [], []
    for n in range(tasks):
        base = postures[n % len(postures)]
        copy_no = n // len(postures)
        posture = copy.deepcopy(base)
        arn = f"{base['task_arn']}-{n:06d}"
        posture["task_arn"] = arn
        posture["group"] = f"{base['group']}-{copy_no // 4}"
        posture["workload"] = f"{posture['cluster_name']}/{posture['group']}"
        out_postures.append(posture)
        out_results += [{**r, "task_arn": arn} for r in by_task.get(base["task_arn"], [])]
    return out_postures, out_results


def _browser_times(path: Path) -> dict[str, float] | str:
    try:
        from support.browser import PageWatch, chromium
    except ImportError as exc:  # pragma: no cover - run without tests/ on the path
        return f"skipped ({exc})"
    try:
        with chromium() as browser:
            watch = PageWatch(browser, path.as_uri())
            started = time.perf_counter()
            page = watch.open()
            ready = time.perf_counter()
            page.select_option("#f-rule", "NET-02")
            page.select_option("#f-status", "FAILED")
            page.wait_for_function("document.getElementById('f-count').textContent.includes('workloads')")
            filtered = time.perf_counter()
            workload = page.locator("details.workload:not([hidden])").first.get_attribute("data-workload")
            opened_at = time.perf_counter()
            watch.open_task(workload)
            opened = time.perf_counter()
            assert not watch.errors and not watch.requests, (watch.errors, watch.requests)
            return {
                "ready_s": ready - started,
                "filter_s": filtered - ready,
                "open_task_s": opened - opened_at,
            }
    except Exception as exc:  # noqa: BLE001 - a benchmark reports what it could not measure
        return f"skipped ({type(exc).__name__}: {exc})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[1000, 5000])
    args = parser.parse_args()
    from fargate_audit.local import demo

    outcome = demo.build_and_scan().outcome
    for tasks in args.tasks:
        postures, results = _scaled(outcome.postures, outcome.results, tasks)
        document = report.build_report(postures, results, now=outcome.now)
        best = float("inf")
        for _ in range(3):
            started = time.process_time()
            page = html.render(document)
            best = min(best, time.process_time() - started)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "report.html"
            path.write_text(page, encoding="utf-8")
            browser = _browser_times(path)
        workloads = len({p["workload"] for p in postures})
        print(
            f"{tasks} tasks ({workloads} workloads, {len(results)} results): render {best:.2f} s CPU, "
            f"page {len(page.encode()) / 1e6:.2f} MB; browser {browser}"
        )


if __name__ == "__main__":
    main()

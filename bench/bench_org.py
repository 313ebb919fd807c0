"""Benchmark: an organization scan through the CLI on the emulator (a script, not a test).

A moto server runs in this process (moto keeps every account reached through AssumeRole
apart). It builds ``--accounts`` member accounts, each with ``--tasks`` running Fargate
tasks in each of two regions (estate.build_bench_estate, built through an assumed
session), and, for comparison at the same task count, the caller's own account with
accounts x tasks tasks and resources in each region. Then, each in a child process (bench/cpu_split.py:
its peak RSS is its own VmHWM):

- ``org``: ``fargate-audit scan --accounts ID,... --region R1 --region R2 --format json``;
- ``one account``: the same for the first member account alone;
- ``single, same tasks``: a plain scan of the caller's own account (no role), which holds
  as many tasks, VPCs, security groups, task definitions and clusters as all the member
  accounts together.

Printed: tasks, wall time, peak RSS, AWS requests (from the report's stats.api_calls),
requests per task, AssumeRole calls; then the issue's targets (at most one AssumeRole per
account; requests per task within 1.5x of the single-account figure at the same task count;
the org scan's wall time below 4x one account's).

    PYTHONPATH=layers .venv/bin/python bench/bench_org.py [--accounts 20] [--tasks 50] [--jobs 8]
        [--latency-ms 50]

The emulator answers at once and spends its own CPU under one GIL, so on this machine the
org scan's accounts cannot overlap the way they do against AWS, where a request spends
tens of milliseconds on the network and in the service. ``--latency-ms N`` (default 0:
off) makes the emulator wait N ms before answering each request during the scans (not
while building): the same three scans then show what parallel accounts buy when the time
is AWS's, not the emulator's.

Prints numbers only; nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time

import boto3
from bench_peers import CountingMotoServer
from bench_scan import compile_package, emulator_env
from fargate_audit.edge import aws
from fargate_audit.local import estate

REGIONS = ("eu-west-1", "us-east-1")
SHAPE = {"vpcs": 1, "security_groups": 4, "task_definitions": 2, "clusters": 1}
_RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpu_split.py")


def member_ids(count: int) -> list[str]:
    return [f"{100000000000 + n * 1111:012d}" for n in range(1, count + 1)]


def _scan(env: dict, tmp: str, *argv: str) -> tuple[float, float, dict]:
    """One CLI scan in a child process: (wall s, peak RSS MB, report)."""
    output, measures = os.path.join(tmp, "report.json"), os.path.join(tmp, "measures.json")
    regions = [arg for region in REGIONS for arg in ("--region", region)]
    command = [
        sys.executable,
        _RUNNER,
        measures,
        "scan",
        *argv,
        *regions,
        "--format",
        "json",
        "--output",
        output,
    ]
    started = time.perf_counter()
    child = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - started
    if child.returncode not in (0, 1):  # 1: FAILED results exist, the normal case here
        raise SystemExit(f"scan {' '.join(argv)} exited {child.returncode}: {child.stderr.decode()[-2000:]}")
    with open(measures) as handle:
        rss = json.load(handle)["vm_hwm_kb"] / 1024
    with open(output) as handle:
        report = json.load(handle)
    return wall, rss, report


def _row(name: str, wall: float, rss: float, report: dict) -> tuple[str, float]:
    calls = report["stats"]["api_calls"]
    requests, tasks = sum(calls.values()), report["summary"]["tasks"]
    per_task = requests / max(tasks, 1)
    errors = [s for s in report["summary"].get("scopes") or [] if s["error"]]
    line = (
        f"{name} | {tasks} | {wall:.2f} | {report['stats']['duration_s']:.2f} | {rss:.0f} | {requests} | "
        f"{per_task:.4f} | {calls.get('sts.AssumeRole', 0)} | {len(errors)}"
    )
    return line, per_task


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20, help="member accounts (default 20)")
    parser.add_argument("--tasks", type=int, default=50, help="running tasks per account and region (50)")
    parser.add_argument("--jobs", type=int, default=8, help="the scan's --jobs (default 8, the CLI's)")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="emulated AWS latency per request during the scans (0: off)",
    )
    args = parser.parse_args()
    compile_package()  # the scans measured as installed: with .pyc
    accounts = member_ids(args.accounts)

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = CountingMotoServer()
    server.start()
    env = emulator_env(server.endpoint)
    try:
        started = time.perf_counter()
        source = boto3.session.Session(region_name=REGIONS[0])
        for account in accounts:
            member = aws.assume_role_session(source, f"arn:aws:iam::{account}:role/estate-builder")
            for region in REGIONS:
                estate.build_bench_estate(member, region, tasks=args.tasks, **SHAPE)
        # the caller's own account: the same tasks and resources (VPCs, groups, task
        # definitions, clusters) as all the member accounts together, in one account
        same = {key: min(n * args.accounts, 200 if key == "vpcs" else 999) for key, n in SHAPE.items()}
        for region in REGIONS:
            session = boto3.session.Session(region_name=region)
            estate.build_bench_estate(session, region, tasks=args.tasks * args.accounts, **same)
        print(f"built in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        server.counter.latency_s = args.latency_ms / 1000.0
        if args.latency_ms:
            print(f"emulated AWS latency: {args.latency_ms:g} ms per request", file=sys.stderr)
        rows = [
            "scan | tasks | wall s | scan s | peak RSS MB | AWS requests | req/task | AssumeRole | errors"
        ]
        with tempfile.TemporaryDirectory() as tmp:
            org_wall, org_rss, org = _scan(
                env, tmp, "--accounts", ",".join(accounts), "--jobs", str(args.jobs)
            )
            line, org_per_task = _row(
                f"org ({args.accounts} accounts, --jobs {args.jobs})", org_wall, org_rss, org
            )
            rows.append(line)
            one_wall, one_rss, one = _scan(env, tmp, "--accounts", accounts[0])
            line, one_per_task = _row("one account", one_wall, one_rss, one)
            rows.append(line)
            single_wall, single_rss, single = _scan(env, tmp)
            line, single_per_task = _row("single account, same tasks", single_wall, single_rss, single)
            rows.append(line)
    finally:
        server.stop()
    assumed = org["stats"]["api_calls"].get("sts.AssumeRole", 0)
    print("\n".join(rows))
    print("targets:")
    print(f"  AssumeRole per account: {assumed / args.accounts:.2f} (<= 1)")
    ratio = org_per_task / single_per_task
    print(f"  requests per task, org / single account at the same task count: {ratio:.2f} (<= 1.5)")
    print(
        f"  (for scale) requests per task, org / one member account of the same shape: "
        f"{org_per_task / one_per_task:.2f}: what auditing through the organization adds per task"
    )
    print(f"  wall time, {args.accounts} accounts / one account: {org_wall / one_wall:.2f} (< 4)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

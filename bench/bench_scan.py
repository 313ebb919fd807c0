"""Benchmark: a full scan of emulated estates of growing size (a script, not a test).

A moto server runs in this process; for each size the server is reset, an estate is built
(estate.build_bench_estate) and `fargate-audit scan --format json` runs in a separate
process against it (through bench/cpu_split.py), so that the scan's own CPU time
(os.wait4) and peak RSS (the child's VmHWM) are measured apart from the emulator's. AWS
request counts come from the report's stats.api_calls. Then, per size, where the CPU went:
interpreter start-up, imports, client creation, catalog and schema loading, AWS calls
(botocore), collect, posture, engine, report and rendering, other (cpu_split.py says how).
Custodian side by side: bench_peers.py.

    .venv/bin/python bench/bench_scan.py --sizes 100,1000,5000

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
from fargate_audit.local import estate
from moto.server import ThreadedMotoServer

REGION = "eu-west-1"
# requests per task the scan should stay within (docs: aws-limits.md, design.md section 4)
TARGETS = {1000: 0.03, 5000: 0.015}
ESTATE_SHAPE = {"vpcs": 3, "security_groups": 24, "task_definitions": 8, "clusters": 5}


# The child reports its own peak RSS from /proc/self/status VmHWM (the ru_maxrss that wait4
# returns also counts the parent's memory, the emulator's, inherited until exec) and the
# split of its CPU time by phase.
_RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpu_split.py")


def emulator_env(endpoint: str) -> dict:
    """The environment a measured child runs in: this one without any AWS_* variable, plus
    the emulator's endpoint and dummy credentials. Also applied to this process, so that the
    estate builder's boto3 session finds the server the same way."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_COLOR": "1",
    }
    os.environ.update(env)
    return env


def _scan_in_child(env: dict, tmp: str) -> tuple[float, float, float, dict, dict]:
    """Run the CLI scan in a child process: (wall s, CPU s, peak RSS MB, report, CPU split)."""
    output, measures = os.path.join(tmp, "report.json"), os.path.join(tmp, "measures.json")
    command = [sys.executable, _RUNNER, measures, "scan", "--format", "json", "--output", output]
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    stderr = child.stderr.read().decode(errors="replace") if child.stderr else ""
    if child.stderr:
        child.stderr.close()
    if child.returncode not in (0, 1):  # 1 = FAILED results exist, the normal case here
        raise SystemExit(f"scan exited {child.returncode}: {stderr.strip()}")
    with open(measures) as handle:
        measured = json.load(handle)
    with open(output) as handle:
        report = json.load(handle)
    return wall, usage.ru_utime + usage.ru_stime, measured["vm_hwm_kb"] / 1024, report, measured["split"]


def compile_package() -> None:
    """Byte-compile this checkout's fargate_audit (and its catalog's check.py files) as pip
    does when it installs the wheel. Without it, a checkout run where no .pyc can be written
    (PYTHONDONTWRITEBYTECODE, set on this build machine, or a read-only tree) compiles every
    module from source on each scan: about 0.05 s of CPU that no installed copy pays, nor
    Custodian, whose venv pip compiled.

    The __pycache__ folders this makes are removed when the benchmark ends: the source tree
    is left as it was (a __pycache__ beside a rule's check.py is no file of the package)."""
    import atexit
    import compileall
    import shutil
    from pathlib import Path

    package = Path(__file__).resolve().parent.parent / "layers" / "fargate_audit"
    before = set(package.rglob("__pycache__"))
    if not compileall.compile_dir(str(package), quiet=1):
        raise SystemExit(f"cannot byte-compile {package}")
    made = sorted(set(package.rglob("__pycache__")) - before)
    atexit.register(lambda: [shutil.rmtree(folder, ignore_errors=True) for folder in made])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000", help="comma-separated task counts")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    compile_package()  # measured as installed: with .pyc

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per emulator request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = emulator_env(endpoint)
    header = (
        "tasks | audited | build s | wall s | scan s | scan CPU s | peak RSS MB | AWS requests | req/task"
    )
    header += " | target |"
    rows, notes = [header], []
    splits: dict[int, tuple[float, dict]] = {}
    try:
        for size in sizes:
            estate.reset_server(endpoint)
            session = boto3.session.Session(region_name=REGION)
            started = time.perf_counter()
            info = estate.build_bench_estate(session, REGION, tasks=size, **ESTATE_SHAPE)
            build_s = time.perf_counter() - started
            with tempfile.TemporaryDirectory() as tmp:
                wall, cpu, rss, report, split = _scan_in_child(env, tmp)
            splits[size] = (cpu, split)
            calls = report["stats"]["api_calls"]
            requests, audited = sum(calls.values()), report["summary"]["tasks"]
            per_task = requests / max(audited, 1)
            target = TARGETS.get(size)
            verdict = "-" if target is None else ("PASS" if per_task <= target else "MISS")
            rows.append(
                f"{size} | {audited} | {build_s:.1f} | {wall:.2f} | {report['stats']['duration_s']:.2f} | "
                f"{cpu:.2f} | {rss:.0f} | {requests} | {per_task:.4f} | "
                f"{'-' if target is None else f'<= {target}'} | {verdict}"
            )
            extra = _unpaged_requests(info, calls)
            notes.append(
                f"{size}: "
                + ", ".join(f"{name} {n}" for name, n in sorted(calls.items()))
                + f"; paging moto skips would add ~{extra} ({(requests + extra) / max(audited, 1):.4f}/task)"
            )
            print(f"size {size}: built in {build_s:.1f} s, scanned in {wall:.1f} s", file=sys.stderr)
    finally:
        server.stop()
    print("\n".join(rows))
    print("requests by call (moto answers ListTasks and EC2 describes in one page):")
    print("\n".join(notes))
    print(_split_table(splits))
    return 0


def _split_table(splits: dict[int, tuple[float, dict]]) -> str:
    """Where the scan's CPU went, per size (seconds and share of the child's CPU)."""
    sizes = sorted(splits)
    phases = sorted(
        {p for _, split in splits.values() for p in split}, key=lambda p: -splits[sizes[-1]][1].get(p, 0)
    )
    lines = [
        "CPU split (cpu_split.py; exclusive seconds per phase):",
        "phase | " + " | ".join(f"{n} tasks" for n in sizes),
    ]
    for phase in phases:
        cells = []
        for size in sizes:
            cpu, split = splits[size]
            value = split.get(phase, 0.0)
            cells.append(f"{value:.3f} s ({100 * value / max(cpu, 1e-9):.0f}%)")
        lines.append(f"{phase} | " + " | ".join(cells))
    lines.append("total (os.wait4) | " + " | ".join(f"{splits[n][0]:.3f} s" for n in sizes))
    return "\n".join(lines)


def _unpaged_requests(info: estate.EstateInfo, calls: dict) -> int:
    """Requests AWS would add to the measured ones: moto ignores maxResults, so ListTasks
    (pages of 100 per cluster) and DescribeNetworkInterfaces (pages of 1,000) come back in
    one page. An estimate from those page sizes (aws-limits.md)."""
    per_cluster: dict[str, int] = {}
    for workload, arns in info.workloads.items():
        cluster = workload.split("/", 1)[0]
        per_cluster[cluster] = per_cluster.get(cluster, 0) + len(arns)
    list_pages = sum(-(-n // 100) for n in per_cluster.values())
    eni_pages = -(-len(info.running_fargate_tasks) // 1000)
    return max(0, list_pages - calls.get("ecs.ListTasks", 0)) + max(
        0, eni_pages - calls.get("ec2.DescribeNetworkInterfaces", 0)
    )


if __name__ == "__main__":
    sys.exit(main())

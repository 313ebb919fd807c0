"""Benchmark: the event path's AWS reads and the handlers' cold import (a script, not a test).

1. AWS read calls (ECS, EC2, Resolver, load balancers and WAF: the facts a posture is
   built from, as app.service.FACT_SERVICES counts them) for one RUNNING task
   event through ``lambda_handlers.task_events``, on moto in-process: cold (a new
   container: empty caches) and warm (the next event, another task of the same VPC).
   DynamoDB and Security Hub requests are printed apart (writes and state reads).
2. The cold import of each ``functions/<name>/app.py`` (with .pyc): a fresh interpreter per
   run; the median over the runs of ``import app`` measured inside the child, and the
   ``-X importtime`` cumulative for ``app``. boto3 (and a botocore session) must not be
   imported by it (Powertools itself imports the bare ``botocore`` package for its user agent).
   Also the first call's one-off runtime build (boto3, clients, rule catalog, event schema).

    .venv/bin/python bench/bench_event.py [--runs 7]

Targets (design): reads <= 10 cold, <= 3 warm; import < 400 ms. The cold target was set
before the load-balancer facts: their DescribeTargetGroups is an 11th cold read. Prints
numbers only; nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # support: what the tests and the benchmarks share
REGION = "eu-west-1"
TARGETS = {"cold_reads": 10, "warm_reads": 3, "import_ms": 400}
FUNCTIONS = ("task_events", "config_events", "sweep_planner", "sweep_worker", "dns_logs")

_IMPORT_PROBE = """
import sys, time
started = time.perf_counter()
import app
elapsed = time.perf_counter() - started
print(round(elapsed * 1000, 1), int("boto3" in sys.modules), int("botocore.session" in sys.modules))
"""


_INIT_PROBE = """
import time
import app
from fargate_audit.app import events
from fargate_audit.app import lambda_handlers
started = time.perf_counter()
lambda_handlers.runtime()
events.schema(events.TASK_EVENT)
print(round((time.perf_counter() - started) * 1000, 1))
"""


def _environment() -> dict[str, str]:
    """The functions' environment the tests use (tests/support/env.py), metrics not emitted."""
    from support.env import ENV

    return ENV | {"POWERTOOLS_METRICS_DISABLED": "true"}


def _running_event(task: dict, version: int) -> dict:
    """The events/ sample with the emulator's task in it (documented shape kept)."""
    from fargate_audit.local.demo import task_state_change

    return task_state_change(task, task["taskArn"].split(":")[4], REGION, "RUNNING", version)


def measure_reads() -> dict:
    os.environ.update(_environment())
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(name, None)
    import boto3
    from fargate_audit.app import lambda_handlers
    from fargate_audit.app.service import FACT_SERVICES  # the fact reads, as the product counts them
    from fargate_audit.cli.template import load_template, table_create_kwargs
    from fargate_audit.local import estate
    from moto import mock_aws

    class Context:
        function_name, memory_limit_in_mb = "bench", 512
        invoked_function_arn, aws_request_id = "arn:aws:lambda:eu-west-1:123456789012:function:bench", "r"

    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        session.client("dynamodb").create_table(
            **table_create_kwargs(load_template(), "fargate-audit-posture")
        )
        session.client("securityhub").enable_security_hub()
        b = estate._Builder(session, REGION)
        try:
            vpc = b.vpc("bench", "10.30.0.0/16")
            igw = b.internet_gateway(vpc, "bench-igw")
            subnet = b.subnet("bench-a", vpc, "10.30.1.0/24", "a")
            b.route_table("bench", vpc, [subnet], [{"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": igw}])
            sg = b.security_group(
                "bench", "web", "web", ingress=[estate._ports("tcp", 443, 443, cidrs4=["0.0.0.0/0"])]
            )
            b.cluster("bench", "enabled")
            b.task_definition("web", [estate._container("web", "nginx:1.27")])
            arns = b.run_tasks("bench", "web", [subnet], [sg], 2, "1.4.0", service="web", public_ip=True)
            tasks = b.ecs.describe_tasks(cluster="bench", tasks=arns)["tasks"]
            lambda_handlers.reset_runtime()
            runs = {}
            for label, task in (("cold", tasks[0]), ("warm", tasks[1])):
                rt = lambda_handlers.runtime()
                before = rt.clients.counter.snapshot()
                outcome = lambda_handlers.task_events(_running_event(task, 2), Context())
                calls = rt.clients.counter.since(before)
                runs[label] = {
                    "status": outcome["status"],
                    "reads": {k: v for k, v in calls.items() if k.startswith(FACT_SERVICES)},
                    "other": {k: v for k, v in calls.items() if not k.startswith(FACT_SERVICES)},
                }
        finally:
            lambda_handlers.reset_runtime()
            estate.release_task_states(b.ecs)
    return runs


def measure_import(runs: int) -> dict:
    compileall.compile_dir(str(REPO / "layers" / "fargate_audit"), quiet=1)
    env = dict(os.environ) | _environment()
    env["PYTHONPATH"] = str(REPO / "layers")
    results = {}
    for function in FUNCTIONS:
        folder = REPO / "functions" / function
        compileall.compile_dir(str(folder), quiet=1)
        samples, loaded = [], None
        for _ in range(runs + 1):  # the first run also writes any missing .pyc
            done = subprocess.run(
                [sys.executable, "-c", _IMPORT_PROBE],
                cwd=folder,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            ms, boto3_loaded, session_loaded = done.stdout.split()
            samples.append(float(ms))
            loaded = {"boto3": boto3_loaded == "1", "botocore.session": session_loaded == "1"}
        importtime = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import app"],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stderr
        cumulative_us = next(
            int(line.split("|")[1]) for line in importtime.splitlines() if line.rstrip().endswith("| app")
        )
        init = [
            float(
                subprocess.run(
                    [sys.executable, "-c", _INIT_PROBE],
                    cwd=folder,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            for _ in range(3)
        ]
        results[function] = {
            "init_ms": statistics.median(init),
            "median_ms": statistics.median(samples[1:]),
            "importtime_ms": cumulative_us / 1000,
            "loaded": loaded,
        }
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh interpreters per handler (default 7)")
    args = parser.parse_args()

    reads = measure_reads()
    print("AWS read calls (ECS, EC2, Route 53 Resolver, load balancers, WAF) for one RUNNING task event:")
    for label in ("cold", "warm"):
        run = reads[label]
        total = sum(run["reads"].values())
        target = TARGETS[f"{label}_reads"]
        print(f"  {label:<5} {total:>3}  (target <= {target})  {json.dumps(run['reads'])}")
        print(f"        table and Security Hub requests: {json.dumps(run['other'])}")

    print(f"Handler module cold import (fresh interpreter, .pyc present, median of {args.runs}):")
    for function, result in measure_import(args.runs).items():
        flags = ", ".join(name for name, loaded in result["loaded"].items() if loaded) or "no boto3 loaded"
        print(
            f"  {function:<14} {result['median_ms']:>6.1f} ms  (-X importtime app: "
            f"{result['importtime_ms']:.1f} ms; target < {TARGETS['import_ms']} ms; {flags})"
        )
        print(f"  {'':<14} first call builds the runtime: {result['init_ms']:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

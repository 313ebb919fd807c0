"""`fargate-audit demo`: the whole pipeline on an emulated AWS estate, in-process.

moto emulates AWS inside this process (``moto.mock_aws``): no account, no credentials and
no network are used. The estate (estate.build_demo_estate) is built, then audited by the
same scan and rendered by the same table as ``fargate-audit scan``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO

DEMO_REGION = "eu-west-1"
DEMO_SEED = 20240501  # moto's ids are random: a fixed seed makes the demo repeatable

# Every variable through which boto3 could find a real account, profile or endpoint.
_AWS_VARIABLES_REMOVED = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
)
_AWS_VARIABLES_SET = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": DEMO_REGION,
    "AWS_REGION": DEMO_REGION,
    "AWS_CONFIG_FILE": os.devnull,  # a profile there could name an endpoint_url
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
}


@dataclass
class DemoRun:
    estate: object  # estate.EstateInfo
    outcome: object  # scan.ScanOutcome
    build_s: float
    scan_s: float


@contextmanager
def demo_environment() -> Iterator[None]:
    """Fake credentials and no endpoint, profile or config file, for the duration only."""
    saved = dict(os.environ)
    try:
        for name in list(os.environ):
            if name in _AWS_VARIABLES_REMOVED or name.startswith("AWS_ENDPOINT_URL_"):
                del os.environ[name]
        os.environ.update(_AWS_VARIABLES_SET)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def build_and_scan(region: str = DEMO_REGION) -> DemoRun:
    """Build the demo estate in an in-process emulator and scan it with the real pipeline."""
    import boto3
    from moto import mock_aws
    from moto.moto_api._internal import mock_random

    from . import estate, scan

    with demo_environment(), mock_aws():
        mock_random.seed(DEMO_SEED)
        session = boto3.session.Session(region_name=region)
        started = time.perf_counter()
        info = estate.build_demo_estate(session, region)
        built = time.perf_counter()
        try:
            outcome = scan.run_scan(session, regions=[region])
        finally:
            estate.release_task_states(session.client("ecs", region_name=region))
        scanned = time.perf_counter()
    return DemoRun(estate=info, outcome=outcome, build_s=built - started, scan_s=scanned - built)


def _header(run: DemoRun) -> str:
    lines = ["fargate-audit demo: an emulated AWS estate (moto, in-process; no account, no network)", ""]
    lines += [f"  - {line}" for line in run.estate.narrative]
    lines += [
        "",
        f"Built in {run.build_s:.1f} s; scanning it with the same pipeline as `fargate-audit scan`.",
        "",
    ]
    return "\n".join(lines) + "\n"


def _footer(run: DemoRun) -> str:
    report = run.outcome.report
    workload_of = {t["task_arn"]: t.get("workload") or t["group"] for t in report["tasks"]}
    statuses: dict[str, set[str]] = {}
    reachable: dict[str, set[str]] = {}
    secrets: set[str] = set()
    errors = 0
    for result in report["results"]:
        statuses.setdefault(result["rule_id"], set()).add(result["status"])
        errors += result["status"] == "ERROR"
        if result["status"] != "FAILED":
            continue
        workload = workload_of.get(result["task_arn"], result["task_arn"])
        if result["rule_id"] == "NET-02":
            ports = result["evidence"].get("open_ports") or []
            reachable.setdefault(workload, set()).update(
                f"{p['protocol']}/{p['from']}" + (f"-{p['to']}" if p["to"] != p["from"] else "")
                for p in ports
            )
        elif result["rule_id"] == "CFG-02":
            secrets.add(workload)
    failing = sorted(rule for rule, seen in statuses.items() if "FAILED" in seen)
    api_calls = sum(report["stats"]["api_calls"].values())
    lines = ["What to look at:"]
    if reachable:
        lines.append("  - reachable from the internet (public IP + internet gateway + open SG and NACL):")
        lines += [f"      {w}  ports {', '.join(sorted(p))}" for w, p in sorted(reachable.items())]
    lines.append(
        f"  - {len(failing)} of {len(statuses)} rules fail on at least one task: {', '.join(failing)}"
    )
    if secrets:
        names = ", ".join(sorted(secrets))
        lines.append(f"  - plain-text secrets (variable names only; values are never shown): {names}")
    lines.append(
        f"  - {errors} results in ERROR; {report['summary']['skipped_tasks']} tasks skipped (not Fargate or "
        "not RUNNING)"
    )
    lines.append(
        f"  - the scan made {api_calls} AWS requests for {report['summary']['tasks']} tasks "
        f"in {run.scan_s:.1f} s"
    )
    lines.append("Run `fargate-audit scan` with your own credentials to audit a real account (read-only).")
    return "\n".join(lines) + "\n"


def render_demo(run: DemoRun, out: TextIO, err: TextIO, fmt: str = "table") -> None:
    """Write a demo run as a user sees it: ``table`` (narrative, the scan table, what to
    look at) or ``json`` (the scan report only on ``out``; the narrative on ``err``)."""
    from . import table

    if fmt == "json":
        err.write(_header(run))
        out.write(json.dumps(run.outcome.report, indent=2, sort_keys=True) + "\n")
        return
    out.write(_header(run))
    out.write(table.render(run.outcome.report, color=table.use_color(out, os.environ)))
    out.write("\n" + _footer(run))


def run_demo(out: TextIO = sys.stdout, err: TextIO = sys.stderr, fmt: str = "table") -> int:
    """Build the demo estate, scan it and print what a user would see; returns 0."""
    if fmt not in ("table", "json"):
        raise ValueError(f"unknown demo format {fmt!r} (table or json)")
    render_demo(build_and_scan(), out, err, fmt)
    return 0

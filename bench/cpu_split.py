"""Run one ``fargate-audit`` command and split its process CPU time by phase.

    python bench/cpu_split.py MEASURES.json scan --format json --output report.json

Used by bench_scan.py as the scan's child process. Writes ``{"exit", "vm_hwm_kb", "cpu_s",
"split": {phase: seconds}}`` to MEASURES.json. Each phase's time is exclusive: a stack of
phases is kept and the process CPU (``time.process_time``) between two events is charged to
the phase on top, so an import made inside a collect counts as an import, and a botocore
call made by the collector counts as an AWS call. The phases:

- interpreter start-up: CPU already spent when this script's first line runs;
- imports: every module import (an import hook on ``importlib._bootstrap._find_and_load``);
- client creation: boto3 session and clients (service models, endpoint rules);
- catalog and schema loading: the rule catalog, the params file, the report schema;
- AWS calls (botocore: HTTP, parsing): ``BaseClient._make_api_call``;
- collect (our code): the collector around those calls;
- posture, engine, report and rendering: the pure pipeline and the output;
- other: the rest (argument parsing, exit code, freeing the raw responses...).

Like the console script (cli.run), the process then exits without freeing its memory.

The wrappers cost about a microsecond a call (posture: one call per task). Not a profiler:
it needs no extra package and barely changes what it measures.
"""

from __future__ import annotations

import time

_START_CPU = time.process_time()  # start-up: the CPU spent before this script's first line

import functools  # noqa: E402
import importlib  # noqa: E402
import importlib._bootstrap as _bootstrap  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

PHASES = [  # (module, attribute, phase)
    ("fargate_audit.edge.aws", "session_from_env", "client creation"),
    ("fargate_audit.edge.aws", "client", "client creation"),
    ("fargate_audit.edge.aws", "Clients.get", "client creation"),
    ("fargate_audit.core.rules", "load_catalog", "catalog and schema loading"),
    ("fargate_audit.core.params", "load_params", "catalog and schema loading"),
    ("fargate_audit.core.report", "load_schema", "catalog and schema loading"),
    ("botocore.client", "BaseClient._make_api_call", "AWS calls (botocore: HTTP, parsing)"),
    ("fargate_audit.edge.collect", "collect", "collect (our code)"),
    ("fargate_audit.core.posture", "build_posture", "posture"),
    ("fargate_audit.core.engine", "evaluate", "engine"),
    ("fargate_audit.core.report", "build_report", "report and rendering"),
    ("fargate_audit.core.report", "write_report", "report and rendering"),
    ("fargate_audit.cli.table", "render", "report and rendering"),
    ("fargate_audit.findings.asff", "build_findings", "report and rendering"),
]


class Split:
    def __init__(self) -> None:
        self.totals: dict[str, float] = {"interpreter start-up": _START_CPU}
        self.stack = ["other"]
        self.mark = time.process_time()

    def charge(self) -> None:
        now = time.process_time()
        top = self.stack[-1]
        self.totals[top] = self.totals.get(top, 0.0) + now - self.mark
        self.mark = now

    def enter(self, phase: str) -> None:
        self.charge()
        self.stack.append(phase)

    def leave(self) -> None:
        self.charge()
        self.stack.pop()

    def wrap(self, phase: str, func):
        @functools.wraps(func)
        def timed(*args, **kwargs):
            self.enter(phase)
            try:
                return func(*args, **kwargs)
            finally:
                self.leave()

        return timed


SPLIT = Split()
_find_and_load = _bootstrap._find_and_load


def _timed_find_and_load(name, import_):
    SPLIT.enter("imports")
    try:
        return _find_and_load(name, import_)
    finally:
        SPLIT.leave()


def _install() -> None:
    _bootstrap._find_and_load = _timed_find_and_load
    for module_name, attribute, phase in PHASES:
        try:
            owner = importlib.import_module(module_name)
        except ImportError:
            continue
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        if hasattr(owner, name):
            setattr(owner, name, SPLIT.wrap(phase, getattr(owner, name)))


def main() -> int:
    measures, argv = sys.argv[1], sys.argv[2:]
    SPLIT.enter("imports")  # the modules wrapped below would be imported by the run anyway
    _install()
    from fargate_audit.cli.commands import main as cli_main

    SPLIT.leave()
    code = cli_main(argv)
    SPLIT.charge()
    with open("/proc/self/status") as status:
        hwm_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    with open(measures, "w") as out:
        json.dump(
            {"exit": code, "vm_hwm_kb": hwm_kb, "cpu_s": time.process_time(), "split": SPLIT.totals}, out
        )
    return code


if __name__ == "__main__":
    code = main()
    # then exit as the console script (cli.run) does: without freeing memory
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

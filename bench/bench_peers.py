"""Benchmark: our scan and Cloud Custodian, side by side on the same emulated estate.

For each size a moto server (in this process) is reset and one bench estate is built
(estate.build_bench_estate, the same shape as bench_scan.py). Then, one after the other,
on that same estate:

- ours: `fargate-audit scan --format json` (the whole catalog, 17 rules, over every
  running Fargate task), run from this checkout's layers/ with this interpreter;
- custodian: `custodian run --dryrun --cache-period 0 --region eu-west-1 -v -s TMP
  policies.yml` from Cloud Custodian 0.9.53 (c7n), in its own venv .venv-c7n at the
  worktree root (created here when missing, from bench/requirements-c7n.txt: the whole
  closure pinned, since c7n pins its own boto3). POLICIES below holds the two policies,
  Custodian's closest equivalents of two of our rules on running tasks:
    1. ecs-task-world-ingress (~ NET-03): aws.ecs-task whose security groups, found through
       the task's ENI, admit 0.0.0.0/0 or ::/0 on a permission other than exactly port 80
       or 443 (our default allowed_public_ports);
    2. ecs-task-secret-env (~ CFG-02): aws.ecs-task whose task definition has an
       environment variable named like a secret (PASSWORD, PASSWD, SECRET, TOKEN, API_KEY,
       PRIVATE_KEY: upper case only, JMESPath has no case folding).
  Each policy lists clusters and tasks itself (no cache), describes the tasks 100 at a time,
  then its filter fetches the related ENIs and security groups (1) or task definitions (2).
  Custodian reaches moto through AWS_ENDPOINT_URL (botocore >= 1.31 reads it; c7n passes no
  endpoint of its own except for regional STS, which it does not use by default).
  -v only turns on Custodian's own DEBUG lines (botocore stays at ERROR): its "Filtered from
  N to M task" line is how the number of tasks each policy evaluated is read, since
  resources.json holds only the matched ones. Both counts are printed, with the number of
  running tasks and the number of FAILED results of the corresponding rule of ours.

Each tool runs in a child process started by exec, stdout and stderr to files:
- CPU s: user + sys of the child, from os.wait4 (the emulator's CPU is this process's);
- peak RSS MB: the child's own VmHWM, read from /proc/self/status by a small runner wrapped
  around the tool's Python entry point (fargate_audit.cli.commands.main, c7n.cli.main) just before it
  exits (ru_maxrss would do for an exec'd child too; VmHWM is what bench_scan.py reports);
- wall s: from spawn to exit;
- requests: counted SERVER-SIDE, every HTTP request the moto server receives while that tool
  runs, by service (the SigV4 credential scope) and action (X-Amz-Target for JSON protocols
  such as ECS, the Action form field for query protocols such as EC2 and STS): the moto WSGI
  app is wrapped in a counting middleware. Our report's own client-side count
  (stats.api_calls) is printed next to it as a check.

Not like for like: ours runs 17 rules, Custodian 2 policies; Custodian is asked not to
cache (so its second policy lists everything again); moto answers ListTasks and EC2
describes in one page (bench_scan.py estimates what real paging adds). Prints numbers only;
asserts nothing. Reproduce (first run also creates .venv-c7n, about a minute):

    PYTHONPATH=$PWD/layers .venv/bin/python bench/bench_peers.py --sizes 1000,5000

with a dev venv that has the project (and moto) installed. Each tool runs --repeat times
per size (default 3), alternating with the other; the table holds the medians, and every
run's CPU time is printed below it (the machine's noise is visible, not hidden).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ROOT / "layers"
sys.path.insert(0, str(LAYERS))  # this checkout's code, whatever the venv has installed

import boto3  # noqa: E402
from bench_scan import (  # noqa: E402  (same estate as bench_scan.py)
    ESTATE_SHAPE,
    REGION,
    compile_package,
    emulator_env,
)
from fargate_audit.local import estate  # noqa: E402
from moto.moto_server.werkzeug_app import (  # noqa: E402
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server  # noqa: E402

C7N_VENV = ROOT / ".venv-c7n"
C7N_REQUIREMENTS = ROOT / "bench" / "requirements-c7n.txt"

# (policy name, our rule it stands for)
POLICY_RULES = {"ecs-task-world-ingress": "NET-03", "ecs-task-secret-env": "CFG-02"}
POLICIES = """\
policies:
  - name: ecs-task-world-ingress
    resource: aws.ecs-task
    filters:
      - type: security-group
        key: >-
          IpPermissions[?!((FromPort == `80` && ToPort == `80`) || (FromPort == `443` && ToPort == `443`))]
          .[IpRanges[].CidrIp, Ipv6Ranges[].CidrIpv6][][]
        op: intersect
        value: ["0.0.0.0/0", "::/0"]
  - name: ecs-task-secret-env
    resource: aws.ecs-task
    filters:
      - type: task-definition
        key: >-
          length(containerDefinitions[].environment[?contains(name, 'PASSWORD')
          || contains(name, 'PASSWD') || contains(name, 'SECRET') || contains(name, 'TOKEN')
          || contains(name, 'API_KEY') || contains(name, 'PRIVATE_KEY')][])
        op: gt
        value: 0
"""

# Runs a tool's Python entry point, then writes the process's own peak RSS (VmHWM) and the
# exit code, then exits as the tool's console script does (ours: cli.run, which skips
# freeing memory at exit). argv: measures-file tool args...
_RUNNER = """
import json, sys
measures, tool, *args = sys.argv[1:]
code = 0
try:
    if tool == "fargate-audit":
        from fargate_audit.cli.commands import main
        code = main(args)
    else:
        from c7n.cli import main
        sys.argv = ["custodian", *args]
        code = main()
except SystemExit as stop:
    code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
finally:
    with open("/proc/self/status") as status:
        hwm_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    with open(measures, "w") as out:
        json.dump({"exit": code, "vm_hwm_kb": hwm_kb}, out)
if tool == "fargate-audit":  # what its console script (cli.run) does after main: exit at once
    import logging, os
    sys.stdout.flush(); sys.stderr.flush(); logging.shutdown()
    os._exit(code or 0)
sys.exit(code or 0)
"""


# --------------------------------------------------------------------------- counting server

_SCOPE = re.compile(r"Credential=[^/,]+/[^/,]+/[^/,]+/([^/,]+)/")


def _operation(environ: dict) -> tuple[str, dict]:
    """("service.Action", environ) for one request; environ's body is re-wound if read."""
    path = environ.get("PATH_INFO", "")
    if path.startswith("/moto-api"):
        return "moto-api." + path[len("/moto-api/") :], environ
    scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    service = scope.group(1) if scope else environ.get("HTTP_HOST", "?").split(".")[0]
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:  # JSON protocols: "AmazonEC2ContainerServiceV20141113.ListTasks"
        return f"{service}.{target.rsplit('.', 1)[-1]}", environ
    action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if not action and environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)  # moto reads it again
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
    if action:  # query protocols (EC2, STS): Action=DescribeSecurityGroups
        return f"{service}.{action[0]}", environ
    if "/operation/" in path:  # smithy RPC v2: /service/NAME/operation/ACTION
        return f"{service}.{path.rsplit('/', 1)[-1]}", environ
    return f"{service}.{environ.get('REQUEST_METHOD', '?')} {path}", environ  # REST


class RequestCounter:
    """WSGI middleware: counts every request the wrapped app receives, by service.Action.

    ``latency_s`` (default 0): seconds each request waits before moto answers it, standing
    for the network and service time of real AWS (a sleep releases the GIL: concurrent
    requests overlap as they do against AWS, where the emulator's own CPU would not)."""

    def __init__(self, app):
        self.app = app
        self.latency_s = 0.0
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def __call__(self, environ, start_response):
        name, environ = _operation(environ)
        with self._lock:
            self._counts[name] += 1
        if self.latency_s:
            time.sleep(self.latency_s)
        return self.app(environ, start_response)

    def take(self) -> Counter[str]:
        """The counts since the last take, and start again from zero."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        return counts


class CountingMotoServer:
    """moto's ThreadedMotoServer, its WSGI app wrapped in a RequestCounter."""

    def __init__(self):
        self.counter = RequestCounter(DomainDispatcherApplication(create_backend_app))
        self._server = make_server("127.0.0.1", 0, self.counter, True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()


# --------------------------------------------------------------------------- tools


def ensure_c7n_venv() -> Path:
    """.venv-c7n's python, the venv created or brought to bench/requirements-c7n.txt first."""
    python = C7N_VENV / "bin" / "python"
    stamp = C7N_VENV / "requirements-c7n.sha256"
    wanted = hashlib.sha256(C7N_REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    print(f"installing Cloud Custodian into {C7N_VENV} ...", file=sys.stderr)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(C7N_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(C7N_REQUIREMENTS)],
        check=True,
    )
    stamp.write_text(wanted + "\n")
    return python


def _run_child(python: str, tool: str, args: list[str], env: dict, tmp: str) -> dict:
    """Run a tool in a child process: wall s, CPU s, peak RSS MB, exit code, stderr file."""
    measures = os.path.join(tmp, f"{tool}.measures.json")
    stderr_path = os.path.join(tmp, f"{tool}.stderr")
    command = [python, "-c", _RUNNER, measures, tool, *args]
    with open(os.path.join(tmp, f"{tool}.stdout"), "wb") as out, open(stderr_path, "wb") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    try:
        with open(measures) as handle:
            measured = json.load(handle)
    except FileNotFoundError:
        measured = {"exit": child.returncode, "vm_hwm_kb": float("nan")}
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss": measured["vm_hwm_kb"] / 1024,
        "exit": child.returncode,
        "stderr": stderr_path,
    }


def run_ours(env: dict, tmp: str) -> tuple[dict, dict]:
    """Our scan: (measures, report)."""
    output = os.path.join(tmp, "report.json")
    child_env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(LAYERS), env.get("PYTHONPATH")]))}
    args = ["scan", "--format", "json", "--output", output]
    measured = _run_child(sys.executable, "fargate-audit", args, child_env, tmp)
    if measured["exit"] not in (0, 1):  # 1 = FAILED results exist, the normal case here
        raise SystemExit(f"scan exited {measured['exit']}: {Path(measured['stderr']).read_text()[-2000:]}")
    with open(output) as handle:
        return measured, json.load(handle)


_RUNNING = re.compile(r"custodian\.policy:DEBUG Running policy:(\S+) ")
_FILTERED = re.compile(r"custodian\.resources\.task:DEBUG Filtered from (\d+) to (\d+) task")


def run_custodian(python: Path, env: dict, tmp: str) -> tuple[dict, dict]:
    """Custodian: (measures, {policy: {"evaluated", "matched"}})."""
    policy_file, outdir = os.path.join(tmp, "policies.yml"), os.path.join(tmp, "c7n-out")
    Path(policy_file).write_text(POLICIES)
    child_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    args = ["run", "--dryrun", "--cache-period", "0", "--region", REGION, "-v", "-s", outdir, policy_file]
    measured = _run_child(str(python), "custodian", args, child_env, tmp)
    stderr = Path(measured["stderr"]).read_text(errors="replace")
    if measured["exit"] != 0:
        raise SystemExit(f"custodian exited {measured['exit']}: {stderr[-2000:]}")
    evaluated: dict[str, int] = {}
    policy = None
    for line in stderr.splitlines():  # the DEBUG lines go to stderr, not custodian-run.log
        if running := _RUNNING.search(line):
            policy = running.group(1)
        elif (filtered := _FILTERED.search(line)) and policy:
            evaluated[policy] = evaluated.get(policy, 0) + int(filtered.group(1))
    counts = {}
    for policy in POLICY_RULES:
        resources = Path(outdir, policy, "resources.json")
        counts[policy] = {
            "evaluated": evaluated.get(policy),
            "matched": len(json.loads(resources.read_text())) if resources.exists() else None,
        }
    return measured, counts


# --------------------------------------------------------------------------- main


def _median_run(runs: list[dict]) -> dict:
    """Median CPU, wall and peak RSS over the runs; the requests of the first (they are the
    same every run: the tools are deterministic over one estate)."""
    middle = len(runs) // 2
    return {
        **runs[0],
        **{key: sorted(r[key] for r in runs)[middle] for key in ("cpu", "wall", "rss")},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000", help="comma-separated task counts")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs of each tool per size, alternating; medians reported"
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    c7n_python = ensure_c7n_venv()
    compile_package()  # both tools measured as installed: with .pyc (pip compiled Custodian's)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per emulator request

    server = CountingMotoServer()
    server.start()
    endpoint = server.endpoint
    env = emulator_env(endpoint)
    rows = ["tasks | tool | CPU s | peak RSS MB | wall s | requests | requests/task", "--- | " * 6 + "---"]
    ratios, calls, coverage = [], [], []
    try:
        for size in sizes:
            estate.reset_server(endpoint)
            started = time.perf_counter()
            info = estate.build_bench_estate(
                boto3.session.Session(region_name=REGION), REGION, tasks=size, **ESTATE_SHAPE
            )
            build_s = time.perf_counter() - started
            running = len(info.running_fargate_tasks)
            runs: dict[str, list[dict]] = {"ours": [], "custodian": []}
            server.counter.take()  # drop the build's requests
            for _ in range(max(args.repeat, 1)):  # alternating, so that drift hits both alike
                with tempfile.TemporaryDirectory() as tmp:
                    run, report = run_ours(env, tmp)
                    run["requests"] = server.counter.take()
                    runs["ours"].append(run)
                with tempfile.TemporaryDirectory() as tmp:
                    run, c7n_counts = run_custodian(c7n_python, env, tmp)
                    run["requests"] = server.counter.take()
                    runs["custodian"].append(run)
            measured = {tool: _median_run(tool_runs) for tool, tool_runs in runs.items()}
            for tool, m in measured.items():
                total = sum(m["requests"].values())
                rows.append(
                    f"{size} | {tool} | {m['cpu']:.2f} | {m['rss']:.0f} | {m['wall']:.2f} | "
                    f"{total} | {total / max(running, 1):.4f}"
                )
                calls.append(
                    f"{size} {tool}: " + ", ".join(f"{name} {n}" for name, n in sorted(m["requests"].items()))
                )
            ours, theirs = measured["ours"], measured["custodian"]
            ratios.append(
                f"{size}: CPU {ours['cpu'] / theirs['cpu']:.2f}, peak RSS {ours['rss'] / theirs['rss']:.2f}, "
                f"wall {ours['wall'] / theirs['wall']:.2f}, requests "
                f"{sum(ours['requests'].values()) / max(sum(theirs['requests'].values()), 1):.2f}"
            )
            client_side = sum(report["stats"]["api_calls"].values())
            coverage.append(
                f"{size}: running tasks {running}; ours audited {report['summary']['tasks']} "
                f"(client-side request count {client_side})"
            )
            for policy, rule in POLICY_RULES.items():
                failed = sum(1 for r in report["results"] if r["rule_id"] == rule and r["status"] == "FAILED")
                c = c7n_counts[policy]
                coverage.append(
                    f"{size}: custodian {policy} evaluated {c['evaluated']}, matched {c['matched']} "
                    f"(resources.json); ours {rule} FAILED {failed}"
                )
            for tool, tool_runs in runs.items():
                coverage.append(
                    f"{size}: {tool} CPU s of each run: " + ", ".join(f"{r['cpu']:.2f}" for r in tool_runs)
                )
            print(f"size {size}: built in {build_s:.1f} s, both tools ran", file=sys.stderr)
    finally:
        server.stop()
    print("\n".join(rows))
    print("\nratios ours/custodian:")
    print("\n".join(ratios))
    print("\ntasks evaluated and matched:")
    print("\n".join(coverage))
    print("\nrequests by call (server-side):")
    print("\n".join(calls))
    return 0


if __name__ == "__main__":
    sys.exit(main())

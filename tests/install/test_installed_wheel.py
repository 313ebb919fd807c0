"""Tested as installed: the wheel, in a fresh venv outside the checkout, run from elsewhere.

The wheel and the sdist are built from a copy of the checkout (the checkout is not written
to), into whose ``build/lib`` files of an older build are planted: setup.py must keep them
out of the wheel (the wheel built from the sdist, in a clean directory, must be the same).
The wheel is installed with its runtime dependencies at the pinned versions
(``-c requirements.txt``) into a venv under the session's temp directory; every command then
runs that venv's ``fargate-audit`` (or ``python -m fargate_audit``) from an empty directory
with a clean environment: no PYTHONPATH, no FARGATE_AUDIT_RULES_DIR, no AWS profile or
config, HOME an empty directory. Nothing of the checkout or of the dev venv is reachable.

``scan`` runs against a moto server started in this process, on the demo estate built by
the dev venv's ``fargate_audit.local.estate``. ``demo`` and ``invoke`` are run twice: in that
venv (no ``[local]`` extra: one line naming the extra, exit 2) and in a second venv with
the wheel's ``[local]`` extra (pins from requirements-dev.txt), where they work from the
template and handlers the wheel carries in ``fargate_audit/_sam/``. A second venv rather
than adding the extra to the first: under pytest-xdist the module's tests may run in any
order on two workers sharing the venvs, and the no-extra tests need a venv without it.

Needs the package index (the venvs' dependencies); ``make test`` runs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import boto3
import fargate_audit
import jsonschema
import pytest
import yaml
from fargate_audit.local.estate import build_demo_estate
from moto.server import ThreadedMotoServer

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "layers" / "fargate_audit"
CATALOG = PACKAGE / "catalog"
SCHEMAS = PACKAGE / "schemas"
FUNCTIONS = sorted(p.parent.name for p in (REPO / "functions").glob("*/app.py"))
RULE_ID = re.compile(r"^[A-Z]+-\d+$")
RULE_IDS = sorted(p.name for p in CATALOG.iterdir() if RULE_ID.match(p.name) and (p / "rule.yaml").is_file())
# The catalog's files (a rule is a folder: <ID>/rule.yaml, <ID>/check.py), bytecode aside.
CATALOG_FILES = sorted(
    p.relative_to(CATALOG).as_posix()
    for p in CATALOG.rglob("*")
    if p.is_file() and "__pycache__" not in p.parts
)
# fixtures per rule (`rules validate` runs them all and counts them)
FIXTURES = {
    rule: sum(
        len(kind)
        for kind in (
            yaml.safe_load((CATALOG / rule / "rule.yaml").read_text()).get("fixtures") or {}
        ).values()
    )
    for rule in RULE_IDS
}
VERSION = fargate_audit.__version__
REGION = "eu-west-1"
HINT = "from a wheel pip install 'WHEEL_FILE[local]', from a release pip install 'fargate-audit[local]'"
PIP_TIMEOUT = 600
RUN_TIMEOUT = 180
# Files an earlier in-place build of an older checkout left in build/lib (a module since
# moved, a function since removed): the copy the dists are built from gets them planted.
STALE = ("fargate_audit/demo.py", "fargate_audit/_sam/functions/gone/app.py")
# The checkout copy the dists are built from: what `git archive` would hold, roughly.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", "build", "dist", "*.egg-info", ".venv*", "__pycache__", ".aws-sam", ".*_cache", "out"
)


def _check(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def _tool_env() -> dict[str, str]:
    """The environment of pip and the builds: this one (index, proxy, certificates) minus
    anything that would put the checkout or another environment on the path."""
    drop = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONSAFEPATH")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("FARGATE_AUDIT_")}


def _make_venv(directory: Path, *requirements: str, constraints: Path) -> Path:
    venv = directory / "venv"
    _check([sys.executable, "-m", "venv", str(venv)], env=_tool_env(), timeout=PIP_TIMEOUT)
    python = venv / "bin" / "python"
    _check(
        [str(python), "-m", "pip", "install", "--quiet", "-c", str(constraints), *requirements],
        env=_tool_env(),
        timeout=PIP_TIMEOUT,
        cwd=directory,
    )
    return venv


# --------------------------------------------------------------------------- builds


@pytest.fixture(scope="module")
def dists(build_once) -> dict[str, Path]:
    """{"wheel": the checkout's wheel, "sdist": its sdist, "sdist_wheel": a wheel built from
    that sdist (what pip does when it installs from the sdist)}."""

    def build(directory: Path) -> None:
        source = directory / "source"
        shutil.copytree(REPO, source, symlinks=True, ignore=NOT_SOURCE)
        for stale in STALE:  # left by an earlier in-place build: must not reach the wheel
            (source / "build" / "lib" / stale).parent.mkdir(parents=True, exist_ok=True)
            (source / "build" / "lib" / stale).write_text("")
        pip_wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
        _check(
            [*pip_wheel, "-w", str(directory / "wheel"), str(source)], env=_tool_env(), timeout=PIP_TIMEOUT
        )
        _check(
            [sys.executable, "setup.py", "-q", "sdist", "-d", str(directory / "sdist")],
            cwd=source,
            env=_tool_env(),
            timeout=PIP_TIMEOUT,
        )
        (sdist,) = (directory / "sdist").glob("*.tar.gz")
        _check(
            [*pip_wheel, "-w", str(directory / "sdist_wheel"), str(sdist)],
            env=_tool_env(),
            timeout=PIP_TIMEOUT,
        )

    directory = build_once("dists", build)
    (wheel,) = (directory / "wheel").glob("*.whl")
    (sdist,) = (directory / "sdist").glob("*.tar.gz")
    (sdist_wheel,) = (directory / "sdist_wheel").glob("*.whl")
    return {"wheel": wheel, "sdist": sdist, "sdist_wheel": sdist_wheel}


@pytest.fixture(scope="module")
def venv(build_once, dists) -> Path:
    """A fresh venv with the wheel and its pinned runtime dependencies, nothing else."""
    directory = build_once(
        "venv", lambda d: _make_venv(d, str(dists["wheel"]), constraints=REPO / "requirements.txt")
    )
    return directory / "venv"


@pytest.fixture(scope="module")
def local_venv(build_once, dists) -> Path:
    """A fresh venv with the wheel and its [local] extra (pins of requirements-dev.txt)."""
    directory = build_once(
        "local-venv",
        lambda d: _make_venv(d, f"{dists['wheel']}[local]", constraints=REPO / "requirements-dev.txt"),
    )
    return directory / "venv"


@pytest.fixture(scope="module")
def site_packages(venv) -> Path:
    done = _check(
        [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        env={"PATH": "/usr/bin:/bin"},
    )
    return Path(done.stdout.strip())


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory) -> Path:
    """An empty working directory outside the checkout, and an empty HOME beside it."""
    cwd = tmp_path_factory.mktemp("elsewhere")
    assert REPO not in cwd.parents
    return cwd


@pytest.fixture(scope="module")
def clean_env(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("home")
    empty = home / "empty"
    empty.write_text("")
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def run(venv: Path, cwd: Path, env: dict, *args: str, module: bool = False) -> subprocess.CompletedProcess:
    """The venv's ``fargate-audit ARGS`` (or ``python -m fargate_audit ARGS``) in CWD."""
    command = (
        [str(venv / "bin" / "python"), "-m", "fargate_audit"]
        if module
        else [str(venv / "bin" / "fargate-audit")]
    )
    env = env | {"PATH": f"{venv / 'bin'}:{env['PATH']}"}
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=RUN_TIMEOUT
    )


@pytest.fixture(scope="module")
def moto_estate(tmp_path_factory):
    """(endpoint, estate info): the demo estate on a moto server of this process."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AWS_ENDPOINT_URL", endpoint)
            session = boto3.session.Session(
                region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
            )
            info = build_demo_estate(session, REGION)
        yield endpoint, info
    finally:
        server.stop()


def aws_env(clean_env: dict, endpoint: str) -> dict[str, str]:
    return clean_env | {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }


# --------------------------------------------------------------------------- the dists


def _sam_names(prefix: str) -> set[str]:
    return {f"{prefix}template.yaml", *(f"{prefix}functions/{name}/app.py" for name in FUNCTIONS)}


def _package_data(prefix: str) -> set[str]:
    return {f"{prefix}catalog/{name}" for name in CATALOG_FILES} | {
        f"{prefix}schemas/{p.name}" for p in SCHEMAS.iterdir()
    }


def test_the_wheel_carries_the_catalog_the_schemas_and_the_sam_application(dists):
    assert dists["wheel"].name == f"fargate_audit-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = set(wheel.namelist())
        assert not names & set(STALE)
        assert _package_data("fargate_audit/") <= names
        assert _sam_names("fargate_audit/_sam/") <= names
        for name in _sam_names(""):
            assert wheel.read(f"fargate_audit/_sam/{name}") == (REPO / name).read_bytes(), name
    assert FUNCTIONS and len(FUNCTIONS) == 6  # design.md section 5: task, config, planner, worker, dns, flow


def test_the_sdist_carries_what_the_wheel_build_copies_and_builds_the_same_wheel(dists):
    with tarfile.open(dists["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert _sam_names("") <= names
    assert _package_data("layers/fargate_audit/") <= names
    with zipfile.ZipFile(dists["wheel"]) as wheel, zipfile.ZipFile(dists["sdist_wheel"]) as rebuilt:
        assert sorted(wheel.namelist()) == sorted(rebuilt.namelist())
        for name in wheel.namelist():
            if not name.endswith(".dist-info/RECORD"):
                assert wheel.read(name) == rebuilt.read(name), name


# --------------------------------------------------------------------------- installed


def test_the_installed_package_is_the_wheel_in_site_packages_with_its_sam_copy(
    venv, site_packages, elsewhere, clean_env
):
    code = "import fargate_audit as f, fargate_audit.cli.template as t; print(f.__file__, t.find_template())"
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=clean_env,
    )
    assert done.returncode == 0, done.stderr
    package_file, template = done.stdout.split()
    installed = site_packages / "fargate_audit"
    assert Path(package_file) == installed / "__init__.py"
    assert Path(template) == installed / "_sam" / "template.yaml"
    for name in _sam_names(""):
        assert (installed / "_sam" / name).is_file(), name
    for name in _package_data(""):
        assert (installed / name).read_bytes() == (PACKAGE / name).read_bytes(), name


def test_version_is_the_package_version(venv, elsewhere, clean_env):
    done = run(venv, elsewhere, clean_env, "--version")
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, f"fargate-audit {VERSION}", "")


def test_python_m_lists_the_shipped_rules(venv, elsewhere, clean_env):
    done = run(venv, elsewhere, clean_env, "rules", "list", "--format", "json", module=True)
    assert done.returncode == 0, done.stderr
    assert sorted(rule["id"] for rule in json.loads(done.stdout)) == RULE_IDS
    assert "NET-02" in RULE_IDS and len(RULE_IDS) >= 19  # the shipped folders were found

    table = run(venv, elsewhere, clean_env, "rules", "list", module=True)
    assert table.returncode == 0 and "NET-02  CRITICAL" in table.stdout


def test_rules_validate_checks_the_catalog_in_site_packages(venv, site_packages, elsewhere, clean_env):
    done = run(venv, elsewhere, clean_env, "rules", "validate")
    assert done.returncode == 0, done.stderr
    catalog = site_packages / "fargate_audit" / "catalog"
    assert (
        done.stdout
        == f"{len(RULE_IDS)} rules valid in {catalog} ({sum(FIXTURES.values())} fixtures passed)\n"
    )


def test_fargate_audit_rules_dir_still_overrides_the_shipped_catalog(venv, elsewhere, clean_env, tmp_path):
    own = tmp_path / "my-rules"
    shutil.copytree(CATALOG, own, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.rmtree(own / "NET-10")
    mappings = yaml.safe_load((own / "mappings.yaml").read_text())
    del mappings["NET-10"]
    (own / "mappings.yaml").write_text(yaml.safe_dump(mappings))
    env = clean_env | {"FARGATE_AUDIT_RULES_DIR": str(own)}

    listed = run(venv, elsewhere, env, "rules", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(rule["id"] for rule in json.loads(listed.stdout)) == [r for r in RULE_IDS if r != "NET-10"]
    validated = run(venv, elsewhere, env, "rules", "validate")
    fixtures = sum(FIXTURES.values()) - FIXTURES["NET-10"]
    assert validated.stdout == f"{len(RULE_IDS) - 1} rules valid in {own} ({fixtures} fixtures passed)\n"


def test_scan_of_an_emulated_account_writes_a_report_the_shipped_schema_accepts(
    venv, site_packages, elsewhere, clean_env, moto_estate, tmp_path
):
    endpoint, estate = moto_estate
    done = run(
        venv, tmp_path, aws_env(clean_env, endpoint), "scan", "--format", "json", "--output", "report.json"
    )

    assert done.returncode == 1, done.stderr  # the demo estate has FAILED results
    assert "Traceback" not in done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    schema = json.loads((site_packages / "fargate_audit" / "schemas" / "scan-report.schema.json").read_text())
    jsonschema.validate(report, schema)
    assert {task["task_arn"] for task in report["tasks"]} == set(estate.running_fargate_tasks)
    assert report["results"] and {r["rule_id"] for r in report["results"]} <= set(RULE_IDS)
    assert {"FAILED", "PASSED"} <= {r["status"] for r in report["results"]}
    assert report["summary"]["tasks"] == len(estate.running_fargate_tasks)


# --------------------------------------------------------------------------- [local]


@pytest.mark.parametrize("command", [["demo"], ["invoke", "task_events", "ecs-task-running.json"]])
def test_demo_and_invoke_without_the_local_extra_name_it_in_one_line(venv, clean_env, tmp_path, command):
    shutil.copy(REPO / "events" / "ecs-task-running.json", tmp_path)
    done = run(venv, tmp_path, clean_env, *command)

    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"fargate-audit: error: {command[0]} needs the local extra (")
    assert line.endswith(HINT) and "fargate-audit[local]" in line
    assert "Traceback" not in done.stderr


def test_demo_with_the_local_extra_audits_the_emulated_estate(local_venv, elsewhere, clean_env):
    done = run(local_venv, elsewhere, clean_env, "demo")

    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert done.stdout.startswith("fargate-audit demo: an emulated AWS estate")
    assert "running Fargate tasks" in done.stdout and "NET-02" in done.stdout
    assert list(elsewhere.iterdir()) == []  # wrote nothing where it ran


def test_invoke_with_the_local_extra_runs_the_handler_the_wheel_carries(
    local_venv, clean_env, moto_estate, tmp_path
):
    endpoint, _ = moto_estate
    shutil.copy(REPO / "events" / "ecs-task-running.json", tmp_path)
    env = aws_env(clean_env, endpoint) | {"AWS_REGION": REGION}
    done = run(local_venv, tmp_path, env, "invoke", "task_events", "ecs-task-running.json")

    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["status"] == "audited" and result["record"] == "created"


def test_history_findings_and_discovered_read_the_stacks_table_without_the_local_extra(
    venv, local_venv, clean_env, moto_estate, tmp_path
):
    """issue 8: scan, rules, history, findings and discovered are the runtime CLI (boto3
    only); the records are made by the handler the [local] install invokes."""
    endpoint, _ = moto_estate
    shutil.copy(REPO / "events" / "ecs-task-running.json", tmp_path)
    env = aws_env(clean_env, endpoint) | {"AWS_REGION": REGION}
    invoked = run(local_venv, tmp_path, env, "invoke", "task_events", "ecs-task-running.json")
    assert invoked.returncode == 0, invoked.stderr[-3000:]
    task_arn = json.loads(invoked.stdout)["task_arn"]

    history = run(venv, tmp_path, env, "history", task_arn, "--format", "json")
    assert history.returncode == 0, history.stderr
    assert json.loads(history.stdout) and "Traceback" not in history.stderr
    findings = run(venv, tmp_path, env, "findings", "--format", "json")
    assert findings.returncode == 0, findings.stderr
    held = json.loads(findings.stdout)
    assert held and {f["account_id"] for f in held} == {"123456789012"}
    assert {f["rule_id"] for f in held} <= set(RULE_IDS)
    discovered = run(venv, tmp_path, env, "discovered", "--format", "json")
    assert discovered.returncode == 0 and json.loads(discovered.stdout) == [], discovered.stderr

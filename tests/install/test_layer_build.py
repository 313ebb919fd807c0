"""The Lambda layer holds what Lambdas import, and nothing of the local tooling.

``layers/Makefile`` (target build-AuditLayer, what ``sam build`` runs) builds the layer for
this machine's platform and Python (its default, aarch64, has compiled wheels that do not
import here). Then every ``functions/<name>/app.py`` is imported as Lambda imports it: in an
interpreter without site-packages (``python -I -S``, so nothing of the dev venv leaks) whose
path is the function's folder, the layer's ``python/`` and boto3 alone (the pins of
requirements.txt, installed with ``pip --target``), which the Lambda runtime provides.

Needs the package index (the layer's and the runtime's wheels); ``make test`` runs it.
"""

from __future__ import annotations

import ast
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "layers" / "fargate_audit"
FUNCTIONS = sorted(p.parent.name for p in (REPO / "functions").glob("*/app.py"))
PLATFORM = {
    "x86_64": "manylinux2014_x86_64",
    "aarch64": "manylinux2014_aarch64",
    "arm64": "manylinux2014_aarch64",
}[platform.machine()]
PY_VER = f"{sys.version_info.major}.{sys.version_info.minor}"
# What the Lambda Python runtime provides beside the standard library (boto3 and its closure).
RUNTIME_PACKAGES = ("boto3", "botocore", "jmespath", "s3transfer", "python-dateutil", "six", "urllib3")
# The command line and the emulator tooling: no Lambda imports them.
LOCAL_TREES = {"local", "cli", "__main__"}
LOCAL_MODULES = {*LOCAL_TREES, "estate", "demo", "invoke", "commands"}
TIMEOUT = 600


def _tool_env() -> dict[str, str]:
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("FARGATE_AUDIT_")}


def _check(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, env=_tool_env(), timeout=TIMEOUT, **kwargs)
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done


def _pins(names: tuple[str, ...]) -> list[str]:
    """``name==version`` of NAMES as requirements.txt pins them."""
    wanted = {re.sub(r"[-_.]+", "-", n).lower() for n in names}
    pins = []
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line and re.sub(r"[-_.]+", "-", line.split("==")[0]).lower() in wanted:
            pins.append(line)
    assert len(pins) == len(names), f"requirements.txt pins {pins}, expected {names}"
    return pins


@pytest.fixture(scope="module")
def built(build_once) -> dict[str, Path]:
    """{"layer": the layer's python/ folder, "runtime": boto3 as the Lambda runtime has it}."""

    def build(directory: Path) -> None:
        _check(
            [
                "make",
                "--no-print-directory",
                "--makefile",
                str(REPO / "layers" / "Makefile"),
                "build-AuditLayer",
                f"ARTIFACTS_DIR={directory / 'layer'}",
                f"PLATFORM={PLATFORM}",
                f"PY_VER={PY_VER}",
                f"PYTHON={sys.executable}",
            ],
            cwd=directory,  # the Makefile takes its paths from its own location
        )
        _check(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile"]
            + ["--target", str(directory / "runtime"), *_pins(RUNTIME_PACKAGES)]
        )

    directory = build_once("layer", build)
    return {"layer": directory / "layer" / "python", "runtime": directory / "runtime"}


def _layer_sources(layer: Path) -> list[Path]:
    return sorted((layer / "fargate_audit").rglob("*.py"))


def _lambda_python(code: str, *path: Path) -> subprocess.CompletedProcess:
    """CODE in Lambda's shape: no site-packages, sys.path = PATH + the standard library, and no
    bytecode written (the function's folder is the checkout's; /var/task is read-only)."""
    prelude = f"import sys; sys.path[:0] = {[str(p) for p in path]!r}\n"
    return subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", prelude + code],
        capture_output=True,
        text=True,
        cwd=path[0],
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "AWS_DEFAULT_REGION": "eu-west-1"},
        timeout=120,
    )


# --------------------------------------------------------------------------- contents


def test_the_layer_has_no_local_tooling_and_nothing_that_imports_moto(built):
    layer = built["layer"]
    package = layer / "fargate_audit"
    assert (package / "__init__.py").is_file()
    names = {p.relative_to(package).with_suffix("").as_posix() for p in package.rglob("*.py")}
    assert not {part for name in names for part in name.split("/")} & LOCAL_MODULES, sorted(names)
    assert not (package / "local").exists() and not (package / "cli").exists()
    moto_import = re.compile(r"^\s*(import\s+moto\b|from\s+moto\b)", re.M)
    assert [str(p) for p in _layer_sources(layer) if moto_import.search(p.read_text())] == []
    assert not (layer / "moto").exists()


def test_the_layer_library_is_the_package_without_cli_and_local(built):
    layer_package = built["layer"] / "fargate_audit"
    source = {
        p.relative_to(PACKAGE).as_posix(): p.read_bytes()
        for p in PACKAGE.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and not {p.relative_to(PACKAGE).parts[0], p.relative_to(PACKAGE).with_suffix("").parts[0]}
        & LOCAL_TREES
    }
    layer = {
        p.relative_to(layer_package).as_posix(): p.read_bytes()
        for p in layer_package.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert sorted(layer) == sorted(source)
    assert layer == source


def _catalog_files(catalog: Path) -> dict[str, bytes]:
    return {
        p.relative_to(catalog).as_posix(): p.read_bytes()
        for p in catalog.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_the_layers_catalog_equals_the_packages(built):
    catalog = _catalog_files(PACKAGE / "catalog")
    layer_catalog = _catalog_files(built["layer"] / "fargate_audit" / "catalog")
    assert "NET-02/rule.yaml" in catalog and "NET-02/check.py" in catalog
    assert sorted(layer_catalog) == sorted(catalog)
    assert layer_catalog == catalog


def test_the_layer_leaves_boto3_to_the_runtime_and_ships_unchecked_hash_pycs(built):
    layer = built["layer"]
    assert not (layer / "boto3").exists() and not (layer / "botocore").exists()
    assert not (layer / "bin").exists()
    pycs = sorted((layer / "fargate_audit").rglob("*.pyc"))
    assert pycs
    # PEP 552 flags (bytes 4-8): 0b01 = hash-based, not checked against the source.
    assert {int.from_bytes(p.read_bytes()[4:8], "little") for p in pycs} == {1}


# --------------------------------------------------------------------------- imports


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_handler_imports_from_the_layer_and_boto3_alone(built, function):
    code = """
import importlib.util, json
import app
assert callable(app.handler)
import fargate_audit, boto3
print(json.dumps({
    "fargate_audit": fargate_audit.__file__,
    "boto3": boto3.__file__,
    "moto": importlib.util.find_spec("moto") is not None,
    "site": [p for p in sys.path if "site-packages" in p],
}))
"""
    done = _lambda_python(code, REPO / "functions" / function, built["layer"], built["runtime"])

    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert Path(seen["fargate_audit"]).is_relative_to(built["layer"])
    assert Path(seen["boto3"]).is_relative_to(built["runtime"])
    assert seen["moto"] is False
    assert seen["site"] == []


def _imports_of_the_layer(layer: Path) -> list[str]:
    """Every module the layer's fargate_audit imports, also inside functions (lazy imports),
    as absolute names; the local subpackage the CLI imports lazily is not in the layer."""
    modules = set()
    for path in _layer_sources(layer):
        package = ".".join(path.relative_to(layer).parent.parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    modules.add(f"{base}.{node.module}" if node.module else base)
                else:
                    modules.add(node.module)
    return sorted(m for m in modules if not m.startswith("fargate_audit.local"))


def test_every_module_the_layer_imports_resolves_in_lambdas_shape(built):
    modules = _imports_of_the_layer(built["layer"])
    assert "aws_lambda_powertools.utilities.batch" in modules and "yaml" in modules
    code = f"""
import importlib
for name in {modules!r}:
    importlib.import_module(name)
print("ok")
"""
    done = _lambda_python(code, built["layer"], built["runtime"])
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr[-3000:]

"""The nevers of the layer map are contracts `make lint` enforces (pyproject.toml,
[tool.importlinter]); here each is shown to break when a module does what it forbids.

Each case copies the package to a temporary directory, adds one forbidden import to one
module and runs ``lint-imports`` on the copy with the project's own configuration.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(REPO / "pyproject.toml")],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "LANG": "C.UTF-8"},
        timeout=120,
    )


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("layers")
    shutil.copytree(
        REPO / "layers" / "fargate_audit",
        root / "fargate_audit",
        ignore=shutil.ignore_patterns("__pycache__", "*.yaml", "*.json"),
    )
    return root


def test_the_package_as_it_is_keeps_every_contract(package_copy):
    done = _lint(package_copy)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "statement", "contract"),
    [
        ("core/posture.py", "from fargate_audit.edge import collect", "Layers"),
        ("core/engine.py", "from fargate_audit.stores import record", "Layers"),
        ("stores/record.py", "from fargate_audit.findings import asff", "Layers"),
        ("core/checks.py", "import botocore.exceptions", "The pure core does no I/O"),
        ("edge/collect.py", "from fargate_audit.app import service", "Layers"),
        ("app/service.py", "from fargate_audit.cli import table", "Layers"),
        ("findings/publish.py", "import moto", "Nothing in the Lambda layer imports"),
        ("app/lambda_handlers.py", "import functions.task_events.app", "Nothing in the Lambda layer imports"),
    ],
    ids=lambda v: v if "/" in str(v) else None,
)
def test_a_forbidden_import_breaks_its_contract(package_copy, tmp_path, module, statement, contract):
    root = tmp_path / "layers"
    shutil.copytree(package_copy, root)
    target = root / "fargate_audit" / module
    target.write_text(target.read_text() + f"\n{statement}  # the violation under test\n")
    done = _lint(root)
    assert done.returncode != 0
    broken = done.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, done.stdout[-3000:]
    assert module.replace("/", ".").removesuffix(".py") in broken

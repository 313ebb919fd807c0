#!/usr/bin/env bash
# Offline checks of the serverless stack (no AWS account, no Docker):
#   sam validate, sam validate --lint, cfn-lint, sam build (python3.13/arm64, no container),
#   cfn-lint on templates/member.yaml (the member StackSet) and
#   templates/organizations-reader.yaml (the role that lists the organization's accounts),
#   then inspects the built layer (library + rules + .pyc + runtime deps, nothing extra).
# Tools come from a Python 3.13 venv, .venv-sam, created on first use from
# scripts/requirements-sam.txt (exact pins) and refreshed when that file changes.
# Event patterns, IAM action names and numeric relations are not checked by these tools:
# tests/functional/test_template.py does that.
#
# Usage: bash scripts/sam-checks.sh        Exit status: non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV="$ROOT/.venv-sam"
REQS="$ROOT/scripts/requirements-sam.txt"
BUILD_DIR="$ROOT/.aws-sam/build"
CHECK=sam-checks
# shellcheck source=scripts/venv.sh
. "$ROOT/scripts/venv.sh" # step, done_step, fail, tool_venv

python313() {
    # pyenv's 3.13.0 (the python3.13 shim on PATH fails without PYENV_VERSION), else any
    # python3.13 that really runs.
    local candidate
    if command -v pyenv >/dev/null 2>&1; then
        candidate="$(pyenv root)/versions/3.13.0/bin/python"
        if [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
    fi
    for candidate in python3.13 /usr/local/bin/python3.13 /usr/bin/python3.13; do
        if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

# --- tools ---------------------------------------------------------------------------
step "tool venv $VENV"
tool_venv "$VENV" "$REQS" 3.13 python313 "pyenv 3.13.0 or python3.13 on PATH"
export PATH="$VENV/bin:$PATH" # python3.13 (sam build, layer Makefile), sam, cfn-lint
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=eu-west-1
printf '    %s, %s, %s\n' "$(python3.13 --version)" "$(sam --version)" "$(cfn-lint --version)"
done_step

# --- template ------------------------------------------------------------------------
step "sam validate"
sam validate --template-file template.yaml || fail "sam validate"
done_step

step "sam validate --lint"
sam validate --lint --template-file template.yaml || fail "sam validate --lint"
done_step

step "cfn-lint template.yaml"
cfn-lint template.yaml || fail "cfn-lint"
done_step

# The member StackSet's, the organizations reader's and the flow log's templates are plain
# CloudFormation (no SAM transform): cfn-lint only.
for member_template in templates/member.yaml templates/organizations-reader.yaml templates/vpc-flow-log.yaml; do
    step "cfn-lint $member_template"
    cfn-lint "$member_template" || fail "cfn-lint $member_template"
    done_step
done

# --- build ---------------------------------------------------------------------------
step "sam build (python3.13, arm64, no container)"
mkdir -p "$ROOT/.aws-sam"
sam build --template-file template.yaml --build-dir "$BUILD_DIR" >"$ROOT/.aws-sam/build.log" 2>&1 \
    || { tail -40 "$ROOT/.aws-sam/build.log" >&2; fail "sam build (log: .aws-sam/build.log)"; }
done_step

step "built artifacts"
python3.13 - "$BUILD_DIR" "$ROOT" <<'PY' || fail "built artifacts"
import pathlib
import sys

build, root = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
problems = []
layer = build / "AuditLayer" / "python"
pkg = layer / "fargate_audit"

if not (pkg / "__init__.py").is_file():
    problems.append(f"{pkg}/__init__.py missing")

# every .py has an unchecked-hash .pyc (flags word == 1: hash-based, source not checked)
missing, stale = [], []
for source in layer.rglob("*.py"):
    pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
    if not pyc.is_file():
        missing.append(source)
    elif int.from_bytes(pyc.read_bytes()[4:8], "little") != 1:
        stale.append(pyc)
if missing:
    problems.append(f"{len(missing)} .py without .pyc, e.g. {missing[0].relative_to(layer)}")
if stale:
    problems.append(f"{len(stale)} .pyc not unchecked-hash, e.g. {stale[0].relative_to(layer)}")

# the rule catalog, file for file (rule folders: rule.yaml and check.py; the .pyc aside)
catalog = root / "layers" / "fargate_audit" / "catalog"
def catalog_files(top):
    return {p.relative_to(top).as_posix(): p.read_bytes() for p in top.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts}
want, have = catalog_files(catalog), catalog_files(pkg / "catalog")
if not any(name.endswith("/check.py") for name in want):
    problems.append("no rule folder (<ID>/rule.yaml, <ID>/check.py) in the package's catalog")
if want != have:
    changed = sorted(name for name in set(want) & set(have) if want[name] != have[name])
    problems.append(f"layer catalog differs from the package's: missing {sorted(set(want) - set(have))[:5]}, "
                    f"extra {sorted(set(have) - set(want))[:5]}, changed {changed[:5]}")
for tree in ("local", "cli", "__main__.py"):
    if (pkg / tree).exists():
        problems.append(f"fargate_audit/{tree} (command line or emulator tooling) must not ship in the layer")

# runtime deps present, aarch64, cp313; nothing the runtime already provides
for module in ("yaml", "jsonschema", "referencing", "rpds", "aws_lambda_powertools"):
    if not (layer / module).is_dir():
        problems.append(f"dependency {module} missing from the layer")
for so in layer.rglob("*.so"):
    if "aarch64" not in so.name or "cpython-313" not in so.name:
        problems.append(f"native module not cp313/aarch64: {so.relative_to(layer)}")
for unwanted in ("boto3", "botocore", "aws_xray_sdk", "fargate_audit.egg-info"):
    if (layer / unwanted).exists():
        problems.append(f"{unwanted} must not be in the layer")
if any(pkg.rglob("*.egg-info")):
    problems.append("egg-info inside the package")

# functions: app.py only (no vendored deps), handler present
for fn in ("TaskEventsFunction", "ConfigEventsFunction", "SweepPlannerFunction", "SweepWorkerFunction",
           "DnsLogsFunction"):
    app = build / fn / "app.py"
    if not app.is_file() or "def handler(event, context)" not in app.read_text():
        problems.append(f"{fn}/app.py missing or without handler(event, context)")

size = sum(p.stat().st_size for p in (build / "AuditLayer").rglob("*") if p.is_file())
if size > 200 * 1024 * 1024:  # Lambda: 250 MB unzipped for function + layers
    problems.append(f"layer is {size / 2**20:.0f} MiB unzipped")

for problem in problems:
    print("    " + problem, file=sys.stderr)
py_count = sum(1 for _ in layer.rglob("*.py"))
print(f"    layer: {size / 2**20:.1f} MiB, {py_count} .py all with unchecked-hash .pyc, "
      f"{len(have)} catalog files, deps {sorted(p.name for p in layer.iterdir() if p.is_dir() and '.' not in p.name and p.name != '__pycache__')}")
sys.exit(1 if problems else 0)
PY
done_step

printf '\nsam-checks: all passed in %ss\n' "$(($(date +%s) - T0))"

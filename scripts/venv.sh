# Sourced by scripts/sam-checks.sh and scripts/checkov.sh (after `set -euo pipefail`, with
# CHECK set to the script's name): what they share.
#
#   step TITLE / done_step     a step's header, then "ok (Ns)"
#   fail MESSAGE               "CHECK: FAILED: MESSAGE" on stderr, exit 1
#   tool_venv VENV REQS PYTHON_VERSION PYTHON_FINDER [HINT]
#       (Re)creates VENV with the interpreter PYTHON_FINDER prints when VENV has no python
#       of PYTHON_VERSION (e.g. 3.13; none found: fail, with HINT), then installs REQS
#       (exact pins) and runs `pip check` whenever REQS changed since the last install (its
#       sha256 kept in VENV/.<name of REQS>.sha256).
T0=$(date +%s)

step() { printf '\n==> %s\n' "$*"; STEP_T0=$(date +%s); }
done_step() { printf '    ok (%ss)\n' "$(($(date +%s) - STEP_T0))"; }
fail() { printf '%s: FAILED: %s\n' "$CHECK" "$*" >&2; exit 1; }

tool_venv() {
    local venv=$1 reqs=$2 version=$3 finder=$4 hint=${5:-} python sum stamp
    sum=$(sha256sum "$reqs" | cut -d' ' -f1)
    stamp="$venv/.$(basename "$reqs" .txt).sha256"
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c \
        "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$version'.split('.'))))"; then
        python=$("$finder") || fail "no Python $version found${hint:+ ($hint)}"
        rm -rf "$venv"
        "$python" -m venv "$venv"
    fi
    if [ "$(cat "$stamp" 2>/dev/null || true)" != "$sum" ]; then
        if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs" 2>&1 \
            | { grep -v "is ignored: it is neither a file nor a directory" || true; }; then
            fail "pip install -r $reqs into $venv"
        fi
        "$venv/bin/python" -m pip check >/dev/null || fail "pip check in $venv"
        echo "$sum" >"$stamp"
    fi
}

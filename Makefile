# Two commands for a newcomer: `make demo` and `make test`. Each builds its own venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test pytest lint format template-checks bench clean venv browser report

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fargate-audit demo

lint: $(STAMP)
	$(BIN)/ruff check layers functions tests bench
	$(BIN)/ruff format --check layers functions tests bench
	cd layers && ../$(BIN)/lint-imports --no-cache ../pyproject.toml

format: $(STAMP)
	$(BIN)/ruff format layers functions tests bench
	$(BIN)/ruff check --fix layers functions tests bench

# What CI runs (.ci/run): lint, the template checks, then the whole pytest suite (last, so
# its summary closes the output). Template checks:
# (sam validate, sam validate --lint, cfn-lint, sam build in a Python 3.13 venv; checkov
# on the template and its SAM transform in a venv of its own).
test: lint template-checks pytest

pytest: $(STAMP) browser
	$(BIN)/python -m pytest -n 2 --dist loadgroup tests

# Headless Chromium for the HTML report's browser tests (tests/browser), from Debian's
# packages (Playwright drives it; `playwright install` is never needed). Installed only
# when `chromium` is missing; without apt-get (or root) it says so and goes on: the
# browser tests then fail naming what to install, rather than skip unseen.
browser:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
	  || echo "make browser: could not install chromium (needs apt-get as root); the browser tests will fail" >&2

# The demo estate's HTML report (out/report.html, out/report.json) and its screenshot
# (docs/report.png, committed: the README shows it).
report: $(STAMP) browser
	PYTHONPATH=tests $(BIN)/python scripts/report_screenshot.py out docs/report.png

template-checks:
	bash scripts/sam-checks.sh
	bash scripts/checkov.sh

bench: $(STAMP)
	$(BIN)/python bench/bench_scan.py
	$(BIN)/python bench/bench_peers.py
	$(BIN)/python bench/bench_engine.py
	$(BIN)/python bench/bench_report.py
	$(BIN)/python bench/bench_html.py
	$(BIN)/python bench/bench_event.py
	$(BIN)/python bench/bench_dns.py
	$(BIN)/python bench/bench_discovery.py
	cd bench && PYTHONPATH=../layers ../$(BIN)/python bench_org.py

clean:
	rm -rf $(VENV) .venv-sam .venv-checkov .aws-sam build dist .pytest_cache .ruff_cache layers/*.egg-info

# Two commands for a newcomer: `make demo` and `make test`. Each builds its own venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test pytest lint format template-checks bench clean venv

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

pytest: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup tests

template-checks:
	bash scripts/sam-checks.sh
	bash scripts/checkov.sh

bench: $(STAMP)
	$(BIN)/python bench/bench_scan.py
	$(BIN)/python bench/bench_peers.py
	$(BIN)/python bench/bench_engine.py
	$(BIN)/python bench/bench_report.py
	$(BIN)/python bench/bench_event.py
	$(BIN)/python bench/bench_dns.py
	cd bench && PYTHONPATH=../layers ../$(BIN)/python bench_org.py

clean:
	rm -rf $(VENV) .venv-sam .venv-checkov .aws-sam build dist .pytest_cache .ruff_cache layers/*.egg-info

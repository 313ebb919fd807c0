# Two commands for a newcomer: `make demo` and `make test`. Each builds its own venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint format bench bench-engine clean venv

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

format: $(STAMP)
	$(BIN)/ruff format layers functions tests bench
	$(BIN)/ruff check --fix layers functions tests bench

test: lint
	$(BIN)/python -m pytest -n 2 tests

bench: $(STAMP)
	$(BIN)/python bench/bench_scan.py
	$(BIN)/python bench/bench_engine.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache layers/*.egg-info

# Two entry points a fresh machine needs: `make demo` and `make test`. Both create or reuse .venv.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/dagster_home

.PHONY: venv demo test test-fast lint dev bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## The main job end to end on the embedded default (emulator + SQLite).
demo: $(STAMP)
	$(BIN)/iiko-pipeline demo

## Lint, then every test (PostgreSQL tests fail instead of skipping when CI=true), on both cores:
## most of a test's time is a Dagster run in a process of its own, so two workers nearly halve the wall time.
test: $(STAMP) lint
	$(BIN)/python -m pytest -q -n 2

## The fast tests only (no end-to-end Dagster runs).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

## Dagster UI (webserver + daemon) on http://127.0.0.1:3000 with the emulator running.
dev: $(STAMP)
	$(BIN)/iiko-pipeline dev

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info

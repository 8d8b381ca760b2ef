# rollcall — everything a developer or CI runs. `make help` lists the targets.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BUF_VERSION := 1.75.0
BUF    := .tools/node_modules/.bin/buf

.PHONY: help venv run demo test test-faults lint proto proto-lint proto-breaking bench clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or make PYTHON=python3)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP) ## create the virtual environment (.venv) with dev tools

run: $(STAMP) ## create databases, migrate, run identity + import + courier in the foreground
	$(BIN)/python -m shared.devstack run

demo: $(STAMP) ## walk the seed story against `make run`
	$(BIN)/rollcall demo

test: $(STAMP) ## the whole suite (PostgreSQL + RabbitMQ from env URLs or local defaults)
	$(BIN)/pytest -q

test-faults: $(STAMP) ## the fault-injection suite (operations.md F1-F6, F9)
	$(BIN)/pytest -q -m faults -o addopts=-ra

lint: $(STAMP) proto-lint proto-breaking ## ruff, mypy, buf lint and buf breaking
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

proto: $(STAMP) ## regenerate shared/proto from protos/
	$(BIN)/python scripts/gen_protos.py

$(BUF):
	@mkdir -p .tools
	cd .tools && npm install --silent --no-audit --no-fund @bufbuild/buf@$(BUF_VERSION) >/dev/null

proto-lint: $(BUF) ## buf lint
	cd protos && ../$(BUF) lint

proto-breaking: $(BUF) ## buf breaking against main (skipped where main does not exist yet)
	@if git rev-parse --verify -q main >/dev/null; then \
	  cd protos && ../$(BUF) breaking --against '../.git#branch=main,subdir=protos'; \
	else echo "proto-breaking: no main branch to compare with"; fi

bench: $(STAMP) ## performance ratios P1-P4 (operations.md)
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache

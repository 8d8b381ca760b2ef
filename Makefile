# rollcall — everything a developer or CI runs. `make help` lists the targets.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BUF_VERSION := 1.75.0
BUF    := .tools/node_modules/.bin/buf
ASYNCAPI_PARSER_VERSION := 3.6.6
ASYNCAPI_PARSER := .tools/.asyncapi-parser-$(ASYNCAPI_PARSER_VERSION)
PIP_VERSION := 26.3
UV_VERSION := 0.13.9
UV     := .tools/uv-$(UV_VERSION)/bin/uv
# Pinned versions with hashes, written by `make lock` (uv pip compile) from pyproject.toml for CPython
# 3.11 on Linux: LOCK the runtime dependencies (deploy/Dockerfile), DEV_LOCK those plus the dev extra
# at the same versions (the venv of make run, make test and CI).
LOCK     := requirements.lock
DEV_LOCK := requirements-dev.lock
LOCK_FLAGS ?=
UV_COMPILE = $(UV) pip compile pyproject.toml --quiet --python-version 3.11 --python-platform linux \
	--generate-hashes --custom-compile-command 'make lock' $(LOCK_FLAGS)

.PHONY: help venv run reset demo test test-faults lint proto proto-lint proto-breaking asyncapi-lint bench clean lock dist

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml $(DEV_LOCK)
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH (or make PYTHON=python3)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q pip==$(PIP_VERSION)
	$(BIN)/pip install -q --require-hashes -r $(DEV_LOCK)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	@$(BIN)/pip check >/dev/null || { $(BIN)/pip check; echo "pyproject.toml and $(DEV_LOCK) disagree: run make lock"; exit 1; }
	@touch $(STAMP)

venv: $(STAMP) ## create the virtual environment (.venv) with dev tools

$(UV):
	$(PYTHON) -m venv .tools/uv-$(UV_VERSION)
	.tools/uv-$(UV_VERSION)/bin/pip install -q uv==$(UV_VERSION)

lock: $(UV) ## re-pin requirements.lock + requirements-dev.lock from pyproject.toml (LOCK_FLAGS=--upgrade: newest)
	$(UV_COMPILE) -o $(LOCK)
	$(UV_COMPILE) --extra dev -c $(LOCK) -o $(DEV_LOCK)

dist: $(STAMP) ## wheels into dist/: rollcall, and rollcall-api (clients/python: the stubs for other teams)
	rm -rf build dist/rollcall-*.whl dist/rollcall_api-*.whl
	$(BIN)/pip wheel -q --no-deps --no-build-isolation -w dist .
	$(BIN)/python scripts/build_api_dist.py dist

run: $(STAMP) ## create databases, migrate, run identity + import + courier + both events relays in the foreground (a mail catcher when nothing answers on the SMTP port)
	$(BIN)/python -m shared.devstack run

reset: $(STAMP) ## drop the dev databases, the broker topology of the dev prefix and caught mail (no prompt; `make run` starts afresh)
	$(BIN)/python -m shared.devstack reset

demo: $(STAMP) ## walk the seed story against `make run`
	$(BIN)/rollcall demo

test: $(STAMP) ## the whole suite (PostgreSQL + RabbitMQ from env URLs or local defaults)
	$(BIN)/pytest -q

test-faults: $(STAMP) ## the fault-injection suite (operations.md F1-F6, F9; guarded jobs and events)
	$(BIN)/pytest -q -m faults -o addopts=-ra

lint: $(STAMP) proto-lint proto-breaking asyncapi-lint ## ruff, mypy, buf lint and buf breaking, AsyncAPI
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

# The official AsyncAPI parser validates protos/asyncapi.yaml: the AsyncAPI 3.0 schema, the AMQP
# bindings, every $ref, and its core rules (an operation's messages belong to its channel, ...). Any
# error or warning fails; information is shown. (@asyncapi/cli needs Node 24 and brings 1.5 GB.)
define ASYNCAPI_VALIDATE
import { Parser, fromFile } from "@asyncapi/parser";
const path = process.argv[1];
const { document, diagnostics } = await fromFile(new Parser(), path).parse();
const severity = ["error", "warning", "info", "hint"];
for (const d of diagnostics) console.log(`$${path}: $${severity[d.severity]} $${d.code} $${d.path.join(".")}: $${d.message}`);
if (!document || diagnostics.some((d) => d.severity <= 1)) process.exit(1);
console.log(`$${path}: valid AsyncAPI $${document.version()}`);
endef
export ASYNCAPI_VALIDATE

$(ASYNCAPI_PARSER):
	@mkdir -p .tools
	cd .tools && npm install --silent --no-audit --no-fund --save-exact @asyncapi/parser@$(ASYNCAPI_PARSER_VERSION) >/dev/null
	@touch $@

asyncapi-lint: $(ASYNCAPI_PARSER) ## validate protos/asyncapi.yaml (AsyncAPI 3.0) with @asyncapi/parser
	cd .tools && node --input-type=module -e "$$ASYNCAPI_VALIDATE" ../protos/asyncapi.yaml

bench: $(STAMP) ## performance ratios P1-P4 and P6 (operations.md)
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache

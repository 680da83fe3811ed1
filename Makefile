# RunnerFleet: `make help` lists the targets.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROTO_SRC := $(wildcard protos/*.proto)
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help install proto proto-check lint test test-fast test-deps test-deploy test-compat test-chaos demo cluster cluster-compose bench bench-quick bench-chaos gpu-check clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed ## create or update .venv (idempotent)

proto: install ## regenerate the Python modules from protos/*.proto
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. $(PROTO_SRC)

proto-check: install ## fail when the generated modules drift from the .proto sources
	@tmp=$$(mktemp -d); \
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=$$tmp --pyi_out=$$tmp --grpc_python_out=$$tmp $(PROTO_SRC) && \
	for f in $$tmp/protos/*.py $$tmp/protos/*.pyi; do cmp -s $$f protos/$$(basename $$f) || { echo "protos/$$(basename $$f) drifted: run make proto"; rm -rf $$tmp; exit 1; }; done; \
	rm -rf $$tmp; echo "protos up to date"

lint: install ## ruff, mypy and the import layers (lint-imports, contracts in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy protos store runner_worker api_gateway runnerfleet bench
	$(BIN)/lint-imports

test-fast: install ## unit tests only (pure, no processes; under a minute)
	$(BIN)/python -m pytest -q -x tests/unit

test-deps: install ## system packages the tests need (Debian): prometheus, docker-compose, libb64-0d, util-linux
	bash .ci/system-deps.sh
	VENV=$(VENV) bash deploy/test-deps.sh

test-deploy: test-deps ## compose, Prometheus, Grafana and Kubernetes checks only
	$(BIN)/python -m pytest -q tests/deploy

test: install test-deps ## run the whole test suite (unit, integration, deploy, then tritonclient compat)
	$(MAKE) --no-print-directory proto-check
	$(BIN)/python -m pytest -q tests --ignore=tests/compat --ignore=tests/chaos
	$(MAKE) --no-print-directory test-compat
	$(MAKE) --no-print-directory test-compose

test-compat: install ## tritonclient / perf_analyzer tests (own process: they can't share one with protos/)
	$(BIN)/python -m pytest -q tests/compat; rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

test-chaos: install ## chaos suite: overload, hostile input, failures over real processes (< 5 min)
	$(BIN)/python -m pytest -q tests/chaos; rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

.PHONY: test-compose
test-compose: install test-deps ## build the image, run the docker-compose cluster for real, check it (own dockerd if none runs)
	VENV=$(VENV) bash deploy/ci/test-compose.sh

demo: install ## save the demo models, start a local cluster, query it (runnerfleet.client + tritonclient), stop
	$(BIN)/python -m runnerfleet.cluster_demo

cluster: install ## start a local cluster (gateway + 2 workers); Ctrl-C stops it
	$(BIN)/runnerfleet cluster up --workers 2

cluster-compose: ## start the docker-compose cluster (needs a Docker engine)
	docker compose -f deploy/docker-compose.yml up --build

bench: install ## the race: every peer configuration, 3 repeats, 5 s windows (hours; writes BENCHMARKS.md)
	$(BIN)/python -m bench.race --full

bench-quick: install ## the race, short: fewer configurations and points, 1 repeat (< 5 minutes once peers are installed)
	$(BIN)/python -m bench.race --quick

bench-chaos: install ## chaos scenarios at full length (writes the chaos section of BENCHMARKS.md)
	$(BIN)/python -m bench.chaos

gpu-check: install ## GPU tests and GPU benchmark (on a machine with an NVIDIA GPU)
	$(BIN)/python -m pytest -q -m gpu tests/gpu
	$(BIN)/python -m bench.gpu

clean: ## remove caches (keeps .venv)
	rm -rf .pytest_cache .mypy_cache .ruff_cache build *.egg-info

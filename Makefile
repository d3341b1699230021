# MoE Hub. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FRONTEND_STAMP := frontend/dist/.built
PG_URL ?= postgres://postgres@127.0.0.1:5432/hub
PYTEST_ARGS ?=
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help run test test-fast bench lint fmt services system-deps frontend frontend-test clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch==2.13.0 is pinned in pyproject: pip takes the CPU build from the local wheel dir.
	# The base package is only the client; the hub runs with its server, worker and dev extras.
	$(PY) -m pip install -q -e ".[server,worker,dev,test]"
	touch $(STAMP)

venv: $(STAMP) ## create the virtualenv and install the project

system-deps: ## Debian packages: ClickHouse server, ZooKeeper (replicated-table tests), bubblewrap (job sandbox), e2fsprogs (job disk quotas), Chromium (browser tests), Node
	@missing=""; \
	command -v clickhouse-server >/dev/null || [ -x /usr/sbin/clickhouse-server ] || missing="$$missing clickhouse-server clickhouse-client"; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	[ -x /usr/share/zookeeper/bin/zkServer.sh ] || missing="$$missing zookeeper"; \
	command -v setpriv >/dev/null || missing="$$missing util-linux"; \
	command -v mkfs.ext4 >/dev/null || [ -x /usr/sbin/mkfs.ext4 ] || [ -x /sbin/mkfs.ext4 ] || missing="$$missing e2fsprogs"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	[ -e /usr/lib/x86_64-linux-gnu/libseccomp.so.2 ] || [ -e /usr/lib/aarch64-linux-gnu/libseccomp.so.2 ] || [ -e /lib/x86_64-linux-gnu/libseccomp.so.2 ] || missing="$$missing libseccomp2"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

services: ## make sure the machine's PostgreSQL and Redis are running
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || { \
	  command -v pg_ctlcluster >/dev/null && pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -1) main start || true; }
	@(command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 ping >/dev/null 2>&1) || { \
	  command -v redis-server >/dev/null && redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true; }

$(FRONTEND_STAMP): frontend/package.json frontend/package-lock.json $(shell find frontend/src frontend/index.html frontend/vite.config.ts frontend/tsconfig.json -type f 2>/dev/null)
	cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build
	touch $(FRONTEND_STAMP)

frontend: $(FRONTEND_STAMP) ## build the dashboard (npm ci + vite build into frontend/dist)

frontend-test: $(FRONTEND_STAMP) ## the dashboard's component tests (vitest)
	cd frontend && npm test

run: $(STAMP) ## start the hub on http://127.0.0.1:8000 with embedded stores and a demo
	@$(MAKE) -s system-deps frontend || echo "(dashboard not built: the API still runs)"
	$(VENV)/bin/hub serve --demo

test: $(STAMP) system-deps services frontend ## install test dependencies and services, run the whole suite
	@$(MAKE) -s lint
	cd frontend && npm test
	$(PY) -m pytest $(PYTEST_ARGS)
	@if pg_isready -q -h 127.0.0.1 -p 5432; then \
	  echo "== registry, accounts and jobs again on PostgreSQL =="; \
	  HUB_DATABASE_URL=$(PG_URL) $(PY) -m pytest -m "pg" $(PYTEST_ARGS); \
	else echo "PostgreSQL is not running on 127.0.0.1:5432: cannot run the PostgreSQL pass"; exit 1; fi
	@echo "== the registry again with its blobs on S3 (SeaweedFS) =="
	HUB_TEST_BLOB_BACKEND=s3 $(PY) -m pytest tests/integration/test_registry_*.py $(PYTEST_ARGS)

test-fast: $(STAMP) ## unit tests only
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

bench: $(STAMP) system-deps frontend ## run every benchmark under tests/bench and print the figures
	@for f in tests/bench/bench_*.py; do m=$${f%.py}; m=$${m//\//.}; echo "== $$m"; $(PY) -m $$m || exit 1; done

lint: $(STAMP) ## ruff: lint and formatting (make test runs it first)
	$(VENV)/bin/ruff check hub workers tests
	$(VENV)/bin/ruff format --check hub workers tests

fmt: $(STAMP) ## ruff format + fix
	$(VENV)/bin/ruff check --fix hub workers tests
	$(VENV)/bin/ruff format hub workers tests

clean: ## remove the virtualenv, local data and build outputs
	rm -rf $(VENV) .hub-data .pytest_cache frontend/dist frontend/node_modules

# MoE Hub. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PG_URL ?= postgres://postgres@127.0.0.1:5432/hub
PYTEST_ARGS ?=
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help run test test-fast bench lint fmt services system-deps clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch==2.13.0 is pinned in pyproject: pip takes the CPU build from the local wheel dir.
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

venv: $(STAMP) ## create the virtualenv and install the project

system-deps: ## install the Debian packages the tests use (ClickHouse server, bubblewrap)
	@missing=""; \
	command -v clickhouse-server >/dev/null || missing="$$missing clickhouse-server clickhouse-client"; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
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

run: $(STAMP) ## start the hub on http://127.0.0.1:8000 with embedded stores and a demo
	$(VENV)/bin/hub serve --demo

test: $(STAMP) system-deps services ## install test dependencies and services, run the whole suite
	$(PY) -m pytest $(PYTEST_ARGS)
	@if pg_isready -q -h 127.0.0.1 -p 5432; then \
	  echo "== registry and accounts again on PostgreSQL =="; \
	  HUB_DATABASE_URL=$(PG_URL) $(PY) -m pytest -m "pg" $(PYTEST_ARGS); \
	else echo "PostgreSQL is not running on 127.0.0.1:5432: cannot run the PostgreSQL pass"; exit 1; fi

test-fast: $(STAMP) ## unit tests only
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

bench: $(STAMP) system-deps ## run every benchmark under tests/bench and print the figures
	@for f in tests/bench/bench_*.py; do m=$${f%.py}; m=$${m//\//.}; echo "== $$m"; $(PY) -m $$m || exit 1; done

lint: $(STAMP) ## ruff
	$(VENV)/bin/ruff check hub workers tests

fmt: $(STAMP) ## ruff format + fix
	$(VENV)/bin/ruff check --fix hub workers tests
	$(VENV)/bin/ruff format hub workers tests

clean: ## remove the virtualenv and local data
	rm -rf $(VENV) .hub-data .pytest_cache

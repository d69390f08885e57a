# smsfold developer tasks. `make help` lists them.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
COMPOSE_FILE := docker-compose.kafka.yml
# Debian packages of the embedded stack (and Chromium, which renders the load-test report in the tests);
# each installs a binary of the same name.
SYSTEM_PACKAGES := clickhouse-server clickhouse-client redis-server chromium
# apt-get needs root: use sudo when we are not root and it exists.
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo || true)
APT := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: help deps system-deps venv test demo stack-up stack-down stack-status lint bench soak compose-check clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

deps: system-deps venv ## install what is missing: Debian packages, the venv, the project (idempotent)

system-deps: ## apt-get install ClickHouse and Redis, only if their binaries are missing
	@export PATH="$$PATH:/usr/sbin:/sbin:/usr/local/sbin"; missing=""; \
	for pkg in $(SYSTEM_PACKAGES); do command -v "$$pkg" >/dev/null || missing="$$missing $$pkg"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ] && [ -z "$(SUDO)" ]; then \
		echo "need root (or sudo) to install:$$missing" >&2; exit 1; fi; \
	echo "installing:$$missing"; \
	$(APT) update -q; \
	$(APT) install -y -q --no-install-recommends $$missing

venv: $(STAMP) ## create .venv and pip install -e .[dev] when pyproject.toml changed

$(PY):
	python3 -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

TEST_PORT_BASE ?= $(or $(SMSFOLD_TEST_PORT_BASE),24000)
FAULTS_LOG := reports/faults-run.log

# The fault tests spend most of their time waiting out outages, so they run beside the rest of the suite,
# on their own ports (TEST_PORT_BASE + 1000) and their own temp dir; their output is printed after.
test: deps lint ## lint, then the test suite (tests start the embedded stack themselves)
	@mkdir -p reports; tmp=$$(mktemp -d); \
	SMSFOLD_TEST_PORT_BASE=$$(( $(TEST_PORT_BASE) + 1000 )) $(VENV)/bin/pytest -q -p no:cacheprovider \
		--basetemp="$$tmp/faults" tests/faults > $(FAULTS_LOG) 2>&1 & faults=$$!; \
	rest=0; SMSFOLD_TEST_PORT_BASE=$(TEST_PORT_BASE) $(VENV)/bin/pytest -q --ignore=tests/faults || rest=$$?; \
	status=0; wait $$faults || status=$$?; echo "== tests/faults (ran beside the rest)"; cat $(FAULTS_LOG); \
	if [ $$rest -eq 0 ] && [ $$status -eq 0 ]; then rm -rf "$$tmp"; \
	else echo "fault test processes' logs kept in $$tmp"; exit 1; fi

demo: deps ## run the end-to-end demo on the embedded stack
	$(VENV)/bin/smsfold demo

stack-up: deps ## start the embedded broker, ClickHouse and Redis; create topics; migrate
	$(VENV)/bin/smsfold stack up

stack-down: venv ## stop the embedded stack (ClickHouse data is kept)
	$(VENV)/bin/smsfold stack down

stack-status: venv ## show the stack's components and their health
	$(VENV)/bin/smsfold stack status

lint: venv ## ruff and mypy (strict)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: deps ## run every bench/*.py with the venv's python (installs wrk, the load generator, if missing)
	@command -v wrk >/dev/null || { echo "installing wrk"; $(APT) update -q; \
		$(APT) install -y -q --no-install-recommends wrk; }
	@shopt -s nullglob; for bench in bench/*.py; do \
		case "$$(basename "$$bench")" in _*) continue;; esac; \
		echo "== $$bench"; $(PY) "$$bench"; \
	done

soak: deps ## the fault tests, long version (SMSFOLD_SOAK=1)
	SMSFOLD_SOAK=1 $(VENV)/bin/pytest -q tests/faults

compose-check: ## validate docker-compose.kafka.yml (installs docker-compose if there is no compose)
	@if docker compose version >/dev/null 2>&1; then dc="docker compose"; \
	elif command -v docker-compose >/dev/null; then dc=docker-compose; \
	else echo "installing docker-compose"; $(APT) update -q; $(APT) install -y -q --no-install-recommends docker-compose; dc=docker-compose; fi; \
	$$dc -f $(COMPOSE_FILE) config -q && echo "$(COMPOSE_FILE): ok"

clean: ## stop and purge the embedded stack; delete caches and build output (keeps .venv)
	if [ -x $(VENV)/bin/smsfold ]; then $(VENV)/bin/smsfold stack down --purge; fi
	rm -rf .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

# Order Pipeline — `make run` brings everything up, `make test` proves it. `make` lists targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PYTHON := $(VENV)/bin/python
# uv from PATH, else as a module of python3 (installed on first use, see `uv-installed`).
UV     := $(or $(shell command -v uv 2>/dev/null),python3 -m uv)
KAFKACTL := $(PYTHON) deploy/kafka/kafkactl.py

.PHONY: help uv-installed install system-deps prometheus-installed observability-check kafka-jars run demo kafka-start kafka-stop kafka-topics \
        test lint fmt typecheck schemas-check test-unit test-integration bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-20s\033[0m %s\n", $$1, $$2}'

uv-installed:
	@command -v uv >/dev/null || python3 -m uv --version >/dev/null 2>&1 || \
	  python3 -m pip install --quiet uv || python3 -m pip install --quiet --user --break-system-packages uv

$(VENV)/.synced: pyproject.toml uv.lock services/*/pyproject.toml | uv-installed
	$(UV) sync --all-packages --locked --python python3.11
	@touch $@

install: $(VENV)/.synced kafka-jars ## Python environment (uv) and the Kafka jars (Maven)

kafka-jars: $(VENV)/.synced ## fetch Kafka 4.1 from Maven Central into ~/.cache/order-pipeline
	$(KAFKACTL) fetch >/dev/null

system-deps: ## PostgreSQL and Prometheus (Debian's packages) for the tests, when missing
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || missing="postgresql"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "Missing Debian packages: run 'sudo apt-get install $$missing'" >&2; exit 1; fi; \
	fi

prometheus-installed: ## Prometheus for `make run`, installed where possible (the pipeline runs without it)
	@command -v prometheus >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Prometheus (Debian's package)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null \
	      || echo "could not install Prometheus; the pipeline runs without metrics storage" >&2; \
	  else echo "Prometheus is missing and cannot be installed here (needs root and apt-get):" \
	    "run 'sudo apt-get install prometheus'; the pipeline runs without it" >&2; fi; }

observability-check: system-deps ## promtool checks/tests of config and rules; Grafana's dashboard-linter
	deploy/prometheus/check.sh
	deploy/grafana/lint.sh

run: install prometheus-installed ## start Kafka, the services, KPIs and Prometheus; Ctrl-C stops all
	@deploy/run.sh

demo: $(VENV)/.synced ## post a stream of sample orders to a running pipeline and watch them
	$(PYTHON) tools/demo.py

kafka-start: install ## start only the broker (detached, .run/kafka) and create the topics
	$(KAFKACTL) start && $(KAFKACTL) create-topics

kafka-topics: $(VENV)/.synced ## create missing topics on a running broker
	$(KAFKACTL) create-topics

kafka-stop: $(VENV)/.synced ## stop the detached broker
	$(KAFKACTL) stop

test: install system-deps lint typecheck schemas-check observability-check ## everything CI runs: lint, types, schemas, rules, dashboards, all tests
	$(PYTHON) -m pytest

lint: $(VENV)/.synced ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: $(VENV)/.synced ## format and autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: $(VENV)/.synced ## mypy --strict
	$(VENV)/bin/mypy services tests tools conftest.py deploy

schemas-check: $(VENV)/.synced ## schema versions stay backward and forward compatible; docs/EVENTS.md is current
	$(PYTHON) tools/schemas_check.py
	$(PYTHON) tools/events_catalog.py --check

.PHONY: events-doc
events-doc: $(VENV)/.synced ## regenerate docs/EVENTS.md, the event catalog, from schemas, topics and wiring
	$(PYTHON) tools/events_catalog.py

test-unit: $(VENV)/.synced ## unit tests only (no broker; PostgreSQL for the kit's database tests)
	$(PYTHON) -m pytest services tests/schemas

test-integration: install ## the pipeline on a real broker
	$(PYTHON) -m pytest tests/integration

bench: install ## offered-load benchmark of the whole pipeline plus Kafka's own perf tools
	$(PYTHON) tools/bench.py

clean: ## remove local state (.run: broker data, SQLite files)
	-$(KAFKACTL) stop
	rm -rf .run

# Keel — two commands do everything: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
DEMO ?= 1
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test bench load lint install browser-deps clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# serve locks the store, applies both schemas' migrations, then serves (one chDB open, not three).
run: $(STAMP)
	@$(PY) manage.py serve --port $(PORT) $(if $(filter 0,$(DEMO)),--no-demo,--demo)

browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || { echo "could not install chromium (apt-get install chromium); browser tests need /usr/bin/chromium"; exit 1; }; }

# The whole suite on SQLite, then every Django-database test again on the real PostgreSQL of this machine.
test: $(STAMP) browser-deps
	@$(PY) -m pytest -q $(PYTEST_ARGS)
	@echo "== Django database tests on PostgreSQL (127.0.0.1:5432)"
	@KEEL_DB_PASS=postgres DATABASE_URL=$${KEEL_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/keel_$$$$} \
	  $(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	@$(PY) -m benchmarks.run

# Sustained OTLP load against `manage.py serve` with concurrent reads; sent == stored by span id (benchmarks/RELIABILITY.md).
LOAD_MINUTES ?= 10
load: $(STAMP)
	@LOAD_MINUTES=$(LOAD_MINUTES) $(PY) -m benchmarks.run load

lint: $(STAMP)
	@$(PY) -m ruff check .
	@$(PY) -m mypy controlplane ingestion anomaly dashboards

clean:
	rm -rf var test-artifacts

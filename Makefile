# Two entry points for a fresh machine: `make dev` and `make test`.
# Each installs what it needs: a virtualenv with the project, the PostgreSQL
# server from Debian's packages when the machine has none (with pg_cron, which the
# schedule's SQL is tested against), and (for the tests) the pinned Supabase CLI,
# which deploys the schema the stock way, and supabase-js (tests/js/), which the
# tests drive against the dev gateway.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# tests/supabase/parity.py expects this version in this folder.
SUPABASE_CLI_VERSION := 2.117.0
SUPABASE_CLI_DIR := .connectgain/supabase-cli
# tests/shared/tooling/test_supabase_js.py expects supabase-js in this folder.
SUPABASE_JS_DIR := .connectgain/supabase-js

.PHONY: dev test lint typecheck pytest postgres install npm supabase-cli supabase-js bench

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

postgres: install
	@$(BIN)/python -c "from shared.tooling.cluster import find_binaries; find_binaries()" 2>/dev/null \
	  || { echo "Installing the PostgreSQL server (Debian package postgresql)"; \
	       $(SUDO) apt-get update -qq && \
	       $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
	@$(BIN)/python -c "from shared.tooling.cluster import find_binaries as f; b = f(); \
	  assert b.has_extension('pg_cron'), b.version" 2>/dev/null \
	  || { v=$$($(BIN)/python -c "from shared.tooling.cluster import find_binaries; print(find_binaries().version)"); \
	       echo "Installing pg_cron (Debian package postgresql-$$v-cron) for the schedule's SQL test"; \
	       $(SUDO) apt-get update -qq && \
	       $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-$$v-cron >/dev/null; }

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m shared.tooling.layers

typecheck: install
	$(BIN)/mypy

# npm from Debian's packages when the machine has none; the CLI's binary comes
# in its platform package, so no Docker and no download script.
npm:
	@command -v npm >/dev/null \
	  || { echo "Installing Node.js and npm (Debian packages nodejs, npm)"; \
	       $(SUDO) apt-get update -qq && \
	       $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }

$(SUPABASE_CLI_DIR)/.installed-$(SUPABASE_CLI_VERSION): | npm
	mkdir -p $(SUPABASE_CLI_DIR)
	npm install --prefix $(SUPABASE_CLI_DIR) --no-audit --no-fund --loglevel=error \
	  supabase@$(SUPABASE_CLI_VERSION)
	$(SUPABASE_CLI_DIR)/node_modules/.bin/supabase --version
	rm -f $(SUPABASE_CLI_DIR)/.installed-*
	touch $@

supabase-cli: $(SUPABASE_CLI_DIR)/.installed-$(SUPABASE_CLI_VERSION)

# supabase-js exactly as tests/js/package-lock.json pins it (npm ci), installed
# anew whenever the lock changes.
$(SUPABASE_JS_DIR)/.installed: tests/js/package.json tests/js/package-lock.json | npm
	rm -rf $(SUPABASE_JS_DIR)
	mkdir -p $(SUPABASE_JS_DIR)
	cp tests/js/package.json tests/js/package-lock.json $(SUPABASE_JS_DIR)/
	npm ci --prefix $(SUPABASE_JS_DIR) --no-audit --no-fund --loglevel=error
	touch $@

supabase-js: $(SUPABASE_JS_DIR)/.installed

pytest: install postgres supabase-cli supabase-js
	$(BIN)/pytest -q

test: lint typecheck pytest

dev: install postgres
	$(BIN)/connectgain dev

# Two entry points for a fresh machine: `make dev` and `make test`.
# Each installs what it needs: a virtualenv with the project, and the
# PostgreSQL server from Debian's packages when the machine has none.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: dev test lint typecheck pytest postgres install bench

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

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install postgres
	$(BIN)/pytest -q

test: lint typecheck pytest

dev: install postgres
	$(BIN)/connectgain dev

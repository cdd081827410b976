PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ADDRESS ?= 127.0.0.1:8080

.PHONY: install system-deps run test lint imports typecheck unit bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Commands some tests drive for real (gpg interop, git repositories, TLS certificates, a
# throw-away PostgreSQL server for the restart fault test: initdb/pg_ctl, the web UI's browser
# tests: Debian's chromium, driven by Playwright). Installed
# from Debian's packages when missing and we are root (CI); elsewhere a missing one is named.
SYSTEM_COMMANDS := gpg:gnupg git:git openssl:openssl sha256sum:coreutils pg_ctlcluster:postgresql chromium:chromium
system-deps:
	@missing=""; for pair in $(SYSTEM_COMMANDS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else \
	    echo "tests need these Debian packages:$$missing (install them, or the tests that use them skip)"; \
	  fi; \
	fi

run: $(STAMP)
	$(BIN)/package-storage demo --address $(ADDRESS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

imports: $(STAMP)
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) system-deps
	$(BIN)/pytest -q

test: lint imports typecheck unit

clean:
	rm -rf $(VENV) build dist .mypy_cache .pytest_cache .ruff_cache

# chat-shell — every target bootstraps uv if the machine lacks it (needs only python3 and make).
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
BOOTSTRAP := .uv-bootstrap
UV := $(shell command -v uv 2>/dev/null || echo $(BOOTSTRAP)/bin/uv)

# Extra arguments for `make run` (chat-shell serve), `make quickstart` (the question) and
# `make test-postgres` (pytest's).
ARGS ?=

.PHONY: help install run quickstart test test-quick test-postgres lint bench bench-quick docs wheels clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(BOOTSTRAP)/bin/uv:
	python3 -m venv $(BOOTSTRAP)
	$(BOOTSTRAP)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

install: $(UV)  ## install every package and the dev tools from uv.lock (hash-checked)
	$(UV) sync --all-packages --locked

run: install  ## start `chat-shell serve` on 127.0.0.1:8000 with SQLite history (ARGS="--port 9000")
	$(UV) run --frozen chat-shell serve $(ARGS)

quickstart: install  ## run examples/quickstart.py (a demo model when no model is configured)
	$(UV) run --frozen python examples/quickstart.py $(ARGS)

PY_TREES := packages tests benchmarks examples

test: lint  ## lint, type-check and run the whole test suite (what CI runs)
	$(UV) run --frozen pytest

test-quick: install  ## the test suite without the tests marked slow (> ~5 s each): the local loop
	$(UV) run --frozen pytest -m "not slow"

test-postgres: install  ## the PostgreSQL tests, on a throw-away server of their own (tests/postgres/server.sh)
	bash tests/postgres/server.sh run $(UV) run --frozen pytest tests/postgres $(ARGS)

lint: install  ## ruff (lint and format), mypy over the packages, tests, benchmarks and examples
	$(UV) run --frozen ruff check $(PY_TREES)
	$(UV) run --frozen ruff format --check $(PY_TREES)
	$(UV) run --frozen mypy
	@# each test folder's conftest.py on its own: mypy cannot hold two modules named conftest
	for conftest in tests/*/conftest.py; do $(UV) run --frozen mypy "$$conftest" || exit 1; done

bench: install  ## run the benchmarks vs their peers (~9 min) and rewrite docs/benchmarks.md
	UV=$(UV) $(UV) run --frozen python benchmarks/run.py

bench-quick: install  ## a shorter subset of the benchmarks, ~7 min here (prints the table only)
	UV=$(UV) $(UV) run --frozen python benchmarks/run.py --quick

docs: install  ## check that every example in README.md and docs/ runs
	$(UV) run --frozen pytest tests/core/test_docs.py

wheels: $(UV)  ## build each distribution's wheel and test it alone in a fresh venv
	UV=$(UV) bash .ci/wheels.sh

clean:  ## remove build outputs and virtual environments
	rm -rf dist .venv .wheel-venvs $(BOOTSTRAP)

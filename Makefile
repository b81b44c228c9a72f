# The two commands of README.md: `make run` (the hub with the demo city) and `make test`.
# `make run` installs the runtime dependencies only (requirements.lock); `make test` adds the
# development tools (requirements-dev.lock: pytest, Playwright, mypy, ruff, hypothesis, schemathesis).
# Both locks come from pyproject.toml: `make lock` regenerates them after a dependency change.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: install install-dev run test lint typecheck unit system-deps bench lock clean

$(RUN_STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

$(DEV_STAMP): $(RUN_STAMP) requirements-dev.lock
	$(BIN)/python -m pip install -q -r requirements-dev.lock
	touch $@

## The runtime dependencies and cityhub itself (what `make run` needs).
install: $(RUN_STAMP)

## install, plus the test and lint tools.
install-dev: $(DEV_STAMP)

## Start the hub on http://127.0.0.1:8000 with embedded PostgreSQL and the demo city (data in ./var).
run: install
	bash scripts/system-deps.sh --run
	$(BIN)/cityhub serve --demo

system-deps:
	bash scripts/system-deps.sh

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy

## The whole suite: lint, types, unit, API, end-to-end and browser tests.
test: install-dev system-deps lint typecheck
	$(BIN)/python -m pytest -p no:cacheprovider

unit: install-dev
	$(BIN)/python -m pytest -p no:cacheprovider -m "not browser"

bench: install
	$(BIN)/python bench/cases.py

## Regenerate both locks from pyproject.toml with uv (pins already in the locks are kept unless a
## requirement changed; `make lock UPGRADE=1` moves everything to the newest allowed versions). The
## dev lock is the whole set; the runtime lock is resolved within it, so both pin the same versions.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --extra dev -o requirements-dev.lock --python-version 3.11 \
		$(if $(UPGRADE),--upgrade) --quiet
	$(BIN)/uv pip compile pyproject.toml -c requirements-dev.lock -o requirements.lock \
		--python-version 3.11 --quiet

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

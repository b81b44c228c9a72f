# The two commands of README.md: `make run` (the hub with the demo city) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint typecheck unit system-deps bench clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

install: $(STAMP)

## Start the hub on http://127.0.0.1:8000 with embedded PostgreSQL and the demo city (data in ./var).
run: install
	$(BIN)/cityhub serve --demo

system-deps:
	bash scripts/system-deps.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

## The whole suite: lint, types, unit, API, end-to-end and browser tests.
test: install system-deps lint typecheck
	$(BIN)/python -m pytest -p no:cacheprovider

unit: install
	$(BIN)/python -m pytest -p no:cacheprovider -m "not browser"

bench: install
	$(BIN)/python bench/cases.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

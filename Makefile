# Two commands do all set-up on a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint format docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/gateway serve $(ARGS)

test: $(VENV)/.installed-dev
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check gateway tests bench examples
	$(BIN)/ruff format --check gateway tests bench examples
	$(BIN)/mypy

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix gateway tests bench examples
	$(BIN)/ruff format gateway tests bench examples

# The README's option table, rewritten from gateway/config/settings.py.
docs: $(VENV)/.installed
	$(BIN)/python -m gateway.config README.md

# The adversarial suites at length: WebSocket fuzzing (at least 10,000 frames) and schemathesis
# over /v1/openapi.json (at least 1,000 cases); `make test` runs a short pass of both.
fuzz: $(VENV)/.installed-dev
	FUZZ_RANDOM=1 FUZZ_WS_EXAMPLES=600 FUZZ_WS_MIN_FRAMES=10000 \
	FUZZ_REST_EXAMPLES=30 FUZZ_REST_PHASES=examples,coverage,fuzzing,stateful \
	FUZZ_REST_MIN_CASES=1000 FUZZ_TIMEOUT=3000 \
	$(BIN)/pytest tests/fuzz -q -s -p no:cacheprovider $(PYTEST_ARGS)

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config.toml

.PHONY: venv test lint unit demo demo-serve run bench migrate check-config openapi clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/.installed

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

# Workers for the suite: its end-to-end tests mostly wait on a real bot process, so two workers
# halve its time even on a two-core machine. TEST_WORKERS=0 runs it in this process. The browser
# tests are one group (one worker): one bot, one Chromium and one screenshot folder for all of them.
TEST_WORKERS ?= 2

test: lint
	PTB_TIMEDELTA=1 $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup

unit: venv
	PTB_TIMEDELTA=1 $(BIN)/pytest -q tests/unit tests/storage

demo: venv
	PTB_TIMEDELTA=1 $(BIN)/python -m bot demo

# The rehearsal, then the emulated world keeps running with the bot's page (until Ctrl-C).
demo-serve: venv
	PTB_TIMEDELTA=1 $(BIN)/python -m bot demo --serve

run: venv
	PTB_TIMEDELTA=1 $(BIN)/python -m bot run --config $(CONFIG)

migrate: venv
	$(BIN)/python -m bot migrate --config $(CONFIG)

check-config: venv
	$(BIN)/python -m bot check-config --config $(CONFIG)

bench: venv
	PTB_TIMEDELTA=1 $(BIN)/python -m bench

# docs/openapi.json is the document GET /api/openapi.json serves; a test fails when they differ.
openapi: venv
	$(BIN)/python -m bot.api docs/openapi.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

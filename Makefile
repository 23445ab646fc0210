# One entry point. Every target sets itself up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install test test-fast lint format clean demo bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,lint,dev,example,e2e]'
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

## demo: the example chat site on http://127.0.0.1:8000 (REDIS_URL=redis://... for Redis)
demo: install
	$(BIN)/python example_project/manage.py migrate --verbosity 0
	$(BIN)/python example_project/manage.py seed_demo
	@echo
	@echo "Open http://127.0.0.1:8000/ in two browser windows; log in as alice in one, bob in the other."
	@echo "Channel layer: $${REDIS_URL:+channels_redis at $$REDIS_URL}$${REDIS_URL:-in memory (REDIS_URL=redis://... make demo for Redis)}"
	@echo "Command-line client: $(BIN)/python example_project/clients/chat_client.py --username bob --password bob-demo-password"
	@echo
	$(BIN)/python -m uvicorn config.asgi:application --app-dir example_project --host 127.0.0.1 --port 8000 --lifespan off

## test: every test on each supported Django (nox), 100% branch coverage required
test: install
	$(BIN)/coverage erase
	$(BIN)/nox --sessions tests -- $(PYTEST_ARGS)
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report

## test-fast: the suite once, in .venv (the newest Django), for quick iterations
test-fast: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## bench: handshake benchmarks, ratios to no auth (BENCH_ARGS=--quick for a smoke run)
bench: install
	$(BIN)/python -m pip install --quiet -r benchmarks/requirements.txt
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

## lint: ruff (lint + format check) and mypy --strict
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .nox .coverage .coverage.* .mypy_cache .ruff_cache .pytest_cache

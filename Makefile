# One entry point. Every target sets itself up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
CHECKSUM := $(shell cksum pyproject.toml | cut -d' ' -f1)
# What each kind of work installs (PEP 735 dependency groups in pyproject.toml).
DEV_STAMP := $(VENV)/.installed-dev-$(CHECKSUM)
DEMO_STAMP := $(VENV)/.installed-example-$(CHECKSUM)

.PHONY: install test test-fast lint format clean demo bench docs dist smoke fuzz stress

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# pip 25.1 is the first to read dependency groups (--group).
$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade 'pip>=25.1'
	$(BIN)/python -m pip install --quiet -e . --group dev
	rm -f $(VENV)/.installed-dev-* $(VENV)/.installed-example-*
	touch $@ $(DEMO_STAMP)

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade 'pip>=25.1'
	$(BIN)/python -m pip install --quiet -e . --group example
	rm -f $(VENV)/.installed-example-*
	touch $@

install: $(DEV_STAMP)

# The example's browser libraries (graphql-ws for the GraphQL feed page), from its lock file.
EXAMPLE_JS := example_project/node_modules/graphql-ws/package.json
$(EXAMPLE_JS): example_project/package-lock.json
	@if command -v npm >/dev/null; then \
		cd example_project && npm ci --no-audit --no-fund --loglevel error; \
	else \
		echo "npm not found: the chat works, the GraphQL feed page (/feed/) needs Node.js and npm."; \
	fi

## demo: the example chat site on http://127.0.0.1:$(PORT) (REDIS_URL=redis://... for Redis)
demo: $(DEMO_STAMP) $(EXAMPLE_JS)
	$(BIN)/python example_project/manage.py migrate --verbosity 0
	$(BIN)/python example_project/manage.py seed_demo
	@echo
	@echo "Open http://127.0.0.1:$(PORT)/ in two browser windows; log in as alice in one, bob in the other."
	@echo "The same room over GraphQL (graphql-ws): http://127.0.0.1:$(PORT)/feed/?room=lobby"
	@echo "Channel layer: $${REDIS_URL:+channels_redis at $$REDIS_URL}$${REDIS_URL:-in memory (REDIS_URL=redis://... make demo for Redis)}"
	@echo "Command-line client: $(BIN)/python example_project/clients/chat_client.py --server http://127.0.0.1:$(PORT) --username bob --password bob-demo-password"
	@echo
	$(BIN)/python -m uvicorn config.asgi:application --app-dir example_project --host 127.0.0.1 --port $(PORT) --lifespan off

## test: every test on each supported Django (nox), 100% branch coverage required
test: install
	$(BIN)/coverage erase
	$(BIN)/nox --sessions tests lowest -- $(PYTEST_ARGS)
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report

## test-fast: the suite once, in .venv (the newest Django), for quick iterations
test-fast: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## bench: handshake benchmarks, ratios to no auth (BENCH_ARGS=--quick for a smoke run);
## instructions per handshake need valgrind (without it that section says so and is skipped)
# valgrind counts the instructions and PostgreSQL serves two storm rows: installed here when
# missing and apt-get may run (as .ci/run does); otherwise those rows say "not run"/skipped.
BENCH_PACKAGES := $(shell command -v valgrind >/dev/null || echo valgrind) \
	$(shell ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || echo postgresql)

bench: install
	@if [ -n "$(strip $(BENCH_PACKAGES))" ]; then \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			DEBIAN_FRONTEND=noninteractive apt-get update -q && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(BENCH_PACKAGES); \
		else \
			echo "make bench: without$(BENCH_PACKAGES) the rows that need them are not run"; \
		fi; \
	fi
	$(BIN)/python -m pip install --quiet -r benchmarks/requirements.txt
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

## fuzz: atheris (coverage-guided) on extraction and verification, FUZZ_SECONDS each
## (crashes land in fuzz/findings/; the corpus grows in fuzz/work/ across runs)
FUZZ_SECONDS ?= 120
FUZZ_FLAGS = -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
fuzz: install
	$(BIN)/python -m pip install --quiet --group fuzz
	$(BIN)/python -m fuzz.make_corpus fuzz/corpus
	mkdir -p fuzz/work/extract fuzz/work/verify fuzz/findings
	status=0; \
	$(BIN)/python -m fuzz.fuzz_extract $(FUZZ_FLAGS) -dict=fuzz/handshake.dict \
		-artifact_prefix=fuzz/findings/extract- fuzz/work/extract fuzz/corpus/extract || status=1; \
	$(BIN)/python -m fuzz.fuzz_verify $(FUZZ_FLAGS) -dict=fuzz/jwt.dict \
		-artifact_prefix=fuzz/findings/verify- fuzz/work/verify fuzz/corpus/verify || status=1; \
	exit $$status

## stress: 10,000 held connections expiring on time and a 5,000-handshake storm on one uvicorn,
## then the reconnect-storm benchmark with 10,000 clients (figures in benchmarks/.state/)
stress: install
	$(BIN)/python -m pytest -m stress tests/stress -p no:cacheprovider -s $(PYTEST_ARGS)
	$(BIN)/python -m pip install --quiet -r benchmarks/requirements.txt
	$(BIN)/python -m benchmarks.run --only storm --storm-clients 10000 --storm-rounds 3 \
		--servers uvicorn --output benchmarks/.state/storm-10000.json

## lint: ruff (lint + format check), mypy --strict, import-linter (layers point down)
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## dist: sdist and wheel in dist/, checked with twine check --strict
dist: install
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*

## smoke: the built wheel in a clean venv (Python 3.13, Django 6.1): checks and one handshake
smoke: dist
	$(BIN)/nox --no-reuse-existing-virtualenvs --sessions smoke

## docs: the Sphinx site in docs/_build/html; any warning (even a broken reference) fails it
docs: install
	$(BIN)/python -m sphinx -n -W --keep-going -b html docs docs/_build/html

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .nox dist build .coverage .coverage.* .mypy_cache .ruff_cache .pytest_cache docs/_build \
		example_project/node_modules

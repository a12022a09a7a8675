# The two commands: `make run` (dashboard with demo data) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run run-prod test test-fast test-faults mutation lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The Dev Containers CLI for the container backend, pinned in package-lock.json; Node from the
# system. Without npm the runner keeps to the bubblewrap backend (make run says so).
NODE_STAMP := node_modules/.installed
$(NODE_STAMP): package.json package-lock.json
	if command -v npm >/dev/null; then npm ci --no-audit --no-fund --loglevel=error && touch $(NODE_STAMP); \
	else echo "npm not found: the Dev Containers CLI is not installed (the container backend needs it)"; fi

install: $(STAMP) $(NODE_STAMP)

run: install
	$(PY) manage.py migrate --no-input
	$(PY) manage.py container_setup
	$(PY) manage.py demo_data
	$(PY) manage.py serve

# The production topology on this machine: PostgreSQL, Redis, gunicorn, a worker per queue, beat.
run-prod: install
	bash scripts/run_prod.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: install lint
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) manage.py check
	$(PY) -m pytest $(PYTEST_ARGS)

# The fast lane: every test that starts no process (all but tests/processes/; one that tries fails),
# without the API fuzzer (half the lane's time; `make test` runs it).
test-fast: install
	$(PY) -m pytest --no-processes --ignore=tests/processes -m "not fuzz" $(PYTEST_ARGS)

# A mutation run: each of the rules in scripts/mutation_run.py broken in turn, and the tests that must
# notice run against it (about 6 minutes); the score and any survivor at the end.
mutation: install
	$(PY) scripts/mutation_run.py $(MUTANTS)

# The fault tests alone; they need PostgreSQL and Redis (DATABASE_URL, CELERY_BROKER_URL), else they skip.
test-faults: install
	$(PY) -m pytest -m faults tests/processes/faults $(PYTEST_ARGS)

bench: install
	@ls bench/*.py >/dev/null 2>&1 && for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done || echo "no benchmarks yet"

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache

# The two commands: `make run` (dashboard with demo data) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) manage.py migrate --no-input
	$(PY) manage.py demo_data
	$(PY) manage.py serve

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: install lint
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) manage.py check
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	@ls bench/*.py >/dev/null 2>&1 && for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done || echo "no benchmarks yet"

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache

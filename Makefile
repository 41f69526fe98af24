# mintaudit: `make demo` runs the main job on the embedded data; `make test` runs the tests.
# Every target creates .venv when missing and installs the package with its dev extras first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.mintaudit-installed
# The CPU wheel of torch, installed before the package so its range never pulls a CUDA build.
TORCH  ?= torch==2.13.0
# One torch thread per test process: on 2 shared cores more threads spin-wait and run slower.
TEST_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PYTEST := $(TEST_ENV) $(PY) -m pytest -q

.PHONY: demo test test-slow check lint format docs install bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mintaudit demo --out runs/demo

# The suite without the heavy end-to-end cases (marked slow: those are `make test-slow`; CI runs both).
test: $(STAMP)
	$(PYTEST) -m "not slow"

# The heavy end-to-end cases (marked slow): real data, full pipelines, torchrun, minutes each.
test-slow: $(STAMP)
	$(PYTEST) -m slow

# Lint and format check, then the fast tier: no end-to-end or integration case, no real data set on disk.
check: lint
	$(PYTEST) -x -m "not slow and not fashion and not integration"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples docs/*.py
	$(VENV)/bin/ruff format --check src tests benchmarks examples docs/*.py

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks examples docs/*.py
	$(VENV)/bin/ruff check --fix src tests benchmarks examples docs/*.py

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir site

bench: $(STAMP)
	$(PY) benchmarks/passive_sweep.py

clean:
	rm -rf runs site .pytest_cache

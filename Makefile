# mintaudit: `make demo` runs the main job on the embedded data; `make test` runs the tests.
# Both create .venv when missing and install the package with its dev extras first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.mintaudit-installed
# The CPU wheel of torch, installed before the package so its range never pulls a CUDA build.
TORCH  ?= torch==2.13.0

.PHONY: demo test install bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mintaudit demo --out runs/demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/passive_sweep.py

clean:
	rm -rf runs .pytest_cache

# flarelib: two commands do everything.
#   make demo   set up .venv, build the embedded data, run every notebook (full size) -> build/
#   make test   set up .venv and run the tests (including every notebook in small mode)
#
# GPU installs: CPU torch==2.13.0 is the default. Override the torch requirement and, if needed, the pip
# options used for it, e.g.  make demo TORCH_SPEC="torch==2.13.0" TORCH_PIP_ARGS="--index-url <CUDA wheel index>"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.flarelib-installed

.PHONY: setup data demo test lab bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

data: setup
	$(PY) -m flarelib.catalog build sample-flare-2011-02-15 fulldisk-2014-01-01 synthetic-sun-small synthetic-sun-default

demo: data
	MPLBACKEND=Agg $(PY) -m flarelib.suite --size default

test: setup
	$(PY) -m pytest

lab: setup
	FLARELIB_SIZE=$${FLARELIB_SIZE:-small} $(VENV)/bin/jupyter lab notebooks/

bench: setup
	$(PY) benchmarks/bench_store.py
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_explain.py
	$(PY) benchmarks/bench_ingest.py

clean:
	rm -rf build

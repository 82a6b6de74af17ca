# flarelib: two commands do everything.
#   make demo   set up .venv, build the embedded data, run every notebook (full size) -> build/
#   make test   set up .venv, lint (make lint), then run the tests (including every notebook in small mode)
#   make lessons      notebook 09 (the lessons) at the default size, one seed (make demo leaves it out: 10 min)
#   make images       the converged CNN + GOES model against the GOES-only model, 3 seeds (4.5 min)
#   make experiments  the model comparison, make images and the full lessons (notebook 09 with 3 seeds) -> build/results/
# While developing:
#   make lint       ruff check . (rules in pyproject.toml [tool.ruff]; the same hook runs in .pre-commit-config.yaml)
#   make test-fast  the tests without the notebook suite, the browser and the slow (Dask/DDP) tests (~80 s on 2 cores)
#
# torch: a CPU build by default. On Linux, PyPI's torch==2.13.0 is the CUDA build (several GB of NVIDIA
# libraries), so the default asks for the CPU build by its local version (+cpu), which only PyTorch's CPU wheel
# index and local wheel folders hold: it installs the CPU build or fails, never the CUDA one. Where that index is
# unreachable (an offline mirror, a sandbox) pip gives up on it after one retry and takes +cpu from its
# configured find-links or mirror. macOS and Windows wheels on PyPI are CPU builds already.
# GPU installs override both, e.g.  make demo TORCH_SPEC="torch==2.13.0" TORCH_PIP_ARGS="--index-url <CUDA index>"
PYTHON ?= python3
VENV ?= .venv
CPU_TORCH_INDEX := https://download.pytorch.org/whl/cpu
ifeq ($(shell uname -s),Linux)
TORCH_SPEC ?= torch==2.13.0+cpu
TORCH_PIP_ARGS ?= --extra-index-url $(CPU_TORCH_INDEX) --retries 1 --timeout 20
else
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
endif
PY := $(VENV)/bin/python
STAMP := $(VENV)/.flarelib-installed

.PHONY: setup data demo lessons images experiments lint test test-fast lab bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

data: setup
	$(VENV)/bin/flarelib catalog build sample-flare-2011-02-15 fulldisk-2014-01-01 synthetic-sun-small synthetic-sun-default

# builds the data itself (timed), runs the notebooks, writes build/results/run_times-default.csv
demo: setup
	MPLBACKEND=Agg $(PY) -m flarelib.suite --size default

# notebook 09 (the lessons) at the default size with one seed: make demo leaves it out to stay under 10 minutes
lessons: setup
	MPLBACKEND=Agg $(PY) -m flarelib.suite --size default --only 09

# the converged CNN + GOES model against the GOES-only model, 3 seeds with early stopping (4.5 min on 2 cores)
#   -> build/results/images_over_goes.csv; make images IMAGES_ARGS="--keep models/forecast-cnn-goes" keeps the checkpoints
IMAGES_ARGS ?=
images: setup
	MPLBACKEND=Agg $(PY) -m flarelib.experiments --only images --seeds 3 $(IMAGES_ARGS)

# the model comparison, make images and the full lessons (3 seeds, every span): hours on 2 cores, see the README
experiments: data
	MPLBACKEND=Agg $(PY) -m flarelib.suite --experiments

lint: setup
	$(PY) -m ruff check .

test: setup lint
	$(PY) -m pytest

# tests marked `slow` (more than a few seconds: training, Dask, servers, whole ingests) are left out too
test-fast: setup
	$(PY) -m pytest -m "not notebooks and not browser and not slow"

# binder/requirements.txt: Binder's pinned lock, pyproject.toml's dependencies at the versions of the tested .venv
# (scripts/lock_binder.py, uv pip compile; binder/README.md). Rerun after a dependency change and `make setup`.
.PHONY: binder-lock
binder-lock: setup
	$(PY) scripts/lock_binder.py --venv $(VENV)

lab: setup
	FLARELIB_SIZE=$${FLARELIB_SIZE:-small} $(VENV)/bin/jupyter lab notebooks/

bench: setup
	$(PY) benchmarks/bench_store.py
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_explain.py
	$(PY) benchmarks/bench_ingest.py

clean:
	rm -rf build

# Set-up, demo and tests. `make demo` and `make test` work on a fresh machine (Python >= 3.11, network to PyPI).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=
EXTRAS ?= dev

.PHONY: setup demo test test-unit test-all bench evidence clean

$(BIN)/qtalign: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build on a CPU machine
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	touch $(BIN)/qtalign

# the tests also need the pinned lm-evaluation-harness (tests/integration/test_lmeval.py; docs/lm-eval.md) and
# submitit (tests/unit/test_jobs.py: the study engine in its local mode; docs/distributed.md)
$(VENV)/.test-extras: $(BIN)/qtalign
	$(BIN)/pip install -q -e ".[dev,lmeval,slurm]"
	touch $@

setup: $(BIN)/qtalign

demo: setup
	$(BIN)/qtalign demo

test: $(VENV)/.test-extras
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-unit: $(VENV)/.test-extras
	$(BIN)/python -m pytest -q tests/unit $(PYTEST_ARGS)

test-all: $(VENV)/.test-extras
	$(BIN)/python -m pytest -q -m "" $(PYTEST_ARGS)

# every number the docs quote is claimed or exempt (seconds); then recompute every published table and interval
# from the per-item evidence kept in docs/evidence/ and check each claim where it stands (no model, minutes)
evidence: setup
	$(BIN)/qtalign evidence coverage
	for f in $(wildcard docs/evidence/*.json.xz docs/evidence/*.json.gz); do $(BIN)/qtalign evidence check "$$f" || exit 1; done

bench: setup
	$(BIN)/python benchmarks/bench_eval.py

clean:
	rm -rf $(VENV) runs .pytest_cache

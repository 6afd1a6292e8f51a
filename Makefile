# Set-up, demo and tests. `make demo` and `make test` work on a fresh machine (Python >= 3.11, network to PyPI).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=
EXTRAS ?= dev,lmeval

.PHONY: setup demo test test-unit test-all bench evidence clean

$(BIN)/qtalign: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build on a CPU machine
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH)"
	# lmeval: the pinned lm-evaluation-harness that tests/integration/test_lmeval.py runs (docs/lm-eval.md)
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	touch $(BIN)/qtalign

setup: $(BIN)/qtalign

demo: setup
	$(BIN)/qtalign demo

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-unit: setup
	$(BIN)/python -m pytest -q tests/unit $(PYTEST_ARGS)

test-all: setup
	$(BIN)/python -m pytest -q -m "" $(PYTEST_ARGS)

# recompute every published table and interval from the per-item evidence kept in docs/evidence/ (no model, minutes)
evidence: setup
	for f in docs/evidence/*.json.gz; do $(BIN)/qtalign evidence check "$$f" || exit 1; done

bench: setup
	$(BIN)/python benchmarks/bench_eval.py

clean:
	rm -rf $(VENV) runs .pytest_cache

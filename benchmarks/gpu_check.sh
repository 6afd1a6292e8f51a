#!/usr/bin/env bash
# GPU check (issue 10): the tests marked `cuda`, then bf16 / 4-bit evaluation and LoRA / QLoRA steps of a
# Qwen1.5-1.8B-shaped model with random weights (benchmarks/gpu_check.py); table on stdout, JSON and logs in
# $OUT (the device tool's output folder) or runs/gpu_check.
#   bash benchmarks/gpu_check.sh                  # on a GPU machine: < 8 minutes on one H100
#   bash benchmarks/gpu_check.sh --cpu-dry-run    # here: tiny model on CPU (PYTHON=/path/to/python to choose one)
# No install: qtalign comes from src/, and from .gpu/site (when present) what the machine lacks (pydantic,
# bitsandbytes). Further arguments go to gpu_check.py.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
# .gpu/site is for the GPU machine's Python only (its compiled packages would shadow this venv's in a dry run)
if [ -d .gpu/site ] && [[ " $* " != *" --cpu-dry-run "* ]]; then export PYTHONPATH="$PYTHONPATH:$PWD/.gpu/site"; fi
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
OUTDIR=${OUT:-runs/gpu_check}
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do [ "${args[i]}" = "--out" ] && OUTDIR=${args[i+1]:-$OUTDIR}; done
mkdir -p "$OUTDIR"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

echo "== tests marked cuda (skipped without CUDA)"
timeout 150 "$PY" -m pytest -q -p no:cacheprovider -m cuda tests/unit/test_cuda.py -rs 2>&1 | tee "$OUTDIR/gpu_tests.log"
tests=${PIPESTATUS[0]}

echo "== benchmarks/gpu_check.py"
timeout 320 "$PY" benchmarks/gpu_check.py --out "$OUTDIR" "$@" 2>&1 | tee "$OUTDIR/gpu_check.log"
bench=${PIPESTATUS[0]}
echo "tests exit $tests, gpu_check exit $bench"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ]

"""benchmarks/gpu_check.sh --cpu-dry-run: the GPU check's CPU-safe parts run end to end here (tiny Qwen2, CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_dry_run(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OUT"} | {"PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--cpu-dry-run", "--out",
                           str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--items", "6"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert result["errors"] == []
    assert result["model"]["config"]["model_type"] == "qwen2" and result["tokenizer"]["vocab"] == 16000
    rows = {(r["phase"], r["task"]): r for r in result["eval"]}
    assert set(rows) == {("fp32-auto", t) for t in ("emotion", "nli", "paraphrase")} | {("fp32-batch8", "emotion")}
    assert all(r["items"] == 6 and r["complete"] and r["batch_size_used"] == 8 for r in rows.values())
    (train,) = result["train"]
    assert train["phase"] == "lora-fp32" and train["steps"] == 2 and train["tokens_per_s"] > 0
    assert "tests marked cuda" in proc.stdout and "skipped" in proc.stdout
    assert (tmp_path / "out" / "gpu_tests.log").is_file() and (tmp_path / "out" / "gpu_check.log").is_file()
    assert "items/s" in proc.stdout  # the table
    table = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "scaling_table.py"),
                            str(tmp_path / "out" / "gpu_check.json")], capture_output=True, text=True, check=True)
    assert "| **eval, one model (32,000 prompts), fp32** |" in table.stdout and "lora-fp32" in table.stdout

"""Wall time of a small real study with `qtalign run --jobs 1` vs `--jobs 2`, run A B B A (each from an empty study
folder, model cache warm), with the load average around each run and a check that the outputs agree.

    python benchmarks/bench_jobs.py --data-root ../shared/data/paper --work /tmp/bench-jobs
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

CONFIG = Path(__file__).with_name("study_jobs.yaml")


def outputs(root: Path) -> dict[str, str]:
    """sha256 of every eval's predictions and every adapter's weights (what must not depend on --jobs)."""
    out = {}
    for p in sorted((root / "steps").rglob("*")):
        if p.name in ("predictions.jsonl", "adapter_model.safetensors", "pairs.jsonl"):
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run(variant: str, data_root: str, work: Path, n: int) -> dict[str, object]:
    out = work / "S"  # the same folder every time: records name their paths
    shutil.rmtree(out, ignore_errors=True)
    argv = [sys.executable, "-m", "qtalign", "run", str(CONFIG), "--data-root", data_root, "--out", str(out),
            "--no-progress", "--jobs", variant]
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    load1 = os.getloadavg()
    if p.returncode != 0:
        raise SystemExit(f"--jobs {variant} failed:\n{p.stderr[-2000:]}")
    (work / f"run{n}-jobs{variant}.log").write_text(p.stdout + p.stderr, encoding="utf-8")
    return {"run": n, "jobs": int(variant), "seconds": round(seconds, 1), "load_before": [round(x, 2) for x in load0],
            "load_after": [round(x, 2) for x in load1], "outputs": outputs(out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", default="../shared/data/paper")
    ap.add_argument("--work", default="/tmp/bench-jobs")
    ap.add_argument("--order", default="1,2,2,1", help="the --jobs of each run, in order (default A B B A)")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for n, variant in enumerate(args.order.split(","), 1):
        row = run(variant, args.data_root, work, n)
        rows.append(row)
        print(f"run {n}: --jobs {row['jobs']}: {row['seconds']:.0f} s (load average 1/5/15 min before "
              f"{row['load_before']}, after {row['load_after']})", flush=True)
    same = all(r["outputs"] == rows[0]["outputs"] for r in rows)
    print(f"predictions, pairs and adapter weights identical across runs: {same} "
          f"({len(rows[0]['outputs'])} files)")
    for j in sorted({r["jobs"] for r in rows}):
        times = [r["seconds"] for r in rows if r["jobs"] == j]
        print(f"--jobs {j}: {', '.join(f'{t:.0f}' for t in times)} s (mean {sum(times) / len(times):.0f} s)")
    (work / "bench_jobs.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()

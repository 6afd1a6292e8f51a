"""Recompute the in-task headline from docs/evidence/intask.json.xz with numpy alone (no qtalign code).

The project's rule: recompute a headline with code written fresh before publishing it. This script reads the
evidence file directly, matches items by index, and gives the change of the 20-language mean accuracy over the
3 training seeds x 2 demonstration sets of the in-task study, for real - base and real - copy, raw and
batch-calibrated, with a 95% percentile bootstrap that resamples training seeds, then demonstration sets, then
item indices (one draw for every language and every run; each run averages the drawn items it scored).

    python docs/evidence/recompute_headline.py [--evidence docs/evidence/intask.json.xz] [--boot 4000] [--seed 1]

Prints one line per number, in points, and with --json a JSON object of them.
"""

from __future__ import annotations

import argparse
import gzip
import json
import lzma
import posixpath
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _unzip(data: bytes) -> bytes:
    """The JSON bytes of an evidence file: xz (b"\\xfd7zXZ" first) or gzip."""
    return lzma.decompress(data) if data[:5] == b"\xfd7zXZ" else gzip.decompress(data)


def read_evidence(path: Path) -> tuple[dict, dict[str, str], str]:
    """study.json, the packed files (keyed by their path inside the study folder) and the recorded study root."""
    payload = json.loads(_unzip(path.read_bytes()).decode("utf-8"))
    files = payload["files"]
    return json.loads(files["study.json"]), files, payload.get("root", "")


def run_key(run: str, root: str) -> str:
    """A study.json `run` as a key of the packed files: relative to the study folder (older files record it
    relative already; an absolute one is taken relative to the packed root)."""
    run = run.replace("\\", "/")
    if posixpath.isabs(run) and root and posixpath.isabs(root):
        run = posixpath.relpath(run, root)
    return run.strip("/")


def correct_table(rows_text: str, mode: str) -> dict[tuple[str, int], float]:
    """(language, item index) -> 1.0 / 0.0 correct, raw or for one calibration mode."""
    out = {}
    for line in rows_text.splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        ok = r["correct"] if mode == "raw" else (r.get("correct_cal") or {})[mode]
        out[str(r["lang"]), int(r["index"])] = 1.0 if ok else 0.0
    return out


def item_means(a: dict[tuple[str, int], float], b: dict[tuple[str, int], float]) -> dict[int, float]:
    """Item index -> mean over languages of (a - b) for the items both runs scored, in every language they share."""
    langs = sorted({k[0] for k in a} & {k[0] for k in b})
    items = sorted({k[1] for k in a} & {k[1] for k in b})
    out = {}
    for i in items:
        if all((lang, i) in a and (lang, i) in b for lang in langs):
            out[i] = float(np.mean([a[lang, i] - b[lang, i] for lang in langs]))
    return out


def pooled(runs: dict[tuple[int, int], dict[int, float]], n_boot: int, seed: int) -> tuple[float, float, float]:
    """(point, lo, hi): the mean over runs of each run's mean over its items, and the three-level bootstrap."""
    keys = sorted(runs)
    seeds = sorted({k[0] for k in keys})
    demos = sorted({k[1] for k in keys})
    universe = sorted(set().union(*[set(v) for v in runs.values()]))  # every item index any run scored
    pos = {i: p for p, i in enumerate(universe)}
    values = np.full((len(keys), len(universe)), np.nan)  # [runs, items]: NaN where a run did not score the item
    for c, k in enumerate(keys):
        for i, v in runs[k].items():
            values[c, pos[i]] = v
    scored = ~np.isnan(values)
    filled = np.where(scored, values, 0.0)
    point = float(np.mean([np.mean(list(runs[k].values())) for k in keys]))
    rng = np.random.default_rng(seed)
    # item draws first (one per replicate, shared by all runs and languages), then seeds, then demonstration sets
    counts = np.zeros((n_boot, len(universe)))
    draws = rng.integers(0, len(universe), size=(n_boot, len(universe)))
    for b in range(n_boot):
        counts[b] = np.bincount(draws[b], minlength=len(universe))
    sums = counts @ filled.T  # [B, runs]: sum of the drawn items' values per run
    ns = counts @ scored.T.astype(float)  # [B, runs]: how many drawn items each run scored
    run_rep = sums / np.maximum(ns, 1)
    wt = np.stack([np.bincount(rng.integers(0, len(seeds), len(seeds)), minlength=len(seeds))
                   for _ in range(n_boot)]).astype(float)  # [B, T]
    wd = np.stack([np.bincount(rng.integers(0, len(demos), len(demos)), minlength=len(demos))
                   for _ in range(n_boot)]).astype(float)  # [B, D]
    w = np.stack([wt[:, seeds.index(k[0])] * wd[:, demos.index(k[1])] for k in keys], axis=1)  # [B, runs]
    w = np.where(ns > 0, w, 0.0)
    est = (w * run_rep).sum(1) / np.where(w.sum(1) > 0, w.sum(1), np.nan)
    lo, hi = np.nanquantile(est, [0.025, 0.975])
    return point, float(lo), float(hi)


def headline(path: Path, n_boot: int, seed: int) -> dict[str, list[float]]:
    study, files, root = read_evidence(path)
    evals = study["evals"]

    def table(e: dict, mode: str) -> dict[tuple[str, int], float]:
        return correct_table(files[f"{run_key(e['run'], root)}/predictions.jsonl"], mode)

    base = {e["demo_seed"]: e for e in evals if e.get("mix") is None}
    real = {(e["train_seed"], e["demo_seed"]): e for e in evals if e.get("mix") == "zh-es-en" and not e.get("control")}
    copy = {(e["train_seed"], e["demo_seed"]): e for e in evals if e.get("control") == "copy"}
    out = {}
    for mode in ("raw", "batch"):
        vs_base = {k: item_means(table(e, mode), table(base[k[1]], mode)) for k, e in real.items()}
        vs_copy = {k: item_means(table(e, mode), table(copy[k], mode)) for k, e in real.items() if k in copy}
        out[f"real - base, {mode}"] = [100 * x for x in pooled(vs_base, n_boot, seed)]
        out[f"real - copy, {mode}"] = [100 * x for x in pooled(vs_copy, n_boot, seed)]
        for d in sorted(base):
            sub = {k: v for k, v in vs_base.items() if k[1] == d}
            out[f"real - base, {mode}, demonstration set {d}"] = [100 * x for x in pooled(sub, n_boot, seed)]
            sub = {k: v for k, v in vs_copy.items() if k[1] == d}
            out[f"real - copy, {mode}, demonstration set {d}"] = [100 * x for x in pooled(sub, n_boot, seed)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evidence", type=Path, default=HERE / "intask.json.xz")
    ap.add_argument("--boot", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print a JSON object instead of lines")
    a = ap.parse_args()
    out = headline(a.evidence, a.boot, a.seed)
    if a.json:
        print(json.dumps(out))
        return
    for name, (v, lo, hi) in out.items():
        print(f"{name}: {v:+.1f} [{lo:+.1f}, {hi:+.1f}]")


if __name__ == "__main__":
    main()

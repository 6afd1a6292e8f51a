"""Recompute the paper-findings table (docs/findings.md) with numpy alone, from a study folder or its evidence file.

A second implementation, written without qtalign's code: it reads every finished evaluation's per-item rows,
recomputes batch calibration from the stored label probabilities (and counts where its prediction differs from the
stored one), and for each finding of the study config gives the contrast mean(plus arms) - mean(minus arms) (or the
plus arms' change from base), per demonstration set and pooled, over the languages the finding names, with a 95%
percentile bootstrap that draws item indices once per replicate for every run and language and resamples the
demonstration sets; `+seed` adds the training-seed component of one-seed arms (findings.train_sd, normal, weighted
as each arm is in the contrast). Findings whose arms have not all run are listed as pending.

    python docs/evidence/recompute_findings.py runs/findings            # a study folder (finished steps only)
    python docs/evidence/recompute_findings.py docs/evidence/findings.json.xz
    options: --boot 20000 --seed 1 --json

Numbers are in points (accuracy x 100).
"""

from __future__ import annotations

import argparse
import gzip
import json
import lzma
import posixpath
from pathlib import Path

import numpy as np


def _unzip(data: bytes) -> bytes:
    """The JSON bytes of an evidence file: xz (b"\\xfd7zXZ" first) or gzip."""
    return lzma.decompress(data) if data[:5] == b"\xfd7zXZ" else gzip.decompress(data)


class Source:
    """study.json and the text of the study's files, from a folder or from an evidence file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.is_dir():
            self.study = json.loads((path / "study.json").read_text("utf-8"))
            self.files: dict[str, str] | None = None
            self.root = ""
        else:
            payload = json.loads(_unzip(path.read_bytes()).decode("utf-8"))
            self.files = payload["files"]
            self.study = json.loads(self.files["study.json"])
            self.root = payload.get("root", "")

    def rel(self, run: str) -> str:
        run = run.replace("\\", "/")
        if posixpath.isabs(run) and self.root and posixpath.isabs(self.root):
            run = posixpath.relpath(run, self.root)
        return run.strip("/")

    def finished(self, run: str) -> bool:
        """A run counts when its results were written (its step finished)."""
        if self.files is not None:
            return f"{self.rel(run)}/predictions.jsonl" in self.files
        return (self.path / run / "results.json").is_file() and (self.path / run / "predictions.jsonl").is_file()

    def rows(self, run: str) -> list[dict]:
        if self.files is not None:
            text = self.files[f"{self.rel(run)}/predictions.jsonl"]
        else:
            text = (self.path / run / "predictions.jsonl").read_text("utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def correctness(rows: list[dict]) -> tuple[dict[str, dict[tuple[str, int], float]], int]:
    """mode -> (language, item index) -> 1.0 / 0.0, raw and batch-calibrated (recomputed here: each label's log
    probability minus its mean over the language's scored items, then the largest); and how many recomputed batch
    predictions differ from the stored ones."""
    out: dict[str, dict[tuple[str, int], float]] = {"raw": {}, "batch": {}}
    by_lang: dict[str, list[dict]] = {}
    for r in rows:
        by_lang.setdefault(str(r["lang"]), []).append(r)
        out["raw"][str(r["lang"]), int(r["index"])] = 1.0 if r["correct"] else 0.0
    differ = 0
    for lang, rs in by_lang.items():
        labels = sorted(rs[0]["probs"])
        logp = np.log(np.array([[max(r["probs"][lab], 1e-300) for lab in labels] for r in rs]))  # [items, labels]
        cal = logp - logp.mean(axis=0, keepdims=True)
        for r, row in zip(rs, cal):
            pred = labels[int(np.argmax(row))]
            out["batch"][lang, int(r["index"])] = 1.0 if pred == r["gold"] else 0.0
            stored = (r.get("pred_cal") or {}).get("batch")
            differ += stored is not None and stored != pred
    return out, differ


def trained_languages(mixes: list[dict]) -> set[str]:
    """Every language some mix trains on: its sources and its target (a `copy` control, X => X: its sources only; an
    `english` one: English only)."""
    langs: set[str] = set()
    for m in mixes:
        if m.get("control") == "english":
            langs.add("en")
            continue
        langs.update(m["sources"])
        if m.get("control") != "copy":
            langs.add(m["target"])
    return langs


def bootstrap(cells: dict[int, dict[int, float]], var_seed: float, n_boot: int, seed: int) -> tuple[float, float,
                                                                                                     float, float]:
    """(point, lo, hi, lo/hi with the seed component folded in as a half-width) of the mean over demonstration sets of
    each set's mean over its items; cells: set -> item index -> the contrast at that item."""
    sets = sorted(cells)
    universe = sorted(set().union(*[set(c) for c in cells.values()]))
    pos = {i: k for k, i in enumerate(universe)}
    vals = np.full((len(sets), len(universe)), np.nan)  # [sets, items]
    for s, d in enumerate(sets):
        for i, v in cells[d].items():
            vals[s, pos[i]] = v
    have = ~np.isnan(vals)
    point = float(np.mean([np.mean(list(cells[d].values())) for d in sets]))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(universe), size=(n_boot, len(universe)))
    counts = np.stack([np.bincount(b, minlength=len(universe)) for b in draws]).astype(float)  # [B, items]
    per_set = (counts @ np.where(have, vals, 0.0).T) / np.maximum(counts @ have.T.astype(float), 1)  # [B, sets]
    wd = np.stack([np.bincount(rng.integers(0, len(sets), len(sets)), minlength=len(sets))
                   for _ in range(n_boot)]).astype(float)  # [B, sets]
    est = (wd * per_set).sum(1) / wd.sum(1)
    est_seed = est + rng.normal(0.0, np.sqrt(var_seed), size=n_boot)
    lo, hi = np.quantile(est, [0.025, 0.975])
    slo, shi = np.quantile(est_seed, [0.025, 0.975])
    return point, float(lo), float(hi), float(slo), float(shi)


def findings(path: Path, n_boot: int, seed: int) -> dict:
    src = Source(path)
    cfg = src.study["config"]
    fcfg = cfg["findings"]
    evals = [e for e in src.study["evals"] if src.finished(e["run"])]
    table: dict[tuple[str, int], dict[str, dict[tuple[str, int], float]]] = {}  # (arm, demo set) -> mode -> cells
    differ = 0
    for e in evals:
        if e.get("train_seed") not in (None, cfg["seeds"]["train"][0]):
            continue
        arm = e.get("mix") or "base"
        table[arm, int(e["demo_seed"])], d = correctness(src.rows(e["run"]))
        differ += d
    all_langs = sorted({k[0] for v in table.values() for k in v["raw"]})
    unseen = sorted(set(all_langs) - trained_languages(cfg["mixes"]))
    one_seed = len(cfg["seeds"]["train"]) == 1
    out: dict = {"evaluations": len(table), "batch predictions differing from the stored ones": differ,
                 "unseen languages": unseen, "findings": {}, "arms": {}}

    def change(arm: str, d: int, mode: str, langs: list[str]) -> dict[int, float]:
        """item index -> mean over langs of (arm - base) correctness in demonstration set d."""
        a, b = table[arm, d][mode], table["base", d][mode]
        items = sorted({i for (lang, i) in a if lang in langs})
        return {i: float(np.mean([a[lang, i] - b[lang, i] for lang in langs])) for i in items}

    arms = sorted({k[0] for k in table} - {"base"})
    for arm in arms:
        for mode in fcfg["modes"]:
            for name, langs in (("all", all_langs), ("unseen", unseen)):
                sets = [d for (a, d) in table if a == arm and ("base", d) in table]
                cells = {d: change(arm, d, mode, langs) for d in sets}
                if cells:
                    var = fcfg["train_sd"][mode] ** 2 if one_seed else 0.0
                    out["arms"][f"{arm}, {mode}, {name}"] = [round(100 * x, 2) for x in
                                                            bootstrap(cells, var, n_boot, seed)] + [len(sets)]
    for row in fcfg["rows"]:
        if row.get("untestable"):
            continue
        plus, minus = row["plus"], row.get("minus", [])
        langs = unseen if row.get("langs") == "unseen" else all_langs
        sets = sorted(d for d in {k[1] for k in table}
                      if all((a, d) in table for a in plus + minus + ["base"]))
        for mode in fcfg["modes"]:
            key = f"{row['id']}, {mode}"
            if not sets:
                out["findings"][key] = "pending: " + ", ".join(
                    a for a in plus + minus if not any(k[0] == a for k in table)) + " not evaluated"
                continue
            cells = {}
            for d in sets:
                ch = {a: change(a, d, mode, langs) for a in plus + minus}
                items = sorted(set.intersection(*[set(c) for c in ch.values()]))
                cells[d] = {i: float(np.mean([ch[a][i] for a in plus])
                                     - (np.mean([ch[a][i] for a in minus]) if minus else 0.0)) for i in items}
            w2 = len(plus) * (1 / len(plus)) ** 2 + (len(minus) * (1 / len(minus)) ** 2 if minus else 0.0)
            var = w2 * fcfg["train_sd"][mode] ** 2 if one_seed else 0.0
            out["findings"][key] = [round(100 * x, 2) for x in bootstrap(cells, var, n_boot, seed)] + [len(sets)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="a study folder or an evidence file (.json.xz or .json.gz)")
    ap.add_argument("--boot", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print a JSON object instead of lines")
    a = ap.parse_args()
    out = findings(a.source, a.boot, a.seed)
    if a.json:
        print(json.dumps(out, indent=1))
        return
    print(f"{out['evaluations']} evaluations read; recomputed batch predictions differing from the stored ones: "
          f"{out['batch predictions differing from the stored ones']}; unseen languages: "
          f"{' '.join(out['unseen languages'])}")
    print("points: estimate [items + demonstration sets] [+ training seed] (demonstration sets)")
    for part in ("findings", "arms"):
        print(f"-- {part}")
        for name, v in out[part].items():
            if isinstance(v, str):
                print(f"{name}: {v}")
            else:
                p, lo, hi, slo, shi, n = v
                print(f"{name}: {p:+.1f} [{lo:+.1f}, {hi:+.1f}] [{slo:+.1f}, {shi:+.1f}] ({n})")


if __name__ == "__main__":
    main()

"""An eval run's output: calibrated predictions in item order, results.json (aggregation) and the console table."""

from __future__ import annotations

import json
import platform
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

from qtalign import __version__, calibration
from qtalign.eval.prepare import Prepared
from qtalign.eval.settings import EvalSettings
from qtalign.metrics import bootstrap_accuracy, bootstrap_mean_accuracy, resampling_scheme, run_summaries
from qtalign.runs.eval import PREDICTIONS, RESULTS
from qtalign.store import atomic_write_json, atomic_write_text, read_jsonl_rows, sha256_json


def versions() -> dict[str, str]:
    """The versions results.json records: qtalign, Python, torch, transformers and peft (when installed)."""
    import torch
    import transformers

    out = {"qtalign": __version__, "python": platform.python_version(), "torch": torch.__version__,
           "transformers": transformers.__version__}
    try:
        import peft

        out["peft"] = peft.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


def finish_run(s: EvalSettings, prep: Prepared, out: Path, model_info: dict[str, Any],
               cf: dict[str, Any]) -> dict[str, Any]:
    """Add the calibrated predictions, rewrite predictions.jsonl in item order and write results.json."""
    rows = ordered_rows(prep, s.task, read_jsonl_rows(out / PREDICTIONS))
    by_lang: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_lang.setdefault(r["lang"], []).append(r)
    for lang in prep.prompts:
        got = by_lang.get(lang, [])
        cf_rows = cf["languages"].get(lang, {}).get("rows")
        preds = calibration.calibrate_language(got, prep.task.labels, s.calibrate, s.seed, cf_rows)
        for r, p in zip(got, preds):
            r.pop("pred_cal", None)
            r.pop("correct_cal", None)
            if p:
                r["pred_cal"] = p
                r["correct_cal"] = {m: lb == r["gold"] for m, lb in p.items()}
    atomic_write_text(out / PREDICTIONS, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    results = aggregate(s, prep, rows, model_info)
    atomic_write_json(out / RESULTS, results)
    return results


def ordered_rows(prep: Prepared, task: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """This run's rows in item order (languages in settings order, items in prompt order), one per item; rows of no
    item of this run are kept after them, in file order."""
    keys = [(lang, it.index) for lang, lp in prep.prompts.items() for it in lp.items]
    wanted = set(keys)
    by_key = {(r["lang"], r["index"]): r for r in rows if r.get("task") == task}
    extra = [r for r in rows if r.get("task") != task or (r["lang"], r["index"]) not in wanted]
    return [dict(by_key[k]) for k in keys if k in by_key] + extra


def aggregate(s: EvalSettings, prep: Prepared, rows: list[dict[str, Any]], model_info: dict[str, Any]) -> dict[str, Any]:
    """results.json content from the prediction rows of the items this run scores (in item order)."""
    by_key = {(r["lang"], r["index"]): r for r in rows if r.get("task") == s.task}
    per_lang: dict[str, Any] = {}
    correct_by_lang: dict[str, list[bool]] = {}
    paper_by_lang: dict[str, list[bool]] = {}
    for lang, lp in prep.prompts.items():
        got = [by_key[(lang, it.index)] for it in lp.items if (lang, it.index) in by_key]
        correct = [bool(r["correct"]) for r in got]
        correct_by_lang[lang] = correct
        ci = bootstrap_accuracy(correct, s.n_boot, s.seed)
        dist = Counter(r["pred"] for r in got)
        per_lang[lang] = {
            "accuracy": ci.value, "ci95": [ci.lo, ci.hi], "n": len(got), "n_expected": len(lp.items),
            "predicted": {label: dist.get(label, 0) for label in prep.task.labels},
            "gold": {label: sum(r["gold"] == label for r in got) for label in prep.task.labels},
            "ties": sum(bool(r["tie"]) for r in got),
            "label_words": list(lp.label_words),
            "demos": [d.index if d.index >= 0 else None for d in lp.demos],  # None: not an item of the data
            "gold_disagrees_with_en": len(prep.disagreements.get(lang, [])),
        }
        if lp.gold_table is not None:
            paper = [bool(r.get("paper_correct")) for r in got]
            paper_by_lang[lang] = paper
            pci = bootstrap_accuracy(paper, s.n_boot, s.seed)
            per_lang[lang].update({"paper_accuracy": pci.value, "paper_ci95": [pci.lo, pci.hi]})
    rows_by_lang = {lang: [by_key[(lang, it.index)] for it in lp.items if (lang, it.index) in by_key]
                    for lang, lp in prep.prompts.items()}
    resampling = resampling_scheme({lang: [int(r["index"]) for r in got] for lang, got in rows_by_lang.items()},
                                   prep.parallel_audit)
    mean = bootstrap_mean_accuracy(correct_by_lang, s.n_boot, s.seed, resampling=resampling)
    mean_row: dict[str, Any] = {"accuracy": mean.value, "ci95": [mean.lo, mean.hi], "n_languages": len(per_lang)}
    if paper_by_lang:
        pm = bootstrap_mean_accuracy(paper_by_lang, s.n_boot, s.seed, resampling=resampling)
        mean_row.update({"paper_accuracy": pm.value, "paper_ci95": [pm.lo, pm.hi]})
    bias_lang, bias_mean = run_summaries(rows_by_lang, prep.task.labels, s.calibrate, s.n_boot, s.seed,
                                                     resampling)
    for lang, extra in bias_lang.items():
        per_lang[lang].update(extra)
    mean_row.update(bias_mean)
    return {
        "task": s.task,
        "protocol": s.protocol,
        "languages": per_lang,
        "mean": mean_row,
        "complete": all(v["n"] == v["n_expected"] for v in per_lang.values()),
        "model": model_info,
        "settings": s.record(),
        "data_sha256": prep.data_hashes,
        "settings_sha256": sha256_json(s.identity()),
        "versions": versions(),
    }


def format_table(results: dict[str, Any]) -> str:
    """The per-language table printed at the end of a run: raw and each calibrated mode side by side (accuracy with
    its 95% interval, macro-F1, % of items predicted each label)."""
    langs = results["languages"]
    labels = list(next(iter(langs.values()))["predicted"]) if langs else []
    modes = list(results["mean"].get("calibrated", {}))
    share_head = "/".join(lb[:3] for lb in labels)
    share_w = max(len(share_head), 4 * len(labels) - 1)
    block_w = 24 + share_w

    def block(r: dict[str, Any]) -> str:
        ci = f"[{r['ci95'][0]:.2f},{r['ci95'][1]:.2f}]"
        shares = r.get("predicted_share") or {}
        pct = "/".join(f"{100 * shares.get(lb, float('nan')):.0f}" for lb in labels)
        return f"{r['accuracy']:>5.3f} {ci:<11} {r.get('macro_f1', float('nan')):>5.3f} {pct:>{share_w}}"

    protocol = results.get("protocol", "qtalign")
    title = (f"task {results['task']}, model {results['model'].get('model')}"
             + (f" + adapter {results['model']['adapter']}" if results["model"].get("adapter") else "")
             + (f", protocol {protocol}" if protocol != "qtalign" else ""))
    groups = " " * 11 + "  ".join(f" {name} ".center(block_w, "-") for name in ["raw", *modes])
    head = f"{'lang':<5}{'n':>5} " + "  ".join(
        f"{'acc':>5} {'95% CI':<11} {'F1':>5} {share_head:>{share_w}}" for _ in ["raw", *modes])
    lines = [title, groups, head]
    for lang, r in langs.items():
        lines.append(f"{lang:<5}{r['n']:>5} " + "  ".join(
            block(x) for x in [r, *(r.get("calibrated", {})[m] for m in modes)]))
    m = results["mean"]
    lines.append(f"{'mean':<5}{'':>5} " + "  ".join(block(x) for x in [m, *(m["calibrated"][k] for k in modes)]))
    lines.append(f"mean: unweighted over {m['n_languages']} languages; F1: macro-F1; {share_head}: % of items predicted "
                 + ", ".join(labels))
    if m.get("resampling"):
        lines.append(f"mean intervals: {m['resampling']['text']}")
    if "paper_accuracy" in m:  # --paper-gold: the paper scripts' exact gold-string matching, on lines of its own
        accs = [f"{lang} {r['paper_accuracy']:.3f}" for lang, r in langs.items()] + [f"mean {m['paper_accuracy']:.3f}"]
        lines += textwrap.wrap("acc by the paper scripts' exact gold-string matching (paper): " + ", ".join(accs), 118,
                               subsequent_indent="  ")
    if modes:
        lines.append("calibrated predictions: see docs/calibration.md; recompute with `qtalign calibrate RUN_DIR`")
    return "\n".join(lines)


def run_report(results: dict[str, Any], out: str | Path, log_prompts: bool) -> str:
    """What `qtalign eval` prints when a run finishes: the table and the files written."""
    also = f", {out}/prompts.jsonl" if log_prompts else ""
    return format_table(results) + "\n" + f"wrote {out}/predictions.jsonl{also} and {out}/results.json"


def recalibrate_report(results: dict[str, Any], folder: str | Path) -> str:
    """What `qtalign calibrate` prints: the table and the files rewritten."""
    folder = Path(folder)
    return format_table(results) + "\n" + f"rewrote {folder / PREDICTIONS} and {folder / RESULTS}"

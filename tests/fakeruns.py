"""Synthetic run folders (eval, train, data manifest, study) for tests of compare and report: no model."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

LABELS = ("positive", "negative")


def gold_of(i: int) -> str:
    return LABELS[i % 2]


def write_eval_run(
    folder: Path,
    correct: dict[str, Sequence[bool]],
    *,
    task: str = "emotion",
    adapter: str | None = None,
    model: str = "tiny",
    cal: dict[str, dict[str, Sequence[bool]]] | None = None,
    prompt: Callable[[str, int], str] = lambda lang, i: f"{lang} prompt {i}",
    with_sha: bool = True,
) -> Path:
    """An eval run folder whose item i of each language is correct as given; wrong items predict the other label.
    cal: mode -> lang -> correctness under that calibration mode (adds pred_cal/correct_cal to each row)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    per_lang = {}
    for lang, flags in correct.items():
        for i, ok in enumerate(flags):
            gold = gold_of(i)
            pred = gold if ok else LABELS[1 - LABELS.index(gold)]
            p = 0.7 if pred == "positive" else 0.3
            row: dict[str, Any] = {"task": task, "lang": lang, "index": i, "gold": gold, "gold_answer": gold,
                                   "pred": pred, "correct": bool(ok), "tie": False,
                                   "probs": {"positive": p, "negative": 1 - p}}
            if with_sha:
                row["prompt_sha"] = hashlib.sha256(prompt(lang, i).encode()).hexdigest()[:16]
            if cal:
                row["pred_cal"], row["correct_cal"] = {}, {}
                for mode, by_lang in cal.items():
                    okc = bool(by_lang[lang][i])
                    row["correct_cal"][mode] = okc
                    row["pred_cal"][mode] = gold if okc else LABELS[1 - LABELS.index(gold)]
            rows.append(row)
        n = len(flags)
        per_lang[lang] = {"accuracy": sum(flags) / n, "ci95": [0, 1], "n": n, "n_expected": n,
                          "predicted": {lb: sum(r["pred"] == lb for r in rows if r["lang"] == lang) for lb in LABELS},
                          "gold": {lb: sum(gold_of(i) == lb for i in range(n)) for lb in LABELS}, "ties": 0}
    (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    mean = sum(v["accuracy"] for v in per_lang.values()) / len(per_lang)
    results = {"task": task, "languages": per_lang, "mean": {"accuracy": mean, "ci95": [0, 1],
                                                             "n_languages": len(per_lang)},
               "complete": True, "model": {"model": model, "adapter": adapter},
               "settings": {"task": task, "data": "demo", "model": model, "adapter": adapter, "shots": 2,
                            "labels": "en", "seed": 0, "demos": None, "limit": None, "scoring": "first-token"},
               "data_sha256": {"demo/en.jsonl": "abc"}, "settings_sha256": "x",
               "versions": {"qtalign": "0.1.0", "python": "3.11", "torch": "2", "transformers": "5"}}
    (folder / "results.json").write_text(json.dumps(results), encoding="utf-8")
    return folder


def write_train_run(folder: Path, sources: Sequence[str], target: str = "en", control: str | None = None,
                    steps: int = 12, seed: int = 42) -> Path:
    """A `qtalign train` output folder (logs, settings, adapter stub) with its pairs file and manifest beside."""
    data_dir = folder / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    pairs = data_dir / "pairs.jsonl"
    pairs.write_text('{"input": "q", "output": "q"}\n', encoding="utf-8")
    settings: dict[str, Any] = {"task": "emotion", "sources": list(sources), "target": target, "per_lang": 10,
                                "seed": seed}
    if control:
        settings["control"] = control
    (data_dir / "manifest.json").write_text(json.dumps({"settings": settings, "pairs_sha256": "p" * 64,
                                                        "total": 20}), encoding="utf-8")
    (folder / "adapter").mkdir(exist_ok=True)
    (folder / "adapter" / "adapter_config.json").write_text("{}", encoding="utf-8")
    (folder / "train_settings.json").write_text(json.dumps({"model": "tiny", "data": str(pairs), "lr": 2e-4,
                                                            "seed": seed}), encoding="utf-8")
    (folder / "train_log.jsonl").write_text("".join(
        json.dumps({"step": s, "epoch": s / steps, "loss": 3.0 / (1 + 0.2 * s) + 0.01 * seed % 3, "lr": 1e-4}) + "\n"
        for s in range(1, steps + 1)), encoding="utf-8")
    (folder / "val_log.jsonl").write_text("".join(
        json.dumps({"step": s, "epoch": s / steps, "val_loss": 3.2 / (1 + 0.15 * s)}) + "\n"
        for s in (0, steps // 2, steps)), encoding="utf-8")
    (folder / "train_summary.json").write_text(json.dumps({"steps": steps, "best_val_loss": 1.0, "seconds": 5.0}),
                                               encoding="utf-8")
    return folder


STUDY_LANGS = ("en", "zh", "de", "ja", "sw", "hi")


def write_study(root: Path, n: int = 40, seed: int = 0, analyses: Sequence[dict[str, Any]] = ()) -> Path:
    """A finished study folder as `qtalign run` writes it: base, a real mix (2 training seeds) and its shuffled
    control (1 seed), evaluated with raw and batch-calibrated scores; one compare.json written by the runner (the
    others are left for the report to compute); analyses: entries to list (their folders made by the caller)."""
    import numpy as np

    from qtalign.compare import compare_runs, write_compare

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    base = {lang: list(rng.random(n) < 0.55) for lang in STUDY_LANGS}
    base_cal = {lang: list(rng.random(n) < 0.65) for lang in STUDY_LANGS}

    def tuned(lift: float, seen: Sequence[str]) -> dict[str, list[bool]]:
        return {lang: [bool(x or rng.random() < (lift if lang in seen else lift / 3)) for x in v]
                for lang, v in base.items()}

    trains, evals, compares, steps = [], [], [], []
    write_eval_run(root / "eval" / "base", base, model="tiny", cal={"batch": base_cal})
    evals.append({"id": "eval-base", "run": "eval/base", "model": "tiny", "mix": None, "control": None,
                  "train_seed": None, "demo_seed": 0, "task": "emotion", "labels": "en"})
    for mix, control, tseed, lift in (("zh_es", None, 1, 0.4), ("zh_es", None, 2, 0.35),
                                      ("zh_es", "shuffled", 1, 0.15)):
        tid = f"train-{mix}{'-' + control if control else ''}-s{tseed}"
        write_train_run(root / "train" / tid, ["zh", "es"], "en", control=control, seed=tseed)
        trains.append({"id": tid, "run": f"train/{tid}", "mix": mix, "control": control, "train_seed": tseed})
        eid = tid.replace("train-", "eval-")
        write_eval_run(root / "eval" / eid, tuned(lift, ("zh", "en")), model="tiny", adapter=f"train/{tid}",
                       cal={"batch": {lang: [bool(x or rng.random() < lift / 4) for x in v]
                                      for lang, v in base_cal.items()}})
        evals.append({"id": eid, "run": f"eval/{eid}", "model": "tiny", "mix": mix, "control": control,
                      "train_seed": tseed, "demo_seed": 0, "task": "emotion", "labels": "en"})
        steps += [{"id": tid, "kind": "train", "hash": "h" * 16, "out": f"train/{tid}", "status": "done",
                   "seconds": 30.0, "deps": []},
                  {"id": eid, "kind": "eval", "hash": "e" * 16, "out": f"eval/{eid}", "status": "done",
                   "seconds": 12.5, "deps": [tid]}]
    # the runner's compare of the first real mix vs base (the others are computed by the report)
    cmp = "compare/zh_es-s1-vs-base"
    write_compare(compare_runs([root / "eval/base", root / "eval/eval-zh_es-s1"], names=["eval-base", "eval-zh_es-s1"],
                               n_boot=200), root / cmp)
    compares.append({"id": "cmp-1", "out": cmp, "base": "eval-base", "other": "eval-zh_es-s1", "kind": "vs-base",
                     "mix": "zh_es", "train_seed": 1, "task": "emotion", "demo_seed": 0})
    compares.append({"id": "cmp-ctl", "out": "compare/zh_es-vs-shuffled", "base": "eval-zh_es-shuffled-s1",
                     "other": "eval-zh_es-s1", "kind": "vs-control", "mix": "zh_es", "train_seed": 1,
                     "task": "emotion", "demo_seed": 0})
    steps.insert(0, {"id": "eval-base", "kind": "eval", "hash": "b" * 16, "out": "eval/base", "status": "reused",
                     "seconds": None, "deps": []})
    study = {"name": "synthetic", "config": {"models": ["tiny"], "mixes": [{"name": "zh_es", "sources": ["zh", "es"]}]},
             "qtalign_version": "0.1.0", "steps": steps, "trains": trains, "evals": evals, "compares": compares,
             "analyses": list(analyses)}
    (root / "study.json").write_text(json.dumps(study, indent=1), encoding="utf-8")
    return root


FINDINGS_LANGS = ("en", "zh", "de", "fr", "es", "sw", "hi", "th")
# (mix, sources, target, control, control_of, share of wrong items each run gets right)
FINDINGS_ARMS = (("zh-es-en", ("zh", "es"), "en", None, None, 0.5), ("zh-de-en", ("zh", "de"), "en", None, None, 0.5),
                 ("sw-hi-en", ("sw", "hi"), "en", None, None, 0.0), ("zh-en", ("zh",), "en", None, None, 0.25),
                 ("en-en", ("zh",), "en", "english", "zh-en", 0.25))


def write_findings_study(root: Path, n: int = 40, demos: Sequence[int] = (0, 1, 2), seed: int = 0,
                         arms: Sequence[tuple[Any, ...]] = FINDINGS_ARMS) -> Path:
    """A finished study with a `findings` block: base and each arm (one training seed) evaluated with every
    demonstration set, raw and batch-calibrated; each run of an arm gets the given share of the base run's wrong
    items right (the same share with every set), so the high-resource mixes lead the low-resource one."""
    import numpy as np

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    evals: list[dict[str, Any]] = []
    for d in demos:
        base = {lang: list(rng.random(n) < 0.5 + 0.05 * d) for lang in FINDINGS_LANGS}
        base_cal = {lang: list(rng.random(n) < 0.6) for lang in FINDINGS_LANGS}
        write_eval_run(root / "eval" / f"base-d{d}", base, cal={"batch": base_cal})
        evals.append({"id": f"eval-base-d{d}", "run": f"eval/base-d{d}", "model": "tiny", "mix": None,
                      "control": None, "train_seed": None, "demo_seed": d, "task": "emotion", "labels": "en"})
        for name, _, _, control, _, lift in arms:
            lifted = lambda runs, lift=lift: {lang: [bool(x or rng.random() < lift) for x in v]
                                              for lang, v in runs.items()}
            write_eval_run(root / "eval" / f"{name}-d{d}", lifted(base), cal={"batch": lifted(base_cal)})
            evals.append({"id": f"eval-{name}-d{d}", "run": f"eval/{name}-d{d}", "model": "tiny", "mix": name,
                          "control": control, "train_seed": 42, "demo_seed": d, "task": "emotion", "labels": "en"})
    mixes = [{"name": name, "task": "emotion", "sources": list(src), "target": tgt, "control": control,
              "control_of": of, "pairs": 240} for name, src, tgt, control, of, _ in arms]
    findings = {"modes": ["raw", "batch"], "pairs": 240, "train_sd": {"raw": 0.015, "batch": 0.0135},
                "train_sd_from": "a test", "rows": [
                    {"id": "unseen", "claim": "Unseen languages improve", "plus": ["zh-es-en", "zh-de-en", "sw-hi-en"],
                     "langs": "unseen", "paper": "68.35 → 76.13"},
                    {"id": "leaders", "claim": "High-resource leaders", "plus": ["zh-es-en", "zh-de-en"],
                     "minus": ["sw-hi-en"]},
                    {"id": "one-source", "claim": "One source suffices", "plus": ["zh-en", "en-en"],
                     "minus": ["zh-es-en", "zh-de-en", "sw-hi-en"], "direction": "similar", "margin": 0.03},
                    {"id": "model-sizes", "claim": "Across sizes", "untestable": "not testable on CPU"}]}
    study = {"name": "findings", "config": {"models": [{"id": "tiny"}], "mixes": mixes,
                                            "eval": {"tasks": {"emotion": {"data": "x"}}, "labels": ["en"]},
                                            "findings": findings},
             "qtalign_version": "0.1.0", "steps": [], "trains": [], "evals": evals, "compares": [], "analyses": []}
    (root / "study.json").write_text(json.dumps(study, indent=1), encoding="utf-8")
    return root

"""Paired comparison of eval runs scored on the same items: bootstrap intervals, exact McNemar, Holm, power."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qtalign.compare.checks import check_same_items
from qtalign.compare.runs import RAW, Run, load_run
from qtalign.errors import QtalignError
from qtalign.metrics import (
    Resampling,
    bootstrap_accuracy,
    bootstrap_language_mean,
    bootstrap_mean,
    bootstrap_mean_accuracy,
    detectable_change,
    holm,
    label_shares,
    mark,
    mcnemar_exact,
    one_hot,
)

ALPHA = 0.05
POWER = 0.8  # the power at which compare reports the smallest detectable mean change


def _interval(lo: float, hi: float) -> list[float]:
    return [float(lo), float(hi)]


def _group(diffs: dict[str, np.ndarray], langs: Sequence[str], resampling: Resampling, n_boot: int, seed: int
           ) -> dict[str, Any] | None:
    """Mean over the languages of the paired per-item differences (other - base; the same items for both runs),
    items resampled as `resampling` says (jointly across languages when they are parallel); with the smallest mean
    change detectable at POWER (two-sided ALPHA) from the bootstrap SD of the mean difference."""
    langs = [lang for lang in langs if lang in diffs]
    if not langs:
        return None
    iv = bootstrap_mean_accuracy({lang: diffs[lang] for lang in langs}, n_boot, seed, resampling=resampling)
    return {"langs": list(langs), "diff": iv.value, "ci95": _interval(iv.lo, iv.hi),
            "excludes_zero": bool(iv.lo > 0 or iv.hi < 0), "sd": iv.sd,
            "mde80": detectable_change(iv.sd, ALPHA, POWER), "resampling": resampling.record()}


def _share_change(base: Run, other: Run, lang: str, mode: str) -> np.ndarray:
    """[n, labels] per-item change of the one-hot predicted label (other - base)."""
    return one_hot(other.preds(lang, mode), base.labels) - one_hot(base.preds(lang, mode), base.labels)


def _shares(run: Run, lang: str, mode: str, labels: Sequence[str]) -> dict[str, float]:
    """Share of lang's items predicting each label (raw or one calibration mode)."""
    return label_shares(run.item_rows(lang), labels, None if mode == RAW else mode)


def compare_pair(base: Run, other: Run, mode: str, seen: Sequence[str] | None, n_boot: int, seed: int
                 ) -> dict[str, Any]:
    """One scoring mode of base vs other: per language, mean, seen/unseen groups, prior shift. Means over languages
    resample items jointly when the languages are parallel (base.resampling)."""
    per_lang: dict[str, Any] = {}
    diffs: dict[str, np.ndarray] = {}
    share_diffs: dict[str, np.ndarray] = {}
    for lang in base.langs:
        ca, cb = base.correct(lang, mode), other.correct(lang, mode)
        d = cb.astype(np.float64) - ca.astype(np.float64)  # [n]
        diffs[lang] = d
        share_diffs[lang] = _share_change(base, other, lang, mode)  # [n, labels]
        mean, lo, hi = bootstrap_mean(d, n_boot, seed)
        counts, p = mcnemar_exact(ca, cb)
        sa, sb = _shares(base, lang, mode, base.labels), _shares(other, lang, mode, base.labels)
        per_lang[lang] = {
            "n": len(d), "base": float(ca.mean()), "other": float(cb.mean()), "diff": float(mean),
            "ci95": _interval(lo, hi), **counts, "p": p,
            "seen": None if seen is None else lang in seen,
            "predicted_share": {label: {"base": sa[label], "other": sb[label], "change": sb[label] - sa[label]}
                                for label in base.labels},
        }
    for lang, p_holm in zip(per_lang, holm([v["p"] for v in per_lang.values()], ALPHA)):
        per_lang[lang]["p_holm"] = p_holm
        per_lang[lang]["significant"] = p_holm < ALPHA
        per_lang[lang]["mark"] = mark(p_holm)
    resampling = base.resampling()
    mean = _group(diffs, base.langs, resampling, n_boot, seed)
    assert mean is not None
    mean["base"] = float(np.mean([v["base"] for v in per_lang.values()]))
    mean["other"] = float(np.mean([v["other"] for v in per_lang.values()]))
    out: dict[str, Any] = {"languages": per_lang, "mean": mean}
    if seen is not None:
        for key, langs in (("seen", [lang for lang in base.langs if lang in seen]),
                           ("unseen", [lang for lang in base.langs if lang not in seen])):
            out[key] = _group(diffs, langs, base.resampling(langs), n_boot, seed) if langs else None
    _, lo, hi, _ = bootstrap_language_mean(share_diffs, resampling, n_boot, seed)  # each [labels]
    out["predicted_share"] = {
        label: {**{k: float(np.mean([v["predicted_share"][label][k] for v in per_lang.values()]))
                   for k in ("base", "other", "change")}, "change_ci95": _interval(lo[i], hi[i])}
        for i, label in enumerate(base.labels)}
    return out


def _run_accuracy(run: Run, modes: Sequence[str], n_boot: int, seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in modes:
        per = {}
        for lang in run.langs:
            iv = bootstrap_accuracy(run.correct(lang, mode).tolist(), n_boot, seed)
            per[lang] = {"accuracy": iv.value, "ci95": _interval(iv.lo, iv.hi)}
        resampling = run.resampling()
        m = bootstrap_mean_accuracy({lang: run.correct(lang, mode) for lang in run.langs}, n_boot, seed,
                                    resampling=resampling)
        out[mode] = {"languages": per, "mean": {"accuracy": m.value, "ci95": _interval(m.lo, m.hi),
                                                "resampling": resampling.record()}}
    return out


def _names(runs: Sequence[Path], names: Sequence[str] | None) -> list[str]:
    if names is not None:
        if len(names) != len(runs):
            raise QtalignError(f"--names: {len(names)} name(s) for {len(runs)} runs")
        if len(set(names)) != len(names):
            raise QtalignError(f"--names: a name is given twice ({', '.join(names)})")
        return list(names)
    out = [Path(r).name or str(r) for r in runs]
    if len(set(out)) != len(out):
        out = [str(Path(r)) for r in runs]
    return out


def compare_runs(runs: Sequence[Path], names: Sequence[str] | None = None, n_boot: int = 2000, seed: int = 0,
                 seen: Sequence[str] | None = None, task: str | None = None, lang_map: str | Path | None = None
                 ) -> dict[str, Any]:
    """Paired comparison of eval runs on the same items; the first run is the reference (base).

    Per other run and scoring mode (raw, then each calibration mode every run carries): per language the accuracy
    of both, the difference (other - base) with a paired percentile bootstrap interval, the exact McNemar p-value
    and its Holm correction over languages; the mean over languages with a paired interval; seen/unseen groups
    (languages of the adapters' training mixes, or `seen` if given); each label's predicted-share change. Means over
    languages resample item indices jointly across languages when every language has the same items (they are
    translations of one item set) and independently otherwise; `resampling` records which, and each mean carries
    the smallest change detectable at 80% power (`mde80`). Runs are `qtalign eval` folders or lm-eval output
    folders (task: the lm-eval task group to read where a folder holds several; lang_map: tasks outside qtalign's
    tables mapped to languages; see compare.runs.load_run).
    """
    if len(runs) < 2:
        raise QtalignError("give at least two eval run folders to compare")
    if n_boot < 10:
        raise QtalignError(f"n_boot must be at least 10, got {n_boot}")
    run_names = _names([Path(r) for r in runs], names)
    loaded = [load_run(Path(r), n, task=task, lang_map=lang_map) for r, n in zip(runs, run_names)]
    base = loaded[0]
    notes = [n for r in loaded for n in r.notes]
    for other in loaded[1:]:
        notes += check_same_items(base, other)
    modes = [RAW] + [m for m in base.modes if all(m in r.modes for r in loaded[1:])]
    comparisons = []
    for other in loaded[1:]:
        if seen is not None:
            seen_langs: list[str] | None = list(seen)
            seen_from = "given"
        else:
            with_adapter = [r for r in (base, other) if r.adapter]
            known = [r for r in with_adapter if r.train_langs is not None]
            if with_adapter and len(known) == len(with_adapter):
                seen_langs = list(dict.fromkeys(x for r in known for x in (r.train_langs or [])))
                seen_from = "; ".join(f"{r.name}: {r.train_note}" for r in known)
            else:
                seen_langs = None
                seen_from = ("no adapter in either run" if not with_adapter else
                             "; ".join(f"{r.name}: {r.train_note}" for r in with_adapter if r.train_langs is None))
        comparisons.append({
            "base": base.name, "other": other.name, "seen_langs": seen_langs, "seen_from": seen_from,
            "scores": {mode: compare_pair(base, other, mode, seen_langs, n_boot, seed) for mode in modes},
        })
    return {
        "task": base.task,
        "languages": list(base.langs),
        "labels": list(base.labels),
        "modes": modes,
        "n_boot": n_boot,
        "seed": seed,
        "alpha": ALPHA,
        "power": POWER,
        "resampling": base.resampling().record(),
        "runs": [{"name": r.name, "path": str(r.path), "adapter": r.adapter, "train_langs": r.train_langs,
                  "n_items": len(r.rows),
                  "model": r.model, "source": r.source,
                  "accuracy": _run_accuracy(r, modes, n_boot, seed)} for r in loaded],
        "comparisons": comparisons,
        "notes": notes,
    }

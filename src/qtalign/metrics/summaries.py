"""Bias-aware summaries of a run's predictions: accuracy, macro-F1 and predicted shares with bootstrap intervals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from qtalign.metrics.intervals import (
    INDEPENDENT_UNKNOWN,
    Resampling,
    boot_indices,
    bootstrap_accuracy,
    bootstrap_mean,
    bootstrap_mean_accuracy,
    resampling_scheme,
)
from qtalign.metrics.labels import macro_f1, macro_f1_boot, one_hot, predictions


def summarize(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str], n_boot: int = 1000,
              seed: int = 0) -> dict[str, Any]:
    """Accuracy, macro-F1 and predicted-label counts/shares of one language, each with a 95% percentile bootstrap
    interval (items resampled with replacement; the same resamples as bootstrap_accuracy for the same seed)."""
    correct = [a == b for a, b in zip(gold, pred, strict=True)]
    acc = bootstrap_accuracy(correct, n_boot, seed)
    g, p = one_hot(gold, labels), one_hot(pred, labels)
    n = len(gold)
    f1 = macro_f1(gold, pred, labels)
    if n >= 2:
        boots = macro_f1_boot(g, p, boot_indices(n, n_boot, np.random.default_rng(seed)))
        f1_ci = [float(np.nanquantile(boots, 0.025)), float(np.nanquantile(boots, 0.975))]
    else:
        f1_ci = [f1, f1]
    if n:
        share, lo, hi = bootstrap_mean(p, n_boot, seed)
    else:
        share = lo = hi = np.full(len(labels), np.nan)
    return {
        "accuracy": acc.value, "ci95": [acc.lo, acc.hi],
        "macro_f1": f1, "macro_f1_ci95": f1_ci,
        "predicted": {lb: int(p[:, i].sum()) for i, lb in enumerate(labels)},
        "predicted_share": {lb: float(share[i]) for i, lb in enumerate(labels)},
        "predicted_share_ci95": {lb: [float(lo[i]), float(hi[i])] for i, lb in enumerate(labels)},
    }


def summarize_mean(by_lang: Mapping[str, tuple[Sequence[str], Sequence[str]]], labels: Sequence[str],
                   n_boot: int = 1000, seed: int = 0, resampling: Resampling = INDEPENDENT_UNKNOWN) -> dict[str, Any]:
    """Unweighted means over languages of accuracy, macro-F1 and predicted shares, by_lang: lang -> (gold, pred) in
    item order; intervals resample items as `resampling` says: jointly (one item-position draw per replicate for
    every language; the languages must have the same items in the same order) or each language independently
    (accuracy exactly as metrics.bootstrap_mean_accuracy)."""
    langs = [lang for lang, (g, _) in by_lang.items() if len(g)]
    acc = bootstrap_mean_accuracy({lang: [a == b for a, b in zip(*by_lang[lang])] for lang in langs}, n_boot, seed,
                                  resampling=resampling)
    out: dict[str, Any] = {"accuracy": acc.value, "ci95": [acc.lo, acc.hi]}
    if not langs:
        nan = float("nan")
        return {**out, "macro_f1": nan, "macro_f1_ci95": [nan, nan], "predicted": {lb: 0 for lb in labels},
                "predicted_share": {lb: nan for lb in labels}, "predicted_share_ci95": {lb: [nan, nan] for lb in labels}}
    rng = np.random.default_rng(seed)
    f1_boot = np.zeros(n_boot)
    share_boot = np.zeros((n_boot, len(labels)))
    f1_point, share_point = 0.0, np.zeros(len(labels))
    counts = np.zeros(len(labels))
    shared = boot_indices(len(by_lang[langs[0]][0]), n_boot, rng) if resampling.joint else None  # [B, n]
    for lang in langs:
        gold, pred = by_lang[lang]
        g, p = one_hot(gold, labels), one_hot(pred, labels)
        idx = shared if shared is not None else boot_indices(len(gold), n_boot, rng)  # [B, n]
        if idx.shape[1] != len(gold):
            raise ValueError("joint resampling needs the same items in every language")
        f1_point += macro_f1(gold, pred, labels)
        f1_boot += macro_f1_boot(g, p, idx)
        share_point += p.mean(0)
        share_boot += p[idx].mean(1)
        counts += p.sum(0)
    k = len(langs)
    f1_boot, share_boot = f1_boot / k, share_boot / k
    lo, hi = np.nanquantile(share_boot, [0.025, 0.975], axis=0)
    return {
        **out,
        "macro_f1": f1_point / k,
        "macro_f1_ci95": [float(np.nanquantile(f1_boot, 0.025)), float(np.nanquantile(f1_boot, 0.975))],
        "predicted": {lb: int(counts[i]) for i, lb in enumerate(labels)},
        "predicted_share": {lb: float(share_point[i] / k) for i, lb in enumerate(labels)},
        "predicted_share_ci95": {lb: [float(lo[i]), float(hi[i])] for i, lb in enumerate(labels)},
    }


def run_summaries(rows_by_lang: Mapping[str, Sequence[Mapping[str, Any]]], labels: Sequence[str],
                  modes: Sequence[str], n_boot: int = 1000, seed: int = 0, resampling: Resampling | None = None
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The bias-aware metrics of a run, from its prediction rows per language (with 'pred_cal' for each mode).

    Returns (per language, mean), each {macro_f1, macro_f1_ci95, predicted_share, predicted_share_ci95,
    calibrated: {mode: {accuracy, ci95, macro_f1, macro_f1_ci95, predicted, predicted_share,
    predicted_share_ci95}}}: the raw predictions' macro-F1 and shares, and every metric of each calibrated mode.
    Means resample items as `resampling` says (None: joint when every language has the same item indices, see
    metrics.resampling_scheme); the mean records it under "resampling".
    """
    if resampling is None:
        resampling = resampling_scheme({lang: [int(r["index"]) for r in rows] for lang, rows in rows_by_lang.items()})
    raw_keys = ("macro_f1", "macro_f1_ci95", "predicted_share", "predicted_share_ci95")
    per_lang: dict[str, Any] = {}
    pairs: dict[str | None, dict[str, tuple[list[str], list[str]]]] = {m: {} for m in (None, *modes)}
    for lang, rows in rows_by_lang.items():
        gold = [str(r["gold"]) for r in rows]
        entry: dict[str, Any] = {}
        for mode in (None, *modes):
            pred = predictions(rows, mode)
            pairs[mode][lang] = (gold, pred)
            summary = summarize(gold, pred, labels, n_boot, seed)
            if mode is None:
                entry.update({k: summary[k] for k in raw_keys})
                entry["calibrated"] = {}
            else:
                entry["calibrated"][mode] = summary
        per_lang[lang] = entry
    raw_mean = summarize_mean(pairs[None], labels, n_boot, seed, resampling)
    mean: dict[str, Any] = {k: raw_mean[k] for k in raw_keys}
    mean["calibrated"] = {m: summarize_mean(pairs[m], labels, n_boot, seed, resampling) for m in modes}
    mean["resampling"] = resampling.record()
    return per_lang, mean

"""Label-bias calibration (batch, content-free), macro-F1 and predicted-label shares over stored per-label scores."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from qtalign.errors import QtalignError
from qtalign.metrics import (
    INDEPENDENT_UNKNOWN,
    Resampling,
    boot_indices,
    bootstrap_accuracy,
    bootstrap_mean,
    bootstrap_mean_accuracy,
    resampling_scheme,
)

# Calibration modes, in the order they are reported. "none" on the command line means no calibrated columns.
MODES: tuple[str, ...] = ("batch", "content-free")
# Filled into every input field of the task to make the content-free prompts (Zhao et al. 2021): a
# "not available" marker, an empty text and a mask-like string.
CONTENT_FREE_INPUTS: tuple[str, ...] = ("N/A", "", "[MASK]")
SCORE_KINDS: tuple[str, ...] = ("probs", "loglik")
# probabilities are stored from a float32 softmax: 0 means "below float32 range", floored before the log
_PROB_FLOOR = 1e-45
_LOGLIK_FLOOR = -1e6


def parse_modes(value: str | Sequence[str]) -> tuple[str, ...]:
    """--calibrate value(s) -> modes in canonical order: 'none', 'all', a mode, or a comma list of modes."""
    parts = [value] if isinstance(value, str) else list(value)
    words = [w.strip() for p in parts for w in p.split(",") if w.strip()]
    if not words:
        raise QtalignError("--calibrate: give none, all, or one or more of " + ", ".join(MODES))
    if words == ["none"]:
        return ()
    if words == ["all"]:
        return MODES
    bad = [w for w in words if w not in MODES]
    if bad:
        raise QtalignError(f"--calibrate: unknown mode {bad[0]!r}; use none, all, or one or more of "
                           + ", ".join(MODES))
    return tuple(m for m in MODES if m in words)


# ---- scores -----------------------------------------------------------------------------------------------

def score_kind(rows: Sequence[Mapping[str, Any]]) -> str:
    """'probs' or 'loglik': which per-label scores the rows hold (all rows must agree)."""
    kinds = {k for r in rows for k in SCORE_KINDS if k in r}
    if len(kinds) != 1:
        raise QtalignError(f"prediction rows hold {'both' if kinds else 'neither'} of 'probs' and 'loglik'")
    return kinds.pop()


def score_matrix(rows: Sequence[Mapping[str, Any]], labels: Sequence[str], kind: str) -> np.ndarray:
    """rows' stored per-label scores -> [n, L] float64, columns in label order."""
    try:
        return np.array([[float(r[kind][lb]) for lb in labels] for r in rows], dtype=np.float64).reshape(
            len(rows), len(labels))
    except KeyError as e:
        raise QtalignError(f"a prediction row has no {kind} score for label {e.args[0]!r}") from None


def log_scores(scores: np.ndarray, kind: str) -> np.ndarray:
    """[n, L] stored scores -> [n, L] log-scores.

    probs: log of each label's first-token probability mass (not normalized over labels; a per-item constant
    does not change any prediction or calibration here). loglik: the label words' log-likelihoods as stored.
    """
    if kind == "probs":
        return np.log(np.maximum(scores, _PROB_FLOOR))
    if kind == "loglik":
        return np.maximum(scores, _LOGLIK_FLOOR)
    raise ValueError(kind)


def label_probs(scores: np.ndarray, kind: str) -> np.ndarray:
    """[n, L] stored scores -> [n, L] probabilities renormalized over the labels (rows sum to 1).

    probs: each label's mass divided by the labels' total mass; loglik: softmax of the log-likelihoods, i.e. the
    probability of each whole label word given that the answer is one of the label words.
    """
    lp = log_scores(scores, kind)
    lp = lp - lp.max(axis=1, keepdims=True)
    p = np.exp(lp)
    return p / p.sum(axis=1, keepdims=True)


def batch_calibrate(scores: np.ndarray, kind: str) -> np.ndarray:
    """Batch calibration over one language's scored items: [n, L] -> calibrated log-scores [n, L].

    Subtracts each label's mean log-score over the items (log p(l|x) - mean_x log p(l|x)); argmax of the result is
    the calibrated prediction. Adding a constant to a label's log-scores (a multiplicative label prior) never
    changes the result. Per-item normalization over labels does not matter either.
    """
    lp = log_scores(scores, kind)
    if len(lp) == 0:
        return lp
    return lp - lp.mean(axis=0, keepdims=True)


def content_free_prior(cf_scores: np.ndarray, kind: str) -> np.ndarray:
    """[m, L] scores of the content-free inputs -> [L] their mean probability over the labels (sums to 1)."""
    if len(cf_scores) == 0:
        raise QtalignError("content-free calibration needs the scores of at least one content-free input")
    prior = label_probs(cf_scores, kind).mean(axis=0)
    return prior / prior.sum()


def content_free_calibrate(scores: np.ndarray, cf_scores: np.ndarray, kind: str) -> np.ndarray:
    """Contextual calibration (Zhao et al. 2021): [n, L] -> calibrated log-scores [n, L].

    Each item's label probabilities (renormalized over labels) divided by the content-free inputs' mean label
    probabilities (content_free_prior), as logs; softmax of a row gives the renormalized calibrated probabilities.
    """
    p = label_probs(scores, kind)
    return np.log(np.maximum(p, _PROB_FLOOR)) - np.log(content_free_prior(cf_scores, kind))


def calibrated_scores(mode: str, scores: np.ndarray, kind: str, cf_scores: np.ndarray | None = None) -> np.ndarray:
    """Calibrated log-scores [n, L] for one mode."""
    if mode == "batch":
        return batch_calibrate(scores, kind)
    if mode == "content-free":
        if cf_scores is None:
            raise QtalignError("content-free calibration needs the content-free inputs' scores (content_free.json)")
        return content_free_calibrate(scores, cf_scores, kind)
    raise QtalignError(f"unknown calibration mode {mode!r}")


def pick(scores: np.ndarray, labels: Sequence[str], seed: int, lang: str, index: int) -> tuple[str, bool]:
    """argmax label of scores [L]; exact ties broken by a choice seeded on (seed, lang, item)."""
    best = np.flatnonzero(scores == scores.max())
    if len(best) == 1:
        return labels[int(best[0])], False
    return labels[random.Random(f"{seed}:{lang}:{index}").choice(list(best))], True


def calibrate_language(
    rows: Sequence[Mapping[str, Any]],
    labels: Sequence[str],
    modes: Sequence[str],
    seed: int,
    cf_rows: Sequence[Mapping[str, Any]] | None = None,
) -> list[dict[str, str]]:
    """One language's prediction rows (all its scored items) -> per row {mode: calibrated label}.

    cf_rows: the content-free inputs' score rows ({'probs'|'loglik': {label: float}}), needed for 'content-free'.
    Ties are broken as for raw predictions (seeded on seed, language and item).
    """
    if not rows:
        return []
    kind = score_kind(rows)
    scores = score_matrix(rows, labels, kind)
    cf = score_matrix(cf_rows, labels, kind) if cf_rows else None
    out: list[dict[str, str]] = [{} for _ in rows]
    for mode in modes:
        cal = calibrated_scores(mode, scores, kind, cf)  # [n, L]
        for i, r in enumerate(rows):
            out[i][mode] = pick(cal[i], labels, seed, str(r["lang"]), int(r["index"]))[0]
    return out


# ---- metrics ----------------------------------------------------------------------------------------------

def _one_hot(values: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """[n] label names -> [n, L] float one-hot (a value outside labels is an all-zero row)."""
    pos = {lb: i for i, lb in enumerate(labels)}
    out = np.zeros((len(values), len(labels)))
    for i, v in enumerate(values):
        if v in pos:
            out[i, pos[v]] = 1.0
    return out


def _macro_f1_counts(tp: np.ndarray, n_gold: np.ndarray, n_pred: np.ndarray) -> np.ndarray:
    """Counts [..., L] -> macro-F1 [...]: mean over labels of 2tp / (gold + pred), labels absent from both skipped."""
    denom = n_gold + n_pred
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), np.nan)
        present = (denom > 0).sum(-1)
        total = np.nansum(f1, axis=-1)
        return np.where(present > 0, total / np.maximum(present, 1), np.nan)


def macro_f1(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> float:
    """Unweighted mean over labels of each label's F1 (2TP / (2TP + FP + FN)); a label that is neither gold nor
    predicted for any item is left out of the mean; a predicted label never gold counts with F1 = 0."""
    g, p = _one_hot(gold, labels), _one_hot(pred, labels)
    return float(_macro_f1_counts((g * p).sum(0), g.sum(0), p.sum(0)))


def label_shares(rows: Sequence[Mapping[str, Any]], labels: Sequence[str], mode: str | None = None) -> dict[str, float]:
    """Share of rows predicting each label: raw 'pred' (mode None) or 'pred_cal'[mode]."""
    preds = predictions(rows, mode)
    n = len(preds)
    return {lb: (sum(p == lb for p in preds) / n if n else float("nan")) for lb in labels}


def predictions(rows: Sequence[Mapping[str, Any]], mode: str | None = None) -> list[str]:
    """The predicted label of each row: raw 'pred' (mode None) or 'pred_cal'[mode]."""
    if mode is None:
        return [str(r["pred"]) for r in rows]
    try:
        return [str(r["pred_cal"][mode]) for r in rows]
    except KeyError:
        raise QtalignError(f"prediction rows have no {mode!r} calibrated prediction") from None


def _f1_boot(g: np.ndarray, p: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """one-hot gold/pred [n, L], indices [B, n] -> macro-F1 of each resample [B]."""
    return _macro_f1_counts((g * p)[idx].sum(1), g[idx].sum(1), p[idx].sum(1))


def summarize(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str], n_boot: int = 1000,
              seed: int = 0) -> dict[str, Any]:
    """Accuracy, macro-F1 and predicted-label counts/shares of one language, each with a 95% percentile bootstrap
    interval (items resampled with replacement; the same resamples as qtalign.metrics for the same seed)."""
    correct = [a == b for a, b in zip(gold, pred, strict=True)]
    acc = bootstrap_accuracy(correct, n_boot, seed)
    g, p = _one_hot(gold, labels), _one_hot(pred, labels)
    n = len(gold)
    f1 = macro_f1(gold, pred, labels)
    if n >= 2:
        boots = _f1_boot(g, p, boot_indices(n, n_boot, np.random.default_rng(seed)))
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
        g, p = _one_hot(gold, labels), _one_hot(pred, labels)
        idx = shared if shared is not None else boot_indices(len(gold), n_boot, rng)  # [B, n]
        if idx.shape[1] != len(gold):
            raise ValueError("joint resampling needs the same items in every language")
        f1_point += macro_f1(gold, pred, labels)
        f1_boot += _f1_boot(g, p, idx)
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

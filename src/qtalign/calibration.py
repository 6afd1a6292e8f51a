"""Label-bias calibration (batch, content-free) of stored per-label scores, and seeded argmax predictions."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from qtalign.errors import QtalignError

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

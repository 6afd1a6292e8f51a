"""Point metrics of predicted labels: one-hot encoding, macro-F1 and predicted-label shares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from qtalign.errors import QtalignError


def one_hot(values: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """[n] label names -> [n, L] float one-hot (a value outside labels is an all-zero row)."""
    pos = {lb: i for i, lb in enumerate(labels)}
    out = np.zeros((len(values), len(labels)))
    for i, v in enumerate(values):
        if v in pos:
            out[i, pos[v]] = 1.0
    return out


def macro_f1_counts(tp: np.ndarray, n_gold: np.ndarray, n_pred: np.ndarray) -> np.ndarray:
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
    g, p = one_hot(gold, labels), one_hot(pred, labels)
    return float(macro_f1_counts((g * p).sum(0), g.sum(0), p.sum(0)))


def predictions(rows: Sequence[Mapping[str, Any]], mode: str | None = None) -> list[str]:
    """The predicted label of each row: raw 'pred' (mode None) or 'pred_cal'[mode]."""
    if mode is None:
        return [str(r["pred"]) for r in rows]
    try:
        return [str(r["pred_cal"][mode]) for r in rows]
    except KeyError:
        raise QtalignError(f"prediction rows have no {mode!r} calibrated prediction") from None


def label_shares(rows: Sequence[Mapping[str, Any]], labels: Sequence[str], mode: str | None = None) -> dict[str, float]:
    """Share of rows predicting each label: raw 'pred' (mode None) or 'pred_cal'[mode]."""
    preds = predictions(rows, mode)
    n = len(preds)
    return {lb: (sum(p == lb for p in preds) / n if n else float("nan")) for lb in labels}


def macro_f1_boot(g: np.ndarray, p: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """one-hot gold/pred [n, L], indices [B, n] -> macro-F1 of each resample [B]."""
    return macro_f1_counts((g * p)[idx].sum(1), g[idx].sum(1), p[idx].sum(1))

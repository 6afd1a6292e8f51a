"""Accuracy with seeded bootstrap confidence intervals, per language and for the unweighted mean over languages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    value: float
    lo: float
    hi: float


def bootstrap_mean(x: np.ndarray, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x [n, ...] -> (mean, lo, hi) over rows (items), each [...]: percentile bootstrap, seeded."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(0)
    if len(x) < 2:
        return mean, mean.copy(), mean.copy()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))  # [n_boot, n]
    means = x[idx].mean(1)  # [n_boot, ...]
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2], axis=0)
    return mean, lo, hi


def bootstrap_accuracy(correct: Sequence[bool], n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> Interval:
    """Accuracy and its percentile bootstrap interval (items resampled with replacement)."""
    if len(correct) == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    mean, lo, hi = bootstrap_mean(np.asarray(correct, dtype=np.float64), n_boot, seed, 1 - level)
    return Interval(float(mean), float(lo), float(hi))


def bootstrap_mean_accuracy(
    correct_by_lang: Mapping[str, Sequence[bool]], n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> Interval:
    """Unweighted mean of per-language accuracies; each language resampled independently."""
    langs = [lang for lang, c in correct_by_lang.items() if len(c)]
    if not langs:
        return Interval(float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    boots = np.zeros(n_boot)
    point = 0.0
    for lang in langs:
        x = np.asarray(correct_by_lang[lang], dtype=np.float64)
        point += x.mean()
        boots += x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    boots /= len(langs)
    a = (1 - level) / 2
    return Interval(point / len(langs), float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a)))

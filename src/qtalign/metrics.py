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


def bootstrap_accuracy(correct: Sequence[bool], n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> Interval:
    """Accuracy and its percentile bootstrap interval (items resampled with replacement)."""
    x = np.asarray(correct, dtype=np.float64)  # [n]
    if x.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)  # [n_boot]
    a = (1 - level) / 2
    return Interval(float(x.mean()), float(np.quantile(means, a)), float(np.quantile(means, 1 - a)))


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

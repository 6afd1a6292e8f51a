"""Seeded bootstrap intervals of accuracy and of the mean over languages (joint over parallel items); power."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

JOINT = "joint"
INDEPENDENT = "independent"


@dataclass(frozen=True)
class Interval:
    value: float
    lo: float
    hi: float
    sd: float = float("nan")  # standard deviation of the bootstrap replicates


@dataclass(frozen=True)
class Resampling:
    """How items are resampled for a mean over languages: jointly (one item-position vector per replicate, shared by
    every language: the languages are translations of the same items) or each language independently."""

    scheme: Literal["joint", "independent"]
    text: str
    parallel_audit: bool | None = None  # what the parallel audit of `data check` said (None: not run / not known)

    @property
    def joint(self) -> bool:
        return self.scheme == JOINT

    def record(self) -> dict[str, Any]:
        """The scheme as data for results.json / compare.json."""
        out: dict[str, Any] = {"scheme": self.scheme, "text": self.text}
        if self.parallel_audit is not None:
            out["parallel_audit"] = self.parallel_audit
        return out


INDEPENDENT_UNKNOWN = Resampling(INDEPENDENT, "independently: item indices not known")


def resampling_scheme(items: Mapping[str, Sequence[int]], parallel_audit: bool | None = None) -> Resampling:
    """Joint when every language (with items) has exactly the same item indices and the parallel audit, where known,
    agrees; otherwise independent, with the reason in its text."""
    sets = {lang: list(v) for lang, v in items.items() if len(v)}
    n = len(sets)
    if n <= 1:
        return Resampling(JOINT, f"items resampled ({n} language)", parallel_audit)
    first = next(iter(sets.values()))
    if any(v != first for v in sets.values()):
        return Resampling(INDEPENDENT, "independently: not parallel (the languages do not share the same item indices)",
                          parallel_audit)
    if parallel_audit is False:
        return Resampling(INDEPENDENT, "independently: not parallel (the parallel audit found files of other "
                                       "lengths than English)", parallel_audit)
    return Resampling(JOINT, f"items resampled jointly across {n} languages", parallel_audit)


def boot_indices(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """[n_boot, n] item positions drawn with replacement: the one draw every interval here uses."""
    return rng.integers(0, n, size=(n_boot, n))


def bootstrap_mean(x: np.ndarray, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x [n, ...] -> (mean, lo, hi) over rows (items), each [...]: percentile bootstrap, seeded."""
    mean, lo, hi, _ = _bootstrap_mean_sd(x, n_boot, seed, alpha)
    return mean, lo, hi


def _bootstrap_mean_sd(x: np.ndarray, n_boot: int, seed: int, alpha: float
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """bootstrap_mean plus the replicates' standard deviation [...]."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(0)
    if len(x) < 2:
        return mean, mean.copy(), mean.copy(), np.zeros_like(mean)
    means = x[boot_indices(len(x), n_boot, np.random.default_rng(seed))].mean(1)  # [n_boot, ...]
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2], axis=0)
    return mean, lo, hi, means.std(0)


def bootstrap_accuracy(correct: Sequence[bool], n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> Interval:
    """Accuracy and its percentile bootstrap interval (items resampled with replacement)."""
    if len(correct) == 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    mean, lo, hi, sd = _bootstrap_mean_sd(np.asarray(correct, dtype=np.float64), n_boot, seed, 1 - level)
    return Interval(float(mean), float(lo), float(hi), float(sd))


def language_mean_replicates(values_by_lang: Mapping[str, np.ndarray], resampling: Resampling, n_boot: int,
                             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """values_by_lang: lang -> [n_lang, ...] per-item values (in item order) -> (point [...], replicates
    [n_boot, ...]) of the unweighted mean over languages. Joint: one draw of item positions per replicate shared by
    every language (all n_lang equal); independent: each language drawn on its own, in the mapping's order."""
    xs = [np.asarray(v, dtype=np.float64) for v in values_by_lang.values() if len(v)]
    if not xs:
        raise ValueError("no language has items")
    point = np.mean([x.mean(0) for x in xs], axis=0)
    if resampling.joint:
        n = len(xs[0])
        if any(len(x) != n for x in xs):
            raise ValueError("joint resampling needs the same items in every language")
        item_means = np.mean(xs, axis=0)  # [n, ...]: the mean over languages of each item
        return point, item_means[boot_indices(n, n_boot, rng)].mean(1)
    reps = np.zeros((n_boot, *point.shape))
    for x in xs:
        reps += x[boot_indices(len(x), n_boot, rng)].mean(1)
    return point, reps / len(xs)


def bootstrap_language_mean(values_by_lang: Mapping[str, np.ndarray], resampling: Resampling, n_boot: int = 1000,
                            seed: int = 0, level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(point, lo, hi, sd), each [...], of the unweighted mean over languages of per-item values [n_lang, ...]."""
    point, reps = language_mean_replicates(values_by_lang, resampling, n_boot, np.random.default_rng(seed))
    a = (1 - level) / 2
    lo, hi = np.quantile(reps, [a, 1 - a], axis=0)
    return point, lo, hi, reps.std(0)


def bootstrap_mean_accuracy(
    correct_by_lang: Mapping[str, Sequence[bool] | np.ndarray], n_boot: int = 1000, seed: int = 0,
    level: float = 0.95, resampling: Resampling = INDEPENDENT_UNKNOWN,
) -> Interval:
    """Unweighted mean of per-language accuracies (or of any per-item values, e.g. paired differences) with its
    percentile interval; items resampled as `resampling` says (default: each language independently)."""
    by_lang = {lang: c for lang, c in correct_by_lang.items() if len(c)}
    if not by_lang:
        return Interval(float("nan"), float("nan"), float("nan"))
    point, lo, hi, sd = bootstrap_language_mean(by_lang, resampling, n_boot, seed, level)
    return Interval(float(point), float(lo), float(hi), float(sd))


def detectable_change(sd: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true change a two-sided test at `alpha` detects with probability `power`, given the standard error
    `sd` of the estimate (normal approximation: (z_{1-alpha/2} + z_{power}) * sd, 2.80 * sd at 0.05 / 80%)."""
    z = NormalDist()
    return float((z.inv_cdf(1 - alpha / 2) + z.inv_cdf(power)) * sd)

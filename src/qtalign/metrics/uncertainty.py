"""Uncertainty of a mean change over training seeds, demonstration sets and items: interval and variance breakdown."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qtalign.metrics.intervals import INDEPENDENT, JOINT, Resampling, boot_indices, language_mean_replicates

# one run's paired per-item differences (tuned - base): [L, n] when the languages are parallel (item position p is
# the same item in every language), else one [n_lang] array per language (items resampled independently)
Cell = np.ndarray | Sequence[np.ndarray]
CellKey = tuple[Hashable, Hashable]  # (training seed, demonstration seed)


@dataclass(frozen=True)
class SeedAwareInterval:
    """The mean change over every (training seed, demonstration seed) run, with a two-level bootstrap interval."""

    value: float
    lo: float
    hi: float
    sd: float  # SD of the bootstrap replicates
    train_seeds: tuple[Hashable, ...]
    demo_seeds: tuple[Hashable, ...]
    items: str  # how items were resampled: "joint" (one item-position vector for all languages) or "independent"
    shared_items: bool  # one item-position vector per replicate for every run too (the runs score the same items)
    text: str  # "over 3 training seeds x 2 demonstration sets; items resampled jointly across languages"
    left_out: tuple[str, ...]  # e.g. ("training-seed variance not included",)

    def record(self) -> dict[str, Any]:
        return {"diff": self.value, "ci95": [self.lo, self.hi], "sd": self.sd,
                "train_seeds": list(self.train_seeds), "demo_seeds": list(self.demo_seeds), "items": self.items,
                "shared_items": self.shared_items, "text": self.text, "left_out": list(self.left_out)}


@dataclass(frozen=True)
class VarianceBreakdown:
    """Standard deviations (accuracy units) of the mean change attributable to each source, per unit: one run's
    items (its joint-bootstrap SD), one demonstration set, one training seed; None where a level has one value."""

    items: float
    demos: float | None
    train: float | None
    grand_sd: float  # SD of the mean over all runs these components imply
    n_items: int
    n_demo: int
    n_train: int

    def record(self) -> dict[str, Any]:
        return {"items": self.items, "demos": self.demos, "train": self.train, "grand_sd": self.grand_sd,
                "n_items": self.n_items, "n_demo": self.n_demo, "n_train": self.n_train}


def scope_text(n_train: int, n_demo: int) -> tuple[str, tuple[str, ...]]:
    """('over 3 training seeds x 2 demonstration sets', what the interval leaves out)."""
    def count(n: int, one: str, many: str) -> str:
        return f"{n} {one if n == 1 else many}"

    left_out = tuple(x for n, x in ((n_train, "training-seed variance not included"),
                                    (n_demo, "demonstration variance not included")) if n < 2)
    return (f"over {count(n_train, 'training seed', 'training seeds')} x "
            f"{count(n_demo, 'demonstration set', 'demonstration sets')}"), left_out


def _parallel(cell: Cell) -> bool:
    return isinstance(cell, np.ndarray) and cell.ndim == 2


def _item_means(cell: Cell) -> np.ndarray:
    """[n] the mean over languages of each item (parallel cell [L, n])."""
    return np.asarray(cell, dtype=np.float64).mean(0)


def _cell_mean(cell: Cell) -> float:
    if _parallel(cell):
        return float(np.asarray(cell, dtype=np.float64).mean())
    return float(np.mean([np.mean(x) for x in cell]))


def _item_variance(cell: Cell) -> float:
    """Variance of the cell's mean due to items (the closed form of its bootstrap variance, ddof 1)."""
    if _parallel(cell):
        m = _item_means(cell)
        return float(m.var(ddof=1) / len(m)) if len(m) > 1 else 0.0
    xs = [np.asarray(x, dtype=np.float64) for x in cell if len(x)]
    return float(sum(x.var(ddof=1) / len(x) for x in xs if len(x) > 1) / len(xs) ** 2)


def _shared(diffs: Mapping[CellKey, Cell], shared_items: bool | None) -> bool:
    """Whether one item-position vector can serve every run: all cells parallel with the same shape (the caller
    says the runs score the same items in the same order by shared_items=True, or leaves it to the shapes)."""
    cells = list(diffs.values())
    same = all(_parallel(c) for c in cells) and len({np.shape(c) for c in cells}) == 1
    if shared_items and not same:
        raise ValueError("shared_items: every run needs a [L, n] array of the same shape")
    return same if shared_items is None else bool(shared_items)


def _check(diffs: Mapping[CellKey, Cell]) -> None:
    if not diffs:
        raise ValueError("no runs to combine")
    for key, cell in diffs.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(f"key {key!r}: expected (training seed, demonstration seed)")
        if (np.shape(cell)[1] == 0) if _parallel(cell) else not any(len(x) for x in cell):
            raise ValueError(f"run {key!r}: no items")


def _seed_weights(n_levels: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """[n_boot, n_levels] how often each seed is drawn when n_levels seeds are resampled with replacement."""
    if n_levels == 1:
        return np.ones((n_boot, 1))
    draws = rng.integers(0, n_levels, size=(n_boot, n_levels))  # [B, K]
    return np.stack([(draws == k).sum(1) for k in range(n_levels)], axis=1).astype(np.float64)


def seed_aware_interval(diffs: Mapping[CellKey, Cell], n_boot: int = 2000, seed: int = 0, level: float = 0.95,
                        shared_items: bool | None = None) -> SeedAwareInterval:
    """Mean change over runs and its two-level percentile bootstrap interval.

    diffs: (training seed, demonstration seed) -> paired per-item differences of that run vs the base run with the
    same demonstration seed ([L, n] parallel, or per-language arrays). Point estimate: the mean over runs of each
    run's unweighted mean over languages. Each replicate resamples training seeds with replacement, demonstration
    seeds with replacement, then items: one item-position vector shared by every language (and by every run when
    shared_items, default: all runs [L, n] of one shape), or each language independently when a run is not
    parallel; the replicate is the mean over the drawn runs (a drawn pair without a run is left out). With one
    training seed and one demonstration set it is the joint item bootstrap of that run, draw for draw
    (metrics.bootstrap_language_mean with the same seed).
    """
    _check(diffs)
    keys = list(diffs)
    train = tuple(dict.fromkeys(k[0] for k in keys))
    demo = tuple(dict.fromkeys(k[1] for k in keys))
    shared = _shared(diffs, shared_items)
    rng = np.random.default_rng(seed)
    reps = np.empty((len(keys), n_boot))  # [C, B] item-resampled mean of each run
    if shared:
        stacked = np.stack([_item_means(diffs[k]) for k in keys])  # [C, n]
        idx = boot_indices(stacked.shape[1], n_boot, rng)  # [B, n]: one draw for every language and run
        for c in range(len(keys)):
            reps[c] = stacked[c][idx].mean(1)
    else:
        for c, k in enumerate(keys):
            cell = diffs[k]
            by_lang = {str(i): x for i, x in enumerate(cell)}
            scheme = Resampling(JOINT if _parallel(cell) else INDEPENDENT, "")
            reps[c] = language_mean_replicates(by_lang, scheme, n_boot, rng)[1]
    wt = _seed_weights(len(train), n_boot, rng)  # [B, T]
    wd = _seed_weights(len(demo), n_boot, rng)  # [B, D]
    t_of = np.array([train.index(k[0]) for k in keys])
    d_of = np.array([demo.index(k[1]) for k in keys])
    w = wt[:, t_of] * wd[:, d_of]  # [B, C] how often each run is drawn
    total = w.sum(1)
    est = np.where(total > 0, (w * reps.T).sum(1) / np.where(total > 0, total, 1), np.nan)  # [B]
    a = (1 - level) / 2
    lo, hi = np.nanquantile(est, [a, 1 - a])
    text, left_out = scope_text(len(train), len(demo))
    items = JOINT if all(_parallel(c) for c in diffs.values()) else INDEPENDENT
    text += "; items resampled " + ("jointly across languages" if items == JOINT else "independently per language")
    return SeedAwareInterval(float(np.mean([_cell_mean(diffs[k]) for k in keys])), float(lo), float(hi),
                             float(np.nanstd(est)), train, demo, items, shared, text, left_out)


def _level_variance(groups: Sequence[Sequence[Cell]], shared: bool) -> float:
    """Method-of-moments variance of a seed level from the runs grouped by that seed (each group averaged over the
    other level): the sample variance of the group means minus the part item sampling puts into it, floored at 0.
    Shared items: the item noise of each group's deviation from the grand mean, from the per-item deviations;
    otherwise the mean sampling variance of the group means."""
    k = len(groups)
    means = np.array([np.mean([_cell_mean(c) for c in g]) for g in groups])  # [K]
    observed = float(means.var(ddof=1))
    if shared:
        per_item = np.stack([np.mean([_item_means(c) for c in g], axis=0) for g in groups])  # [K, n]
        dev = per_item - per_item.mean(0)  # [K, n]
        noise = float((dev.var(1, ddof=1) / dev.shape[1]).sum() / (k - 1)) if dev.shape[1] > 1 else 0.0
    else:
        noise = float(np.mean([np.mean([_item_variance(c) for c in g]) / len(g) for g in groups]))
    return max(0.0, observed - noise)


def variance_breakdown(diffs: Mapping[CellKey, Cell], shared_items: bool | None = None) -> VarianceBreakdown:
    """How much of the spread of the mean change comes from items, demonstration sets and training seeds.

    items: the item SD of one run's mean change (the joint bootstrap's SD in closed form, averaged over runs as a
    variance). demos / train: the SD of one demonstration set's / training seed's effect on the mean change, from
    the runs' means grouped by that seed (averaged over the other level), corrected for item noise and floored at 0
    (the training-seed component also holds any seed x demonstration interaction); None with one seed. grand_sd:
    sqrt(item variance of the mean over runs + demos^2 / D + train^2 / T).
    """
    _check(diffs)
    shared = _shared(diffs, shared_items)
    keys = list(diffs)
    train = list(dict.fromkeys(k[0] for k in keys))
    demo = list(dict.fromkeys(k[1] for k in keys))
    item_var = float(np.mean([_item_variance(diffs[k]) for k in keys]))
    if shared:
        grand_item_var = _item_variance(np.mean([_item_means(diffs[k]) for k in keys], axis=0)[None, :])
    else:
        grand_item_var = float(sum(_item_variance(diffs[k]) for k in keys)) / len(keys) ** 2
    var_t = _level_variance([[diffs[k] for k in keys if k[0] == t] for t in train], shared) if len(train) > 1 else None
    var_d = _level_variance([[diffs[k] for k in keys if k[1] == d] for d in demo], shared) if len(demo) > 1 else None
    grand = grand_item_var + (var_d or 0.0) / len(demo) + (var_t or 0.0) / len(train)
    n_items = int(np.shape(next(iter(diffs.values())))[1]) if shared else \
        int(np.mean([np.mean([len(x) for x in c]) if not _parallel(c) else np.shape(c)[1] for c in diffs.values()]))
    return VarianceBreakdown(float(np.sqrt(item_var)), None if var_d is None else float(np.sqrt(var_d)),
                             None if var_t is None else float(np.sqrt(var_t)), float(np.sqrt(grand)), n_items,
                             len(demo), len(train))

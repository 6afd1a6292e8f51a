"""Uncertainty of a mean change over training seeds, demonstration sets and items: interval and variance breakdown."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qtalign.metrics.intervals import INDEPENDENT, JOINT, boot_indices

CellKey = tuple[Hashable, Hashable]  # (training seed, demonstration seed)


@dataclass(frozen=True)
class RunDiff:
    """One run's paired per-item differences (tuned - base) by language, each with the item indices it scored.

    joint: the languages are parallel (item index i is the same item in every language, and every language scored
    the same indices), so one draw of item indices serves every language. Runs of one pooled interval are matched
    by item index: index i of one run is index i of another (the same test item), whatever else either scored."""

    langs: tuple[str, ...]
    values: tuple[np.ndarray, ...]  # per language [n_lang] paired differences
    items: tuple[np.ndarray, ...]  # per language [n_lang] item indices (int), aligned with values
    joint: bool

    @classmethod
    def of(cls, values: Mapping[str, np.ndarray], items: Mapping[str, Sequence[int]], joint: bool) -> RunDiff:
        langs = tuple(values)
        vals = tuple(np.asarray(values[lang], dtype=np.float64) for lang in langs)
        idx = tuple(np.asarray(items[lang], dtype=np.int64) for lang in langs)
        for lang, v, i in zip(langs, vals, idx):
            if v.shape != i.shape or v.ndim != 1:
                raise ValueError(f"{lang}: {len(v)} values for {len(i)} item indices")
            if len(np.unique(i)) != len(i):
                raise ValueError(f"{lang}: an item index occurs twice")
        if joint and len({tuple(i.tolist()) for i in idx}) > 1:
            raise ValueError("joint: every language must score the same item indices in the same order")
        return cls(langs, vals, idx, joint)

    def item_means(self) -> tuple[np.ndarray, np.ndarray]:
        """(item indices [n], mean over languages of each item [n]) of a joint run."""
        return self.items[0], np.mean(np.stack(self.values), axis=0)


# one run's paired per-item differences: a RunDiff; or [L, n] when the languages are parallel (item position p is
# the same item in every language, positions 0..n-1 taken as item indices); or one [n_lang] array per language
# (items resampled independently per language, positions taken as indices)
Cell = RunDiff | np.ndarray | Sequence[np.ndarray]


def as_run_diff(cell: Cell) -> RunDiff:
    """A cell as a RunDiff: bare arrays take their positions as item indices."""
    if isinstance(cell, RunDiff):
        return cell
    if isinstance(cell, np.ndarray) and cell.ndim == 2:
        names = [str(k) for k in range(cell.shape[0])]
        return RunDiff.of(dict(zip(names, cell)), {n: range(cell.shape[1]) for n in names}, True)
    xs = [np.asarray(x, dtype=np.float64) for x in cell]
    names = [str(k) for k in range(len(xs))]
    return RunDiff.of(dict(zip(names, xs)), {n: range(len(x)) for n, x in zip(names, xs)}, False)


@dataclass(frozen=True)
class SeedAwareInterval:
    """The mean change over every (training seed, demonstration seed) run, with a two-level bootstrap interval."""

    value: float
    lo: float
    hi: float
    sd: float  # SD of the bootstrap replicates
    train_seeds: tuple[Hashable, ...]
    demo_seeds: tuple[Hashable, ...]
    items: str  # how items were resampled: "joint" (one item-index vector for all languages) or "independent"
    shared_items: bool  # one draw of item indices per replicate serves every run (runs matched by item index)
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


# ---- the runs of one pooled estimate, matched by item index ----------------------------------------------------
@dataclass(frozen=True)
class _Pool:
    """The runs of one estimate: keys, runs, whether items are resampled jointly across languages, and whether runs
    are matched by item index (one draw of indices serves every run) or each run's items are its own."""

    keys: list[CellKey]
    runs: list[RunDiff]
    joint: bool
    matched: bool

    @property
    def same_items(self) -> bool:
        """Every run scored exactly the same item indices, in the same order, in every language."""
        first = self.runs[0]
        return all(r.langs == first.langs and all(np.array_equal(a, b) for a, b in zip(r.items, first.items))
                   for r in self.runs)


def _pool(diffs: Mapping[CellKey, Cell], shared_items: bool | None) -> _Pool:
    """Check the cells and read them as runs. shared_items=False: each run's items are its own (no matching across
    runs: every run gets its own item draw); otherwise runs are matched by item index. True insists on parallel
    runs that score the same items (the old contract)."""
    if not diffs:
        raise ValueError("no runs to combine")
    keys = list(diffs)
    runs = []
    for key in keys:
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ValueError(f"key {key!r}: expected (training seed, demonstration seed)")
        run = as_run_diff(diffs[key])
        if not any(len(v) for v in run.values):
            raise ValueError(f"run {key!r}: no items")
        runs.append(run)
    joint = all(r.joint for r in runs)
    if shared_items is False:  # each run's items its own: index i of run c becomes c * span + i
        span = 1 + max(int(i.max()) for r in runs for i in r.items if len(i))
        runs = [RunDiff(r.langs, r.values, tuple(i + c * span for i in r.items), r.joint) for c, r in enumerate(runs)]
    pool = _Pool(keys, runs, joint, shared_items is not False)
    if shared_items and not (joint and pool.same_items):
        raise ValueError("shared_items: every run needs a [L, n] array of the same shape")
    return pool


def _counts(idx: np.ndarray, size: int) -> np.ndarray:
    """[B, size] how often each universe position was drawn, from [B, n] drawn positions."""
    b = idx.shape[0]
    flat = (idx + np.arange(b)[:, None] * size).ravel()
    return np.bincount(flat, minlength=b * size).reshape(b, size).astype(np.float64)


def _weighted(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """[B] the mean of values [n] under each replicate's draw counts [B, n] of their items (NaN: none drawn)."""
    den = counts.sum(1)
    return np.where(den > 0, counts @ values / np.where(den > 0, den, 1), np.nan)


def _draw(members: Sequence[tuple[int, np.ndarray, np.ndarray]], n_boot: int, rng: np.random.Generator,
          n_runs: int) -> np.ndarray:
    """[C, B] replicate means of each member run's values (run, item indices [n], values [n]) under one draw of
    item indices from the union of the members' indices (NaN for runs not among the members). Members that all
    scored the same indices in the same order get one positional draw, exactly as a single run's bootstrap."""
    out = np.full((n_runs, n_boot), np.nan)
    if all(np.array_equal(m[1], members[0][1]) for m in members):
        idx = boot_indices(len(members[0][1]), n_boot, rng)  # [B, n]
        for c, _, v in members:
            out[c] = v[idx].mean(1)
        return out
    universe = np.unique(np.concatenate([m[1] for m in members]))
    counts = _counts(boot_indices(len(universe), n_boot, rng), len(universe))  # [B, U]
    for c, items, v in members:
        out[c] = _weighted(counts[:, np.searchsorted(universe, items)], v)
    return out


def _replicates(pool: _Pool, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """[C, B] each run's item-resampled mean over languages. Joint: one draw of item indices per replicate for
    every language (and every run, matched by index); independent: one draw per language (shared by the runs)."""
    n = len(pool.runs)
    if pool.joint:
        members = [(c, *r.item_means()) for c, r in enumerate(pool.runs)]
        return _draw(members, n_boot, rng, n) if pool.matched else \
            np.concatenate([_draw([(0, i, v)], n_boot, rng, 1) for _, i, v in members])
    total = np.zeros((n, n_boot))
    n_lang = np.zeros(n)
    langs = list(dict.fromkeys(lang for r in pool.runs for lang in r.langs))
    groups = [[(c, r.items[k], r.values[k]) for c, r in enumerate(pool.runs) for k, x in enumerate(r.langs)
               if x == lang and len(r.items[k])] for lang in langs]
    if not pool.matched:  # each run on its own, language by language (the runs' items are disjoint anyway)
        groups = [[m] for c in range(n) for g in groups for m in g if m[0] == c]
    for members in groups:
        reps = _draw(members, n_boot, rng, n)
        for c, _, _ in members:
            total[c] += reps[c]
            n_lang[c] += 1
    return total / n_lang[:, None]


def matched_replicates(runs: Sequence[RunDiff], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """[C, B] each run's mean over languages under one draw of item indices per replicate shared by every run
    (matched by item index; jointly across languages when every run is parallel, else one draw per language)."""
    return _replicates(_Pool([(0, 0)] * len(runs), list(runs), all(r.joint for r in runs), True), n_boot, rng)


def _run_mean(run: RunDiff) -> float:
    return float(np.mean([np.mean(v) for v in run.values if len(v)]))


def _seed_weights(n_levels: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """[n_boot, n_levels] how often each seed is drawn when n_levels seeds are resampled with replacement."""
    if n_levels == 1:
        return np.ones((n_boot, 1))
    draws = rng.integers(0, n_levels, size=(n_boot, n_levels))  # [B, K]
    return np.stack([(draws == k).sum(1) for k in range(n_levels)], axis=1).astype(np.float64)


def seed_aware_interval(diffs: Mapping[CellKey, Cell], n_boot: int = 2000, seed: int = 0, level: float = 0.95,
                        shared_items: bool | None = None) -> SeedAwareInterval:
    """Mean change over runs and its two-level percentile bootstrap interval.

    diffs: (training seed, demonstration seed) -> that run's paired per-item differences vs the base run with the
    same demonstration seed (RunDiff, [L, n] parallel, or per-language arrays). Point estimate: the mean over runs
    of each run's unweighted mean over languages. Each replicate draws item indices with replacement from the union
    of the indices the runs scored — one draw shared by every language when the runs are parallel, else one per
    language — and every run averages the drawn items it scored (runs matched by item index: two demonstration
    sets that each leave their own demonstrations out still share one item draw); then training seeds and
    demonstration seeds are resampled with replacement and the replicate is the mean over the drawn runs.
    shared_items=False gives each run its own item draw instead. With one training seed and one demonstration set
    it is the item bootstrap of that run, draw for draw (metrics.bootstrap_language_mean with the same seed).
    """
    pool = _pool(diffs, shared_items)
    train = tuple(dict.fromkeys(k[0] for k in pool.keys))
    demo = tuple(dict.fromkeys(k[1] for k in pool.keys))
    rng = np.random.default_rng(seed)
    reps = _replicates(pool, n_boot, rng)  # [C, B]
    wt = _seed_weights(len(train), n_boot, rng)  # [B, T]
    wd = _seed_weights(len(demo), n_boot, rng)  # [B, D]
    t_of = np.array([train.index(k[0]) for k in pool.keys])
    d_of = np.array([demo.index(k[1]) for k in pool.keys])
    w = wt[:, t_of] * wd[:, d_of] * ~np.isnan(reps.T)  # [B, C] how often each run is drawn (and has drawn items)
    total = w.sum(1)
    est = np.where(total > 0, (w * np.nan_to_num(reps.T)).sum(1) / np.where(total > 0, total, 1), np.nan)  # [B]
    a = (1 - level) / 2
    lo, hi = np.nanquantile(est, [a, 1 - a])
    text, left_out = scope_text(len(train), len(demo))
    text += "; items resampled " + ("jointly across languages" if pool.joint else "independently per language")
    if pool.matched and len(pool.runs) > 1 and not pool.same_items:
        text += ", matched by item index across runs"
    return SeedAwareInterval(float(np.mean([_run_mean(r) for r in pool.runs])), float(lo), float(hi),
                             float(np.nanstd(est)), train, demo, JOINT if pool.joint else INDEPENDENT, pool.matched,
                             text, left_out)


# ---- variance breakdown ----------------------------------------------------------------------------------------
def _item_variance(run: RunDiff) -> float:
    """Variance of the run's mean due to items (the closed form of its bootstrap variance, ddof 1)."""
    if run.joint:
        m = run.item_means()[1]
        return float(m.var(ddof=1) / len(m)) if len(m) > 1 else 0.0
    xs = [v for v in run.values if len(v)]
    return float(sum(x.var(ddof=1) / len(x) for x in xs if len(x) > 1) / len(xs) ** 2)


def _on_universe(runs: Sequence[RunDiff], universe: np.ndarray) -> np.ndarray:
    """[C, U] each joint run's item means placed at its item indices (NaN where it did not score the item)."""
    out = np.full((len(runs), len(universe)), np.nan)
    for c, r in enumerate(runs):
        items, means = r.item_means()
        out[c, np.searchsorted(universe, items)] = means
    return out


def _level_variance(groups: Sequence[Sequence[int]], pool: _Pool, grid: np.ndarray | None) -> float:
    """Method-of-moments variance of a seed level from the runs grouped by that seed (each group averaged over the
    other level): the sample variance of the group means minus the part item sampling puts into it, floored at 0.
    Matched joint runs (grid [C, U]): the item noise of each group's deviation from the grand mean, from the
    per-item deviations over the items every run scored; otherwise the mean sampling variance of the group means."""
    k = len(groups)
    means = np.array([np.mean([_run_mean(pool.runs[c]) for c in g]) for g in groups])  # [K]
    observed = float(means.var(ddof=1))
    complete = None if grid is None else ~np.isnan(grid).any(0)  # [U] items every run scored
    if grid is not None and complete is not None and complete.sum() > 1:
        per_item = np.stack([grid[list(g)][:, complete].mean(0) for g in groups])  # [K, n]
        dev = per_item - per_item.mean(0)  # [K, n]
        noise = float((dev.var(1, ddof=1) / dev.shape[1]).sum() / (k - 1))
    else:
        noise = float(np.mean([np.mean([_item_variance(pool.runs[c]) for c in g]) / len(g) for g in groups]))
    return max(0.0, observed - noise)


def variance_breakdown(diffs: Mapping[CellKey, Cell], shared_items: bool | None = None) -> VarianceBreakdown:
    """How much of the spread of the mean change comes from items, demonstration sets and training seeds.

    items: the item SD of one run's mean change (the joint bootstrap's SD in closed form, averaged over runs as a
    variance). demos / train: the SD of one demonstration set's / training seed's effect on the mean change, from
    the runs' means grouped by that seed (averaged over the other level), corrected for item noise and floored at 0
    (the training-seed component also holds any seed x demonstration interaction); None with one seed. grand_sd:
    sqrt(item variance of the mean over runs + demos^2 / D + train^2 / T). Parallel runs are matched by item
    index, as in seed_aware_interval (shared_items=False: each run's items its own).
    """
    pool = _pool(diffs, shared_items)
    runs = pool.runs
    train = list(dict.fromkeys(k[0] for k in pool.keys))
    demo = list(dict.fromkeys(k[1] for k in pool.keys))
    item_var = float(np.mean([_item_variance(r) for r in runs]))
    grid = None
    if pool.joint and pool.matched:
        universe = np.unique(np.concatenate([r.items[0] for r in runs]))
        grid = _on_universe(runs, universe)  # [C, U]
        g = np.nanmean(grid, axis=0)  # [U] each item's mean change over the runs that scored it
        grand_item_var = float(g.var(ddof=1) / len(g)) if len(g) > 1 else 0.0
    else:
        grand_item_var = float(sum(_item_variance(r) for r in runs)) / len(runs) ** 2
    groups_t = [[c for c, k in enumerate(pool.keys) if k[0] == t] for t in train]
    groups_d = [[c for c, k in enumerate(pool.keys) if k[1] == d] for d in demo]
    var_t = _level_variance(groups_t, pool, grid) if len(train) > 1 else None
    var_d = _level_variance(groups_d, pool, grid) if len(demo) > 1 else None
    grand = grand_item_var + (var_d or 0.0) / len(demo) + (var_t or 0.0) / len(train)
    n_items = round(float(np.mean([np.mean([len(v) for v in r.values]) for r in runs])))
    return VarianceBreakdown(float(np.sqrt(item_var)), None if var_d is None else float(np.sqrt(var_d)),
                             None if var_t is None else float(np.sqrt(var_t)), float(np.sqrt(grand)), n_items,
                             len(demo), len(train))

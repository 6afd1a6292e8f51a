"""Contrasts of several tuned arms, paired through demonstration sets: a hierarchical bootstrap (items matched by
index) and a crossed random-effects model side by side, and the verdict rule of the paper-findings table."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qtalign.metrics.uncertainty import (
    Cell,
    CellKey,
    RunDiff,
    _run_mean,
    _seed_weights,
    as_run_diff,
    matched_replicates,
    variance_breakdown,
)

REPRODUCED, NOT_SHOWN, CONTRADICTED = "reproduced", "not shown", "contradicted"
Z80 = 0.84  # one-sided normal quantile of 80% power; with 1.96 for a two-sided 5% test: the power line


@dataclass(frozen=True)
class Arm:
    """One tuned arm of a contrast: its runs, keyed (training seed, demonstration seed), each the per-item change from
    the base run of the same demonstration set; and its weight in the contrast (e.g. +1/3 for one of 3 arms)."""

    name: str
    weight: float
    runs: Mapping[CellKey, Cell]


@dataclass(frozen=True)
class MixedInterval:
    """The crossed random-effects model's estimate: y[d, i] = mu + u_d + v_i + e, REML (statsmodels MixedLM), with
    the training-seed variance added; interval mu +- t(df) * se, df = demonstration sets - 1."""

    value: float
    lo: float
    hi: float
    se: float
    df: int
    sd_demos: float | None  # SD of a demonstration set's effect on the contrast (None: one set)
    sd_items: float  # SD of an item's effect
    sd_resid: float
    note: str

    def record(self) -> dict[str, Any]:
        return {"value": self.value, "ci95": [self.lo, self.hi], "se": self.se, "df": self.df,
                "sd_demos": self.sd_demos, "sd_items": self.sd_items, "sd_resid": self.sd_resid, "note": self.note}


@dataclass(frozen=True)
class ContrastInterval:
    """A weighted contrast of arms' mean changes from base over the demonstration sets every arm ran, with its
    hierarchical bootstrap interval and (when fitted) the mixed model's beside it."""

    value: float
    lo: float
    hi: float
    sd: float  # SD of the bootstrap replicates
    demo_seeds: tuple[Any, ...]
    train_seeds: dict[str, tuple[Any, ...]]  # per arm
    n_items: int
    text: str
    left_out: tuple[str, ...]
    train_sd: float | None  # SD added per one-seed arm (None: none added)
    mixed: MixedInterval | None

    @property
    def mde80(self) -> float:
        """The smallest change detectable at 80% power (two-sided 5%): (1.96 + 0.84) x the larger SD of the two."""
        return (1.96 + Z80) * max(self.sd, self.mixed.se if self.mixed else 0.0)

    def record(self) -> dict[str, Any]:
        return {"value": self.value, "ci95": [self.lo, self.hi], "sd": self.sd, "mde80": self.mde80,
                "demo_seeds": list(self.demo_seeds), "train_seeds": {k: list(v) for k, v in self.train_seeds.items()},
                "n_items": self.n_items, "scope": self.text, "left_out": list(self.left_out),
                "train_sd_added": self.train_sd, "mixed": self.mixed.record() if self.mixed else None}


def restrict(run: Cell, langs: Sequence[str]) -> RunDiff:
    """A run's differences over the given languages only (in that order; languages it lacks are skipped)."""
    r = as_run_diff(run)
    keep = [r.langs.index(x) for x in langs if x in r.langs]
    if not keep:
        raise ValueError(f"none of {', '.join(langs)} in the run ({', '.join(r.langs)})")
    return RunDiff(tuple(r.langs[k] for k in keep), tuple(r.values[k] for k in keep), tuple(r.items[k] for k in keep),
                   r.joint)


def _common_demos(arms: Sequence[Arm]) -> list[Any]:
    order = list(dict.fromkeys(k[1] for a in arms for k in a.runs))
    return [d for d in order if all(any(k[1] == d for k in a.runs) for a in arms)]


def contrast_interval(arms: Sequence[Arm], n_boot: int = 2000, seed: int = 0, level: float = 0.95,
                      train_sd: float | None = None, mixed: bool = True) -> ContrastInterval:
    """sum_a weight_a x (arm a's mean change from base) over the demonstration sets every arm ran, and its interval.

    Point estimate: for each arm, the mean over those sets of the mean over its training seeds of each run's mean
    over languages; weighted and summed. Bootstrap (n_boot replicates): one draw of item indices shared by every run
    of every arm (matched by index, jointly across parallel languages); each arm's training seeds resampled on their
    own (arms are different adapters); the demonstration sets resampled once for all arms (every arm of a set is
    paired with the same base run); the replicate combines each set's weighted arm means. An arm with one training
    seed gets, when train_sd is given, weight x N(0, train_sd^2) added to each replicate: the training-seed variance
    it cannot show itself. With one arm of weight 1 and no train_sd this is metrics.seed_aware_interval, draw for
    draw. mixed: also fit the crossed random-effects model (MixedInterval) on the same per-item contrasts.
    """
    if not arms:
        raise ValueError("no arms")
    demos = _common_demos(arms)
    if not demos:
        raise ValueError(f"no demonstration set common to {', '.join(a.name for a in arms)}")
    entries: list[tuple[int, Any, int, RunDiff]] = []  # (arm, training seed, demo index, run)
    for a, arm in enumerate(arms):
        for key, cell in arm.runs.items():
            if key[1] in demos:
                entries.append((a, key[0], demos.index(key[1]), as_run_diff(cell)))
    train = [tuple(dict.fromkeys(e[1] for e in entries if e[0] == a)) for a in range(len(arms))]
    rng = np.random.default_rng(seed)
    reps = matched_replicates([e[3] for e in entries], n_boot, rng)  # [C, B]
    wts = [_seed_weights(len(t), n_boot, rng) for t in train]  # per arm [B, T_a]
    wd = _seed_weights(len(demos), n_boot, rng)  # [B, D]
    per_set = np.zeros((n_boot, len(demos)))  # [B, D] the weighted sum over arms, per demonstration set
    value = 0.0
    for a, arm in enumerate(arms):
        num = np.zeros((n_boot, len(demos)))
        den = np.zeros((n_boot, len(demos)))
        means = []
        for c, (ea, t, d, run) in enumerate(entries):
            if ea != a:
                continue
            w = wts[a][:, train[a].index(t)] * ~np.isnan(reps[c])  # [B]
            num[:, d] += w * np.nan_to_num(reps[c])
            den[:, d] += w
            means.append((d, _run_mean(run)))
        with np.errstate(invalid="ignore", divide="ignore"):
            per_set += arm.weight * num / den  # NaN where no drawn seed of the arm ran that set
        value += arm.weight * float(np.mean([np.mean([m for dd, m in means if dd == d]) for d in range(len(demos))]))
    ok = ~np.isnan(per_set)
    est = (wd * np.where(ok, per_set, 0)).sum(1) / np.where((wd * ok).sum(1) > 0, (wd * ok).sum(1), np.nan)  # [B]
    one_seed = [a for a in range(len(arms)) if len(train[a]) == 1]
    if train_sd:
        for a in one_seed:
            est = est + arms[a].weight * rng.normal(0.0, train_sd, n_boot)
    alpha = (1 - level) / 2
    lo, hi = np.nanquantile(est, [alpha, 1 - alpha])
    n_items = round(float(np.mean([np.mean([len(v) for v in e[3].values]) for e in entries])))
    text, left_out = _scope(arms, demos, train, entries, train_sd)
    mm, why = _mixed(arms, demos, train, entries, train_sd, level) if mixed else (None, "")
    return ContrastInterval(value, float(lo), float(hi), float(np.nanstd(est)), tuple(demos),
                            {arm.name: train[a] for a, arm in enumerate(arms)}, n_items, text,
                            left_out + ((f"mixed model not fitted: {why}",) if why else ()),
                            train_sd if train_sd and one_seed else None, mm)


def _scope(arms: Sequence[Arm], demos: list[Any], train: list[tuple[Any, ...]],
           entries: list[tuple[int, Any, int, RunDiff]], train_sd: float | None) -> tuple[str, tuple[str, ...]]:
    seeds = sorted({len(t) for t in train})
    seed_text = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    text = (f"{len(arms)} arm{'s' if len(arms) > 1 else ''} x {len(demos)} demonstration set"
            f"{'s' if len(demos) > 1 else ''} x {seed_text} training seed{'s' if seeds[-1] > 1 else ''} per arm; "
            "demonstration sets, training seeds and items resampled, items matched by index")
    joint = all(e[3].joint for e in entries)
    text += " jointly across languages" if joint else ", independently per language"
    left_out = []
    if len(demos) < 2:
        left_out.append("demonstration variance not included")
    if any(len(t) == 1 for t in train):
        left_out.append("training-seed SD added for one-seed arms" if train_sd else
                        "training-seed variance not included for one-seed arms")
    return text, tuple(left_out)


def _contrast_cells(arms: Sequence[Arm], demos: list[Any], entries: list[tuple[int, Any, int, RunDiff]]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, demo index, item index) of the per-item contrast in each demonstration set: sum over arms of weight x the
    arm's item change (mean over languages, then over its training seeds); items some arm lacks in a set dropped."""
    ys, ds, its = [], [], []
    for d in range(len(demos)):
        per_arm = []
        for a, arm in enumerate(arms):
            runs = [e[3] for e in entries if e[0] == a and e[2] == d]
            grids = {}
            for r in runs:
                for i, m in zip(*r.item_means()):
                    grids.setdefault(int(i), []).append(float(m))
            per_arm.append((arm.weight, {i: float(np.mean(v)) for i, v in grids.items()}))
        items = sorted(set.intersection(*(set(g) for _, g in per_arm)))
        for i in items:
            ys.append(sum(w * g[i] for w, g in per_arm))
            ds.append(d)
            its.append(i)
    return np.array(ys), np.array(ds), np.array(its)


def _mixed(arms: Sequence[Arm], demos: list[Any], train: list[tuple[Any, ...]],
           entries: list[tuple[int, Any, int, RunDiff]], train_sd: float | None, level: float
           ) -> tuple[MixedInterval | None, str]:
    """The crossed random-effects model on the per-item contrasts, or (None, why not: runs not parallel, too few
    items, a fit that fails or gives no standard error); the training-seed variance is added to mu's variance:
    train_sd^2 for a one-seed arm, the method-of-moments seed component (metrics.variance_breakdown) over T seeds
    otherwise, each times weight^2."""
    from scipy.stats import t as student_t

    if not all(e[3].joint for e in entries):
        return None, "the languages are not parallel"
    y, d, i = _contrast_cells(arms, demos, entries)
    if len(y) < 3:
        return None, "fewer than 3 item contrasts"
    items = np.unique(i)
    if len(demos) > 1:
        from statsmodels.regression.mixed_linear_model import MixedLM, VCSpec

        zd = (d[:, None] == np.arange(len(demos))).astype(np.float64)  # [n, D]
        zi = (i[:, None] == items).astype(np.float64)  # [n, I]
        vc = VCSpec(["demo", "item"], [["demo"], ["item"]], [[zd], [zi]])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = MixedLM(y, np.ones((len(y), 1)), groups=np.zeros(len(y)), exog_vc=vc).fit(reml=True)
        except (np.linalg.LinAlgError, ValueError, ZeroDivisionError, FloatingPointError) as err:
            return None, f"{type(err).__name__}: {err}"  # statsmodels' numerical failures
        value, se = float(fit.fe_params[0]), float(fit.bse_fe[0])
        if not np.isfinite(se):
            return None, "no standard error (the per-item contrasts do not vary)"
        vd, vi = (float(x) for x in fit.vcomp)
        sd_demos, sd_items, resid, df = float(np.sqrt(max(vd, 0))), float(np.sqrt(max(vi, 0))), float(fit.scale), \
            len(demos) - 1
        note = "REML, crossed demonstration-set and item effects (statsmodels MixedLM)" + \
               ("" if fit.converged else "; the optimizer did not report convergence")
    else:  # one demonstration set: the per-item contrasts' mean and its standard error
        value, se, df = float(y.mean()), float(y.std(ddof=1) / np.sqrt(len(y))), len(y) - 1
        sd_demos, sd_items, resid = None, float(y.std(ddof=1)), 0.0
        note = "one demonstration set: mean of the per-item contrasts, t interval over items"
    extra = 0.0
    for a, arm in enumerate(arms):
        if len(train[a]) == 1:
            extra += arm.weight ** 2 * (train_sd or 0.0) ** 2
        else:
            runs = {(e[1], demos[e[2]]): e[3] for e in entries if e[0] == a}
            sd_t = variance_breakdown(runs).train or 0.0
            extra += arm.weight ** 2 * sd_t ** 2 / len(train[a])
    se_all = float(np.sqrt(se ** 2 + extra))
    q = float(student_t.ppf(1 - (1 - level) / 2, df))
    return MixedInterval(value, value - q * se_all, value + q * se_all, se_all, df, sd_demos, sd_items,
                         float(np.sqrt(max(resid, 0))), note), ""


def verdict(lo: float, hi: float, direction: str, margin: float = 0.0) -> str:
    """The findings table's rule for one interval: `up` (`down`): reproduced when it excludes 0 above (below),
    contradicted when it excludes 0 the other way, else not shown; `similar`: reproduced when it lies inside
    (-margin, +margin), contradicted when it lies wholly outside [-margin, +margin], else not shown."""
    if direction == "similar":
        if -margin < lo and hi < margin:
            return REPRODUCED
        return CONTRADICTED if lo > margin or hi < -margin else NOT_SHOWN
    sign = 1 if direction == "up" else -1
    lo, hi = sorted((sign * lo, sign * hi))
    return REPRODUCED if lo > 0 else CONTRADICTED if hi < 0 else NOT_SHOWN


def contrast_verdict(c: ContrastInterval, direction: str, margin: float = 0.0) -> str:
    """The verdict both intervals agree on (bootstrap and, when fitted, the mixed model; c.left_out says when it was
    not); not shown when they differ."""
    found = {verdict(c.lo, c.hi, direction, margin)}
    if c.mixed is not None:
        found.add(verdict(c.mixed.lo, c.mixed.hi, direction, margin))
    return found.pop() if len(found) == 1 else NOT_SHOWN

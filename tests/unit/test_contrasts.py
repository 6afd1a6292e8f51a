"""Contrasts of several arms paired through demonstration sets (metrics.contrasts): the hierarchical bootstrap, the
crossed random-effects model beside it, and the findings table's verdict rule; on synthetic arrays (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from qtalign.metrics import (
    CONTRADICTED,
    NOT_SHOWN,
    REPRODUCED,
    Arm,
    RunDiff,
    contrast_interval,
    contrast_verdict,
    restrict,
    seed_aware_interval,
    verdict,
)

L, N = 6, 120


def runs_of(rng: np.random.Generator, shift: float, demo_effect: dict[int, float], seeds: tuple[int, ...],
            items: np.ndarray | None = None, hard: np.ndarray | None = None, seed_effect: float = 0.0
            ) -> dict[tuple[int, int], RunDiff]:
    """(seed, demo) -> a parallel run whose per-item changes are -1/0/+1 with mean about shift + demo_effect[d]
    (+ seed_effect x seed index); `hard` [N] adds an item effect shared by every run (items matched by index)."""
    items = np.arange(N) if items is None else items
    hard = np.zeros(N) if hard is None else hard
    out = {}
    for k, t in enumerate(seeds):
        for d, eff in demo_effect.items():
            p = np.clip(0.5 * (shift + eff + seed_effect * k + hard[items]), -0.9, 0.9)  # [n]
            up = rng.random((L, len(items))) < np.clip(p, 0, 1)
            down = rng.random((L, len(items))) < np.clip(-p, 0, 1)
            vals = up.astype(float) - down.astype(float)  # [L, n]
            out[t, d] = RunDiff.of({f"l{j}": vals[j] for j in range(L)}, {f"l{j}": items for j in range(L)}, True)
    return out


def test_one_arm_of_weight_one_is_the_seed_aware_interval_draw_for_draw() -> None:
    rng = np.random.default_rng(0)
    runs = runs_of(rng, 0.1, {0: 0.0, 1: 0.1, 2: -0.05}, (42, 43))
    c = contrast_interval([Arm("a", 1.0, runs)], n_boot=500, seed=3, mixed=False)
    s = seed_aware_interval(runs, 500, 3)
    assert (c.value, c.lo, c.hi) == pytest.approx((s.value, s.lo, s.hi), abs=1e-12)
    assert c.demo_seeds == (0, 1, 2) and c.train_seeds == {"a": (42, 43)} and c.n_items == N
    assert c.left_out == () and c.train_sd is None


def test_identical_arms_contrast_to_exactly_zero() -> None:
    runs = runs_of(np.random.default_rng(1), 0.2, {0: 0.0, 1: 0.3}, (42,))
    c = contrast_interval([Arm("a", 1.0, runs), Arm("b", -1.0, runs)], n_boot=300, mixed=False)
    assert c.value == 0 and c.lo == 0 and c.hi == 0


def test_pairing_through_demonstration_sets_removes_their_shared_effect() -> None:
    """Both arms move with the demonstration set by as much as +-20 points; their difference does not: the contrast's
    interval is far narrower than either arm's, and centred on the true difference."""
    rng = np.random.default_rng(2)
    demos = {0: -0.2, 1: 0.25, 2: 0.0, 3: 0.15}
    a, b = runs_of(rng, 0.15, demos, (42,)), runs_of(rng, 0.05, demos, (42,))
    alone = contrast_interval([Arm("a", 1.0, a)], n_boot=1000, mixed=False)
    diff = contrast_interval([Arm("a", 1.0, a), Arm("b", -1.0, b)], n_boot=1000, mixed=False)
    assert diff.hi - diff.lo < 0.5 * (alone.hi - alone.lo)
    assert diff.lo < 0.05 < diff.hi


def test_only_the_demonstration_sets_every_arm_ran_enter() -> None:
    rng = np.random.default_rng(3)
    six = runs_of(rng, 0.1, {d: 0.0 for d in range(6)}, (42,))
    three = runs_of(rng, 0.1, {d: 0.0 for d in range(3)}, (42,))
    c = contrast_interval([Arm("six", 1.0, six), Arm("three", -1.0, three)], n_boot=200, mixed=False)
    assert c.demo_seeds == (0, 1, 2)
    mean = lambda runs: np.mean([np.mean([v.mean() for v in runs[42, d].values]) for d in range(3)])
    expected = mean(six) - mean(three)
    assert c.value == pytest.approx(expected)
    with pytest.raises(ValueError, match="no demonstration set common"):
        contrast_interval([Arm("a", 1.0, {(42, 0): six[42, 0]}), Arm("b", -1.0, {(42, 1): six[42, 1]})])


def test_training_seed_sd_is_added_to_one_seed_arms() -> None:
    runs = runs_of(np.random.default_rng(4), 0.1, {0: 0.0, 1: 0.0, 2: 0.0}, (42,))
    plain = contrast_interval([Arm("a", 1.0, runs)], n_boot=4000, mixed=False)
    added = contrast_interval([Arm("a", 1.0, runs)], n_boot=4000, mixed=False, train_sd=0.03)
    assert added.sd ** 2 == pytest.approx(plain.sd ** 2 + 0.03 ** 2, rel=0.15)
    assert added.train_sd == 0.03 and "training-seed SD added for one-seed arms" in added.left_out
    assert "training-seed variance not included for one-seed arms" in plain.left_out
    # an arm with several seeds resamples them instead: nothing is added
    several = runs_of(np.random.default_rng(4), 0.1, {0: 0.0, 1: 0.0}, (42, 43))
    assert contrast_interval([Arm("a", 1.0, several)], n_boot=500, mixed=False, train_sd=0.03).train_sd is None


def test_demonstration_sets_that_leave_out_different_items_are_matched_by_index() -> None:
    rng = np.random.default_rng(5)
    hard = rng.normal(0, 0.4, N + 2)
    full = np.arange(N)
    runs = {}
    for d, items in ((0, np.delete(np.arange(N + 1), 7)), (1, np.delete(np.arange(N + 1), 30))):
        runs.update(runs_of(rng, 0.1, {d: 0.0}, (42,), items=items, hard=hard))
    same = {}
    for d in (0, 1):
        same.update(runs_of(np.random.default_rng(5 + d), 0.1, {d: 0.0}, (42,), items=full, hard=hard))
    w_matched = contrast_interval([Arm("a", 1.0, runs)], n_boot=3000, mixed=False)
    w_same = contrast_interval([Arm("a", 1.0, same)], n_boot=3000, mixed=False)
    assert (w_matched.hi - w_matched.lo) == pytest.approx(w_same.hi - w_same.lo, rel=0.2)


def test_mixed_model_beside_the_bootstrap() -> None:
    """Six demonstration sets with a real set effect: the model's estimate agrees with the bootstrap's, both cover
    the truth, and with few sets its t interval (df = sets - 1) is the wider one."""
    rng = np.random.default_rng(6)
    demos = {d: e for d, e in enumerate(rng.normal(0, 0.08, 3))}
    a = runs_of(rng, 0.12, demos, (42,))
    c = contrast_interval([Arm("a", 1.0, a)], n_boot=2000)
    m = c.mixed
    assert m is not None and m.df == 2 and "MixedLM" in m.note
    assert m.value == pytest.approx(c.value, abs=0.01)
    assert m.hi - m.lo > c.hi - c.lo
    assert m.sd_demos is not None and m.sd_items >= 0
    assert c.mde80 == pytest.approx(2.8 * max(c.sd, m.se))
    rec = c.record()
    assert rec["mixed"]["df"] == 2 and rec["ci95"] == [c.lo, c.hi] and rec["mde80"] == c.mde80


def test_mixed_model_with_one_demonstration_set_is_a_t_interval_over_items() -> None:
    a = runs_of(np.random.default_rng(7), 0.1, {0: 0.0}, (42,))
    m = contrast_interval([Arm("a", 1.0, a)], n_boot=200).mixed
    assert m is not None and m.df == N - 1 and m.sd_demos is None
    item_means = a[42, 0].item_means()[1]
    assert m.value == pytest.approx(item_means.mean())
    assert m.se == pytest.approx(item_means.std(ddof=1) / np.sqrt(N))


def test_restrict_keeps_the_named_languages() -> None:
    run = runs_of(np.random.default_rng(8), 0.1, {0: 0.0}, (42,))[42, 0]
    sub = restrict(run, ["l3", "l1", "zz"])
    assert sub.langs == ("l3", "l1") and np.array_equal(sub.values[0], run.values[3]) and sub.joint
    with pytest.raises(ValueError, match="none of"):
        restrict(run, ["zz"])


@pytest.mark.parametrize(("lo", "hi", "direction", "margin", "expect"), [
    (0.01, 0.05, "up", 0, REPRODUCED), (-0.01, 0.05, "up", 0, NOT_SHOWN), (-0.05, -0.01, "up", 0, CONTRADICTED),
    (-0.05, -0.01, "down", 0, REPRODUCED), (0.01, 0.05, "down", 0, CONTRADICTED),
    (-0.02, 0.02, "similar", 0.03, REPRODUCED), (-0.04, 0.02, "similar", 0.03, NOT_SHOWN),
    (0.035, 0.09, "similar", 0.03, CONTRADICTED), (-0.09, -0.031, "similar", 0.03, CONTRADICTED),
    (0.01, 0.09, "similar", 0.03, NOT_SHOWN),
])
def test_verdict_rule(lo: float, hi: float, direction: str, margin: float, expect: str) -> None:
    assert verdict(lo, hi, direction, margin) == expect


def test_the_verdict_needs_both_intervals() -> None:
    rng = np.random.default_rng(9)
    a = runs_of(rng, 0.12, {0: 0.05, 1: -0.02, 2: 0.0}, (42,))
    c = contrast_interval([Arm("a", 1.0, a)], n_boot=1000)
    assert c.mixed is not None
    boot, mixed = verdict(c.lo, c.hi, "up"), verdict(c.mixed.lo, c.mixed.hi, "up")
    assert contrast_verdict(c, "up") == (boot if boot == mixed else NOT_SHOWN)


def test_a_model_that_cannot_be_fitted_is_said() -> None:
    runs = runs_of(np.random.default_rng(1), 0.2, {0: 0.0, 1: 0.3}, (42,))
    c = contrast_interval([Arm("a", 1.0, runs), Arm("b", -1.0, runs)], n_boot=100)
    assert c.mixed is None and c.record()["mixed"] is None
    assert "mixed model not fitted: no standard error (the per-item contrasts do not vary)" in c.left_out
    assert contrast_verdict(c, "similar", 0.03) == REPRODUCED  # the bootstrap's alone: [0, 0]
    indep = {k: RunDiff.of({x: v.values[j] for j, x in enumerate(v.langs)}, {x: v.items[j] for j, x in
                                                                              enumerate(v.langs)}, False)
             for k, v in runs.items()}
    c = contrast_interval([Arm("a", 1.0, indep)], n_boot=100)
    assert c.mixed is None and "mixed model not fitted: the languages are not parallel" in c.left_out

"""Honest uncertainty: joint resampling of parallel items, seed- and demonstration-aware intervals, variance breakdown,
power; on synthetic arrays and fake runs (no model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fakeruns import write_eval_run
from test_eval import write_paper_folder

from qtalign import metrics
from qtalign.compare import compare_runs, format_compare, write_compare
from qtalign.metrics import (
    INDEPENDENT,
    JOINT,
    bootstrap_language_mean,
    bootstrap_mean_accuracy,
    detectable_change,
    resampling_scheme,
)
from qtalign.metrics.uncertainty import RunDiff, scope_text, seed_aware_interval, variance_breakdown

L, N = 16, 300


def width(iv: object) -> float:
    return float(iv.hi - iv.lo)  # type: ignore[attr-defined]


def parallel_correct(rng: np.random.Generator, n_lang: int = L, n: int = N) -> dict[str, np.ndarray]:
    """Each item equally hard in every language: item i is right in all languages or in none."""
    item = rng.random(n) < 0.6  # [n]
    return {f"l{k}": item.copy() for k in range(n_lang)}


def test_joint_interval_is_sqrt_l_wider_on_parallel_items() -> None:
    by_lang = parallel_correct(np.random.default_rng(0))
    scheme = resampling_scheme({lang: list(range(N)) for lang in by_lang})
    assert scheme.scheme == JOINT and scheme.text == f"items resampled jointly across {L} languages"
    joint = bootstrap_mean_accuracy(by_lang, 4000, 0, resampling=scheme)
    indep = bootstrap_mean_accuracy(by_lang, 4000, 0)
    assert joint.value == indep.value
    assert width(joint) / width(indep) == pytest.approx(np.sqrt(L), rel=0.1)
    assert joint.sd == pytest.approx(np.sqrt(0.6 * 0.4 / N), rel=0.15)  # one item sample, not L of them


def test_joint_and_independent_agree_on_independent_items() -> None:
    rng = np.random.default_rng(1)
    by_lang = {f"l{k}": rng.random(N) < 0.6 for k in range(L)}  # item i unrelated across languages
    scheme = resampling_scheme({lang: list(range(N)) for lang in by_lang})
    joint = bootstrap_mean_accuracy(by_lang, 4000, 0, resampling=scheme)
    indep = bootstrap_mean_accuracy(by_lang, 4000, 0)
    assert width(joint) == pytest.approx(width(indep), rel=0.12)


def test_one_language_numbers_do_not_change() -> None:
    x = np.random.default_rng(2).random(50) < 0.5
    from qtalign.metrics import bootstrap_accuracy

    one = bootstrap_accuracy(list(x), 500, 3)
    scheme = resampling_scheme({"en": list(range(50))})
    assert bootstrap_mean_accuracy({"en": x}, 500, 3, resampling=scheme) == one
    assert bootstrap_mean_accuracy({"en": x}, 500, 3) == one


def test_non_parallel_items_fall_back_to_independent_and_say_so() -> None:
    s = resampling_scheme({"en": [0, 1, 2, 3], "de": [0, 1, 2]})
    assert s.scheme == INDEPENDENT and s.text.startswith("independently: not parallel")
    s = resampling_scheme({"en": [0, 1, 2], "de": [0, 1, 2]}, parallel_audit=False)
    assert s.scheme == INDEPENDENT and "parallel audit" in s.text
    assert s.record() == {"scheme": "independent", "text": s.text, "parallel_audit": False}
    assert resampling_scheme({"en": [0, 1], "de": [0, 1]}, parallel_audit=True).scheme == JOINT
    with pytest.raises(ValueError, match="same items"):
        bootstrap_mean_accuracy({"en": [1, 0, 1], "de": [1, 0]}, 50, 0,
                                resampling=resampling_scheme({"en": [0, 1, 2], "de": [0, 1, 2]}))


def _runs(tmp_path: Path, lens: dict[str, int] | None = None) -> tuple[Path, Path]:
    """Base and tuned fake runs; tuning flips the same items in every language (parallel)."""
    rng = np.random.default_rng(4)
    lens = lens or {lang: 120 for lang in ("en", "de", "zh", "sw", "hi", "ja")}
    n = max(lens.values())
    item = rng.random(n) < 0.5
    flip = rng.random(n) < 0.3
    base = {lang: list(item[:k]) for lang, k in lens.items()}
    tuned = {lang: list((item | flip)[:k]) for lang, k in lens.items()}
    return write_eval_run(tmp_path / "base", base), write_eval_run(tmp_path / "tuned", tuned)


def test_compare_resamples_jointly_and_records_it(tmp_path: Path) -> None:
    base, tuned = _runs(tmp_path)
    res = compare_runs([base, tuned], n_boot=2000, seed=0, seen=["zh", "en"])
    assert res["resampling"] == {"scheme": "joint", "text": "items resampled jointly across 6 languages"}
    s = res["comparisons"][0]["scores"]["raw"]
    m = s["mean"]
    assert m["resampling"]["scheme"] == "joint" and s["seen"]["resampling"]["text"].endswith("across 2 languages")
    # every language changes on the same items: the mean change has the SD of one language's change
    en = np.array(s["languages"]["en"]["ci95"])
    assert m["ci95"][1] - m["ci95"][0] == pytest.approx(en[1] - en[0], rel=0.15)
    assert m["mde80"] == pytest.approx(detectable_change(m["sd"])) and m["mde80"] > 2.7 * m["sd"]
    acc = res["runs"][0]["accuracy"]["raw"]["mean"]
    assert acc["resampling"]["scheme"] == "joint"
    assert all("change_ci95" in v for v in s["predicted_share"].values())
    text = format_compare(res)
    assert "intervals of means over languages: items resampled jointly across 6 languages" in text
    assert "power: the smallest mean change this design detects at 80% power" in text
    out = write_compare(res, tmp_path / "cmp")
    doc = json.loads(out["json"].read_text())
    assert doc["resampling"]["scheme"] == "joint" and doc["comparisons"][0]["scores"]["raw"]["mean"]["mde80"] > 0
    assert "Power: the smallest mean change" in out["md"].read_text()


def test_compare_on_non_parallel_runs_resamples_independently(tmp_path: Path) -> None:
    base, tuned = _runs(tmp_path, {"en": 120, "de": 100, "zh": 80})
    res = compare_runs([base, tuned], n_boot=200)
    assert res["resampling"]["scheme"] == "independent"
    assert res["comparisons"][0]["scores"]["raw"]["mean"]["resampling"]["text"].startswith("independently: not")


def test_eval_results_record_the_scheme_without_a_model(tmp_path: Path) -> None:
    """aggregate (what results.json holds) on a prepared parallel data folder and synthetic prediction rows."""
    from qtalign.eval import EvalSettings, aggregate, format_table, prepare

    data = write_paper_folder(tmp_path / "data", n=40)
    s = EvalSettings(task="emotion", data=str(data), langs=("en", "de"), n_boot=500, calibrate=("batch",))
    prep = prepare(s)
    assert prep.parallel_audit is True
    rows = []
    for lang, lp in prep.prompts.items():
        for it in lp.items:
            ok = it.index % 3 != 0  # the same items right in both languages
            gold = it.label
            other = next(lb for lb in prep.task.labels if lb != gold)
            pred = gold if ok else other
            rows.append({"task": "emotion", "lang": lang, "index": it.index, "gold": gold, "pred": pred,
                         "correct": ok, "tie": False, "probs": {lb: 0.5 for lb in prep.task.labels},
                         "pred_cal": {"batch": pred}, "correct_cal": {"batch": ok}})
    res = aggregate(s, prep, rows, {"model": "none"})
    m = res["mean"]
    assert m["resampling"] == {"scheme": "joint", "text": "items resampled jointly across 2 languages",
                               "parallel_audit": True}
    en = res["languages"]["en"]
    # identical correctness in both languages: the joint mean interval is the one language's interval
    assert m["ci95"] == pytest.approx(en["ci95"])
    assert m["calibrated"]["batch"]["ci95"] == pytest.approx(en["calibrated"]["batch"]["ci95"])
    assert "mean intervals: items resampled jointly across 2 languages" in format_table(res)


def test_calibration_means_resample_jointly_when_told() -> None:
    labels = ("positive", "negative")
    gold = [labels[i % 2] for i in range(200)]
    pred = [g if i % 3 else labels[1 - labels.index(g)] for i, g in enumerate(gold)]
    by_lang = {f"l{k}": (gold, pred) for k in range(9)}
    joint = metrics.summarize_mean(by_lang, labels, 1000, 0, resampling_scheme({k: range(200) for k in by_lang}))
    indep = metrics.summarize_mean(by_lang, labels, 1000, 0)
    one = metrics.summarize(gold, pred, labels, 1000, 0)
    assert joint["ci95"] == pytest.approx(one["ci95"]) and joint["macro_f1_ci95"] == pytest.approx(one["macro_f1_ci95"])
    for lb in labels:
        assert joint["predicted_share_ci95"][lb] == pytest.approx(one["predicted_share_ci95"][lb])
    w = lambda ci: ci[1] - ci[0]
    assert w(joint["ci95"]) / w(indep["ci95"]) == pytest.approx(3, rel=0.15)


# ---- seeds and demonstrations -------------------------------------------------------------------------------------
def _cell(rng: np.random.Generator, n_lang: int = 5, n: int = 200) -> np.ndarray:
    """[L, n] paired differences in {-1, 0, 1}, parallel: the same items change in every language."""
    d = rng.choice([-1.0, 0.0, 1.0], size=n, p=[0.15, 0.6, 0.25])
    return np.repeat(d[None, :], n_lang, axis=0)


def test_one_run_is_the_joint_item_interval() -> None:
    x = _cell(np.random.default_rng(5))
    iv = seed_aware_interval({(1, 0): x}, n_boot=1000, seed=7)
    point, lo, hi, _ = bootstrap_language_mean({str(k): row for k, row in enumerate(x)},
                                                resampling_scheme({str(k): range(x.shape[1]) for k in range(5)}),
                                                1000, 7)
    assert (iv.value, iv.lo, iv.hi) == pytest.approx((float(point), float(lo), float(hi)))
    assert iv.left_out == ("training-seed variance not included", "demonstration variance not included")
    assert iv.text.startswith("over 1 training seed x 1 demonstration set")


def test_identical_seeds_reproduce_the_one_seed_interval() -> None:
    x = _cell(np.random.default_rng(6))
    one = seed_aware_interval({(1, 0): x}, n_boot=1000, seed=3)
    many = seed_aware_interval({(t, d): x.copy() for t in (1, 2, 3) for d in (0, 1)}, n_boot=1000, seed=3)
    assert (many.value, many.lo, many.hi) == pytest.approx((one.value, one.lo, one.hi), abs=1e-12)
    assert many.text.startswith("over 3 training seeds x 2 demonstration sets") and many.left_out == ()
    b = variance_breakdown({(t, d): x.copy() for t in (1, 2, 3) for d in (0, 1)})
    assert b.train == pytest.approx(0, abs=1e-9) and b.demos == pytest.approx(0, abs=1e-9)
    assert b.items == pytest.approx(variance_breakdown({(1, 0): x}).items)


def test_a_constant_shift_between_training_seeds_widens_the_interval_accordingly() -> None:
    x = _cell(np.random.default_rng(7))
    one = seed_aware_interval({(1, 0): x}, n_boot=2000, seed=0)
    for c in (0.05, 0.2):
        two = seed_aware_interval({(1, 0): x, (2, 0): x + c}, n_boot=2000, seed=0)
        assert two.value == pytest.approx(one.value + c / 2)
        # a draw of seed 1 twice or seed 2 twice is a quarter of the replicates each: the interval spans the shift
        assert two.lo < one.value and two.hi > one.value + c
        assert c < two.hi - two.lo < c + (one.hi - one.lo) + 0.01
        assert two.left_out == ("demonstration variance not included",)
        b = variance_breakdown({(1, 0): x, (2, 0): x + c})
        assert b.train == pytest.approx(c / np.sqrt(2)) and b.demos is None  # shift only: no item noise to remove
        assert b.items == pytest.approx(x.mean(0).std(ddof=1) / np.sqrt(x.shape[1]))
    wider = seed_aware_interval({(1, 0): x, (2, 0): x + 0.2}, n_boot=2000, seed=0)
    narrow = seed_aware_interval({(1, 0): x, (2, 0): x + 0.05}, n_boot=2000, seed=0)
    assert wider.hi - wider.lo > narrow.hi - narrow.lo + 0.1


def test_demonstration_shift_is_attributed_to_demonstrations() -> None:
    x = _cell(np.random.default_rng(8))
    diffs = {(t, d): x + 0.1 * d for t in (1, 2, 3) for d in (0, 1)}
    b = variance_breakdown(diffs)
    assert b.demos == pytest.approx(0.1 / np.sqrt(2)) and b.train == pytest.approx(0, abs=1e-9)
    iv = seed_aware_interval(diffs, n_boot=2000, seed=0)
    assert iv.lo < x.mean() and iv.hi > x.mean() + 0.1


def test_item_noise_is_not_counted_as_seed_variance() -> None:
    """Seeds that differ only by item noise (independent redraws of the same distribution): the seed component is
    small next to the items'."""
    rng = np.random.default_rng(9)
    diffs = {(t, 0): _cell(rng) for t in range(6)}
    b = variance_breakdown(diffs, shared_items=False)
    assert b.train is not None and b.train < 0.5 * b.items


def test_non_parallel_runs_resample_each_language_independently() -> None:
    rng = np.random.default_rng(10)
    cell = [rng.choice([-1.0, 0.0, 1.0], size=k) for k in (50, 60, 70)]
    iv = seed_aware_interval({(1, 0): cell, (2, 0): [c + 0.01 for c in cell]}, n_boot=500, seed=0)
    assert iv.items == "independent" and "independently per language" in iv.text
    assert iv.shared_items  # the two runs share each language's draw of item indices (matched by index)
    alone = seed_aware_interval({(1, 0): cell, (2, 0): [c + 0.01 for c in cell]}, n_boot=500, seed=0,
                                shared_items=False)
    assert not alone.shared_items and alone.value == pytest.approx(iv.value)
    assert iv.lo < iv.value < iv.hi
    assert variance_breakdown({(1, 0): cell}).items > 0


def test_scope_text() -> None:
    assert scope_text(3, 2) == ("over 3 training seeds x 2 demonstration sets", ())
    assert scope_text(1, 2)[1] == ("training-seed variance not included",)


# ---- runs matched by item index -----------------------------------------------------------------------------------
def _parallel_run(x: np.ndarray, items: np.ndarray) -> RunDiff:
    """A parallel RunDiff from [L, N] differences over item indices 0..N-1, scoring only `items`."""
    return RunDiff.of({str(k): row[items] for k, row in enumerate(x)}, {str(k): items for k in range(len(x))}, True)


def test_demonstration_sets_that_leave_out_different_items_share_one_item_draw() -> None:
    """Two demonstration sets each leave their own demonstration item out of 100: their runs are matched by item
    index, so the interval is (within Monte Carlo error) the one of runs that score the same items, and adding
    identical training seeds does not narrow it. Runs given their own item draws (shared_items=False) come out
    too narrow, which is the bug this guards against."""
    rng = np.random.default_rng(11)
    x = _cell(rng, n_lang=4, n=101)  # [L, 101] differences, the same item changes in every language
    shift = 0.02
    all_items = np.arange(100)
    set0, set1 = np.delete(np.arange(101), 7), np.delete(np.arange(101), 42)  # each leaves one item out
    same = {(t, d): _parallel_run(x + shift * d, all_items) for t in (1, 2, 3) for d in (0, 1)}
    differ = {(t, d): _parallel_run(x + shift * d, set0 if d == 0 else set1) for t in (1, 2, 3) for d in (0, 1)}
    one_seed = {(1, d): _parallel_run(x + shift * d, set0 if d == 0 else set1) for d in (0, 1)}
    w = lambda iv: iv.hi - iv.lo
    a, b = seed_aware_interval(same, 4000, 0), seed_aware_interval(differ, 4000, 0)
    c = seed_aware_interval(one_seed, 4000, 0)
    assert w(b) == pytest.approx(w(a), rel=0.1)
    assert w(b) >= 0.97 * w(c)  # identical seeds never narrow it
    assert "matched by item index across runs" in b.text and "matched" not in a.text
    apart = seed_aware_interval(differ, 4000, 0, shared_items=False)
    assert w(apart) < 0.8 * w(b)
    assert variance_breakdown(differ).demos == pytest.approx(variance_breakdown(same).demos, abs=0.01)


def test_matched_runs_with_the_same_items_reproduce_the_positional_draw() -> None:
    """Runs given as RunDiffs over the same (non-contiguous) item indices get exactly the positional draw of the
    bare [L, n] arrays: published intervals of studies whose runs score the same items do not move."""
    rng = np.random.default_rng(12)
    x = _cell(rng, n_lang=3, n=60)
    items = np.arange(60) * 2 + 5
    bare = {(t, d): x + 0.01 * t - 0.02 * d for t in (1, 2) for d in (0, 1)}
    runs = {k: RunDiff.of({str(i): row for i, row in enumerate(v)}, {str(i): items for i in range(3)}, True)
            for k, v in bare.items()}
    a, b = seed_aware_interval(bare, 1000, 4), seed_aware_interval(runs, 1000, 4)
    assert (a.value, a.lo, a.hi, a.sd) == (b.value, b.lo, b.hi, b.sd)
    assert variance_breakdown(bare) == variance_breakdown(runs)


def test_a_run_drawn_without_any_of_its_items_is_left_out_of_that_replicate() -> None:
    x = np.ones((2, 4))
    runs = {(1, 0): _parallel_run(x, np.array([0])), (2, 0): _parallel_run(x * 0, np.array([1, 2, 3]))}
    iv = seed_aware_interval(runs, 500, 0)
    assert iv.value == pytest.approx(0.5) and 0 <= iv.lo <= iv.hi <= 1


def test_run_diff_rejects_mismatched_input() -> None:
    with pytest.raises(ValueError, match="2 values for 3 item indices"):
        RunDiff.of({"en": np.zeros(2)}, {"en": [0, 1, 2]}, True)
    with pytest.raises(ValueError, match="occurs twice"):
        RunDiff.of({"en": np.zeros(2)}, {"en": [1, 1]}, True)
    with pytest.raises(ValueError, match="same item indices"):
        RunDiff.of({"en": np.zeros(2), "de": np.zeros(2)}, {"en": [0, 1], "de": [0, 2]}, True)

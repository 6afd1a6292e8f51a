"""Calibration, macro-F1 and label shares against naive independent implementations; no model."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from qtalign import calibration as cal
from qtalign import metrics
from qtalign.errors import QtalignError

LABELS = ("entailment", "neutral", "contradiction")


def _rows(scores: np.ndarray, kind: str, lang: str = "de", labels=LABELS, gold=None) -> list[dict]:
    gold = gold or [labels[i % len(labels)] for i in range(len(scores))]
    return [{"lang": lang, "index": i, "gold": gold[i], kind: dict(zip(labels, map(float, s)))}
            for i, s in enumerate(scores)]


def _naive_batch(rows: list[dict], kind: str, labels=LABELS) -> list[str]:
    logs = []
    for r in rows:
        v = r[kind]
        logs.append([math.log(v[lb]) if kind == "probs" else v[lb] for lb in labels])
    means = [sum(x[j] for x in logs) / len(logs) for j in range(len(labels))]
    return [labels[max(range(len(labels)), key=lambda j: x[j] - means[j])] for x in logs]


def _naive_probs(r: dict, kind: str, labels=LABELS) -> list[float]:
    v = [r[kind][lb] for lb in labels]
    if kind == "loglik":
        v = [math.exp(x) for x in v]
    return [x / sum(v) for x in v]


def _naive_cf(rows: list[dict], cf_rows: list[dict], kind: str, labels=LABELS) -> list[str]:
    cfp = [_naive_probs(r, kind, labels) for r in cf_rows]
    prior = [sum(p[j] for p in cfp) / len(cfp) for j in range(len(labels))]
    out = []
    for r in rows:
        p = _naive_probs(r, kind, labels)
        q = [p[j] / prior[j] for j in range(len(labels))]
        q = [x / sum(q) for x in q]
        out.append(labels[max(range(len(labels)), key=lambda j: q[j])])
    return out


def _naive_macro_f1(gold: list[str], pred: list[str], labels=LABELS) -> float:
    f1s = []
    for lb in labels:
        tp = sum(g == lb and p == lb for g, p in zip(gold, pred))
        fp = sum(g != lb and p == lb for g, p in zip(gold, pred))
        fn = sum(g == lb and p != lb for g, p in zip(gold, pred))
        if tp + fp + fn == 0:
            continue
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return sum(f1s) / len(f1s)


@pytest.mark.parametrize("kind", ["probs", "loglik"])
@pytest.mark.parametrize("seed", range(5))
def test_calibrated_predictions_match_naive_implementation(kind: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    bias = rng.normal(0, 2, size=3)
    logits = rng.normal(0, 1, size=(n, 3)) + bias  # [n, L]
    cf_logits = rng.normal(0, 1, size=(3, 3)) + bias
    if kind == "probs":  # first-token masses: a part of the vocabulary's probability, not summing to 1
        scores = np.exp(logits) / (np.exp(logits).sum(1, keepdims=True) + rng.uniform(0.5, 5, size=(n, 1)))
        cf_scores = np.exp(cf_logits) / (np.exp(cf_logits).sum(1, keepdims=True) + 1.0)
    else:  # whole-word log-likelihoods
        scores, cf_scores = logits - 5.0, cf_logits - 5.0
    rows, cf_rows = _rows(scores, kind), _rows(cf_scores, kind)
    got = cal.calibrate_language(rows, LABELS, cal.MODES, seed=0, cf_rows=cf_rows)
    assert [g["batch"] for g in got] == _naive_batch(rows, kind)
    assert [g["content-free"] for g in got] == _naive_cf(rows, cf_rows, kind)


def test_a_label_prior_is_removed_and_no_prior_changes_nothing() -> None:
    rng = np.random.default_rng(1)
    signal = rng.normal(0, 2, size=60)
    signal -= signal.mean()  # no prior: the mean log-odds is 0
    loglik = np.stack([signal / 2, -signal / 2], 1)  # [n, 2]
    labels = ("positive", "negative")
    cf = np.zeros((3, 2))  # content-free inputs: no preference
    raw = ["positive" if s > 0 else "negative" for s in signal]
    for b in (0.0, 3.0, -4.0):  # an additive bias toward one label, as a constant in its log-likelihood
        shifted = loglik + np.array([b, 0.0])
        cf_shifted = cf + np.array([b, 0.0])
        got = cal.calibrate_language(_rows(shifted, "loglik", labels=labels), labels, cal.MODES, 0,
                                     _rows(cf_shifted, "loglik", labels=labels))
        assert [g["batch"] for g in got] == raw
        assert [g["content-free"] for g in got] == raw


def test_probabilities_of_zero_stay_finite() -> None:
    scores = np.array([[0.0, 0.2], [0.3, 0.0], [0.1, 0.1]])
    got = cal.calibrated_scores("batch", scores, "probs")
    assert np.isfinite(got).all()


def test_ties_are_broken_like_raw_predictions() -> None:
    rows = _rows(np.full((4, 3), 0.2), "probs")
    got = cal.calibrate_language(rows, LABELS, ["batch"], seed=3)
    assert [g["batch"] for g in got] == [cal.pick(np.zeros(3), LABELS, 3, "de", i)[0] for i in range(4)]


@pytest.mark.parametrize("seed", range(6))
def test_macro_f1_matches_naive(seed: int) -> None:
    r = random.Random(seed)
    gold = [r.choice(LABELS) for _ in range(r.randint(1, 30))]
    pred = [r.choice(LABELS[: r.randint(1, 3)]) for _ in gold]
    assert metrics.macro_f1(gold, pred, LABELS) == pytest.approx(_naive_macro_f1(gold, pred))


def test_macro_f1_cases() -> None:
    assert metrics.macro_f1(["a", "b"], ["a", "b"], ["a", "b"]) == 1.0
    assert metrics.macro_f1(["a", "b", "a", "b"], ["a", "a", "a", "a"], ["a", "b"]) == pytest.approx((2 / 3 + 0) / 2)
    assert metrics.macro_f1(["a", "a"], ["a", "a"], ["a", "b", "c"]) == 1.0  # labels absent from both are left out


def test_summaries_and_intervals() -> None:
    r = random.Random(0)
    labels = ("positive", "negative")
    gold = [r.choice(labels) for _ in range(50)]
    pred = [g if r.random() < 0.7 else r.choice(labels) for g in gold]
    s = metrics.summarize(gold, pred, labels, n_boot=200, seed=0)
    assert s["accuracy"] == pytest.approx(np.mean([a == b for a, b in zip(gold, pred)]))
    assert s["macro_f1"] == pytest.approx(_naive_macro_f1(gold, pred, labels))
    assert s["predicted"] == {lb: pred.count(lb) for lb in labels}
    for lb in labels:
        lo, hi = s["predicted_share_ci95"][lb]
        assert lo <= s["predicted_share"][lb] == pred.count(lb) / 50 <= hi
    assert s["ci95"][0] <= s["accuracy"] <= s["ci95"][1]
    assert s["macro_f1_ci95"][0] <= s["macro_f1"] <= s["macro_f1_ci95"][1]
    assert s == metrics.summarize(gold, pred, labels, n_boot=200, seed=0)  # seeded

    m = metrics.summarize_mean({"en": (gold, pred), "de": (gold[:20], pred[:20]), "xx": ([], [])}, labels, 200, 0)
    assert m["macro_f1"] == pytest.approx((_naive_macro_f1(gold, pred, labels)
                                           + _naive_macro_f1(gold[:20], pred[:20], labels)) / 2)
    assert m["predicted_share"]["positive"] == pytest.approx((pred.count("positive") / 50
                                                              + pred[:20].count("positive") / 20) / 2)
    from qtalign.metrics import bootstrap_mean_accuracy

    ref = bootstrap_mean_accuracy({"en": [a == b for a, b in zip(gold, pred)],
                                   "de": [a == b for a, b in zip(gold[:20], pred[:20])]}, 200, 0)
    assert m["accuracy"] == ref.value and m["ci95"] == [ref.lo, ref.hi]


def test_label_shares_raw_and_calibrated() -> None:
    rows = [{"pred": "a", "pred_cal": {"batch": "b"}}, {"pred": "a", "pred_cal": {"batch": "a"}}]
    assert metrics.label_shares(rows, ["a", "b"]) == {"a": 1.0, "b": 0.0}
    assert metrics.label_shares(rows, ["a", "b"], "batch") == {"a": 0.5, "b": 0.5}
    with pytest.raises(QtalignError, match="no 'content-free' calibrated prediction"):
        metrics.label_shares(rows, ["a", "b"], "content-free")


def test_parse_modes() -> None:
    assert cal.parse_modes("all") == cal.MODES
    assert cal.parse_modes("none") == ()
    assert cal.parse_modes(["content-free", "batch"]) == ("batch", "content-free")
    with pytest.raises(QtalignError, match="unknown mode 'bach'"):
        cal.parse_modes("bach")

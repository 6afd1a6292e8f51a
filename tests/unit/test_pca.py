"""PCA and alignment: correlation 1 for identical languages, ~0 for shuffled pairing; pooling equals a full pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from qtalign.analysis.pca import Pooled, alignment_scores, collect_pooled, fit_pca, pca_layers
from qtalign.data.readers import Item
from qtalign.models import load_model
from qtalign.prompts import LangPrompts
from qtalign.scoring import Scorer
from qtalign.tasks import get_task


def _synthetic(n: int = 400, h: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2, h))
    x[..., 0] *= 5.0  # a dominant direction, so PC1 is well defined
    return x.astype(np.float32)


def test_identical_languages_correlate_perfectly() -> None:
    x = _synthetic()
    idx = np.arange(len(x))
    res = pca_layers([Pooled("en", idx, (3, 7), x), Pooled("xx", idx, (3, 7), x.copy())])
    for layer in res:
        assert layer.corr[0]["r"] == pytest.approx(1.0, abs=1e-9)
    rows = alignment_scores([Pooled("en", idx, (3, 7), x), Pooled("xx", idx, (3, 7), x.copy())])
    assert all(r["retrieval"] == 1.0 and r["cos"] == pytest.approx(1.0) for r in rows)


def test_shuffled_pairing_correlates_near_zero() -> None:
    x = _synthetic(n=1000)
    idx = np.arange(len(x))
    perm = np.random.default_rng(1).permutation(len(x))
    res = pca_layers([Pooled("en", idx, (0, 1), x), Pooled("xx", idx, (0, 1), x[perm])])
    for layer in res:
        assert abs(layer.corr[0]["r"]) < 0.1
    rows = alignment_scores([Pooled("en", idx, (0, 1), x), Pooled("xx", idx, (0, 1), x[perm])])
    assert all(r["retrieval"] < 0.05 for r in rows)


def test_only_parallel_items_are_paired() -> None:
    x = _synthetic(n=50)
    a = Pooled("en", np.arange(50), (0, 1), x)
    b = Pooled("de", np.arange(10, 60), (0, 1), np.concatenate([x[10:], _synthetic(n=10, seed=5)]))
    res = pca_layers([a, b])
    assert res[0].corr[0]["n"] == 40 and res[0].corr[0]["r"] == pytest.approx(1.0, abs=1e-9)
    assert res[0].fit.scores.shape == (100, 2)


def test_pca_sign_convention_and_variance() -> None:
    x = _synthetic()[:, 0].astype(np.float64)
    fit = fit_pca(x)
    flipped = fit_pca(-x)  # data mirrored: loadings keep their sign convention, scores mirror
    for f in (fit, flipped):
        assert (f.components[np.arange(2), np.abs(f.components).argmax(1)] > 0).all()
    np.testing.assert_allclose(np.abs(fit.scores), np.abs(flipped.scores), atol=1e-9)
    assert 0 < fit.explained[1] < fit.explained[0] < 1


@pytest.mark.parametrize("pool", ["mean", "item", "last"])
def test_pooling_matches_a_full_forward(tiny_model: Path, pool: str) -> None:
    lm = load_model(str(tiny_model), device="cpu")
    scorer = Scorer(lm.model, lm.tokenizer)
    task = get_task("emotion")
    texts = [("Great movie, loved it.",), ("Awful and boring",), ("Ok",)]
    prefix = task.render_prefix("en", [(("Nice",), "positive")])
    items = tuple(Item("en", i, t, "positive", "positive", "mem") for i, t in enumerate(texts))
    lp = LangPrompts("en", task.labels, (), prefix, items, tuple(task.render_item("en", t) for t in texts))
    n_layers = lm.base.config.num_hidden_layers
    layers = (0, 1, n_layers)
    got = collect_pooled(scorer, lp, layers, pool, batch_size=2)
    assert got.states.shape == (3, 3, lm.base.config.hidden_size) and list(got.index) == [0, 1, 2]
    p_ids = scorer.encode_prefix(prefix)
    for k, r in enumerate(scorer.encode_items(prefix, lp.texts)):
        with torch.no_grad():
            hs = lm.base.model(input_ids=torch.tensor([p_ids + r]), output_hidden_states=True).hidden_states
        for j, layer in enumerate(layers):
            h = hs[layer][0]  # [P+T, H]
            want = {"mean": h.mean(0), "item": h[len(p_ids):].mean(0), "last": h[-1]}[pool]
            np.testing.assert_allclose(got.states[k, j], want.numpy(), atol=1e-4)

"""The fast scorer agrees with the naive paper-style scorer, and does not depend on batch size or padding side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qtalign.models import load_model
from qtalign.reference import naive_label_mass
from qtalign.scoring import Scorer, TokenIndex, label_token_sets
from qtalign.tasks import get_task

TEXTS = [
    ("The film was wonderful, I loved every minute.",),
    ("Terrible. Broke after two days",),
    ("Ok",),
    ("积极的评论，非常好！",),
    ("Это был хороший день, и мы гуляли в парке до вечера.",),
]


def _fast(lm, prefix: str, texts: list[str], sets, batch_size: int, side: str) -> np.ndarray:
    lm.tokenizer.padding_side = side
    scorer = Scorer(lm.model, lm.tokenizer, batch_size=batch_size)
    state = scorer.prefix_state(scorer.encode_prefix(prefix))
    out = np.zeros((len(texts), len(sets)))
    rows = scorer.encode_items(prefix, texts)
    for pos in scorer.batches([len(r) for r in rows]):
        out[pos] = scorer.first_token_batch(state, [rows[i] for i in pos], sets)
    return out


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_fast_scorer_matches_naive(tiny_model: Path, lang: str) -> None:
    lm = load_model(str(tiny_model), device="cpu")
    task = get_task("emotion")
    prefix = task.render_prefix(lang, [(("Great product",), "positive"), (("Awful",), "negative")])
    texts = [task.render_item(lang, t) for t in TEXTS]
    sets = label_token_sets(TokenIndex(lm.tokenizer), task.labels)
    naive = naive_label_mass(lm.model, lm.tokenizer, [prefix + t for t in texts], sets)
    results = {}
    for bs in (1, 2, 5):
        for side in ("right", "left"):
            fast = _fast(lm, prefix, texts, sets, bs, side)
            np.testing.assert_allclose(fast, naive, atol=1e-5, err_msg=f"batch {bs}, {side} padding")
            assert (fast.argmax(1) == naive.argmax(1)).all()
            results[bs, side] = fast
    first = results[1, "right"]
    for key, value in results.items():  # batch composition and the tokenizer's padding side change nothing
        np.testing.assert_allclose(value, first, atol=1e-6, err_msg=str(key))


def test_label_sets_cover_prefixes_and_byte_fallback(tiny_gemma: Path) -> None:
    lm = load_model(str(tiny_gemma), device="cpu")
    index = TokenIndex(lm.tokenizer)
    ids = index.begin_ids("积极")
    tokens = lm.tokenizer.convert_ids_to_tokens(ids)
    assert "<0xE7>" in tokens  # first byte of 积
    pos = lm.tokenizer.convert_ids_to_tokens(index.begin_ids("positive"))
    assert "p" in pos or "▁p" in pos
    assert all("positive".startswith(t.lstrip("▁")) for t in pos if not t.startswith("<0x"))


def test_loglik_prefers_the_continuation_it_was_asked_about(tiny_model: Path) -> None:
    lm = load_model(str(tiny_model), device="cpu")
    scorer = Scorer(lm.model, lm.tokenizer, batch_size=3)
    state = scorer.prefix_state(scorer.encode_prefix("Answer: \""))
    items = scorer.encode_items("Answer: \"", ["a", "bb b"])
    labels = [lm.tokenizer("yes", add_special_tokens=False)["input_ids"], lm.tokenizer("no", add_special_tokens=False)["input_ids"]]
    got = np.zeros((2, 2))
    for pos in scorer.batches([len(r) for r in items]):
        got[pos] = scorer.loglik_batch(state, [items[i] for i in pos], labels)
    # independent check: full forward of prompt + label, sum of log-probs of the label tokens
    import torch

    for i, text in enumerate(["a", "bb b"]):
        for j, lab in enumerate(labels):
            ids = state.ids + items[i] + lab
            with torch.no_grad():
                logp = torch.log_softmax(lm.model(input_ids=torch.tensor([ids])).logits.float(), -1)[0]
            start = len(state.ids) + len(items[i])
            want = sum(logp[start - 1 + k, t].item() for k, t in enumerate(lab))
            assert got[i, j] == pytest.approx(want, abs=1e-4)

"""The packaged Gemma 3 270M: the lens's last layer is the model's real next-token distribution on paper prompts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from qtalign.analysis.lens import lens_logprobs
from qtalign.data.readers import read_dataset
from qtalign.models import load_model
from qtalign.prompts import build_prompts
from qtalign.scoring import Scorer
from qtalign.tasks import get_task

pytestmark = pytest.mark.integration


def test_gemma_lens_last_layer_is_model_output(paper_data: Path) -> None:
    lm = load_model("gemma-3-270m", device="cpu")
    task = get_task("emotion")
    langs = ["de", "zh"]
    prompts = build_prompts(task, read_dataset(task, paper_data / "emotion", langs), langs, limit=2)
    scorer = Scorer(lm.model, lm.tokenizer)
    n_layers = lm.base.config.num_hidden_layers
    for lang in langs:
        lp = prompts[lang]
        prefix_ids = scorer.encode_prefix(lp.prefix)
        rows = scorer.encode_items(lp.prefix, lp.texts)
        lens = lens_logprobs(scorer, scorer.prefix_state(prefix_ids), rows)  # [L+1, B, V]
        assert lens.shape[:2] == (n_layers + 1, len(rows))
        for b, r in enumerate(rows):
            with torch.no_grad():
                real = lm.model(input_ids=torch.tensor([prefix_ids + r])).logits[0, -1].float()
            want = torch.softmax(real, -1)
            np.testing.assert_allclose(lens[-1, b].exp().numpy(), want.numpy(), atol=1e-5)
            assert lens[-1, b].argmax() == want.argmax()

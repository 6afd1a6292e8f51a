"""The packaged Gemma 3 270M on a few items of the paper's data: runs, and agrees with the naive scorer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qtalign.eval import EvalSettings, prepare
from qtalign.eval import run as run_eval
from qtalign.models import load_model
from qtalign.reference import naive_label_mass, paper_token_sets
from qtalign.scoring import TokenIndex, label_token_sets

pytestmark = pytest.mark.integration


def test_gemma_eval_matches_naive_scorer(paper_data: Path, tmp_path: Path) -> None:
    s = EvalSettings(task="emotion", data=str(paper_data / "emotion"), langs=("en", "zh"), limit=4, device="cpu",
                     n_boot=100)
    res = run_eval(s.model_copy(update={"out": str(tmp_path / "run")}), progress=False).results
    assert res["complete"] and res["languages"]["zh"]["n"] == 4
    rows = {(r["lang"], r["index"]): r for r in map(json.loads, (tmp_path / "run/predictions.jsonl").read_text().splitlines())}

    lm = load_model(device="cpu")
    prep = prepare(s)
    for lang, lp in prep.prompts.items():
        sets = label_token_sets(TokenIndex(lm.tokenizer), lp.label_words)
        assert [sorted(x) for x in sets] == [sorted(x) for x in paper_token_sets(lm.tokenizer, lp.label_words)]
        naive = naive_label_mass(lm.model, lm.tokenizer, [lp.prompt(i) for i in range(len(lp.items))], sets)
        fast = np.array([[rows[(lang, it.index)]["probs"][lb] for lb in prep.task.labels] for it in lp.items])
        np.testing.assert_allclose(fast, naive, atol=2e-5)


def test_demo_sample_runs(tmp_path: Path) -> None:
    s = EvalSettings(task="emotion", data="demo", langs=("en", "ru"), limit=3, device="cpu", n_boot=100)
    res = run_eval(s.model_copy(update={"out": str(tmp_path / "demo")}), progress=False).results
    assert res["languages"]["ru"]["n"] == 3

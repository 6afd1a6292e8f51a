"""Logit lens: the last layer reproduces the model's real next-token distribution; results resume and summarize."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from qtalign.analysis.lens import QUANTITIES, LensSets, lens_logprobs, run_lens, summarize
from qtalign.data.readers import Item
from qtalign.metrics import bootstrap_mean
from qtalign.models import load_model
from qtalign.prompts import LangPrompts
from qtalign.scoring import Scorer, TokenIndex
from qtalign.tasks import get_task

TEXTS = [("The film was wonderful, I loved every minute.",), ("Terrible. Broke after two days",), ("Ok",),
         ("积极的评论，非常好！",), ("Это был хороший день, и мы гуляли в парке до вечера.",)]


def _prompts(lang: str) -> LangPrompts:
    task = get_task("emotion")
    prefix = task.render_prefix(lang, [(("Great product",), "positive"), (("Awful",), "negative")])
    items = tuple(Item(lang, i, t, "positive", ["positive", "negative"][i % 2], "mem") for i, t in enumerate(TEXTS))
    return LangPrompts(lang, task.labels, (), prefix, items, tuple(task.render_item(lang, t) for t in TEXTS))


@pytest.mark.parametrize("batch_size", [1, 3])
def test_last_layer_equals_model_output(tiny_model: Path, batch_size: int) -> None:
    lm = load_model(str(tiny_model), device="cpu")
    scorer = Scorer(lm.model, lm.tokenizer)
    lp = _prompts("de")
    prefix_ids = scorer.encode_prefix(lp.prefix)
    rows = scorer.encode_items(lp.prefix, lp.texts)
    state = scorer.prefix_state(prefix_ids)
    n_layers = lm.base.config.num_hidden_layers
    for start in range(0, len(rows), batch_size):
        part = rows[start : start + batch_size]
        lens = lens_logprobs(scorer, state, part)  # [L+1, B, V]
        assert lens.shape[:2] == (n_layers + 1, len(part))
        for b, r in enumerate(part):
            with torch.no_grad():
                real = lm.model(input_ids=torch.tensor([prefix_ids + r])).logits[0, -1].float()
            np.testing.assert_allclose(lens[-1, b].exp().numpy(), torch.softmax(real, -1).numpy(), atol=1e-5)
            assert torch.allclose(lens[-1, b], torch.log_softmax(real, -1), atol=1e-4)
        # earlier layers are proper distributions too, and differ from the output
        assert torch.allclose(lens.exp().sum(-1), torch.ones(lens.shape[:2]), atol=1e-4)
        assert not torch.allclose(lens[0], lens[-1], atol=1e-3)


def test_run_lens_quantities_and_resume(tiny_gemma: Path) -> None:
    lm = load_model(str(tiny_gemma), device="cpu")
    scorer = Scorer(lm.model, lm.tokenizer)
    task = get_task("emotion")
    lp = _prompts("zh")
    sets = LensSets.build(TokenIndex(lm.tokenizer), task, "zh")
    full = run_lens(scorer, lp, task, sets, batch_size=2)
    n_layers = lm.base.config.num_hidden_layers
    assert list(full.index) == [it.index for it in lp.items]
    for q in QUANTITIES:
        assert full.values[q].shape == (len(TEXTS), n_layers + 1)
    p = full.values
    assert (p["p_en"] <= p["p_en_all"] + 1e-9).all() and (p["p_native"] <= p["p_native_all"] + 1e-9).all()
    assert (p["entropy"] > 0).all() and (p["entropy"] <= np.log(len(lm.tokenizer)) + 1e-4).all()
    # resume: feeding the first 2 results back computes only the rest, in the batches of the full run (batches come
    # from the full item list, so each item gets the same padding), with identical numbers
    calls: list[int] = []
    resumed = run_lens(scorer, lp, task, sets, done=full.take(np.array([0, 1])), batch_size=2,
                       on_batch=lambda part, rate: calls.append(part.n))
    assert calls[-1] == 5 and 2 < calls[0] < 5
    for q in QUANTITIES:
        np.testing.assert_array_equal(resumed.values[q], full.values[q])
    rows = summarize([full], n_boot=200)
    assert len(rows) == len(QUANTITIES) * (n_layers + 1)
    assert all(r["lo"] <= r["mean"] <= r["hi"] for r in rows)


def test_bootstrap_is_seeded_and_brackets_mean() -> None:
    x = np.random.default_rng(1).normal(size=(50, 3))
    a, b = bootstrap_mean(x, seed=3), bootstrap_mean(x, seed=3)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    mean, lo, hi = a
    assert (lo < mean).all() and (mean < hi).all() and (hi - lo < 1.0).all()


def test_settings_mismatch_is_an_error(tmp_path: Path) -> None:
    from qtalign.errors import QtalignError
    from qtalign.runs.analysis import LENS_OUTPUTS, RECORD
    from qtalign.store import open_run, release_folders

    out = tmp_path / "lens"
    open_run(out, RECORD, {"model": "m", "limit": 3}, outputs=LENS_OUTPUTS).commit()
    (out / "lens.npz").write_bytes(b"results")  # the run produced something a mismatch must protect
    release_folders()
    assert open_run(out, RECORD, {"model": "m", "limit": 3}, outputs=LENS_OUTPUTS).resumed  # same settings: resume
    release_folders()
    with pytest.raises(QtalignError, match="limit 3 -> 5"):
        open_run(out, RECORD, {"model": "m", "limit": 5}, outputs=LENS_OUTPUTS)
    release_folders()


def test_figure_redraws_from_saved_csv(tmp_path: Path) -> None:
    from qtalign.analysis.lens import LensArrays
    from qtalign.analysis.runs import write_csv
    from qtalign.figures.analysis import lens_figure

    rng = np.random.default_rng(0)
    runs = []
    for name in ("base", "tuned"):
        res = [LensArrays(lang, np.arange(6), {q: rng.random((6, 4)) for q in QUANTITIES}) for lang in ("en", "de")]
        write_csv(tmp_path / name / "lens_layers.csv", summarize(res, n_boot=50))
        runs.append((name, tmp_path / name))
    paths = lens_figure(runs, tmp_path / "fig")
    assert all(p.stat().st_size > 1000 for p in paths) and {p.suffix for p in paths} == {".png", ".svg"}


def test_cli_rerun_resumes_to_identical_outputs(tiny_gemma: Path, tmp_path: Path) -> None:
    """A finished run read back from its parts gives the same CSV as the fresh run (items in the same order)."""
    import json

    from qtalign.cli.main import main

    data = tmp_path / "data"
    data.mkdir()
    for lang, words in {"en": ("positive", "negative"), "de": ("positiv", "negativ")}.items():
        items = [{"input": f"review {i} " + "word " * (i % 7), "answer": words[i % 2]} for i in range(12)]
        (data / f"emotion_{lang}12_test.json").write_text(json.dumps(items), encoding="utf-8")
    argv = ["lens", "--model", str(tiny_gemma), "--task", "emotion", "--data", str(data), "--langs", "en,de",
            "--device", "cpu", "--batch-size", "3", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    first = (tmp_path / "run" / "lens_layers.csv").read_text()
    assert main(argv) == 0
    assert (tmp_path / "run" / "lens_layers.csv").read_text() == first

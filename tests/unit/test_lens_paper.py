"""The logit lens in the paper's mode: energy as the paper computes it, entropy in bits, the overlap filter."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from qtalign.analysis.common import final_norm
from qtalign.analysis.lens import Energy, LensSets, drop_overlapping, lens_batch, run_lens
from qtalign.cli.main import main
from qtalign.data.readers import Item
from qtalign.models import load_model
from qtalign.prompts import LangPrompts
from qtalign.scoring import Scorer, TokenIndex
from qtalign.tasks import get_task

EMO_WORDS = {"en": ("positive", "negative"), "de": ("positiv", "negativ"), "zh": ("积极", "消极")}
EMO_CUES = {"en": 'Emotion: "', "de": 'Emotion: "', "zh": '情感: "'}


def _scorer(model: Path, seed: int = 0) -> tuple[Scorer, str]:
    lm = load_model(str(model), device="cpu")
    torch.manual_seed(seed)
    with torch.no_grad():  # a non-trivial final-norm gain, so that the gain convention matters
        final_norm(Scorer(lm.model, lm.tokenizer)).weight.uniform_(-0.5, 1.5)
    return Scorer(lm.model, lm.tokenizer), lm.base.config.model_type


def _paper_energy(scorer: Scorer, gain: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """The paper script's formula, literally: [V, H] products, RMS-then-L2 normalized latent (an all-zero row, like
    the tiny models' padding embedding, is left at zero where the script would divide by zero)."""
    u = scorer.head.weight.detach().double() * gain.double()
    u = u / (((u**2).sum(dim=1, keepdim=True)) ** 0.5).clamp_min(1e-300)
    v = u.shape[0]
    avg = (((u.T @ u) ** 2).sum() / v**2) ** 0.5
    x = h.double()
    x = x / ((x**2).mean(dim=-1, keepdim=True)) ** 0.5
    x = x / x.norm(dim=-1, keepdim=True)
    return ((u @ x.T) ** 2).mean(dim=0) ** 0.5 / avg


def test_energy_matches_the_papers_formula(tiny_model: Path) -> None:
    scorer, model_type = _scorer(tiny_model)
    w = final_norm(scorer).weight.detach()
    gain = 1 + w if model_type.startswith("gemma") else w  # Gemma's RMSNorm scales by (1 + weight)
    h = torch.randn(7, w.shape[0])
    np.testing.assert_allclose(Energy(scorer)(h).numpy(), _paper_energy(scorer, gain, h).numpy(), rtol=1e-5)


def _prompts(task_lang: str, texts: list[str], labels: list[str]) -> LangPrompts:
    task = get_task("emotion")
    items = tuple(Item(task_lang, i, (t,), None, lb, "mem") for i, (t, lb) in enumerate(zip(texts, labels)))
    prefix = task.render_prefix(task_lang, [(("Great",), "positive"), (("Awful",), "negative")])
    return LangPrompts(task_lang, task.labels, (), prefix, items, tuple(task.render_item(task_lang, (t,)) for t in texts),
                       task.label_words(task_lang, "native"))


def test_entropy_in_bits_and_last_layer_energy_before_the_norm(tiny_gemma: Path) -> None:
    scorer, _ = _scorer(tiny_gemma)
    task = get_task("emotion")
    lp = _prompts("en", ["I loved it", "Broke at once, awful", "ok"], ["positive", "negative", "positive"])
    sets = LensSets.build(TokenIndex(scorer.tokenizer), task, "en")
    energy = Energy(scorer)
    nats = run_lens(scorer, lp, task, sets, entropy_unit="nats", energy=energy)
    bits = run_lens(scorer, lp, task, sets, entropy_unit="bits", energy=energy)
    np.testing.assert_allclose(bits.values["entropy"], nats.values["entropy"] / math.log(2), rtol=1e-6)
    # layer L's energy reads the final norm's input (the paper's last block output), captured here independently
    seen: list[torch.Tensor] = []
    rows = scorer.encode_items(lp.prefix, lp.texts)
    state = scorer.prefix_state(scorer.encode_prefix(lp.prefix))
    hook = final_norm(scorer).register_forward_hook(lambda _m, a, _o: seen.append(a[0]))
    try:
        vals, _ = lens_batch(scorer, state, rows[:1], [0], sets, energy=energy)
    finally:
        hook.remove()
    raw = seen[0][0, len(rows[0]) - 1]
    assert vals["energy"][0, -1] == float(energy(raw))
    assert np.isfinite(vals["energy"]).all() and (vals["energy"] > 0).all()


def test_overlap_filter_drops_items_whose_label_tokens_are_shared(tiny_gemma: Path) -> None:
    lm = load_model(str(tiny_gemma), device="cpu")
    index, task = TokenIndex(lm.tokenizer), get_task("emotion")
    for lang, expected in (("de", 3), ("zh", 0), ("en", 0)):
        lp = _prompts(lang, ["a", "b", "c"], ["positive", "negative", "positive"])
        sets = LensSets.build(index, task, lang)
        kept, dropped = drop_overlapping(lp, task, sets)
        assert dropped == expected and len(kept.items) == 3 - expected, lang


def test_paper_token_sets_may_be_empty_in_the_lens_and_such_items_are_dropped(tiny_llama: Path) -> None:
    """A byte-level vocabulary has no verbatim prefix of 积极 (and the Qwen-only branch does not apply): the paper's
    script finds no token and skips the item; so does the filter."""
    lm = load_model(str(tiny_llama), device="cpu")
    task = get_task("emotion")
    sets = LensSets.build(TokenIndex(lm.tokenizer), task, "zh", label_tokens="paper", model_type="llama")
    assert sets.native == ((), ()) and all(sets.en)
    lp = _prompts("zh", ["a", "b"], ["positive", "negative"])
    assert drop_overlapping(lp, task, sets)[1] == 2


def write_emotion_paper_folder(root: Path, n: int = 8) -> Path:
    (root / "emotion").mkdir(parents=True)
    (root / "demos").mkdir()
    demos = {}
    for lang, words in EMO_WORDS.items():
        items = [{"input": f"review {i} in {lang} " + "very " * (i % 3), "answer": words[i % 2]} for i in range(n)]
        (root / "emotion" / f"emotion_{lang}{n}_test.json").write_text(json.dumps(items, ensure_ascii=False), "utf-8")
        its = [{"input": t, "answer": lb, "lines": [t, EMO_CUES[lang] + lb + '"']}
               for t, lb in ((f"Great {lang}", "positive"), (f"Awful {lang}", "negative"))]
        demos[lang] = {"prefix": "\n".join(x for it in its for x in it["lines"]), "items": its,
                       "query_cues": {"answer": EMO_CUES[lang]},
                       "label_words": {"enout": {"positive": "positive", "negative": "negative"},
                                       "native": dict(zip(("positive", "negative"), words))}}
    doc = {"task": "emotion", "item_fields": ["input", "answer"], "canonical_labels": ["positive", "negative"],
           "demos": demos}
    (root / "demos" / "emotion_demos.json").write_text(json.dumps(doc, ensure_ascii=False), "utf-8")
    return root / "emotion"


def test_lens_cli_paper_protocol(tiny_gemma: Path, tmp_path: Path) -> None:
    """Native-label demonstrations, every item, the filter's counts reported, entropy in bits, energy recorded."""
    data = write_emotion_paper_folder(tmp_path / "paper")
    out = tmp_path / "lens"
    assert main(["lens", "--protocol", "paper", "--model", str(tiny_gemma), "--task", "emotion", "--data", str(data),
                 "--langs", "en,de,zh", "--device", "cpu", "--out", str(out)]) == 0
    dropped = json.loads((out / "lens_filter.json").read_text())
    assert dropped == {"en": {"items": 8, "dropped": 0, "kept": 8}, "de": {"items": 8, "dropped": 8, "kept": 0},
                       "zh": {"items": 8, "dropped": 0, "kept": 8}}
    settings = json.loads((out / "settings.json").read_text())
    assert (settings["entropy_unit"], settings["labels"], settings["keep_demo_items"]) == ("bits", "native", True)
    with np.load(out / "lens.npz") as z:
        assert sorted(set(z["lang"])) == ["en", "zh"] and np.isfinite(z["energy"]).all()
    csv = (out / "lens_layers.csv").read_text()
    assert ",energy," in csv


def test_pca_cli_paper_protocol(tiny_gemma: Path, tmp_path: Path) -> None:
    """PCA under the paper's protocol: native-label fixed demonstrations, every item, mean over all tokens."""
    data = write_emotion_paper_folder(tmp_path / "paper")
    out = tmp_path / "pca"
    assert main(["pca", "--protocol", "paper", "--model", str(tiny_gemma), "--task", "emotion", "--data", str(data),
                 "--langs", "en,de,zh", "--layers", "0,3", "--device", "cpu", "--out", str(out)]) == 0
    s = json.loads((out / "settings.json").read_text())
    assert (s["protocol"], s["labels"], s["keep_demo_items"], s["pool"], s["demos_file"]) == (
        "paper", "native", True, "mean", "auto")
    with np.load(out / "pca.npz") as z:
        assert len(z["index"]) == 3 * 8  # every item of every language

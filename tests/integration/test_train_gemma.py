"""The packaged Gemma 3 270M: a few LoRA steps on a handful of real question-translation pairs, then merge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qtalign.data.build import build_pairs
from qtalign.data.build_output import write_outputs
from qtalign.tasks import get_task
from qtalign.train import TrainSettings
from qtalign.train import run as train

pytestmark = pytest.mark.integration


def test_gemma_few_steps(paper_data: Path, tmp_path: Path) -> None:
    report = build_pairs(get_task("nli"), [paper_data / "snli"], ["zh", "es"], "en", per_lang=6, seed=0)
    write_outputs(report, tmp_path / "pairs.jsonl", {"seed": 0})
    s = TrainSettings(data=str(tmp_path / "pairs.jsonl"), out=str(tmp_path / "run"), batch_size=2, grad_accum=1,
                      max_steps=3, lr=1e-3, val_ratio=0.2, device="cpu")
    res = train(s, progress=False)
    assert res.steps == 3 and res.best_val_loss is not None
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()
    rows = [json.loads(x) for x in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(r["loss"] > 0 for r in rows)


def test_gemma_auto_template_masks_all_but_answer_and_eos() -> None:
    """`auto` picks LLaMA-Factory's gemma template for the packaged model; labels cover answer + <eos> only."""
    from transformers import AutoConfig

    from qtalign.models import DEFAULT_MODEL, load_tokenizer, resolve_model_path
    from qtalign.templates import render, resolve_template
    from qtalign.train import IGNORE, encode_pairs

    path = resolve_model_path(DEFAULT_MODEL)
    tok = load_tokenizer(path)
    template = resolve_template("auto", AutoConfig.from_pretrained(str(path)).model_type, tok)
    assert template.name == "gemma"
    query, answer = '前提: 男人\n答案: "\nTranslate the input from Chinese to English:\n', 'Premise: A man.\nAnswer: "'
    prompt, end = render(template, tok, query, answer)
    assert prompt == f"<bos><start_of_turn>user\n{query}<end_of_turn>\n<start_of_turn>model\n"
    assert end == answer + "<eos>"
    [ex] = encode_pairs(tok, [(query, answer)], 512, False, "data", template)
    kept = [t for t in ex.labels if t != IGNORE]
    assert tok.decode(kept) == answer + "<eos>" and ex.ids[0] == tok.bos_token_id
    assert tok.decode(ex.ids) == prompt + answer + "<eos>"

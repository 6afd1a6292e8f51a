"""LoRA training on tiny random models: loss goes down, resume equals an uninterrupted run, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hooks.interrupt import stopping_save
from safetensors.torch import load_file

from qtalign.cli.main import main
from qtalign.errors import QtalignError
from qtalign.train import TrainSettings, loop, read_pairs, settings_from
from qtalign.train import run as train


def write_pairs(path: Path, n: int = 12) -> Path:
    rows = [{"input": f'前提: 男人 {i}\n假设: 吉他\n答案: "\nTranslate the input from Chinese to English:\n',
             "output": f'Premise: A man is playing a guitar {i}.\nHypothesis: on stage\nAnswer: "'} for i in range(n)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def settings(model: Path, data: Path, out: Path, **kw: object) -> TrainSettings:
    base: dict[str, object] = {"model": str(model), "data": str(data), "out": str(out), "batch_size": 2,
                               "grad_accum": 2, "epochs": 2, "lr": 5e-3, "val_ratio": 0.2, "save_every": 1,
                               "device": "cpu", "seed": 1}
    base.update(kw)
    return TrainSettings(**base)


def test_loss_decreases_and_outputs(tiny_model: Path, tmp_path: Path) -> None:
    data = write_pairs(tmp_path / "pairs.jsonl", 8)
    res = train(settings(tiny_model, data, tmp_path / "run", epochs=8, lr=2e-2, val_ratio=0.25, grad_accum=1),
                progress=False)
    log = [json.loads(x) for x in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["loss"] < log[0]["loss"]
    assert res.best_val_loss is not None and res.best_val_loss < res.first_val_loss
    out = tmp_path / "run"
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "loss.png").is_file() and (out / "val_log.jsonl").is_file()
    assert not (out / "checkpoint").exists()
    cfg = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert sorted(cfg["target_modules"]) == ["q_proj", "v_proj"] and cfg["r"] == 8


def test_resume_equals_uninterrupted(tiny_llama: Path, tmp_path: Path) -> None:
    data = write_pairs(tmp_path / "pairs.jsonl", 12)
    full = train(settings(tiny_llama, data, tmp_path / "full"), progress=False)
    with pytest.MonkeyPatch.context() as mp:  # interrupted right after the checkpoint of step 3
        mp.setattr(loop, "save", stopping_save(loop.save, 3))
        with pytest.raises(KeyboardInterrupt):
            train(settings(tiny_llama, data, tmp_path / "part"), progress=False)
    assert json.loads((tmp_path / "part" / "checkpoint" / "state.json").read_text())["step"] == 3
    rest = train(settings(tiny_llama, data, tmp_path / "part"), progress=False)  # a rerun resumes (no flag needed)
    assert rest.steps == full.steps
    a = load_file(str(tmp_path / "full" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "part" / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    steps = [json.loads(x)["step"] for x in (tmp_path / "part" / "train_log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, full.steps + 1))


def test_a_rerun_may_add_trust_remote_code(tiny_llama: Path, tmp_path: Path) -> None:
    """trust_remote_code cannot change the adapter: the run record's check and the checkpoint's both ignore it, so an
    interrupted run resumes from its checkpoint when the rerun adds it."""
    data = write_pairs(tmp_path / "pairs.jsonl", 12)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop, "save", stopping_save(loop.save, 2))
        with pytest.raises(KeyboardInterrupt):
            train(settings(tiny_llama, data, tmp_path / "run"), progress=False)
    rest = train(settings(tiny_llama, data, tmp_path / "run", trust_remote_code=True), progress=False)
    steps = [json.loads(x)["step"] for x in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, rest.steps + 1)) and steps[2] == 3  # continued from step 2, not started over


def test_output_only_loss_matches_full_logits(tiny_gemma: Path) -> None:
    from qtalign.train import add_lora, collate, encode_pairs, output_loss
    from qtalign.trainable import load_trainable

    model, tok, _ = load_trainable(str(tiny_gemma), "cpu")
    peft_model = add_lora(model, TrainSettings())
    ex = encode_pairs(tok, [("Premise: a\nAnswer: \"\n", "Premise: b"), ("x y z", "Answer")], 64, False)
    ids, mask, labels = collate(ex, tok.pad_token_id)
    ours = output_loss(peft_model, ids, mask, labels)
    logits = peft_model(input_ids=ids, attention_mask=mask).logits[:, :-1]  # [B, T-1, V] (soft-capped)
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1),
                                            ignore_index=-100, reduction="sum")
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    assert labels[0, : len(tok('Premise: a\nAnswer: "\n')["input_ids"])].eq(-100).all()


@pytest.mark.parametrize("chunk", [7, 100, 100000])
def test_fused_head_loss_gradients_match_autograd(tiny_model: Path, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chunked frozen-head cross-entropy gives the loss and LoRA gradients of plain autograd through lm_head."""
    import qtalign.train as T
    from qtalign.trainable import load_trainable

    model, tok, _ = load_trainable(str(tiny_model), "cpu")
    peft_model = T.add_lora(model, TrainSettings())
    for name, p in peft_model.named_parameters():  # non-zero B so every LoRA weight gets a gradient
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    ex = T.encode_pairs(tok, [("Premise: a\nAnswer: \"\n", "Premise: b c d"), ("x y z", "Answer")], 64, False)
    ids, mask, labels = T.collate(ex, tok.pad_token_id)
    params = [p for p in peft_model.parameters() if p.requires_grad]

    monkeypatch.setattr(T.loss, "VOCAB_CHUNK", chunk)
    fused = T.output_loss(peft_model, ids, mask, labels)
    g_fused = torch.autograd.grad(fused, params)
    logits = peft_model(input_ids=ids, attention_mask=mask).logits[:, :-1]  # [B, T-1, V], soft-capped for Gemma
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1),
                                            ignore_index=-100, reduction="sum")
    g_ref = torch.autograd.grad(ref, params)
    torch.testing.assert_close(fused, ref, rtol=1e-4, atol=1e-4)
    for a, b in zip(g_fused, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


def test_config_file_and_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("rank: 4\nlr: 1.0e-4\n")
    s = settings_from(str(cfg), {"lr": 2e-4, "data": "d", "out": "o", "rank": None})
    assert s.rank == 4 and s.lr == 2e-4 and s.target_modules == ["q_proj", "v_proj"] and s.grad_accum == 4
    cfg.write_text("rnak: 4\n")
    with pytest.raises(QtalignError, match="rnak"):
        settings_from(str(cfg), {})


@pytest.mark.parametrize("content,match", [
    ("", "no training pairs"),
    ("{not json\n", "invalid JSON"),
    ('{"input": "q", "output": ""}\n', "item 0: empty output"),
    ('{"input": "q"}\n', "item 0"),
])
def test_bad_data(tmp_path: Path, content: str, match: str) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text(content)
    with pytest.raises(QtalignError, match=match):
        read_pairs(f)


def test_cli_errors_exit_2(tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_pairs(tmp_path / "pairs.jsonl", 6)
    rc = main(["train", "--model", str(tiny_llama), "--data", str(data), "--out", str(tmp_path / "o"),
               "--target-modules", "q_proj,query_key_value", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "query_key_value" in err and "Traceback" not in err
    rc = main(["train", "--model", str(tiny_llama), "--data", str(tmp_path / "missing.jsonl"), "--out",
               str(tmp_path / "o")])
    assert rc == 2 and "missing.jsonl" in capsys.readouterr().err

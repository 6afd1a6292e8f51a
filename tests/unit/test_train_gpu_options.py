"""Training's GPU options on CPU: micro-batches (fixed and auto with a fake OOM), gradient checkpointing, and the QLoRA
configuration (4-bit config, frozen base, float32 norms with float16 compute, train record), without bitsandbytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_train import settings, write_pairs

from qtalign import train as train_mod
from qtalign.batchsize import BatchSizer
from qtalign.errors import QtalignError
from qtalign.train import TrainSettings
from qtalign.train import run as train
from qtalign.trainable import prepare_four_bit, train_dtype


def adapter(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "adapter" / "adapter_model.safetensors"))


def assert_same_adapter(a: Path, b: Path) -> None:
    x, y = adapter(a), adapter(b)
    assert x.keys() == y.keys()
    for k in x:
        torch.testing.assert_close(x[k], y[k], rtol=1e-4, atol=1e-6)


def val_losses(out: Path) -> list[float]:
    return [json.loads(x)["val_loss"] for x in (out / "val_log.jsonl").read_text().splitlines()]


def test_micro_batches_and_checkpointing_give_the_same_adapter(tiny_llama: Path, tmp_path: Path) -> None:
    data = write_pairs(tmp_path / "pairs.jsonl", 12)
    kw = {"batch_size": 4, "grad_accum": 2, "epochs": 2}
    train(settings(tiny_llama, data, tmp_path / "whole", **kw), progress=False)
    train(settings(tiny_llama, data, tmp_path / "micro", micro_batch=1, gradient_checkpointing=True, **kw),
          progress=False)
    assert_same_adapter(tmp_path / "whole", tmp_path / "micro")
    assert val_losses(tmp_path / "whole") == pytest.approx(val_losses(tmp_path / "micro"), rel=1e-5)
    summary = json.loads((tmp_path / "micro" / "train_summary.json").read_text())
    assert summary["micro_batch"] == 1
    record = json.loads((tmp_path / "micro" / "adapter" / "qtalign_train.json").read_text())
    assert record["precision"] == {"dtype": "float32", "device": "cpu", "gradient_checkpointing": True}


def test_micro_batch_auto_halves_on_fake_oom(tiny_llama: Path, tmp_path: Path, monkeypatch) -> None:
    """An adaptive micro-batch sizer whose forward fails above one pair redoes the step at 1: the adapter equals a
    run with --micro-batch 1, and the size is remembered."""
    data = write_pairs(tmp_path / "pairs.jsonl", 12)
    kw = {"batch_size": 4, "grad_accum": 1, "epochs": 1}
    train(settings(tiny_llama, data, tmp_path / "one", micro_batch=1, **kw), progress=False)
    memory = tmp_path / "batch_sizes.json"
    made: list[BatchSizer] = []

    def adaptive(s: TrainSettings, dev: torch.device) -> BatchSizer:
        assert s.micro_batch == "auto"
        made.append(BatchSizer(s.batch_size, adaptive=True, key="train|tiny", memory=memory))
        return made[-1]

    real = train_mod.output_loss

    def limited(peft_model, ids, mask, labels):
        if ids.shape[0] > 1 and torch.is_grad_enabled():
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")
        return real(peft_model, ids, mask, labels)

    monkeypatch.setattr(train_mod.prepare, "micro_batch_sizer", adaptive)
    monkeypatch.setattr(train_mod.passes, "output_loss", limited)
    train(settings(tiny_llama, data, tmp_path / "auto", micro_batch="auto", **kw), progress=False)
    assert made[0].size == 1 and made[0].shrinks == 2
    assert json.loads(memory.read_text()) == {"train|tiny": 1}
    assert_same_adapter(tmp_path / "one", tmp_path / "auto")


def test_micro_batch_sizer_without_cuda() -> None:
    s = TrainSettings(model="m", data="d.jsonl", out="o", batch_size=4, micro_batch="auto")
    cpu = torch.device("cpu")
    assert train_mod.micro_batch_sizer(s, cpu).size == 4 and not train_mod.micro_batch_sizer(s, cpu).adaptive
    assert train_mod.micro_batch_sizer(s.model_copy(update={"micro_batch": 16}), cpu).size == 4  # never above batch
    assert train_mod.micro_batch_sizer(s.model_copy(update={"micro_batch": None}), cpu).size == 4
    assert train_mod.micro_batch_sizer(s.model_copy(update={"micro_batch": 2}), cpu).size == 2


def test_fixed_micro_batch_oom_is_one_line(tiny_llama: Path, tmp_path: Path, monkeypatch) -> None:
    data = write_pairs(tmp_path / "pairs.jsonl", 8)

    def oom(*a, **k):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")

    monkeypatch.setattr(train_mod.passes, "output_loss", oom)
    with pytest.raises(QtalignError, match=r"--micro-batch 2: out of device memory"):
        train(settings(tiny_llama, data, tmp_path / "x", val_ratio=0, micro_batch=2), progress=False)


def test_qlora_needs_cuda_and_bitsandbytes(tiny_llama: Path, tmp_path: Path) -> None:
    data = write_pairs(tmp_path / "pairs.jsonl", 8)
    with pytest.raises(QtalignError, match="--load-in-4bit needs a CUDA device"):
        train(settings(tiny_llama, data, tmp_path / "q", load_in_4bit=True), progress=False)


def test_qlora_configuration_and_record() -> None:
    """4-bit training: NF4, compute dtype bfloat16 by default on a bf16 card (float16 where asked / unsupported),
    recorded in the train record."""
    cuda = torch.device("cuda")
    if not torch.cuda.is_available():
        assert train_dtype(None, cuda, load_in_4bit=True) == torch.float16  # no bf16 support known: float16
    assert train_dtype("float16", cuda, load_in_4bit=True) == torch.float16
    assert train_dtype(None, torch.device("cpu")) == torch.float32
    s = TrainSettings(model="m", data="d", out="o", load_in_4bit=True, dtype="bfloat16")
    rec = train_mod.describe_training_precision(s, cuda)
    assert rec["dtype"] == "bfloat16"
    assert rec["quantization"] == {"load_in_4bit": True, "quant_type": "nf4", "compute_dtype": "bfloat16",
                                   "double_quant": False, "method": "qlora", "prepared": "qtalign.train.prepare_four_bit"}
    from qtalign.models import four_bit_config

    cfg = four_bit_config(torch.bfloat16)
    assert cfg.load_in_4bit and cfg.bnb_4bit_quant_type == "nf4" and cfg.bnb_4bit_compute_dtype == torch.bfloat16


def test_cli_train_flags(tmp_path: Path, monkeypatch) -> None:
    from qtalign.cli.main import main

    seen: list[TrainSettings] = []
    monkeypatch.setattr(train_mod, "run", lambda s, resume=False, **kw: seen.append(s) or (_ for _ in ()).throw(
        QtalignError("stop")))
    code = main(["train", "--data", "d.jsonl", "--out", str(tmp_path / "o"), "--load-in-4bit", "--micro-batch", "auto",
                 "--gradient-checkpointing"])
    assert code == 2 and seen[0].load_in_4bit and seen[0].micro_batch == "auto" and seen[0].gradient_checkpointing
    with pytest.raises(SystemExit):
        main(["train", "--data", "d.jsonl", "--out", "o", "--micro-batch", "0"])


def test_prepare_four_bit_freezes_and_upcasts_norms_for_float16(tiny_llama: Path) -> None:
    from transformers import AutoModelForCausalLM

    for dtype, norm_dtype in ((torch.float16, torch.float32), (torch.bfloat16, torch.bfloat16)):
        model = AutoModelForCausalLM.from_pretrained(str(tiny_llama), dtype=dtype)
        prepare_four_bit(model, dtype)
        assert not any(p.requires_grad for p in model.parameters())
        assert model.model.norm.weight.dtype == norm_dtype
        assert model.lm_head.weight.dtype == dtype and model.model.embed_tokens.weight.dtype == dtype
        assert model.model.layers[0].self_attn.q_proj.weight.dtype == dtype


def test_frozen_head_loss_with_a_low_precision_body(tiny_llama: Path) -> None:
    """The chunked frozen-head loss (as QLoRA uses it: bfloat16 hidden states, unquantized head) gives the same loss
    and input gradient as plain autograd through the head."""
    from transformers import AutoModelForCausalLM

    from qtalign.train.loss import VOCAB_CHUNK, _FrozenHeadCrossEntropy

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama), dtype=torch.bfloat16)
    head = model.lm_head.requires_grad_(False)
    torch.manual_seed(0)
    h = torch.randn(6, head.weight.shape[1], dtype=torch.bfloat16, requires_grad=True)
    t = torch.randint(0, head.weight.shape[0], (6,))
    loss = _FrozenHeadCrossEntropy.apply(h, head.weight, t, None, VOCAB_CHUNK)
    (g,) = torch.autograd.grad(loss, h)
    h2 = h.detach().clone().requires_grad_(True)
    ref = torch.nn.functional.cross_entropy(head(h2).float(), t, reduction="sum")
    (g2,) = torch.autograd.grad(ref, h2)
    assert g.dtype == torch.bfloat16
    torch.testing.assert_close(loss, ref, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(g.float(), g2.float(), rtol=5e-2, atol=5e-3)


def test_bf16_autocast_training_follows_float32(tiny_llama: Path, tmp_path: Path) -> None:
    """--autocast bfloat16 (issue 26): float32 LoRA weights and record, validation losses close to float32's, an
    adapter that differs (an option that changes results, never silently the default)."""
    data = write_pairs(tmp_path / "pairs.jsonl", 12)
    kw = {"batch_size": 4, "epochs": 2}
    train(settings(tiny_llama, data, tmp_path / "fp32", **kw), progress=False)
    train(settings(tiny_llama, data, tmp_path / "bf16", autocast="bfloat16", **kw), progress=False)
    assert val_losses(tmp_path / "bf16") == pytest.approx(val_losses(tmp_path / "fp32"), rel=2e-2)
    weights = adapter(tmp_path / "bf16")
    assert all(w.dtype == torch.float32 for w in weights.values())
    assert any(not torch.equal(weights[k], adapter(tmp_path / "fp32")[k]) for k in weights)
    record = json.loads((tmp_path / "bf16" / "adapter" / "qtalign_train.json").read_text())
    assert record["precision"] == {"dtype": "float32", "device": "cpu", "gradient_checkpointing": False,
                                   "autocast": "bfloat16"}
    with pytest.raises(QtalignError, match="other settings"):  # a rerun in float32 does not resume a bf16 run
        train(settings(tiny_llama, data, tmp_path / "bf16", **kw), progress=False)


def test_autocast_needs_float32_weights(tmp_path: Path) -> None:
    with pytest.raises(QtalignError, match="autocast keeps the weights in float32"):
        TrainSettings.parse({"autocast": "bfloat16", "dtype": "bfloat16"}, "x")
    with pytest.raises(QtalignError, match="autocast"):
        TrainSettings.parse({"autocast": "float16"}, "x")
    assert TrainSettings(autocast="bfloat16").weights_dtype == "float32"
    assert TrainSettings(dtype="bfloat16").weights_dtype == "bfloat16"

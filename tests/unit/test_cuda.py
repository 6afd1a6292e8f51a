"""The GPU path on a real CUDA device (marked `cuda`, skipped without one): bf16 scoring agrees with CPU float32, a real
out-of-memory error halves --batch-size auto, 4-bit eval and QLoRA training (with bitsandbytes), lens and PCA."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_eval import settings as eval_settings
from test_eval import write_paper_folder
from test_train import settings as train_settings
from test_train import write_pairs

from qtalign.batchsize import BatchSizer, run_split
from qtalign.eval import run as run_eval

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
needs_bnb = pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes")


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Remembered batch sizes go to a fresh cache folder."""
    monkeypatch.setenv("QTALIGN_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tiny_llama64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama whose layers are 64 wide (bitsandbytes quantizes in blocks of 64), for the 4-bit tests."""
    from tiny import MAX_TINY_PARAMS, build_tokenizer
    from transformers import AutoModelForCausalLM, LlamaConfig

    tok = build_tokenizer("bytelevel")
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, pad_token_id=0, eos_token_id=1,
                         bos_token_id=2, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    assert sum(p.numel() for p in model.parameters()) < MAX_TINY_PARAMS
    folder = tmp_path_factory.mktemp("tiny-llama64")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def probs(run: Path) -> dict[tuple[str, int], list[float]]:
    rows = map(json.loads, (run / "predictions.jsonl").read_text().splitlines())
    return {(r["lang"], r["index"]): list(r["probs"].values()) for r in rows}


def test_bf16_cuda_eval_agrees_with_cpu_float32(tiny_model: Path, tmp_path: Path) -> None:
    data = write_paper_folder(tmp_path / "data")
    cpu = run_eval(eval_settings(tiny_model, data, out=str(tmp_path / "cpu")), progress=False).results
    gpu = run_eval(eval_settings(tiny_model, data, device="cuda", batch_size="auto", out=str(tmp_path / "gpu")),
                   progress=False).results
    assert gpu["model"]["dtype"] == "bfloat16" and gpu["model"]["device"].startswith("cuda")
    a, b = probs(tmp_path / "cpu"), probs(tmp_path / "gpu")
    assert a.keys() == b.keys()
    np.testing.assert_allclose(np.array(list(b.values())), np.array(list(a.values())), rtol=0.1, atol=1e-4)
    assert cpu["complete"] and gpu["complete"]
    memory = json.loads((tmp_path / "cache" / "batch_sizes.json").read_text())
    (key, size), = memory.items()
    assert key.startswith("eval-first-token|") and torch.cuda.get_device_name() in key and size >= 1


def test_a_real_cuda_oom_halves_the_batch_and_frees_memory() -> None:
    import gc

    gc.collect()  # what earlier tests left for the collector goes now, not during the measurement
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    per_item = total // 5  # 64 items cannot fit; 4 might, 2 surely do
    before = torch.cuda.memory_allocated()

    def fn(chunk: list[int]) -> int:
        x = torch.empty(len(chunk) * per_item, dtype=torch.uint8, device="cuda")
        return int(x.numel())

    sizer = BatchSizer(64, adaptive=True)
    done = [i for piece, _ in run_split(sizer, list(range(10)), fn) for i in piece]
    assert done == list(range(10))
    assert 1 <= sizer.size <= 4 and sizer.shrinks >= 4
    torch.cuda.empty_cache()
    assert torch.cuda.memory_allocated() <= before  # nothing of the failed attempts is left


def test_lens_and_pca_on_cuda_with_auto_batch(tiny_gemma: Path, tmp_path: Path) -> None:
    from qtalign.cli.main import main

    data = write_paper_folder(tmp_path / "data")
    common = ["--model", str(tiny_gemma), "--task", "emotion", "--data", str(data), "--langs", "en,de", "--device",
              "cuda", "--batch-size", "auto"]
    assert main(["lens", *common, "--out", str(tmp_path / "lens")]) == 0
    assert (tmp_path / "lens" / "lens_layers.csv").is_file()
    assert main(["pca", *common, "--out", str(tmp_path / "pca")]) == 0
    keys = json.loads((tmp_path / "cache" / "batch_sizes.json").read_text())
    assert {k.split("|")[0] for k in keys} == {"lens", "pca"}


def test_bf16_lora_training_on_cuda_with_auto_micro_batch(tiny_llama: Path, tmp_path: Path) -> None:
    from qtalign.train import run as train

    data = write_pairs(tmp_path / "pairs.jsonl", 12)
    res = train(train_settings(tiny_llama, data, tmp_path / "run", device="cuda", micro_batch="auto"), progress=False)
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["micro_batch"] == 2 and res.best_val_loss is not None and np.isfinite(res.best_val_loss)
    record = json.loads((tmp_path / "run" / "adapter" / "qtalign_train.json").read_text())
    assert record["precision"]["dtype"] == "bfloat16" and record["precision"]["device"].startswith("cuda")


@needs_bnb
def test_four_bit_eval_on_cuda(tiny_llama64: Path, tmp_path: Path) -> None:
    data = write_paper_folder(tmp_path / "data")
    res = run_eval(eval_settings(tiny_llama64, data, device="cuda", load_in_4bit=True, out=str(tmp_path / "q")),
                   progress=False).results
    assert res["model"]["quantization"]["quant_type"] == "nf4" and res["complete"]
    assert all(np.isfinite(v).all() for v in probs(tmp_path / "q").values())


@needs_bnb
def test_qlora_training_uses_the_frozen_head_loss_and_is_recorded(tiny_llama64: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from qtalign import train as train_mod
    from qtalign.train import loss as loss_mod

    calls = []
    real = loss_mod._FrozenHeadCrossEntropy

    class Counting(real):  # type: ignore[misc, valid-type]
        @staticmethod
        def forward(ctx, *args):
            calls.append(args[1].dtype)
            return real.forward(ctx, *args)

    monkeypatch.setattr(loss_mod, "_FrozenHeadCrossEntropy", Counting)
    data = write_pairs(tmp_path / "pairs.jsonl", 12)
    out = tmp_path / "qlora"
    res = train_mod.run(train_settings(tiny_llama64, data, out, device="cuda", load_in_4bit=True, max_steps=3),
                        progress=False)
    assert res.steps == 3 and np.isfinite(res.best_val_loss)
    assert calls and set(calls) == {torch.bfloat16}  # the head stays unquantized, in the compute dtype
    record = json.loads((out / "adapter" / "qtalign_train.json").read_text())
    assert record["precision"]["quantization"]["method"] == "qlora"
    assert record["precision"]["quantization"]["compute_dtype"] == "bfloat16"
    # the adapter applies to the 4-bit base for evaluation
    ev = write_paper_folder(tmp_path / "data")
    s = eval_settings(tiny_llama64, ev, device="cuda", load_in_4bit=True, adapter=str(out / "adapter"))
    assert run_eval(s.model_copy(update={"out": str(tmp_path / "ev")}), progress=False)["complete"]

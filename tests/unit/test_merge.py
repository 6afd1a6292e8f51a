"""Merging a LoRA adapter (non-zero B) gives the same outputs as base + adapter; a mismatched adapter is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from qtalign.cli.main import main
from qtalign.errors import QtalignError
from qtalign.merge import merge
from qtalign.models import load_model


def random_adapter(model_dir: Path, out: Path, targets: list[str]) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(model_dir), use_safetensors=True)
    torch.manual_seed(0)
    from qtalign.models import quiet_transformers

    with quiet_transformers():
        peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=targets,
                                                     init_lora_weights=False))
    assert any(p.abs().sum() > 0 for n, p in peft_model.named_parameters() if "lora_B" in n)
    peft_model.save_pretrained(str(out))
    return out


def test_merge_matches_adapter(tiny_model: Path, tmp_path: Path) -> None:
    adapter = random_adapter(tiny_model, tmp_path / "adapter", ["q_proj", "v_proj"])
    rc = main(["merge", "--model", str(tiny_model), "--adapter", str(adapter), "--out", str(tmp_path / "merged")])
    assert rc == 0 and (tmp_path / "merged" / "model.safetensors").is_file()
    ids = torch.tensor([[2, 10, 20, 30, 40, 50]])
    with_adapter = load_model(str(tiny_model), adapter=str(adapter), device="cpu").model
    merged = load_model(str(tmp_path / "merged"), device="cpu").model
    plain = load_model(str(tiny_model), device="cpu").model
    with torch.no_grad():
        a, b, c = (m(input_ids=ids).logits for m in (with_adapter, merged, plain))
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert (a - c).abs().max() > 1e-3  # the adapter does change the outputs


def test_mismatched_adapter(tiny_llama: Path, tiny_gemma: Path, tmp_path: Path) -> None:
    adapter = random_adapter(tiny_llama, tmp_path / "adapter", ["q_proj", "v_proj"])
    cfg = adapter / "adapter_config.json"
    cfg.write_text(cfg.read_text().replace('"q_proj"', '"no_such_proj"'))
    with pytest.raises(QtalignError, match="adapter"):
        merge(str(tiny_gemma), adapter, tmp_path / "m")
    (tmp_path / "empty").mkdir()
    with pytest.raises(QtalignError, match="not an adapter folder"):
        merge(str(tiny_gemma), tmp_path / "empty", tmp_path / "m2")

"""The base model loaded train-ready for LoRA (safetensors, training dtype, 4-bit preparation): training and merge."""

from __future__ import annotations

from typing import Any

import torch

from qtalign.errors import QtalignError
from qtalign.models import (
    four_bit_config,
    load_tokenizer,
    quiet_transformers,
    require_four_bit,
    resolve_device,
    resolve_dtype,
    resolve_model_path,
)


def load_trainable(name: str, device: str = "auto", dtype: str | None = None,
                   trust_remote_code: bool = False, load_in_4bit: bool = False) -> tuple[Any, Any, torch.device]:
    """Base causal LM (train-ready, safetensors only) + tokenizer + device; load_in_4bit: the QLoRA base (NF4 weights,
    compute in train_dtype, prepared by prepare_four_bit)."""
    from transformers import AutoModelForCausalLM

    dev = resolve_device(device)
    path = resolve_model_path(name)
    torch_dtype = train_dtype(dtype, dev, load_in_4bit)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "use_safetensors": True, "trust_remote_code": trust_remote_code}
    if load_in_4bit:
        require_four_bit(dev)
        kwargs.update(quantization_config=four_bit_config(torch_dtype), device_map={"": dev.index or 0})
    try:
        with quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    except (OSError, ValueError) as e:
        raise QtalignError(f"{name}: cannot load model ({str(e).splitlines()[0]})") from None
    if load_in_4bit:
        prepare_four_bit(model, torch_dtype)
    else:
        model.to(dev)
    return model, load_tokenizer(path, trust_remote_code), dev


def train_dtype(dtype: str | None, device: torch.device, load_in_4bit: bool = False) -> torch.dtype:
    """float32 on CPU, bfloat16 on CUDA (--dtype to change). With --load-in-4bit the compute dtype: bfloat16 where
    the card supports it, else float16 (evaluation's 4-bit default is float16, as the paper evaluated)."""
    if load_in_4bit and dtype in (None, "auto"):
        bf16 = device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16 else torch.float16
    return resolve_dtype(dtype, device)


def prepare_four_bit(model: Any, compute_dtype: torch.dtype) -> None:
    """What LoRA on a 4-bit base needs, a lighter peft.prepare_model_for_kbit_training: every base weight frozen;
    with float16 compute the 1-D weights (norms, biases) in float32 for stability. Unlike peft, the embeddings and
    the head keep the compute dtype (peft casts them to float32: +1.2 GB for Qwen1.5-1.8B's two 152k x 2048
    matrices). The head stays unquantized (transformers never quantizes the output embedding), so the chunked
    frozen-head cross-entropy applies unchanged."""
    for p in model.parameters():
        p.requires_grad_(False)
    if compute_dtype == torch.float16:
        for p in model.parameters():
            if p.ndim == 1 and p.dtype == torch.float16 and type(p).__name__ != "Params4bit":
                p.data = p.data.float()

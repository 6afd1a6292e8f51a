"""Tiny random models and tokenizers built from a config, for unit tests (no network, seconds to build)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from qtalign.tasks import TASKS

MAX_TINY_PARAMS = 2_000_000


def _corpus() -> list[str]:
    lines = []
    for task in TASKS.values():
        for entry in task.table.values():
            lines += [entry.cue, *entry.fields, *entry.labels.values()]
            lines += [w for ws in entry.variants.values() for w in ws]
    lines += ["The movie was great and I loved it.", "A man is playing a guitar on stage.", "Premise Hypothesis Answer"]
    lines += ['Translate the input from Chinese to English:', 'Emotion: "positive"', 'Answer: "neutral"']
    return [line for line in lines if line] * 3


def build_tokenizer(style: str = "sentencepiece", vocab_size: int = 600) -> Any:
    """A small BPE tokenizer trained on the task tables' words.

    style "sentencepiece": Metaspace ("▁") pre-tokenizer with byte-fallback tokens <0x00>..<0xFF>, like Gemma/Llama 2;
    style "bytelevel": GPT-2 style byte-level BPE ("Ġ"), like Llama 3/Qwen.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    if style == "sentencepiece":
        byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
        tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
        tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Metaspace(replacement="▁", prepend_scheme="first")])
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials + byte_tokens, show_progress=False)
    elif style == "bytelevel":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=specials, show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
    else:
        raise ValueError(style)
    tok.train_from_iterator(_corpus(), trainer)
    from tokenizers.processors import TemplateProcessing

    tok.post_processor = TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", tok.token_to_id("<bos>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>")


def build_model(arch: str, vocab_size: int, seed: int = 0) -> Any:
    """A random causal LM of the given family ("llama" or "gemma3"), small enough for unit tests."""
    from transformers import AutoModelForCausalLM, Gemma3TextConfig, LlamaConfig

    common: dict[str, Any] = {
        "vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "max_position_embeddings": 2048,
        "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2}
    if arch == "llama":
        config = LlamaConfig(**common, tie_word_embeddings=False)
    elif arch == "gemma3":
        config = Gemma3TextConfig(**common, sliding_window=64, layer_types=["sliding_attention", "sliding_attention",
                                  "full_attention"], query_pre_attn_scalar=8, final_logit_softcapping=30.0)
    else:
        raise ValueError(arch)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    n = sum(p.numel() for p in model.parameters())
    assert n < MAX_TINY_PARAMS, f"tiny {arch} model has {n} parameters"
    return model.eval()


def save_tiny(folder: Path, arch: str, style: str, seed: int = 0) -> Path:
    """Write a tiny model + tokenizer folder that qtalign.models.load_model can read like a real one."""
    tok = build_tokenizer(style)
    model = build_model(arch, len(tok), seed)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder

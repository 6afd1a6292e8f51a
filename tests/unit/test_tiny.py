"""The tiny fixtures are tiny and load through the normal model loader."""

from __future__ import annotations

from pathlib import Path

from tiny import MAX_TINY_PARAMS

from qtalign.models import load_model


def test_tiny_models_load_and_are_tiny(tiny_model: Path) -> None:
    lm = load_model(str(tiny_model), device="cpu")
    assert sum(p.numel() for p in lm.model.parameters()) < MAX_TINY_PARAMS
    assert lm.tokenizer("Emotion: \"", add_special_tokens=False)["input_ids"]

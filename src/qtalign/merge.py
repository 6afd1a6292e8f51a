"""Merge a LoRA adapter into its base model and save a plain safetensors model folder (+ tokenizer)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from qtalign.errors import QtalignError


def merge(model: str, adapter: str | Path, out: str | Path, dtype: str | None = "float32",
          trust_remote_code: bool = False) -> Path:
    """Load base + adapter on CPU, merge_and_unload, write OUT atomically (config, safetensors, tokenizer)."""
    from qtalign.models import attach_adapter
    from qtalign.train import load_trainable

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise QtalignError(f"{out}: output folder exists and is not empty")
    base, tok, _ = load_trainable(model, "cpu", dtype, trust_remote_code)
    check_targets(base, adapter)
    peft_model = attach_adapter(base, adapter)
    merged = peft_model.merge_and_unload()
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        merged.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def check_targets(base: Any, adapter: str | Path) -> None:
    """Every target module named in the adapter's config must exist in the base model."""
    cfg_path = Path(adapter) / "adapter_config.json"
    if not cfg_path.is_file():
        raise QtalignError(f"{adapter}: not a PEFT adapter folder (no adapter_config.json)")
    try:
        targets = json.loads(cfg_path.read_text(encoding="utf-8")).get("target_modules") or []
    except json.JSONDecodeError as e:
        raise QtalignError(f"{cfg_path}: invalid JSON ({e.msg})") from None
    if isinstance(targets, str):
        return  # a regex: PEFT checks it
    names = {n.rsplit(".", 1)[-1] for n, _ in base.named_modules()}
    missing = [t for t in targets if t not in names]
    if missing:
        raise QtalignError(f"{adapter}: adapter does not fit {type(base).__name__} (no module {', '.join(missing)})")

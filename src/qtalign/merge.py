"""Merge a LoRA adapter into its base model and save a plain safetensors model folder (+ tokenizer)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtalign.errors import QtalignError
from qtalign.models import DEFAULT_MODEL
from qtalign.runs.merge import MERGE_RECORD, read_merge_record
from qtalign.settings import Progress, Settings


class MergeSettings(Settings):
    """What `qtalign merge` folds together: the base model, the adapter, the output folder, the saved dtype."""

    model: str = DEFAULT_MODEL
    adapter: str
    out: str
    dtype: str | None = "float32"
    trust_remote_code: bool = False
    overwrite: bool = False  # replace an earlier merge in out made with other settings


@dataclass
class MergeResult:
    """The merged model's folder."""

    out: Path

    def lines(self) -> list[str]:
        """What `qtalign merge` prints."""
        return [f"merged model -> {self.out}"]


def run(s: MergeSettings, *, progress: Progress = True) -> MergeResult:
    """The merge stage's entry: merge(...) with the settings' fields (no progress to show)."""
    del progress
    return MergeResult(merge(s.model, s.adapter, s.out, s.dtype, s.trust_remote_code, s.overwrite))


def merge(model: str, adapter: str | Path, out: str | Path, dtype: str | None = "float32",
          trust_remote_code: bool = False, overwrite: bool = False) -> Path:
    """Load base + adapter on CPU, merge_and_unload, write OUT atomically (config, safetensors, tokenizer, and
    qtalign_merge.json naming the model, adapter and the adapter's sha256).

    The resume rule of every command: OUT already merged from the same settings is left as it is; other settings
    or a non-empty folder that is not a merge are refused (overwrite replaces an earlier merge). One writer at a time
    (store.hold_folder on .OUT.qtalign.lock beside OUT)."""
    from qtalign.models import adapter_sha256, attach_adapter, quiet_transformers, resolve_adapter
    from qtalign.store import (
        LOCK_NAME,
        RESUME_HINT,
        atomic_write_json,
        claim_out,
        describe_changes,
        hold_folder,
        output_errors,
    )
    from qtalign.trainable import load_trainable

    adapter = resolve_adapter(adapter)
    record = {"model": model, "adapter": str(adapter), "adapter_sha256": adapter_sha256(adapter), "dtype": dtype}
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise QtalignError(f"--out {out}: exists and is not a folder; give a new folder path")
    claim_out(out.parent if str(out.parent) else Path("."))
    hold_folder(out, out.with_name(f".{out.name}{LOCK_NAME}"))  # beside OUT: the merge replaces OUT whole
    if out.is_dir() and any(out.iterdir()):
        old = read_merge_record(out)
        if old is None:
            raise QtalignError(f"--out {out}: folder exists and is not empty (and holds no qtalign merge); give a new "
                               "folder")
        changes = describe_changes(old, record)
        if not changes:
            return out  # already merged with these settings
        if not overwrite:
            raise QtalignError(f"{out}: holds a merge made with other settings ({'; '.join(changes)}); "
                               f"{RESUME_HINT}")
    base, tok, _ = load_trainable(model, "cpu", dtype, trust_remote_code)
    check_targets(base, adapter)
    peft_model = attach_adapter(base, adapter)
    merged = peft_model.merge_and_unload()
    tmp = out.with_name(out.name + ".tmp")
    old_dir = out.with_name(out.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with output_errors(tmp), quiet_transformers():
            merged.save_pretrained(str(tmp), safe_serialization=True)
            tok.save_pretrained(str(tmp))
        atomic_write_json(tmp / MERGE_RECORD, record)
        if out.exists():
            os.replace(out, old_dir)
        os.replace(tmp, out)
        shutil.rmtree(old_dir, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def check_targets(base: Any, adapter: str | Path) -> None:
    """Every target module named in the adapter's config must exist in the base model."""
    from qtalign.models import check_adapter_targets

    check_adapter_targets(base, adapter)

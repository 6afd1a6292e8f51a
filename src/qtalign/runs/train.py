"""A training run folder: its file names, its records, and the provenance chain adapter -> train record -> data build."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtalign.data.build_files import manifest_path
from qtalign.store import read_json_object

ADAPTER = "adapter"  # the trained LoRA adapter (weights, tokenizer, ADAPTER_RECORD)
ADAPTER_RECORD = "qtalign_train.json"  # in ADAPTER: how the adapter was trained (template, protocol, precision)
TRAIN_RECORD = "train_settings.json"  # the run record: the settings a rerun must match
TRAIN_SUMMARY = "train_summary.json"  # written when the run has finished: steps, losses, pairs, time
TRAIN_LOG = "train_log.jsonl"
VAL_LOG = "val_log.jsonl"
CHECKPOINT = "checkpoint"  # the resumable checkpoint (swapped in via CHECKPOINT.tmp, CHECKPOINT.old)
CHECKPOINT_STATE = "state.json"  # in CHECKPOINT: step, param groups, scheduler and Python's random state
TRAIN_OUTPUTS = ("adapter", "adapter.tmp", "checkpoint", "checkpoint.tmp", "checkpoint.old", "train_log.jsonl",
                 "val_log.jsonl", "loss.png", "train_summary.json")


def read_train_summary(folder: Path) -> dict[str, Any]:
    """train_summary.json of a finished training run ({} when missing or unreadable)."""
    try:
        return read_json_object(folder / TRAIN_SUMMARY) or {}
    except OSError:
        return {}


def read_checkpoint_state(checkpoint: Path) -> dict[str, Any]:
    """CHECKPOINT/state.json as save_checkpoint wrote it (an OSError or ValueError when it cannot be read)."""
    state: dict[str, Any] = json.loads((checkpoint / CHECKPOINT_STATE).read_text(encoding="utf-8"))
    return state


def _find(path_text: str, anchors: Sequence[Path], there: Callable[[Path], bool] = Path.exists) -> Path | None:
    """path_text as given (absolute or from the working directory), else relative to each anchor folder: the first
    path that is there (exists, or the test given)."""
    p = Path(path_text)
    if there(p):
        return p
    if not p.is_absolute():
        for a in anchors:
            if there(a / p):
                return a / p
    return None


def anchor_folders(folder: Path, up: int = 4) -> list[Path]:
    """folder (resolved) and up to `up` of its parents: where relative paths recorded in a run folder are looked up."""
    folder = folder.resolve()
    return [folder, *list(folder.parents)[:up]]


@dataclass(frozen=True)
class TrainingData:
    """Where a training run's provenance chain (adapter -> T/train_settings.json -> data -> the pairs file's manifest)
    led; problem says where and why it stopped ("" when it reached the manifest)."""

    folder: Path | None = None  # the training run folder T
    data: str | None = None  # T/train_settings.json's `data` entry, as recorded
    manifest_path: Path | None = None
    manifest: dict[str, Any] | None = None
    problem: str = ""


def training_data(adapter: str | Path, anchors: Sequence[Path] = (), strict: bool = False) -> TrainingData:
    """Follow an adapter's provenance: adapter (a `qtalign train` output folder T or T/adapter, as given or relative
    to an anchor folder) -> T/train_settings.json -> data (as written, else relative to T or its parents; the pairs
    file or its manifest must be there) -> that pairs file's manifest (manifest_path). strict: invalid JSON in a
    record is a QtalignError naming the file."""
    found = _find(str(adapter), anchors)
    if found is None:
        return TrainingData(problem=f"adapter {adapter} not found")
    folder = next((d for d in (found, found.parent) if (d / TRAIN_RECORD).is_file()), None)
    if folder is None:
        return TrainingData(problem=f"{found}: no {TRAIN_RECORD} here or one folder up")
    record = folder / TRAIN_RECORD
    data = (read_json_object(record, strict=strict) or {}).get("data")
    if not data:
        return TrainingData(folder, problem=f"{record}: no `data` entry")
    pairs = _find(str(data), [folder, *anchor_folders(folder)], lambda p: p.exists() or manifest_path(p).is_file())
    if pairs is None:
        return TrainingData(folder, str(data), problem=f"{record}: pairs file {data} not found")
    where = manifest_path(pairs)
    manifest = read_json_object(where, strict=strict)
    if manifest is None:
        return TrainingData(folder, str(data), where, problem=f"{where}: not found")
    return TrainingData(folder, str(data), where, manifest)


def adapter_label(adapter: str | Path) -> str:
    """A short name for an adapter in figures and tables: "LoRA zh/es=>en" when its training data's manifest is
    found (training_data), else "LoRA <training folder name>"."""
    p = Path(adapter)
    run = p.parent if p.name == ADAPTER else p
    try:
        m = training_data(p).manifest["settings"]  # type: ignore[index]
        return f"LoRA {'/'.join(m['sources'])}=>{m['target']}" + (f" ({m['control']})" if m.get("control") else "")
    except (OSError, ValueError, KeyError, TypeError):
        return f"LoRA {run.name}"


def run_label(model: str | None, adapter: str | None, label: str | None = None) -> str:
    """How a run is named in figures: its --label, else the model's short name plus the adapter's label."""
    if label:
        return label
    name = Path(model).name if model else "model"
    return f"{name} + {adapter_label(adapter)}" if adapter else name

"""A data build's files, written by data/ and read above it: FILE.jsonl, FILE.manifest.json, dataset_info.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qtalign.store import read_json_object

MANIFEST_SUFFIX = ".manifest.json"  # `data build --out DIR/FILE.jsonl` describes itself in DIR/FILE.manifest.json
LEGACY_MANIFEST = "manifest.json"  # the one manifest of a folder, written by qtalign before several builds per folder
DATASET_INFO = "dataset_info.json"  # LLaMA-Factory's index of the folder's builds, shared by every build there


def manifest_path(pairs: str | Path, legacy: bool = True) -> Path:
    """The manifest of a `data build` pairs file: FILE.manifest.json beside FILE.jsonl. With legacy (for readers), a
    folder's manifest.json from an older qtalign when FILE.manifest.json is missing and that manifest describes FILE
    (names it as its output, names no output, or cannot be read: its reader says so)."""
    pairs = Path(pairs)
    path = pairs.with_name(pairs.stem + MANIFEST_SUFFIX)
    if not legacy or path.is_file():
        return path
    old = pairs.with_name(LEGACY_MANIFEST)
    if old.is_file():
        try:
            data = json.loads(old.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return old
        output = data.get("output") if isinstance(data, dict) else None
        if output is None or Path(str(output)).name == pairs.name:
            return old
    return path


def read_manifest(pairs: str | Path, strict: bool = False) -> dict[str, Any] | None:
    """The manifest of a pairs file (manifest_path): None when missing or not a JSON object; invalid JSON is None
    too, or with strict a QtalignError naming the file."""
    return read_json_object(manifest_path(pairs), strict=strict)


def manifest_settings(manifest: Path) -> dict[str, Any]:
    """The `settings` of a build's manifest file; ValueError, KeyError or TypeError when it cannot be read as one."""
    return dict(json.loads(manifest.read_text(encoding="utf-8"))["settings"])


def dataset_info_path(pairs: str | Path) -> Path:
    """The dataset_info.json beside a pairs file."""
    return Path(pairs).with_name(DATASET_INFO)


def read_dataset_info(pairs: str | Path) -> dict[str, Any]:
    """The dataset_info.json beside a pairs file: build name -> entry ({} when missing or not a JSON object)."""
    return read_json_object(dataset_info_path(pairs)) or {}

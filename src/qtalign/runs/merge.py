"""A merged model folder: its record qtalign_merge.json (the model, adapter and adapter hash it was merged from)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtalign.store import read_json_object

MERGE_RECORD = "qtalign_merge.json"


def read_merge_record(folder: Path) -> dict[str, Any] | None:
    """The merge record of a folder (None when there is none, or it is unreadable or not a JSON object)."""
    try:
        return read_json_object(folder / MERGE_RECORD)
    except OSError:
        return None

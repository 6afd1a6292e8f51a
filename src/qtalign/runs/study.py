"""A study folder: S/study.json (the runner's record of the study) and the marker of each finished step's folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from qtalign.errors import QtalignError
from qtalign.store import atomic_write_json, read_json_object

STUDY = "study.json"
MARKER = ".qtalign_step.json"  # written into a step's folder when it finished: {id, kind, hash, seconds}


class StepLike(Protocol):
    """What the marker of a step needs to know of it (a study.plan.Step)."""

    id: str
    kind: str
    hash: str
    out: str


def read_marker(root: Path, step: StepLike) -> dict[str, Any] | None:
    """The finished-step marker of a step's folder when it matches the step's hash."""
    marker = read_json_object(root / step.out / MARKER)
    return marker if marker is not None and marker.get("hash") == step.hash else None


def write_marker(root: Path, step: StepLike, seconds: float) -> None:
    """Mark a step's folder finished (read_marker finds it while the step's hash stays the same)."""
    atomic_write_json(root / step.out / MARKER, {"id": step.id, "kind": step.kind, "hash": step.hash,
                                                 "seconds": seconds})


def read_study(root: Path) -> dict[str, Any]:
    """S/study.json of a `qtalign run` output folder; a QtalignError naming the file when missing or unreadable."""
    path = root / STUDY
    if not path.is_file():
        raise QtalignError(f"{path}: not found (is {root} a `qtalign run` output folder?)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise QtalignError(f"{path}: not valid JSON") from None
    if not isinstance(data, dict):
        raise QtalignError(f"{path}: expected a JSON object")
    return data

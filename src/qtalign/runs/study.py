"""A study folder: S/study.json (the runner's record of the study) and the marker of each finished step's folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from qtalign.errors import QtalignError
from qtalign.store import LOCK_NAME, atomic_write_json, read_json_object, sha256_file

STUDY = "study.json"
# written into a step's folder when it finished: {id, kind, hash, seconds, files}; files: every file the step left in
# its folder (name relative to the folder -> {size, sha256}), which a cached step is verified against before reuse
MARKER = ".qtalign_step.json"
NOT_OUTPUTS = (MARKER, LOCK_NAME)  # files of a step folder that are not the step's outputs


class StepLike(Protocol):
    """What the marker of a step needs to know of it (a study.plan.Step)."""

    id: str
    kind: str
    hash: str
    out: str


def output_files(folder: Path) -> dict[str, dict[str, Any]]:
    """Every file under a step's folder but the marker and the lock: name (POSIX, relative to the folder) -> size in
    bytes and sha256, in name order."""
    found = sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in NOT_OUTPUTS)
    return {p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": sha256_file(p)} for p in found}


def read_marker(root: Path, step: StepLike) -> dict[str, Any] | None:
    """The finished-step marker of a step's folder when it matches the step's hash (its `files` are not checked
    here: runs.verify does that)."""
    marker = read_json_object(root / step.out / MARKER)
    return marker if marker is not None and marker.get("hash") == step.hash else None


def write_marker(root: Path, step: StepLike, seconds: float, files: dict[str, dict[str, Any]] | None = None) -> None:
    """Mark a step's folder finished, recording the files it holds now (output_files, unless given); read_marker
    finds it while the step's hash stays the same. Called by whichever process ran the step, once it has finished."""
    folder = root / step.out
    atomic_write_json(folder / MARKER, {"id": step.id, "kind": step.kind, "hash": step.hash, "seconds": seconds,
                                        "files": output_files(folder) if files is None else files})


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

"""An eval run folder's files: names, the processes' part files, results, the run record, the content-free record."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from qtalign import calibration
from qtalign.errors import QtalignError
from qtalign.store import JsonlWriter, read_json_object, read_jsonl_rows

PREDICTIONS = "predictions.jsonl"
RESULTS = "results.json"
RUN = "run.json"
CONTENT_FREE = "content_free.json"
PROMPTS = "prompts.jsonl"
PARTS = "parts"  # predictions.RANK.jsonl of each process of a multi-process run, gathered into PREDICTIONS at the end


def part_path(out: Path, rank: int) -> Path:
    """The predictions part file of one process of a multi-process run."""
    return out / PARTS / f"predictions.{rank}.jsonl"


def gather_parts(out: Path) -> int:
    """Append the rows of the processes' part files (out/parts/predictions.RANK.jsonl, any process count) that
    predictions.jsonl lacks to it, then delete the parts; returns the number of rows added (finish_run puts the rows
    in item order).

    Crash-safe: the rows are appended (fsynced) before the parts are deleted, and a row already present is skipped,
    so a kill in between only leaves parts whose rows the next gathering skips.
    """
    folder = out / PARTS
    parts = sorted(folder.glob("predictions.*.jsonl"), key=lambda p: (len(p.name), p.name)) if folder.is_dir() else []
    if not parts:
        return 0
    key = lambda r: (r.get("task"), r.get("lang"), r.get("index"))
    have = {key(r) for r in read_jsonl_rows(out / PREDICTIONS)}
    new: list[dict[str, Any]] = []
    for part in parts:
        for row in read_jsonl_rows(part):
            if key(row) not in have:
                have.add(key(row))
                new.append(row)
    if new:
        with JsonlWriter(out / PREDICTIONS) as writer:
            writer.write_many(new)
    for part in parts:
        part.unlink()
    shutil.rmtree(folder, ignore_errors=True)
    return len(new)


def read_results(folder: Path, strict: bool = False) -> dict[str, Any] | None:
    """results.json of an eval run folder (None when missing; invalid JSON with strict is a QtalignError)."""
    return read_json_object(folder / RESULTS, strict=strict)


def read_run_record(folder: Path, strict: bool = False) -> dict[str, Any] | None:
    """run.json, the record of an eval run folder's settings (None when missing or not a JSON object)."""
    return read_json_object(folder / RUN, strict=strict)


def read_content_free(path: Path) -> dict[str, Any]:
    """content_free.json of a run folder: {"inputs": [...], "languages": {lang: {"rows": [...]}}} (empty if none)."""
    if not path.is_file():
        return {"inputs": list(calibration.CONTENT_FREE_INPUTS), "languages": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise QtalignError(f"{path}: not valid JSON; delete it and rerun `qtalign eval` to score it again") from None
    if not isinstance(data, dict) or not isinstance(data.get("languages"), dict):
        raise QtalignError(f"{path}: unexpected content; delete it and rerun `qtalign eval` to score it again")
    return data


def recorded_model_info(path: Path) -> dict[str, Any] | None:
    """The "model" entry of a run's results.json (None when there is none to read)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8")).get("model")
    except (OSError, ValueError, AttributeError):
        return None
    return info if isinstance(info, dict) else None

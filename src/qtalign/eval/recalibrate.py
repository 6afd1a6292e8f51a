"""Recalibrate a finished eval run from its stored scores: no model, no data scoring, same settings otherwise."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qtalign import calibration
from qtalign.distributed import get_dist
from qtalign.errors import QtalignError
from qtalign.eval.run import claim, commit, finish, remaining
from qtalign.eval.settings import EvalSettings
from qtalign.runs.eval import CONTENT_FREE, RESULTS


def recorded_settings(folder: Path, calibrate: Sequence[str], n_boot: int | None = None) -> EvalSettings:
    """The settings a finished run recorded in results.json, with other calibration modes (and n_boot)."""
    path = folder / RESULTS
    if not path.is_file():
        raise QtalignError(f"{path}: not found; a run is recalibrated once `qtalign eval` has finished it")
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))["settings"]
    except (ValueError, KeyError, TypeError):
        raise QtalignError(f"{path}: no readable 'settings'; rerun `qtalign eval` into {folder}") from None
    update: dict[str, Any] = {"calibrate": tuple(calibrate)}
    if n_boot is not None:
        update["n_boot"] = n_boot
    return EvalSettings.parse({**recorded, **update}, str(path))


def recalibrate(folder: str | Path, calibrate: Sequence[str] = calibration.MODES,
                n_boot: int | None = None) -> dict[str, Any]:
    """Recompute the calibrated predictions and results.json of a finished eval run folder from its stored scores
    (the data is read again only to check it is unchanged); returns the new results."""
    folder = Path(folder)
    s = recorded_settings(folder, calibrate, n_boot)
    dist = get_dist(s.device)
    c = claim(s, folder, False, dist)
    if not c.run.resumed:
        raise QtalignError(f"{c.out}: no finished `qtalign eval` run with these settings and data to recalibrate")
    todo = remaining(c, dist)
    if todo.total:
        raise QtalignError(f"{c.out}: {todo.total} item(s) not scored yet; finish the run with `qtalign eval` first")
    if todo.cf_langs and "content-free" in c.s.calibrate:
        raise QtalignError(
            f"{c.out / CONTENT_FREE}: no content-free scores for {', '.join(todo.cf_langs)} (run made before they were "
            "stored); use --calibrate batch, or rerun `qtalign eval` with the run's settings and --out to score "
            f"only the {len(calibration.CONTENT_FREE_INPUTS)} content-free prompts per language")
    dist.on_main(lambda: commit(c))
    return dist.on_main(lambda: finish(c, todo, c.model_info(), scored=False))

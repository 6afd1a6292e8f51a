"""Recalibrate a finished eval run from its stored scores: no model, no data scoring, same settings otherwise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from qtalign import calibration
from qtalign.distributed import get_dist
from qtalign.errors import QtalignError
from qtalign.eval.run import EvalResult, claim, commit, finish, remaining
from qtalign.eval.settings import EvalSettings
from qtalign.runs.eval import CONTENT_FREE, RESULTS
from qtalign.settings import Progress, Settings


class CalibrateSettings(Settings):
    """What `qtalign calibrate` recomputes: a finished eval run folder (rewritten in place), with these calibration
    modes and bootstrap resamples (None: the run's)."""

    out: str
    calibrate: tuple[Literal["batch", "content-free"], ...] = calibration.MODES
    n_boot: int | None = None


def recorded_settings(s: CalibrateSettings) -> EvalSettings:
    """The settings a finished run recorded in results.json, with s's calibration modes (and n_boot)."""
    folder = Path(s.out)
    path = folder / RESULTS
    if not path.is_file():
        raise QtalignError(f"{path}: not found; a run is recalibrated once `qtalign eval` has finished it")
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))["settings"]
    except (ValueError, KeyError, TypeError):
        raise QtalignError(f"{path}: no readable 'settings'; rerun `qtalign eval` into {folder}") from None
    update: dict[str, Any] = {"calibrate": tuple(s.calibrate), "out": str(folder)}
    if s.n_boot is not None:
        update["n_boot"] = s.n_boot
    return EvalSettings.parse({**recorded, **update}, str(path))


def recalibrate(s: CalibrateSettings, *, progress: Progress = True) -> EvalResult:
    """Recompute the calibrated predictions and results.json of the finished eval run folder s.out from its stored
    scores (the data is read again only to check it is unchanged); no progress to show."""
    e = recorded_settings(s)
    dist = get_dist(e.device)
    c = claim(e, dist)
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
    del progress  # nothing slow: no bar
    results = dist.on_main(lambda: finish(c, todo, c.model_info(), scored=False))
    return EvalResult(Path(s.out), results, recalibrated=True)

"""What lens and PCA runs share: the run record, claiming the folder, loading the model, CSV and progress output."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtalign.analysis.inputs import AnalysisSettings, load_analysis_model, prompt_setup
from qtalign.errors import QtalignError
from qtalign.runs.analysis import RECORD
from qtalign.store import atomic_write_text


@dataclass
class AnalysisResult:
    """What a lens or pca run (or redraw) wrote: the files, in the order `qtalign lens`/`pca` prints them (main
    process only; empty on the other processes of a multi-process run)."""

    out: Path
    files: list[Path] = field(default_factory=list)

    def lines(self) -> list[str]:
        """What `qtalign lens`/`pca` prints: the files written, one a line."""
        return [str(path) for path in self.files]


def redraw_or_check(s: Any, draw: Any, figures: str, needed: str, command: str) -> AnalysisResult | None:
    """The checks lens and pca make before anything loads: with --redraw only redraw (returns what it drew);
    otherwise --out is required and a --compare folder must hold `needed` (returns None: go on with the run)."""
    if s.redraw:
        return AnalysisResult(Path(s.redraw), draw(Path(s.redraw), s.compare))
    if not s.out:
        raise QtalignError(f"--out is required (or --redraw DIR to redraw {figures})")
    if s.compare and not (Path(s.compare) / needed).is_file():
        raise QtalignError(f"--compare {s.compare}: no {needed} there (run `qtalign {command}` for it first)")
    return None


def setup_processes(s: Any) -> tuple[Any, Any, Any]:
    """(dist, settings, prompts) of a lens or pca run, the same in every process: several processes under torchrun /
    accelerate launch each take their share (the settings come back with each process's device)."""
    from qtalign.distributed import get_dist

    dist = get_dist(s.device)
    s = s.model_copy(update={"device": dist.local_device(s.device)})
    setup = dist.agree(lambda: prompt_setup(s))
    return dist, s, setup


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """rows as CSV (columns: the first row's keys), written atomically; no rows: an empty file."""
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def print_progress(lang: str, done: int, total: int, rate: float) -> None:
    """One language's progress on a single stderr line (a newline once done)."""
    eta = (total - done) / rate if rate > 0 else float("inf")
    print(f"\r  {lang}: {done}/{total} items, {rate:.2f} items/s, ETA {eta:.0f} s   ", end="", file=sys.stderr,
          flush=True)
    if done >= total:
        print(file=sys.stderr)


def open_analysis(s: AnalysisSettings, settings: dict[str, Any], outputs: tuple[str, ...]) -> Any:
    """Check and claim s.out for lens/pca (store.open_run) before the model loads; returns the RunFolder."""
    from qtalign.eval import identity_defaults
    from qtalign.protocol import DEFAULTS
    from qtalign.store import open_run

    return open_run(s.out, RECORD, {**settings, "label": s.label}, outputs=outputs, overwrite=s.overwrite,
                    names={"analysis": "command", "energy": "energy quantity (newer lens runs)"}, ignore={"label"},
                    defaults={**identity_defaults(), **DEFAULTS})


@dataclass
class Started:
    """A lens or pca run once set up: its folder, the model, and how items go through it."""

    out: Path
    lm: Any
    scorer: Any  # qtalign.scoring.Scorer; its batch_size cuts the batches (the same in every process)
    sizer: Any  # qtalign.batchsize.BatchSizer: the items per forward pass (auto halves it on out-of-memory)


def start_analysis(s: AnalysisSettings, dist: Any, settings: dict[str, Any], outputs: tuple[str, ...],
                   parts: Sequence[Path], per_item: Sequence[str]) -> Started:
    """The setup of lens and pca, in one process or several: the main process checks and claims s.out
    (open_analysis) before the model loads and gathers into each of parts (one per language) the processes' part
    files a killed multi-process run left (their per-item arrays: per_item);
    every process checks that it sees the folder and loads the model (each node's first process first); the main
    process writes the run record once the model has loaded. Every process takes the main process's batch size."""
    from qtalign.analysis.common import gather_rank_parts
    from qtalign.batchsize import batch_sizer, memory_key
    from qtalign.scoring import Scorer

    def claim() -> Any:
        run = open_analysis(s, settings, outputs)
        for part in parts:
            gather_rank_parts(part, per_item)
        return run

    run = dist.on_main(claim)
    dist.check_shared(run.path)
    lm = dist.local_main_first(lambda: load_analysis_model(s))
    dist.on_main(run.commit)
    sizer = batch_sizer(s.batch_size, lm.device, memory_key(settings["analysis"], s.model, settings["task"],
                                                            lm.device, lm.dtype, lm.quantization))
    sizer.size = dist.broadcast(sizer.size)  # a remembered auto size may differ between processes
    return Started(run.path, lm, Scorer(lm.model, lm.tokenizer, batch_size=sizer.size), sizer)


def run_names(out: Path, compare: str | None) -> list[tuple[str, Path]]:
    """(name in figures, folder) of a run and of the run it is compared with."""
    from qtalign.runs.analysis import run_name

    return [(run_name(out), out)] + ([(run_name(Path(compare)), Path(compare))] if compare else [])

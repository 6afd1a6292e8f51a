"""The eval entry: claim the run folder, score what is left (resuming, in one or several processes), finish."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtalign.distributed import Dist, get_dist
from qtalign.errors import QtalignError
from qtalign.eval.loop import Todo, score_run
from qtalign.eval.prepare import Prepared, format_prompt_lines, prepare
from qtalign.eval.results import finish_run, recalibrate_report, run_report
from qtalign.eval.settings import IDENTITY_EXCLUDES, EvalSettings
from qtalign.prompts import LangPrompts
from qtalign.runs.eval import (
    CONTENT_FREE,
    PARTS,
    PREDICTIONS,
    PROMPTS,
    RESULTS,
    RUN,
    gather_parts,
    read_content_free,
    recorded_model_info,
)
from qtalign.settings import Progress, bars
from qtalign.store import RunFolder, atomic_write_text, open_run, read_jsonl_rows


@dataclass
class Claimed:
    """A run folder claimed for these settings: the settings as resolved, the prepared data, the run record."""

    s: EvalSettings  # the adapter resolved to its folder
    prep: Prepared
    identity: dict[str, Any]  # what a resumed run must share (settings, data and adapter hashes)
    run: RunFolder

    @property
    def out(self) -> Path:
        return self.run.path

    def model_info(self) -> dict[str, Any]:
        """The model entry of results.json before the model loads."""
        return {"model": self.s.model, "adapter": self.s.adapter, "adapter_sha256": self.identity.get("adapter_sha256")}


def claim(s: EvalSettings, dist: Dist) -> Claimed:
    """Prepare the data on every process, then claim s.out on the main process (store.open_run: checked before the
    model loads; a killed multi-process run's part files gathered) and check every process sees it."""
    from qtalign.models import adapter_sha256

    if not s.out:
        raise QtalignError("--out is required: the run folder")

    def setup() -> tuple[EvalSettings, Prepared, dict[str, Any]]:
        prep = prepare(s)
        identity = {**s.identity(), "data_sha256": prep.data_hashes}
        if s.adapter is not None:
            identity["adapter_sha256"] = adapter_sha256(s.adapter)
        return s, prep, identity

    resolved, prep, identity = dist.agree(setup)

    def take() -> RunFolder:  # main process: check the folder, gather what a killed multi-process run left
        run = open_run(str(s.out), RUN, identity, outputs=(PREDICTIONS, RESULTS, PROMPTS, CONTENT_FREE, PARTS),
                       overwrite=s.overwrite, ignore=IDENTITY_EXCLUDES, defaults=EvalSettings.identity_defaults())
        gather_parts(run.path)
        return run

    run = dist.on_main(take)
    dist.check_shared(run.path)
    return Claimed(resolved, prep, identity, run)


def content_free_done(cf: dict[str, Any], lp: LangPrompts) -> bool:
    """Whether the content-free record (runs.eval.read_content_free) holds this language's content-free prompts, as
    they are now."""
    entry = cf["languages"].get(lp.lang)
    return bool(entry) and [r.get("text") for r in entry.get("rows", [])] == list(lp.content_free)


def remaining(c: Claimed, dist: Dist) -> Todo:
    """What is left to score: the main process reads the predictions and content-free scores in the folder."""

    def found() -> tuple[set[tuple[str, int]], dict[str, Any]]:  # main process: the items and content-free scores
        done = {(r["lang"], r["index"]) for r in read_jsonl_rows(c.out / PREDICTIONS) if r.get("task") == c.s.task}
        return done, read_content_free(c.out / CONTENT_FREE)

    done, cf = dist.on_main(found)
    items = {lang: [it.index for it in p.items if (lang, it.index) not in done] for lang, p in c.prep.prompts.items()}
    cf_langs = [lang for lang, lp in c.prep.prompts.items() if not content_free_done(cf, lp)]
    return Todo(done, cf, items, cf_langs)


def commit(c: Claimed) -> None:
    """Main process, once setup succeeded: the run record, and the prompts if asked for."""
    c.run.commit()
    if c.s.log_prompts:
        atomic_write_text(c.out / PROMPTS, format_prompt_lines(c.s, c.prep))


def finish(c: Claimed, todo: Todo, model_info: dict[str, Any], scored: bool) -> dict[str, Any]:
    """Main process: gather the parts, calibrate, write results.json. scored: items or content-free prompts were
    scored now (else the run keeps what it recorded about its model)."""
    gather_parts(c.out)
    info = model_info
    if not scored:
        info = recorded_model_info(c.out / RESULTS) or info
    return finish_run(c.s, c.prep, c.out, info, todo.cf)


@dataclass
class EvalResult:
    """A finished eval run: its folder and results.json's content (per language and the mean, raw and calibrated)."""

    out: Path
    results: dict[str, Any]
    prompts: bool = False  # prompts.jsonl was written too
    recalibrated: bool = False  # an existing run's calibration recomputed (`qtalign calibrate`)

    def lines(self) -> list[str]:
        """What `qtalign eval` (or `qtalign calibrate`) prints: the per-language table and the files written."""
        if self.recalibrated:
            return recalibrate_report(self.results, self.out).splitlines()
        return run_report(self.results, self.out, self.prompts).splitlines()


def run(s: EvalSettings, *, progress: Progress = True) -> EvalResult:
    """Evaluate into s.out, writing predictions as they are scored; resumes an interrupted run in the same folder
    (s.overwrite: start over). progress: the bar.

    The folder is checked (store.open_run) before the model loads; run.json is written once the model and adapter
    have loaded, so a failed start leaves nothing that blocks the corrected command.

    Launched in several processes (torchrun, accelerate launch), each process scores its share of the batches into
    its own part file (parts/predictions.RANK.jsonl). The main process alone claims the folder, scores the
    content-free prompts (content_free.json), gathers the parts into one predictions.jsonl and finishes the run
    (calibration, results.json); results equal a one-process run's. A run killed part-way resumes with any process
    count.
    """
    dist = get_dist(s.device)
    c = claim(s, dist)
    todo = remaining(c, dist)
    model_info = c.model_info()
    scored = bool(todo.total or todo.cf_langs)
    if scored:
        model_info = score_run(c.s, c.prep, c.out, todo, dist, bars(progress), loaded=lambda: commit(c))
    else:
        dist.on_main(lambda: commit(c))
    results = dist.on_main(lambda: finish(c, todo, model_info, scored))
    return EvalResult(c.out, results, prompts=s.log_prompts)

"""A logit-lens run: the lens over the evaluation prompts, per layer, into a resumable run folder with a figure."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from qtalign.analysis.inputs import AnalysisSettings
from qtalign.analysis.runs import (
    AnalysisResult,
    print_progress,
    redraw_or_check,
    run_names,
    setup_processes,
    start_analysis,
    write_csv,
)
from qtalign.errors import QtalignError
from qtalign.runs.analysis import LENS_OUTPUTS
from qtalign.settings import Progress, bars
from qtalign.store import atomic_write_text

log = logging.getLogger(__name__)


class LensSettings(AnalysisSettings):
    """Everything that defines a lens run (`qtalign lens`); settings not given: the paper protocol's lens preset where
    it is asked for, else qtalign's default."""

    COMMAND: ClassVar[str] = "lens"
    bootstrap: int = 1000  # bootstrap resamples for the bands
    entropy_unit: Literal["nats", "bits"] = "nats"
    drop_overlap: bool = False  # drop items whose correct label's native and English token sets overlap


def draw(out: Path, compare: str | None) -> list[Path]:
    """The lens figure of a finished run folder (lens_compare.* beside a second run, else lens.*)."""
    from qtalign.figures.analysis import lens_figure

    return lens_figure(run_names(out, compare), out / ("lens_compare" if compare else "lens"))


class _Vocab:
    """What the paper's token sets need of a TokenIndex (its tokenizer), without reading the whole vocabulary."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer


def run(s: LensSettings, *, progress: Progress = True) -> AnalysisResult:
    """Run (or resume) the lens into s.out, or only redraw the figure of s.redraw; returns the files written."""
    if (redrawn := redraw_or_check(s, draw, "a figure", "lens_layers.csv", "lens")) is not None:
        return redrawn
    from qtalign.analysis.common import item_order, load_part, rank_part, save_npz
    from qtalign.analysis.inputs import model_record
    from qtalign.analysis.lens import QUANTITIES, Energy, LensArrays, LensSets, drop_overlapping, run_lens
    from qtalign.models import check_finite
    from qtalign.scoring import TokenIndex

    dist, s, setup = setup_processes(s)
    settings = dist.agree(lambda: {"analysis": "lens", **model_record(s), **setup.settings,
                                   "entropy_unit": s.entropy_unit, "drop_overlap": s.drop_overlap, "energy": True})
    out = Path(s.out)
    per_item = ("index", *QUANTITIES, "top_id")
    part_of = lambda lang: out / "parts" / f"lens_{lang}.npz"
    started = start_analysis(s, dist, settings, LENS_OUTPUTS, [part_of(lang) for lang in setup.langs], per_item)
    lm, scorer = started.lm, started.scorer
    index: TokenIndex | None = None  # built only when needed (it reads the whole vocabulary)
    energy: Energy | None = None
    model_type = getattr(lm.base.config, "model_type", None)
    shard = dist.shard()

    def sets_for(lang: str, lp: Any) -> LensSets:
        nonlocal index
        if s.label_tokens != "paper":
            index = index or TokenIndex(lm.tokenizer)
        return LensSets.build(index or _Vocab(lm.tokenizer), setup.task, lang, lp.native_words,  # type: ignore[arg-type]
                              s.label_tokens, model_type)

    results: list[LensArrays] = []
    dropped: dict[str, dict[str, int]] = {}
    kept: dict[str, Any] = {}  # lang -> the prompts read (after drop_overlap)

    def compute() -> None:
        nonlocal energy
        for lang in setup.langs:
            lp = setup.prompts[lang]
            sets = None
            if s.drop_overlap:
                sets = sets_for(lang, lp)
                n_all = len(lp.items)
                lp, n_drop = drop_overlapping(lp, setup.task, sets)
                dropped[lang] = {"items": n_all, "dropped": n_drop, "kept": n_all - n_drop}
                if dist.is_main:
                    log.info("  %s: dropped %d of %d items whose native and English label tokens overlap", lang,
                             n_drop, n_all)
                if not lp.items:
                    continue
            kept[lang] = lp
            part_path = part_of(lang)
            z, prompt_sha = load_part(part_path, lp)
            done = None
            if z is not None:
                done = LensArrays.from_npz(lang, z)
            if done is not None and done.n >= len(lp.items):
                if dist.is_main:
                    log.info("  %s: %d items already done", lang, done.n)
                results.append(done.take(item_order(lp, done.index)))  # parts are saved in batch order
                continue
            total = len(lp.items) if not dist.enabled else -(-(len(lp.items) - (done.n if done else 0)) // dist.world)
            own = rank_part(part_path, dist.rank) if dist.enabled else part_path

            def save(part: LensArrays, rate: float, lang: str = lang, path: Path = own, sha: str = prompt_sha,
                     total: int = total) -> None:
                for values in part.values.values():
                    check_finite(values, f"language {lang!r}", lm.dtype)
                save_npz(path, {**part.to_npz(), "prompt_sha": np.array(sha)})
                if dist.is_main and bars(progress):
                    print_progress(lang, part.n, total, rate)

            sets = sets or sets_for(lang, lp)
            energy = energy or Energy(scorer)
            results.append(run_lens(scorer, lp, setup.task, sets, done=done, batch_size=scorer.batch_size,
                                    on_batch=save, entropy_unit=s.entropy_unit, energy=energy, shard=shard,
                                    keep_done=not dist.enabled, sizer=started.sizer))

    dist.agree(compute)
    files: list[Path] = []  # filled on the main process only
    dist.on_main(lambda: files.extend(_write_outputs(s, out, dist.enabled, results, kept, dropped, per_item)))
    return AnalysisResult(out, files)


def _write_outputs(s: LensSettings, out: Path, gathered: bool, results: list[Any], kept: dict[str, Any],
                   dropped: dict[str, dict[str, int]], per_item: tuple[str, ...]) -> list[Path]:
    """Main process: lens.npz, lens_layers.csv, the filter counts and the figure; in a multi-process run the results
    are first gathered from the processes' part files. Returns the files written."""
    from qtalign.analysis.common import gathered_language, item_order, save_npz
    from qtalign.analysis.lens import LensArrays, summarize

    if gathered:
        results = []
        for lang, lp in kept.items():
            z = gathered_language(out / "parts" / f"lens_{lang}.npz", per_item, len(lp.items))
            done = LensArrays.from_npz(lang, z)
            results.append(done.take(item_order(lp, done.index)))
    if s.drop_overlap:
        atomic_write_text(out / "lens_filter.json", json.dumps(dropped, indent=1) + "\n")
    if not results:
        raise QtalignError(f"{out}: every item of every language was dropped by --drop-overlap (see lens_filter.json)")
    n_states = {r.values["p_en"].shape[1] for r in results}
    if len(n_states) != 1:
        raise QtalignError(f"{out}: parts have different layer counts {sorted(n_states)}")
    quantities = list(results[0].values)
    save_npz(out / "lens.npz", {
        "lang": np.concatenate([[r.lang] * r.n for r in results]).astype(str),
        "index": np.concatenate([r.index for r in results]),
        **{q: np.concatenate([r.values[q] for r in results]) for q in quantities},
        "top_id": np.concatenate([r.top_id for r in results if r.top_id is not None]),
    })
    write_csv(out / "lens_layers.csv", summarize(results, n_boot=s.bootstrap, seed=s.seed))
    extra = [out / "lens_filter.json"] if s.drop_overlap else []
    return [out / "lens.npz", out / "lens_layers.csv", *extra, *draw(out, s.compare)]

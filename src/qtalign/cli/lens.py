"""`qtalign lens`: logit lens over the evaluation prompts, per layer, with resume and a figure."""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qtalign.cli.common_options import (
    add_data_options,
    add_model_options,
    load_model_from_args,
    model_settings,
    prompts_from_args,
)
from qtalign.errors import QtalignError
from qtalign.store import atomic_write_text

log = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("lens", help="logit lens: label-token probability and entropy per layer",
                              description="Logit lens at the last prompt position of every layer.")
    add_model_options(p)
    add_data_options(p, required=False)
    p.add_argument("--out", help="run folder (resumable; required unless --redraw)")
    p.add_argument("--compare", help="a second lens run folder to overlay (e.g. the tuned model)")
    p.add_argument("--redraw", metavar="DIR", help="only redraw the figure of a finished run folder (no model)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the bands (default 1000)")
    p.add_argument("--entropy-unit", default=None, choices=["nats", "bits"],
                   help="unit of the entropy (default: nats; bits under --protocol paper)")
    p.add_argument("--drop-overlap", action=argparse.BooleanOptionalAction, default=None,
                   help="drop items whose correct label's native and English token sets share a token, as the "
                        "paper does (count reported in lens_filter.json; default: no, yes under --protocol paper)")
    add_run_options(p)
    p.set_defaults(func=run)


LENS_OUTPUTS = ("parts", "lens.npz", "lens_layers.csv", "lens_filter.json", "lens.png", "lens.svg", "lens_compare.png",
                "lens_compare.svg")
RECORD = "settings.json"  # the run record of lens and pca folders


def add_run_options(p: argparse.ArgumentParser) -> None:
    """--overwrite and --label, shared by lens and pca."""
    p.add_argument("--overwrite", action="store_true", help="discard earlier results in --out instead of resuming")
    p.add_argument("--label", default=None,
                   help="name of this run in figures (default: the model, plus the adapter's training mix)")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def progress(lang: str, done: int, total: int, rate: float) -> None:
    eta = (total - done) / rate if rate > 0 else float("inf")
    print(f"\r  {lang}: {done}/{total} items, {rate:.2f} items/s, ETA {eta:.0f} s   ", end="", file=sys.stderr,
          flush=True)
    if done >= total:
        print(file=sys.stderr)


def draw(out: Path, compare: str | None) -> list[Path]:
    from qtalign.report.figures import lens_figure, run_name

    runs = [(run_name(out), out)] + ([(run_name(Path(compare)), Path(compare))] if compare else [])
    return lens_figure(runs, out / ("lens_compare" if compare else "lens"))


def open_analysis(args: argparse.Namespace, settings: dict[str, Any], outputs: tuple[str, ...]) -> Any:
    """Check and claim --out for lens/pca (store.open_run) before the model loads; returns the RunFolder."""
    from qtalign.eval import identity_defaults
    from qtalign.protocol import DEFAULTS
    from qtalign.store import open_run

    return open_run(args.out, RECORD, {**settings, "label": args.label}, outputs=outputs, overwrite=args.overwrite,
                    names={"analysis": "command", "energy": "energy quantity (newer lens runs)"}, ignore={"label"},
                    defaults={**identity_defaults(), **DEFAULTS})


@dataclass
class Started:
    """A lens or pca run once set up: its folder, the model, and how items go through it."""

    out: Path
    lm: Any
    scorer: Any  # qtalign.scoring.Scorer; its batch_size cuts the batches (the same in every process)
    sizer: Any  # qtalign.batchsize.BatchSizer: the items per forward pass (auto halves it on out-of-memory)


def start_analysis(args: argparse.Namespace, dist: Any, settings: dict[str, Any], outputs: tuple[str, ...],
                   parts: Sequence[Path], per_item: Sequence[str]) -> Started:
    """The setup of lens and pca, in one process or several: the main process checks and claims --out
    (open_analysis) before the model loads and gathers into each of parts (one per language) the processes' part
    files a killed multi-process run left (their per-item arrays: per_item);
    every process checks that it sees the folder and loads the model (each node's first process first); the main
    process writes the run record once the model has loaded. Every process takes the main process's batch size."""
    from qtalign.analysis.common import gather_rank_parts
    from qtalign.batchsize import batch_sizer, memory_key
    from qtalign.scoring import Scorer

    def claim() -> Any:
        run = open_analysis(args, settings, outputs)
        for part in parts:
            gather_rank_parts(part, per_item)
        return run

    run = dist.on_main(claim)
    dist.check_shared(run.path)
    lm = dist.local_main_first(lambda: load_model_from_args(args))
    dist.on_main(run.commit)
    sizer = batch_sizer(args.batch_size, lm.device, memory_key(settings["analysis"], args.model, settings["task"],
                                                               lm.device, lm.dtype, lm.quantization))
    sizer.size = dist.broadcast(sizer.size)  # a remembered auto size may differ between processes
    return Started(run.path, lm, Scorer(lm.model, lm.tokenizer, batch_size=sizer.size), sizer)


class _Vocab:
    """What the paper's token sets need of a TokenIndex (its tokenizer), without reading the whole vocabulary."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer


def run(args: argparse.Namespace) -> int:
    if args.redraw:
        out = Path(args.redraw)
        for path in draw(out, args.compare):
            print(path)
        return 0
    if not args.out:
        raise QtalignError("--out is required (or --redraw DIR to redraw a figure)")
    if args.compare and not (Path(args.compare) / "lens_layers.csv").is_file():
        raise QtalignError(f"--compare {args.compare}: no lens_layers.csv there (run `qtalign lens` for it first)")
    from qtalign.analysis.common import item_order, load_part, rank_part, save_npz
    from qtalign.analysis.lens import QUANTITIES, Energy, LensArrays, LensSets, drop_overlapping, run_lens
    from qtalign.distributed import get_dist
    from qtalign.models import check_finite
    from qtalign.scoring import TokenIndex

    dist = get_dist(args.device)  # several processes under torchrun / accelerate launch: each reads its share
    args.device = dist.local_device(args.device)
    setup = dist.agree(lambda: prompts_from_args(args))  # also resolves the --protocol preset into args
    settings = dist.agree(lambda: {"analysis": "lens", **model_settings(args), **setup.settings,
                                   "entropy_unit": args.entropy_unit, "drop_overlap": args.drop_overlap,
                                   "energy": True})
    out = Path(args.out)
    per_item = ("index", *QUANTITIES, "top_id")
    part_of = lambda lang: out / "parts" / f"lens_{lang}.npz"
    started = start_analysis(args, dist, settings, LENS_OUTPUTS, [part_of(lang) for lang in setup.langs], per_item)
    lm, scorer = started.lm, started.scorer
    index: TokenIndex | None = None  # built only when needed (it reads the whole vocabulary)
    energy: Energy | None = None
    model_type = getattr(lm.base.config, "model_type", None)
    shard = dist.shard()

    def sets_for(lang: str, lp: Any) -> LensSets:
        nonlocal index
        if args.label_tokens != "paper":
            index = index or TokenIndex(lm.tokenizer)
        return LensSets.build(index or _Vocab(lm.tokenizer), setup.task, lang, lp.native_words,  # type: ignore[arg-type]
                              args.label_tokens, model_type)

    results: list[LensArrays] = []
    dropped: dict[str, dict[str, int]] = {}
    kept: dict[str, Any] = {}  # lang -> the prompts read (after --drop-overlap)

    def compute() -> None:
        nonlocal energy
        for lang in setup.langs:
            lp = setup.prompts[lang]
            sets = None
            if args.drop_overlap:
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
                if dist.is_main:
                    progress(lang, part.n, total, rate)

            sets = sets or sets_for(lang, lp)
            energy = energy or Energy(scorer)
            results.append(run_lens(scorer, lp, setup.task, sets, done=done, batch_size=scorer.batch_size,
                                    on_batch=save, entropy_unit=args.entropy_unit, energy=energy, shard=shard,
                                    keep_done=not dist.enabled, sizer=started.sizer))

    dist.agree(compute)
    dist.on_main(lambda: _write_outputs(args, out, dist.enabled, results, kept, dropped, per_item))
    return 0


def _write_outputs(args: argparse.Namespace, out: Path, gathered: bool, results: list[Any], kept: dict[str, Any],
                   dropped: dict[str, dict[str, int]], per_item: tuple[str, ...]) -> None:
    """Main process: lens.npz, lens_layers.csv, the filter counts and the figure; in a multi-process run the results
    are first gathered from the processes' part files."""
    from qtalign.analysis.common import gathered_language, item_order, save_npz
    from qtalign.analysis.lens import LensArrays, summarize

    if gathered:
        results = []
        for lang, lp in kept.items():
            z = gathered_language(out / "parts" / f"lens_{lang}.npz", per_item, len(lp.items))
            done = LensArrays.from_npz(lang, z)
            results.append(done.take(item_order(lp, done.index)))
    if args.drop_overlap:
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
    write_csv(out / "lens_layers.csv", summarize(results, n_boot=args.bootstrap, seed=args.seed))
    extra = [out / "lens_filter.json"] if args.drop_overlap else []
    for path in [out / "lens.npz", out / "lens_layers.csv", *extra, *draw(out, args.compare)]:
        print(path)

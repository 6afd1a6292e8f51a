"""`qtalign lens`: logit lens over the evaluation prompts, per layer, with resume and a figure."""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
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
    p.set_defaults(func=run)


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
    from qtalign.report.figures import lens_figure

    runs = [(_run_name(out), out)] + ([(_run_name(Path(compare)), Path(compare))] if compare else [])
    return lens_figure(runs, out / ("lens_compare" if compare else "lens"))


def _run_name(path: Path) -> str:
    settings = path / "settings.json"
    if settings.is_file():
        s = json.loads(settings.read_text(encoding="utf-8"))
        if s.get("adapter"):
            return f"{Path(s['adapter']).name} (tuned, {path.name})"
        return f"{s.get('model', 'model')} ({path.name})"
    return path.name


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
    from qtalign.analysis.common import check_settings, gather_rank_parts, item_order, load_part, rank_part, save_npz
    from qtalign.analysis.lens import QUANTITIES, Energy, LensArrays, LensSets, drop_overlapping, run_lens
    from qtalign.distributed import get_dist
    from qtalign.scoring import Scorer, TokenIndex

    dist = get_dist(args.device)  # several processes under torchrun / accelerate launch: each reads its share
    args.device = dist.local_device(args.device)
    setup = dist.agree(lambda: prompts_from_args(args))  # also resolves the --protocol preset into args
    out = Path(args.out)
    lm = dist.local_main_first(lambda: load_model_from_args(args))
    settings = {"analysis": "lens", **model_settings(args, lm), **setup.settings,
                "entropy_unit": args.entropy_unit, "drop_overlap": args.drop_overlap, "energy": True}
    per_item = ("index", *QUANTITIES, "top_id")
    part_of = lambda lang: out / "parts" / f"lens_{lang}.npz"

    def claim() -> None:  # main process: check the folder, gather what a killed multi-process run left
        check_settings(out, settings)
        for lang in setup.langs:
            gather_rank_parts(part_of(lang), per_item)

    dist.on_main(claim)
    dist.check_shared(out)
    scorer = Scorer(lm.model, lm.tokenizer, batch_size=args.batch_size)
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
                save_npz(path, {**part.to_npz(), "prompt_sha": np.array(sha)})
                if dist.is_main:
                    progress(lang, part.n, total, rate)

            sets = sets or sets_for(lang, lp)
            energy = energy or Energy(scorer)
            results.append(run_lens(scorer, lp, setup.task, sets, done=done, batch_size=args.batch_size,
                                    on_batch=save, entropy_unit=args.entropy_unit, energy=energy, shard=shard,
                                    keep_done=not dist.enabled))

    dist.agree(compute)
    dist.on_main(lambda: _write_outputs(args, out, dist.enabled, results, kept, dropped, per_item))
    return 0


def _write_outputs(args: argparse.Namespace, out: Path, gathered: bool, results: list[Any], kept: dict[str, Any],
                   dropped: dict[str, dict[str, int]], per_item: tuple[str, ...]) -> None:
    """Main process: lens.npz, lens_layers.csv, the filter counts and the figure; in a multi-process run the results
    are first gathered from the processes' part files."""
    from qtalign.analysis.common import gather_rank_parts, item_order, load_npz, save_npz
    from qtalign.analysis.lens import LensArrays, summarize

    if gathered:
        results = []
        for lang, lp in kept.items():
            path = out / "parts" / f"lens_{lang}.npz"
            gather_rank_parts(path, per_item)
            z = load_npz(path)
            if z is None or len(z["index"]) < len(lp.items):
                raise QtalignError(f"{path}: {0 if z is None else len(z['index'])} of {len(lp.items)} items after "
                                   "gathering the processes' parts; rerun the same command to finish")
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

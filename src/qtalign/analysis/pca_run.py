"""A PCA run: pooled hidden states per layer, joint PCA, PC1 correlation and alignment scores, into a run folder."""

from __future__ import annotations

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
from qtalign.runs.analysis import PCA_OUTPUTS
from qtalign.settings import Progress, bars

log = logging.getLogger(__name__)

POOLED_PER_ITEM = ("index", "states")  # the arrays of a pooled part file with one row per item


class PCASettings(AnalysisSettings):
    """Everything that defines a pca run (`qtalign pca`); settings not given: the paper protocol's pca preset where
    it is asked for (its languages included), else qtalign's default."""

    COMMAND: ClassVar[str] = "pca"
    layers: str | None = None  # comma list of layers (0 = embeddings, L = final output); None: all
    pool: Literal["mean", "item", "last"] = "mean"  # mean over the prompt, over the item's tokens, or the last token


def parse_layers(value: str | None, n_states: int) -> tuple[int, ...]:
    """The layers of a comma list (None: all n_states); each must be in 0..n_states-1."""
    if value is None:
        return tuple(range(n_states))
    try:
        layers = tuple(int(x) for x in value.split(",") if x.strip())
    except ValueError:
        raise QtalignError(f"--layers must be a comma list of integers, got {value!r}") from None
    bad = [x for x in layers if not 0 <= x < n_states]
    if bad or not layers:
        raise QtalignError(f"--layers {value}: this model has layers 0..{n_states - 1}")
    return layers


def model_layers(model: str, trust_remote_code: bool = False) -> int:
    """The number of decoder layers from the model's config (no weights loaded)."""
    from transformers import AutoConfig

    from qtalign.models import resolve_model_path

    try:
        config = AutoConfig.from_pretrained(str(resolve_model_path(model)), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise QtalignError(f"--model {model}: cannot read its config ({str(e).splitlines()[0]})") from None
    config = getattr(config, "get_text_config", lambda: config)()
    return int(config.num_hidden_layers)


def draw(out: Path, compare: str | None) -> list[Path]:
    """The scatter and correlation figures of a finished run folder (*_compare beside a second run)."""
    from qtalign.figures.analysis import pca_corr_figure, pca_scatter_figure

    runs = run_names(out, compare)
    suffix = "_compare" if compare else ""
    return pca_scatter_figure(runs, out / f"pca_scatter{suffix}") + pca_corr_figure(runs, out / f"pca_corr{suffix}")


def run(s: PCASettings, *, progress: Progress = True) -> AnalysisResult:
    """Run (or resume) the PCA into s.out, or only redraw the figures of s.redraw; returns the files written."""
    if (redrawn := redraw_or_check(s, draw, "the figures", "pca.npz", "pca")) is not None:
        return redrawn
    from qtalign.analysis.common import item_order, load_part, rank_part, save_npz
    from qtalign.analysis.inputs import model_record
    from qtalign.analysis.pca import Pooled, collect_pooled
    from qtalign.models import check_finite

    dist, s, setup = setup_processes(s)

    def layers_and_settings() -> tuple[tuple[int, ...], dict[str, Any]]:
        layers = parse_layers(s.layers, model_layers(s.model, s.trust_remote_code) + 1)
        return layers, {"analysis": "pca", **model_record(s), **setup.settings, "pool": s.pool,
                        "layers": list(layers)}

    layers, settings = dist.agree(layers_and_settings)
    out = Path(s.out)
    part_of = lambda lang: out / "parts" / f"pooled_{lang}.npz"
    started = start_analysis(s, dist, settings, PCA_OUTPUTS, [part_of(lang) for lang in setup.langs],
                             POOLED_PER_ITEM)
    lm, scorer = started.lm, started.scorer
    shard = dist.shard()
    pooled: list[Pooled] = []

    def compute() -> None:
        for lang in setup.langs:
            lp = setup.prompts[lang]
            part_path = part_of(lang)
            z, prompt_sha = load_part(part_path, lp)
            done = None
            if z is not None:
                done = Pooled.from_npz(lang, z)
            if done is not None and len(done.index) >= len(lp.items):
                if dist.is_main:
                    log.info("  %s: %d items already done", lang, len(done.index))
                rows = item_order(lp, done.index)  # parts are saved in batch order
                pooled.append(Pooled(lang, done.index[rows], done.layers, done.states[rows]))
                continue
            left = len(lp.items) - (len(done.index) if done else 0)
            total = len(lp.items) if not dist.enabled else -(-left // dist.world)
            own = rank_part(part_path, dist.rank) if dist.enabled else part_path

            def save(part: Pooled, rate: float, lang: str = lang, path: Path = own, sha: str = prompt_sha,
                     total: int = total) -> None:
                check_finite(part.states, f"language {lang!r}", lm.dtype)
                save_npz(path, {**part.to_npz(), "prompt_sha": np.array(sha)})
                if dist.is_main and bars(progress):
                    print_progress(lang, len(part.index), total, rate)

            pooled.append(collect_pooled(scorer, lp, layers, s.pool, done=done, batch_size=scorer.batch_size,
                                         on_batch=save, shard=shard, keep_done=not dist.enabled, sizer=started.sizer))

    dist.agree(compute)
    files: list[Path] = []  # filled on the main process only
    dist.on_main(lambda: files.extend(_write_outputs(s, out, layers, setup, pooled if not dist.enabled else None)))
    return AnalysisResult(out, files)


def _write_outputs(s: PCASettings, out: Path, layers: tuple[int, ...], setup: Any,
                   pooled: list[Any] | None) -> list[Path]:
    """Main process: pca.npz, pca_corr.csv, alignment.csv and the figures; pooled None (a multi-process run): first
    gather the processes' part files. Returns the files written."""
    from qtalign.analysis.common import gathered_language, item_order, save_npz
    from qtalign.analysis.pca import Pooled, alignment_scores, pca_layers

    if pooled is None:
        pooled = []
        for lang in setup.langs:
            lp = setup.prompts[lang]
            z = gathered_language(out / "parts" / f"pooled_{lang}.npz", POOLED_PER_ITEM, len(lp.items))
            done = Pooled.from_npz(lang, z)
            rows = item_order(lp, done.index)
            pooled.append(Pooled(lang, done.index[rows], done.layers, done.states[rows]))
    res = pca_layers(pooled)
    save_npz(out / "pca.npz", {
        "layers": np.array(layers), "lang": res[0].langs.astype(str), "index": res[0].index,
        "scores": np.stack([r.fit.scores for r in res]).astype(np.float32),  # [layers, N, 2]
        "explained": np.stack([r.fit.explained for r in res]),  # [layers, 2]
    })
    write_csv(out / "pca_corr.csv", [row for r in res for row in r.corr])
    write_csv(out / "alignment.csv", alignment_scores(pooled))
    return [out / "pca.npz", out / "pca_corr.csv", out / "alignment.csv", *draw(out, s.compare)]

"""The scoring loop of eval: load the model, score each language's remaining items in batches, write each batch."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qtalign import calibration
from qtalign.batchsize import BatchSizer, batch_sizer, memory_key, run_split
from qtalign.calibration import pick
from qtalign.data.check import context_problems
from qtalign.distributed import Dist, Shard
from qtalign.errors import QtalignError
from qtalign.eval.prepare import Prepared, prompt_sha
from qtalign.eval.scorers import label_scoring, token_index
from qtalign.eval.settings import EvalSettings
from qtalign.models import check_finite
from qtalign.prompts import LangPrompts
from qtalign.protocol import paper_correct
from qtalign.runs.eval import CONTENT_FREE, PREDICTIONS, part_path
from qtalign.scoring import Scorer, TokenIndex
from qtalign.store import JsonlWriter, atomic_write_json
from qtalign.tasks import Task

log = logging.getLogger(__name__)


@dataclass
class Todo:
    """What a run has left to score, as the main process found it in the run folder."""

    done: set[tuple[str, int]]  # (lang, index) of the items with a prediction row
    cf: dict[str, Any]  # the content-free record (folder.read_content_free)
    items: dict[str, list[int]]  # lang -> indices of the items still to score
    cf_langs: list[str]  # languages whose content-free prompts are still to score

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.items.values())


def score_run(s: EvalSettings, prep: Prepared, out: Path, todo: Todo, dist: Dist, progress: bool,
              loaded: Callable[[], None]) -> dict[str, Any]:
    """Load the model, call loaded() on the main process, then score what todo lists (each process its share, into its
    own part file in a multi-process run); returns the model's description for results.json."""
    from tqdm.auto import tqdm

    from qtalign.models import load_model

    lm = dist.local_main_first(lambda: load_model(
        s.model, adapter=s.adapter, device=dist.local_device(s.device), dtype=s.dtype,
        load_in_4bit=s.load_in_4bit, trust_remote_code=s.trust_remote_code, allow_pickle=s.allow_pickle))
    dist.on_main(loaded)
    max_len = getattr(lm.base.config, "max_position_embeddings", None)
    sizer = batch_sizer(s.batch_size, lm.device, memory_key(f"eval-{s.scoring}", s.model, s.task, lm.device,
                                                            lm.dtype, lm.quantization))
    sizer.size = dist.broadcast(sizer.size)  # the same batches in every process (a remembered auto size may differ)
    scorer = Scorer(lm.model, lm.tokenizer, batch_size=sizer.size)
    index = token_index(s, lm.tokenizer)
    # the main process shows its own share, about 1/world of the items
    bar = tqdm(total=-(-todo.total // dist.world), unit="item", disable=not progress or not dist.is_main,
               dynamic_ncols=True)
    shard = dist.shard()

    def score_all() -> None:
        with JsonlWriter(part_path(out, dist.rank) if dist.enabled else out / PREDICTIONS) as writer:
            for lang, lp in prep.prompts.items():
                # content-free prompts: the main process scores them and alone writes content_free.json
                content_free = (todo.cf, out / CONTENT_FREE) if lang in todo.cf_langs and dist.is_main else None
                if not todo.items[lang] and content_free is None:
                    continue
                bar.set_postfix_str(lang)
                score_language(s, prep.task, lp, scorer, index, max_len, todo.done, writer, bar, content_free, sizer,
                               lm.dtype, shard)

    dist.agree(score_all)
    bar.close()
    mismatches = sum(dist.gather(scorer.boundary_mismatches))
    if mismatches and dist.is_main:
        log.warning("warning: %d item(s) tokenized on their own (prefix tokens changed at the boundary)", mismatches)
    return lm.describe()


def score_language(
    s: EvalSettings,
    task: Task,
    lp: LangPrompts,
    scorer: Scorer,
    index: TokenIndex | None,
    max_len: int | None,
    done: set[tuple[str, int]],
    writer: JsonlWriter,
    bar: Any,
    content_free: tuple[dict[str, Any], Path] | None = None,
    sizer: BatchSizer | None = None,
    dtype: Any = None,
    shard: Shard | None = None,
) -> None:
    """Score one language's remaining items in deterministic batches; write each finished batch.

    content_free: (the run's content-free record, its path): first score this language's content-free prompts
    (lp.content_free after the same prefix) and write them into the record atomically.
    sizer: how many items go through the model at once (--batch-size auto halves it on out-of-memory: a batch is then
    scored in pieces; the batches themselves stay those of scorer.batch_size).
    shard: in a multi-process run, the batches of this process (each batch with items left is one unit of work)."""
    prefix_ids = scorer.encode_prefix(lp.prefix)
    rows = scorer.encode_items(lp.prefix, lp.texts)
    if max_len:
        too_long = context_problems(lp.items, len(prefix_ids), rows, max_len)
        if too_long:
            more = f" (and {len(too_long) - 1} more)" if len(too_long) > 1 else ""
            raise QtalignError(f"{too_long[0]}{more}")
    scoring = label_scoring(s, scorer, index, lp)
    kind = scoring.kind
    state = scorer.prefix_state(prefix_ids)
    sizer = sizer or BatchSizer(scorer.batch_size)
    if content_free is not None:
        cf, cf_path = content_free
        cf_texts = list(lp.content_free)
        cf_rows = scorer.encode_items(lp.prefix, cf_texts)
        cf_scores = np.concatenate([part for _, part in run_split(sizer, list(range(len(cf_rows))), lambda piece:
                                                                  scoring.score(state, [cf_rows[i] for i in piece]))])  # [M, L]
        if not np.isfinite(cf_scores).all():
            check_finite(cf_scores, f"language {lp.lang!r}, content-free prompts", dtype)
        cf["inputs"] = list(calibration.CONTENT_FREE_INPUTS)
        cf["languages"][lp.lang] = {"rows": [
            {"input": x, "text": t, kind: {label: float(v) for label, v in zip(task.labels, row)}}
            for x, t, row in zip(calibration.CONTENT_FREE_INPUTS, cf_texts, cf_scores)]}
        atomic_write_json(cf_path, cf)
    # batches depend only on the full item list, so a resumed run scores each item in the same batch as before
    for batch in scorer.batches([len(r) for r in rows]):
        missing = [i for i in batch if (lp.lang, lp.items[i].index) not in done]
        if not missing or (shard is not None and not shard.mine()):
            continue
        t0 = time.perf_counter()
        # --batch-size auto: a batch that runs out of device memory is scored in smaller pieces (in order)
        scores = np.concatenate([part for _, part in run_split(sizer, batch, lambda piece: scoring.score(
            state, [rows[i] for i in piece]))])  # [B, L]
        bad = ~np.isfinite(scores).all(axis=1)
        if bad.any():
            check_finite(scores, f"language {lp.lang!r}, item {lp.items[batch[int(np.argmax(bad))]].index}", dtype)
        out_rows = []
        for b, i in enumerate(batch):
            it = lp.items[i]
            if (lp.lang, it.index) in done:
                continue
            pred, tie = pick(scores[b], task.labels, s.seed, lp.lang, it.index)
            row = {
                "task": task.name, "lang": lp.lang, "index": it.index, "gold": it.label, "gold_answer": it.answer,
                "pred": pred, "correct": pred == it.label, "tie": tie,
                "prompt_sha": prompt_sha(lp.prompt(i)),
                kind: {label: float(v) for label, v in zip(task.labels, scores[b])},
            }
            if lp.gold_table is not None:
                row["paper_correct"] = paper_correct(it.answer, pred, lp.gold_table)
            out_rows.append(row)
        writer.write_many(out_rows)
        done.update((lp.lang, r["index"]) for r in out_rows)
        bar.update(len(out_rows))
        log.debug("%s: batch of %d in %.2fs", lp.lang, len(batch), time.perf_counter() - t0)

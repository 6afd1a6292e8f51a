"""The evaluation loop: validate data, build prompts, score per language with resume, aggregate results."""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from qtalign import __version__
from qtalign.config import Settings
from qtalign.data.check import context_problems
from qtalign.data.readers import Dataset, parallel_disagreements, read_dataset
from qtalign.errors import QtalignError
from qtalign.languages import PAPER_LANGS, language
from qtalign.metrics import bootstrap_accuracy, bootstrap_mean_accuracy
from qtalign.models import DEFAULT_MODEL
from qtalign.prompts import LangPrompts, build_prompts, parse_labels
from qtalign.scoring import Scorer, TokenIndex, continuation_ids, label_token_sets
from qtalign.store import (
    JsonlWriter,
    atomic_write_json,
    check_run_record,
    read_jsonl_rows,
    sha256_file,
    sha256_json,
)
from qtalign.tasks import Task, get_task

log = logging.getLogger(__name__)

PREDICTIONS = "predictions.jsonl"
RESULTS = "results.json"
RUN = "run.json"
_SLOW_TEST = float(os.environ.get("QTALIGN_SLOW_TEST", "0") or 0)


class EvalSettings(Settings):
    """Everything that defines an evaluation run."""

    task: str
    data: str
    model: str = DEFAULT_MODEL
    adapter: str | None = None
    langs: tuple[str, ...] = PAPER_LANGS
    shots: int | None = Field(None, ge=0)
    labels: str = "en"
    scoring: Literal["first-token", "loglik"] = "first-token"
    seed: int = 0
    demos: str | None = None
    limit: int | None = Field(None, ge=1)
    batch_size: int = Field(8, ge=1)
    device: str = "auto"
    dtype: str | None = None
    load_in_4bit: bool = False
    trust_remote_code: bool = False
    allow_pickle: bool = False
    n_boot: int = Field(1000, ge=10)

    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run it continues (device and n_boot may change)."""
        return self.model_dump(exclude={"device", "n_boot", "trust_remote_code", "allow_pickle"}, mode="json")


@dataclass
class Prepared:
    """Validated data and prompts, before any model is loaded."""

    task: Task
    data: Dataset
    prompts: dict[str, LangPrompts]
    data_hashes: dict[str, str]
    disagreements: dict[str, list[int]]


def summarize_problems(data: Dataset, limit: int = 5) -> str:
    errs = data.errors
    lines = [str(p) for p in errs[:limit]]
    more = f"\n  ... and {len(errs) - limit} more" if len(errs) > limit else ""
    return "\n  ".join(lines) + more


def prepare(s: EvalSettings) -> Prepared:
    """Read and validate data (the checks of `qtalign data check`) and build the prompts."""
    try:
        task = get_task(s.task)
        for lang in s.langs:
            language(lang)
            task.lang(lang)
    except ValueError as e:
        raise QtalignError(str(e)) from None
    data = read_dataset(task, s.data, s.langs)
    if data.errors:
        n = len(data.errors)
        raise QtalignError(
            f"{n} problem(s) in the data; fix them or run `qtalign data check` for the full list:\n  "
            + summarize_problems(data)
        )
    for p in data.problems:
        log.warning("warning: %s", p)
    demo_data = None
    if s.demos is not None:
        demo_data = read_dataset(task, s.demos, s.langs, split="train")
        demo_data.problems = [p for p in demo_data.problems if "no usable items" not in p.message]
        if demo_data.errors:
            raise QtalignError("problems in the demonstration data:\n  " + summarize_problems(demo_data))
    disagreements = parallel_disagreements(data)
    for lang, idx in disagreements.items():
        if idx:
            log.warning(
                "warning: %s: %d item(s) have a gold label that differs from the parallel English item "
                "(first: %s); accuracy uses this file's labels",
                data.sources[lang], len(idx), ", ".join(map(str, idx[:5])),
            )
    prompts = build_prompts(
        task, data, s.langs, shots=s.shots, labels=parse_labels(s.labels), seed=s.seed, demo_data=demo_data,
        limit=s.limit,
    )
    hashes = {}
    for src in sorted(set(data.sources.values()) | (set(demo_data.sources.values()) if demo_data else set())):
        hashes[src] = sha256_file(src) if Path(src).is_file() else "unhashed"
    return Prepared(task, data, prompts, hashes, disagreements)


def prompt_sha(prompt: str) -> str:
    """The `prompt_sha` of a predictions row: first 16 hex chars of sha256 of the full prompt string (utf-8)."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


def pick(scores: np.ndarray, labels: Sequence[str], seed: int, lang: str, index: int) -> tuple[str, bool]:
    """argmax label; exact ties broken by a choice seeded on (seed, lang, item)."""
    best = np.flatnonzero(scores == scores.max())
    if len(best) == 1:
        return labels[int(best[0])], False
    return labels[random.Random(f"{seed}:{lang}:{index}").choice(list(best))], True


def versions() -> dict[str, str]:
    import torch
    import transformers

    out = {"qtalign": __version__, "python": platform.python_version(), "torch": torch.__version__,
           "transformers": transformers.__version__}
    try:
        import peft

        out["peft"] = peft.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


def run_eval(s: EvalSettings, out: str | Path, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Evaluate, writing predictions as they are scored; resumes an interrupted run in the same folder."""
    from qtalign.models import load_model

    prep = prepare(s)
    out = Path(out)
    if overwrite:
        for name in (PREDICTIONS, RESULTS, RUN):
            (out / name).unlink(missing_ok=True)
    identity = {**s.identity(), "data_sha256": prep.data_hashes}
    out.mkdir(parents=True, exist_ok=True)
    check_run_record(out / RUN, identity, "use another --out or --overwrite")

    done = {(r["lang"], r["index"]) for r in read_jsonl_rows(out / PREDICTIONS) if r.get("task") == s.task}
    todo = {lang: [it.index for it in p.items if (lang, it.index) not in done] for lang, p in prep.prompts.items()}
    total = sum(len(v) for v in todo.values())
    if total:
        lm = load_model(s.model, adapter=s.adapter, device=s.device, dtype=s.dtype, load_in_4bit=s.load_in_4bit,
                        trust_remote_code=s.trust_remote_code, allow_pickle=s.allow_pickle)
        max_len = getattr(lm.base.config, "max_position_embeddings", None)
        scorer = Scorer(lm.model, lm.tokenizer, batch_size=s.batch_size)
        index = TokenIndex(lm.tokenizer) if s.scoring == "first-token" else None
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="item", disable=not progress, dynamic_ncols=True)
        with JsonlWriter(out / PREDICTIONS) as writer:
            for lang, lp in prep.prompts.items():
                if not todo[lang]:
                    continue
                bar.set_postfix_str(lang)
                _score_language(s, prep.task, lp, scorer, index, max_len, done, writer, bar)
        bar.close()
        if scorer.boundary_mismatches:
            log.warning("warning: %d item(s) tokenized on their own (prefix tokens changed at the boundary)",
                        scorer.boundary_mismatches)
        model_info = lm.describe()
    else:
        model_info = {"model": s.model, "adapter": s.adapter}
    results = aggregate(s, prep, read_jsonl_rows(out / PREDICTIONS), model_info)
    atomic_write_json(out / RESULTS, results)
    return results


def _score_language(
    s: EvalSettings,
    task: Task,
    lp: LangPrompts,
    scorer: Scorer,
    index: TokenIndex | None,
    max_len: int | None,
    done: set[tuple[str, int]],
    writer: JsonlWriter,
    bar: Any,
) -> None:
    """Score one language's remaining items in deterministic batches; write each finished batch."""
    prefix_ids = scorer.encode_prefix(lp.prefix)
    rows = scorer.encode_items(lp.prefix, lp.texts)
    if max_len:
        too_long = context_problems(lp.items, len(prefix_ids), rows, max_len)
        if too_long:
            more = f" (and {len(too_long) - 1} more)" if len(too_long) > 1 else ""
            raise QtalignError(f"{too_long[0]}{more}")
    if s.scoring == "first-token":
        assert index is not None
        try:
            sets = label_token_sets(index, lp.label_words)
        except QtalignError as e:
            raise QtalignError(f"language {lp.lang!r}: {e}") from None
        score = lambda state, batch_rows: scorer.first_token_batch(state, batch_rows, sets)
        kind = "probs"
    else:
        ids = [continuation_ids(scorer.tokenizer, w) for w in lp.label_words]
        score = lambda state, batch_rows: scorer.loglik_batch(state, batch_rows, ids)
        kind = "loglik"
    state = scorer.prefix_state(prefix_ids)
    # batches depend only on the full item list, so a resumed run scores each item in the same batch as before
    for batch in scorer.batches([len(r) for r in rows]):
        missing = [i for i in batch if (lp.lang, lp.items[i].index) not in done]
        if not missing:
            continue
        t0 = time.perf_counter()
        scores = score(state, [rows[i] for i in batch])  # [B, L]
        out_rows = []
        for b, i in enumerate(batch):
            it = lp.items[i]
            if (lp.lang, it.index) in done:
                continue
            pred, tie = pick(scores[b], task.labels, s.seed, lp.lang, it.index)
            out_rows.append({
                "task": task.name, "lang": lp.lang, "index": it.index, "gold": it.label, "gold_answer": it.answer,
                "pred": pred, "correct": pred == it.label, "tie": tie,
                "prompt_sha": prompt_sha(lp.prompt(i)),
                kind: {label: float(v) for label, v in zip(task.labels, scores[b])},
            })
        writer.write_many(out_rows)
        if _SLOW_TEST:  # lets the resume test interrupt a run part-way with a tiny model
            time.sleep(_SLOW_TEST)
        done.update((lp.lang, r["index"]) for r in out_rows)
        bar.update(len(out_rows))
        log.debug("%s: batch of %d in %.2fs", lp.lang, len(batch), time.perf_counter() - t0)


def aggregate(s: EvalSettings, prep: Prepared, rows: list[dict[str, Any]], model_info: dict[str, Any]) -> dict[str, Any]:
    """results.json content from the prediction rows of the items this run scores (in item order)."""
    by_key = {(r["lang"], r["index"]): r for r in rows if r.get("task") == s.task}
    per_lang: dict[str, Any] = {}
    correct_by_lang: dict[str, list[bool]] = {}
    for lang, lp in prep.prompts.items():
        got = [by_key[(lang, it.index)] for it in lp.items if (lang, it.index) in by_key]
        correct = [bool(r["correct"]) for r in got]
        correct_by_lang[lang] = correct
        ci = bootstrap_accuracy(correct, s.n_boot, s.seed)
        dist = Counter(r["pred"] for r in got)
        per_lang[lang] = {
            "accuracy": ci.value, "ci95": [ci.lo, ci.hi], "n": len(got), "n_expected": len(lp.items),
            "predicted": {label: dist.get(label, 0) for label in prep.task.labels},
            "gold": {label: sum(r["gold"] == label for r in got) for label in prep.task.labels},
            "ties": sum(bool(r["tie"]) for r in got),
            "label_words": list(lp.label_words),
            "demos": [d.index for d in lp.demos],
            "gold_disagrees_with_en": len(prep.disagreements.get(lang, [])),
        }
    mean = bootstrap_mean_accuracy(correct_by_lang, s.n_boot, s.seed)
    return {
        "task": s.task,
        "languages": per_lang,
        "mean": {"accuracy": mean.value, "ci95": [mean.lo, mean.hi], "n_languages": len(per_lang)},
        "complete": all(v["n"] == v["n_expected"] for v in per_lang.values()),
        "model": model_info,
        "settings": s.model_dump(mode="json"),
        "data_sha256": prep.data_hashes,
        "settings_sha256": sha256_json(s.identity()),
        "versions": versions(),
    }


def format_table(results: dict[str, Any]) -> str:
    """The per-language table printed at the end of a run."""
    labels = list(next(iter(results["languages"].values()))["predicted"]) if results["languages"] else []
    head = f"{'lang':<6}{'n':>6}{'acc':>8}  {'95% CI':<15}" + "".join(f"{'pred ' + lb[:9]:>16}" for lb in labels)
    lines = [f"task {results['task']}, model {results['model'].get('model')}"
             + (f" + adapter {results['model']['adapter']}" if results["model"].get("adapter") else ""), head]
    for lang, r in results["languages"].items():
        ci = f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"
        lines.append(f"{lang:<6}{r['n']:>6}{r['accuracy']:>8.3f}  {ci:<15}"
                     + "".join(f"{r['predicted'][lb]:>16}" for lb in labels))
    m = results["mean"]
    lines.append(f"{'mean':<6}{'':>6}{m['accuracy']:>8.3f}  [{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}]"
                 f"  (unweighted over {m['n_languages']} languages)")
    return "\n".join(lines)

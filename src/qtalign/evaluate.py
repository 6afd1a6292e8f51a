"""The evaluation loop: validate data, build prompts, score per language with resume, aggregate results."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import random
import shutil
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
from qtalign.data.demos_file import load_demos_file, resolve_demos_file
from qtalign.data.parallel import apply_gold_from, reference_items
from qtalign.data.readers import Dataset, parallel_disagreements, read_dataset
from qtalign.distributed import Shard
from qtalign.errors import QtalignError
from qtalign.languages import PAPER_LANGS, language
from qtalign.metrics import bootstrap_accuracy, bootstrap_mean_accuracy
from qtalign.models import DEFAULT_MODEL
from qtalign.prompts import LangPrompts, build_file_prompts, build_prompts, parse_labels, prompt_rows
from qtalign.protocol import paper_correct, paper_label_token_sets
from qtalign.scoring import Scorer, TokenIndex, continuation_ids, label_token_sets
from qtalign.store import (
    JsonlWriter,
    atomic_write_json,
    atomic_write_text,
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
PROMPTS = "prompts.jsonl"
PARTS = "parts"  # predictions.RANK.jsonl of each process of a multi-process run, gathered into PREDICTIONS at the end
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
    # issue 7: protocols (qtalign.protocol), fixed demonstrations, parallel gold, the paper's scoring
    protocol: str = "qtalign"
    demos_file: str | None = None  # a demos file (the paper's layout), or "auto": found beside data
    keep_demo_items: bool = False  # demonstration items stay in the scored set (the paper's scripts)
    gold_from: str | None = None  # score every language against this parallel language's labels
    paper_gold: bool = False  # also score with the paper's exact gold strings (needs demos_file)
    label_tokens: Literal["qtalign", "paper"] = "qtalign"  # whose token sets a label word's mass sums
    log_prompts: bool = False  # write prompts.jsonl beside the predictions

    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run it continues (device and n_boot may change)."""
        return self.model_dump(exclude={"device", "n_boot", "trust_remote_code", "allow_pickle", "log_prompts"},
                               mode="json")


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
    reference = reference_items(task, s.data, data)
    disagreements = parallel_disagreements(data, ref=reference)
    for lang, idx in disagreements.items():
        if idx:
            log.warning(
                "warning: %s: %d item(s) have a gold label that differs from the parallel English item "
                "(first: %s); %s",
                data.sources[lang], len(idx), ", ".join(map(str, idx[:5])),
                "scored against the English labels (--gold-from en)" if s.gold_from else
                "accuracy uses this file's labels (--gold-from en scores against the English ones)",
            )
    if s.gold_from:
        gold_ref = reference if s.gold_from == "en" else reference_items(task, s.data, data, s.gold_from)
        data = apply_gold_from(task, data, gold_ref, s.gold_from)
    labels = parse_labels(s.labels)
    demos_path = resolve_demos_file(task, s.demos_file, s.data)
    if demos_path is not None:
        if demo_data is not None:
            raise QtalignError("--demos and --demos-file both give demonstrations; use one")
        demos = load_demos_file(demos_path, task)
        if s.shots is not None and s.shots != demos.shots:
            raise QtalignError(f"--shots {s.shots}: {demos_path} has {demos.shots} demonstrations per language")
        prompts = build_file_prompts(task, data, s.langs, demos, labels=labels, limit=s.limit,
                                     keep_demo_items=s.keep_demo_items, gold=s.paper_gold)
    else:
        if s.paper_gold:
            raise QtalignError("--paper-gold needs the paper's label tables: give --demos-file or --protocol paper")
        prompts = build_prompts(
            task, data, s.langs, shots=s.shots, labels=labels, seed=s.seed, demo_data=demo_data, limit=s.limit,
            reference=reference, keep_demo_items=s.keep_demo_items,
        )
    hashes = {}
    sources = set(data.sources.values()) | (set(demo_data.sources.values()) if demo_data else set())
    sources |= {str(demos_path)} if demos_path is not None else set()
    sources |= {reference[0].source} if reference else set()
    for src in sorted(sources):
        hashes[src] = sha256_file(src) if Path(src).is_file() else "unhashed"
    return Prepared(task, data, prompts, hashes, disagreements)


def prompt_task_name(s: EvalSettings, task: Task) -> str:
    """The task name on prompt lines: the paper's (emotion, snli, paws) under --protocol paper, so the lines diff
    directly against the prompts of the paper's scripts; else qtalign's."""
    return task.file_stem if s.protocol == "paper" else task.name


def format_prompt_lines(s: EvalSettings, prep: Prepared) -> str:
    """What `qtalign prompts` prints and `eval --log-prompts` writes: one JSON object per line, every line ending in
    a newline."""
    rows = prompt_rows(prompt_task_name(s, prep.task), prep.prompts)
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


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
    """Evaluate, writing predictions as they are scored; resumes an interrupted run in the same folder.

    Launched in several processes (torchrun, accelerate launch), each process scores its share of the batches into
    its own part file (parts/predictions.RANK.jsonl) and the main process gathers the parts into one predictions.jsonl
    and writes results.json; results equal a one-process run's. A run killed part-way resumes with any process count.
    """
    from qtalign.distributed import get_dist
    from qtalign.models import load_model

    dist = get_dist(s.device)
    prep = dist.agree(lambda: prepare(s))
    out = Path(out)
    identity = {**s.identity(), "data_sha256": prep.data_hashes}

    def claim() -> None:  # main process: check the folder and gather what a killed multi-process run left
        if overwrite:
            for name in (PREDICTIONS, RESULTS, RUN):
                (out / name).unlink(missing_ok=True)
            shutil.rmtree(out / PARTS, ignore_errors=True)
        out.mkdir(parents=True, exist_ok=True)
        check_run_record(out / RUN, identity, "use another --out or --overwrite")
        gather_parts(out)
        if s.log_prompts:
            atomic_write_text(out / PROMPTS, format_prompt_lines(s, prep))

    dist.on_main(claim)
    dist.check_shared(out)

    done = {(r["lang"], r["index"]) for r in read_jsonl_rows(out / PREDICTIONS) if r.get("task") == s.task}
    todo = {lang: [it.index for it in p.items if (lang, it.index) not in done] for lang, p in prep.prompts.items()}
    total = sum(len(v) for v in todo.values())
    if total:
        lm = dist.local_main_first(lambda: load_model(
            s.model, adapter=s.adapter, device=dist.local_device(s.device), dtype=s.dtype,
            load_in_4bit=s.load_in_4bit, trust_remote_code=s.trust_remote_code, allow_pickle=s.allow_pickle))
        max_len = getattr(lm.base.config, "max_position_embeddings", None)
        scorer = Scorer(lm.model, lm.tokenizer, batch_size=s.batch_size)
        index = TokenIndex(lm.tokenizer) if s.scoring == "first-token" else None
        from tqdm.auto import tqdm

        # the main process shows its own share, about 1/world of the items
        bar = tqdm(total=-(-total // dist.world), unit="item", disable=not progress or not dist.is_main,
                   dynamic_ncols=True)
        shard = dist.shard()

        def score_all() -> None:
            with JsonlWriter(part_path(out, dist.rank) if dist.enabled else out / PREDICTIONS) as writer:
                for lang, lp in prep.prompts.items():
                    if not todo[lang]:
                        continue
                    bar.set_postfix_str(lang)
                    _score_language(s, prep.task, lp, scorer, index, max_len, done, writer, bar, shard)

        dist.agree(score_all)
        bar.close()
        if scorer.boundary_mismatches and dist.is_main:
            log.warning("warning: %d item(s) tokenized on their own (prefix tokens changed at the boundary)",
                        scorer.boundary_mismatches)
        model_info = lm.describe()
    else:
        model_info = {"model": s.model, "adapter": s.adapter}

    def finish() -> dict[str, Any]:  # main process: gather the parts, then aggregate
        gather_parts(out)
        results = aggregate(s, prep, read_jsonl_rows(out / PREDICTIONS), model_info)
        atomic_write_json(out / RESULTS, results)
        return results

    return dist.on_main(finish)


def part_path(out: Path, rank: int) -> Path:
    """The predictions part file of one process of a multi-process run."""
    return out / PARTS / f"predictions.{rank}.jsonl"


def gather_parts(out: Path) -> int:
    """Append the rows of the processes' part files (out/parts/predictions.RANK.jsonl, any process count) that
    predictions.jsonl lacks to it, then delete the parts; returns the number of rows added.

    Crash-safe: the rows are appended (fsynced) before the parts are deleted, and a row already present is skipped,
    so a kill in between only leaves parts whose rows the next gathering skips.
    """
    folder = out / PARTS
    parts = sorted(folder.glob("predictions.*.jsonl"), key=lambda p: (len(p.name), p.name)) if folder.is_dir() else []
    if not parts:
        return 0
    key = lambda r: (r.get("task"), r.get("lang"), r.get("index"))
    have = {key(r) for r in read_jsonl_rows(out / PREDICTIONS)}
    new: list[dict[str, Any]] = []
    for part in parts:
        for row in read_jsonl_rows(part):
            if key(row) not in have:
                have.add(key(row))
                new.append(row)
    if new:
        with JsonlWriter(out / PREDICTIONS) as writer:
            writer.write_many(new)
    for part in parts:
        part.unlink()
    shutil.rmtree(folder, ignore_errors=True)
    return len(new)


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
    shard: Shard | None = None,
) -> None:
    """Score one language's remaining items in deterministic batches; write each finished batch.

    shard: in a multi-process run, the batches of this process (each batch with items left is one unit of work)."""
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
            if s.label_tokens == "paper":
                model_type = getattr(scorer.base.config, "model_type", None)
                sets = paper_label_token_sets(scorer.tokenizer, lp.label_words, model_type)
            else:
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
        if not missing or (shard is not None and not shard.mine()):
            continue
        t0 = time.perf_counter()
        scores = score(state, [rows[i] for i in batch])  # [B, L]
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
    paper_by_lang: dict[str, list[bool]] = {}
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
            "demos": [d.index if d.index >= 0 else None for d in lp.demos],  # None: not an item of the data
            "gold_disagrees_with_en": len(prep.disagreements.get(lang, [])),
        }
        if lp.gold_table is not None:
            paper = [bool(r.get("paper_correct")) for r in got]
            paper_by_lang[lang] = paper
            pci = bootstrap_accuracy(paper, s.n_boot, s.seed)
            per_lang[lang].update({"paper_accuracy": pci.value, "paper_ci95": [pci.lo, pci.hi]})
    mean = bootstrap_mean_accuracy(correct_by_lang, s.n_boot, s.seed)
    mean_row: dict[str, Any] = {"accuracy": mean.value, "ci95": [mean.lo, mean.hi], "n_languages": len(per_lang)}
    if paper_by_lang:
        pm = bootstrap_mean_accuracy(paper_by_lang, s.n_boot, s.seed)
        mean_row.update({"paper_accuracy": pm.value, "paper_ci95": [pm.lo, pm.hi]})
    return {
        "task": s.task,
        "protocol": s.protocol,
        "languages": per_lang,
        "mean": mean_row,
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
    paper = "paper_accuracy" in results["mean"]  # --paper-gold: the paper scripts' gold-string accuracy too
    head = (f"{'lang':<6}{'n':>6}{'acc':>8}  {'95% CI':<15}" + (f"{'paper':>8}" if paper else "")
            + "".join(f"{'pred ' + lb[:9]:>16}" for lb in labels))
    protocol = results.get("protocol", "qtalign")
    lines = [f"task {results['task']}, model {results['model'].get('model')}"
             + (f" + adapter {results['model']['adapter']}" if results["model"].get("adapter") else "")
             + (f", protocol {protocol}" if protocol != "qtalign" else ""), head]
    for lang, r in results["languages"].items():
        ci = f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]"
        lines.append(f"{lang:<6}{r['n']:>6}{r['accuracy']:>8.3f}  {ci:<15}"
                     + (f"{r['paper_accuracy']:>8.3f}" if paper else "")
                     + "".join(f"{r['predicted'][lb]:>16}" for lb in labels))
    m = results["mean"]
    lines.append(f"{'mean':<6}{'':>6}{m['accuracy']:>8.3f}  [{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}]"
                 + (f"{m['paper_accuracy']:>8.3f}" if paper else "")
                 + f"  (unweighted over {m['n_languages']} languages)")
    if paper:
        lines.append("acc: by meaning (qtalign); paper: the paper scripts' exact gold-string matching")
    return "\n".join(lines)

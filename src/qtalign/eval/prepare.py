"""Data and prompt preparation of an eval run: read and validate the data, build the prompts, hash the sources."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtalign.data.demonstrations_file import load_demos_file, resolve_demos_file
from qtalign.data.parallel import apply_gold_from, reference_items
from qtalign.data.ranges import parse_item_range, select_dataset, select_items
from qtalign.data.readers import Dataset, parallel_disagreements, read_dataset
from qtalign.errors import QtalignError
from qtalign.eval.settings import EvalSettings
from qtalign.languages import language
from qtalign.prompts import LangPrompts, build_file_prompts, build_prompts, parse_labels, prompt_rows
from qtalign.store import sha256_file
from qtalign.tasks import Task, get_task

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """Validated data and prompts, before any model is loaded."""

    task: Task
    data: Dataset
    prompts: dict[str, LangPrompts]
    data_hashes: dict[str, str]
    disagreements: dict[str, list[int]]
    parallel_audit: bool | None = None  # every language's file parallel to English (None: no English file)


@dataclass
class PromptSetup:
    """The evaluation prompts as the analyses (lens, PCA) use them, with the settings that determine them."""

    task: Any  # qtalign.tasks.Task
    langs: list[str]
    prompts: dict[str, Any]  # lang -> qtalign.prompts.LangPrompts
    settings: dict[str, Any]  # what determines the prompts (for resume checks); languages excluded
    eval_settings: Any = None  # the qtalign.eval.EvalSettings they were built from


def summarize_problems(data: Dataset, limit: int = 5) -> str:
    """The first `limit` errors of the data, one per line, then how many more."""
    errs = data.errors
    lines = [str(p) for p in errs[:limit]]
    more = f"\n  ... and {len(errs) - limit} more" if len(errs) > limit else ""
    return "\n  ".join(lines) + more


def warn_problems(problems: list[Any], per_source: int = 3) -> None:
    """Log data warnings: the first few of each file, then how many more (`qtalign data check` lists them all)."""
    shown: Counter[str] = Counter()
    for p in problems:
        shown[p.source] += 1
        if shown[p.source] <= per_source:
            log.warning("warning: %s", p)
    for source, n in shown.items():
        if n > per_source:
            log.warning("warning: %s: %d more warning(s); `qtalign data check` lists them all", source, n - per_source)


def _task(s: EvalSettings) -> Task:
    """The task of the settings, with every language checked (known code, the task has it)."""
    try:
        task = get_task(s.task)
        for lang in s.langs:
            language(lang)
            task.lang(lang)
    except ValueError as e:
        raise QtalignError(str(e)) from None
    return task


def prepare(s: EvalSettings) -> Prepared:
    """Read and validate data (the checks of `qtalign data check`) and build the prompts."""
    task = _task(s)
    rng = parse_item_range(s.items) if s.items is not None else None
    data = select_dataset(read_dataset(task, s.data, s.langs), rng)
    if data.errors:
        n = len(data.errors)
        raise QtalignError(
            f"{n} problem(s) in the data; fix them or run `qtalign data check` for the full list:\n  "
            + summarize_problems(data)
        )
    warn_problems(data.problems)
    demo_data = None
    if s.demos is not None:
        demo_data = read_dataset(task, s.demos, s.langs, split="train")
        demo_data.problems = [p for p in demo_data.problems if "no usable items" not in p.message]
        if demo_data.errors:
            raise QtalignError("problems in the demonstration data:\n  " + summarize_problems(demo_data))
    reference = reference_items(task, s.data, data)
    if reference is not None and rng is not None:
        reference = select_items(reference, rng)
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
        if gold_ref is not None and rng is not None:
            gold_ref = select_items(gold_ref, rng)
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
    audit = None if not reference else all(lang == "en" or lang in disagreements
                                            for lang, its in data.items.items() if its)
    return Prepared(task, data, prompts, hashes, disagreements, audit)


def prompt_task_name(s: EvalSettings, task: Task) -> str:
    """The task name on prompt lines: the paper's (emotion, snli, paws) under --protocol paper, so the lines diff
    directly against the prompts of the paper's scripts; else qtalign's."""
    return task.file_stem if s.protocol == "paper" else task.name


def format_prompt_lines(s: EvalSettings, prep: Prepared) -> str:
    """What `qtalign prompts` prints and `eval --log-prompts` writes: one JSON object per line, every line ending in
    a newline."""
    rows = prompt_rows(prompt_task_name(s, prep.task), prep.prompts)
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def prompt_lines(s: EvalSettings) -> str:
    """The prompts eval would score with these settings, as `qtalign prompts` prints them (no model needed)."""
    return format_prompt_lines(s, prepare(s))


def prompt_sha(prompt: str) -> str:
    """The `prompt_sha` of a predictions row: first 16 hex chars of sha256 of the full prompt string (utf-8)."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


def prompt_setup(s: EvalSettings) -> PromptSetup:
    """Read and validate the data and build the evaluation prompts exactly as eval does (same checks), with the
    settings that determine them (for the analyses' resume checks)."""
    prep = prepare(s)
    settings = {"task": s.task, "data": str(Path(s.data).resolve()) if Path(s.data).exists() else s.data,
                "limit": s.limit, "shots": s.shots, "labels": s.labels, "seed": s.seed, "demos": s.demos,
                "protocol": s.protocol, "demos_file": s.demos_file, "keep_demo_items": s.keep_demo_items,
                "gold_from": s.gold_from, "label_tokens": s.label_tokens}
    if s.items is not None:  # only when given, so that runs made before the option resume unchanged
        settings["items"] = s.items
    return PromptSetup(prep.task, list(s.langs), prep.prompts, settings, s)

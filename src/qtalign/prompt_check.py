"""`qtalign data check` in full: the task files validated (data.check) and, with a tokenizer, prompts that do not fit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qtalign.data.check import CheckReport, check_files, context_problems
from qtalign.data.readers import Problem
from qtalign.errors import QtalignError
from qtalign.prompts import build_prompts
from qtalign.settings import Progress, Settings
from qtalign.tasks import Task


def check_data(task: Task, source: str, langs: Sequence[str], tokenizer: Any = None,
               max_len: int | None = None, shots: int | None = None, seed: int = 0) -> CheckReport:
    """Validate files; with a tokenizer, also flag prompts that would not fit max_len tokens."""
    report, ds = check_files(task, source, langs)
    if tokenizer is not None and max_len:
        from qtalign.scoring import encode_items, encode_prefix  # here: it imports torch

        try:
            prompts = build_prompts(task, ds, langs, shots=shots, seed=seed)
        except QtalignError as e:
            report.problems.append(Problem(source, None, str(e)))
            return report
        for lp in prompts.values():
            rows, _ = encode_items(tokenizer, lp.prefix, lp.texts)
            report.too_long += context_problems(lp.items, len(encode_prefix(tokenizer, lp.prefix)), rows, max_len)
    return report


class DataCheckSettings(Settings):
    """What `qtalign data check` checks: a task's files, and with a model, that prompts fit its context."""

    task: str
    data: str
    langs: str | None = None  # comma list (None: the languages present in data)
    model: str | None = None  # also check that prompts fit this model's context
    shots: int | None = None  # demonstrations per prompt for the context check (None: the task's)


def run(s: DataCheckSettings, *, progress: Progress = True) -> CheckReport:
    """The data check's entry: the task, languages and (with s.model) tokenizer and context length resolved, then
    check_data; the report's lines() are what the command prints and its ok the exit status (no progress to show)."""
    from qtalign.data.readers import parse_langs
    from qtalign.languages import language
    from qtalign.tasks import get_task

    try:
        task = get_task(s.task)
        langs = parse_langs(s.langs, s.task, s.data)
        for lang in langs:
            language(lang)
    except ValueError as e:
        raise QtalignError(str(e)) from None
    tokenizer, max_len = None, None
    if s.model:
        from qtalign.models import load_tokenizer, resolve_model_path

        path = resolve_model_path(s.model)
        tokenizer = load_tokenizer(path)
        from transformers import AutoConfig

        max_len = getattr(AutoConfig.from_pretrained(str(path)), "max_position_embeddings", None)
    return check_data(task, s.data, langs, tokenizer, max_len, s.shots)

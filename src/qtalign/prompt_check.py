"""`qtalign data check` in full: the task files validated (data.check) and, with a tokenizer, prompts that do not fit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qtalign.data.check import CheckReport, check_files, context_problems
from qtalign.data.readers import Problem
from qtalign.errors import QtalignError
from qtalign.prompts import build_prompts
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

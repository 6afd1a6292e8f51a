"""The compare stage's entry: CompareSettings in, the paired comparison computed (and written), a CompareResult out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtalign.errors import QtalignError
from qtalign.settings import Settings


class CompareSettings(Settings):
    """What `qtalign compare` compares: eval run folders or lm-eval output folders (the first is the base), on the
    same items."""

    runs: list[str]
    names: list[str] | None = None  # short names of the runs (default: folder names)
    seen: list[str] | None = None  # seen languages (default: from each adapter's training record)
    n_boot: int = 2000  # bootstrap resamples
    seed: int = 0  # bootstrap seed
    out: str | None = None  # folder for compare.json and compare.md (None: nothing written)
    task: str | None = None  # the lm-eval task group to read, where a run folder holds several (e.g. xnli)
    lang_map: str | None = None  # a file mapping lm-eval tasks outside qtalign's tables to languages


@dataclass
class CompareResult:
    """The comparison (compare.json's content) and the files written ({"json": ..., "md": ...}; none without out)."""

    result: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


def run(s: CompareSettings, echo: Callable[[str], None] | None = None) -> CompareResult:
    """Compare s.runs item by item; echo (e.g. print) gets the comparison's text before any file is written."""
    from qtalign.compare.output import format_compare, write_compare
    from qtalign.compare.pairs import compare_runs

    if len(s.runs) < 2:
        raise QtalignError("give at least two eval run folders (the first is the base)")
    result = compare_runs([Path(r) for r in s.runs], names=s.names, n_boot=s.n_boot, seed=s.seed, seen=s.seen,
                          task=s.task, lang_map=s.lang_map)
    if echo is not None:
        echo(format_compare(result))
    files = write_compare(result, s.out) if s.out else {}
    return CompareResult(result, files)

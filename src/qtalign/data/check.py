"""`qtalign data check`: validate task files, compare parallel files' labels with English, flag prompts too long."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from qtalign.data.readers import Dataset, Item, Problem, parallel_disagreements, read_dataset
from qtalign.tasks import Task


@dataclass
class CheckReport:
    task: str
    counts: dict[str, int]  # language -> items read
    label_counts: dict[str, dict[str, int]]
    problems: list[Problem]
    disagreements: dict[str, list[int]] = field(default_factory=dict)
    too_long: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems + self.too_long)

    def lines(self) -> list[str]:
        out = [f"task {self.task}: {sum(self.counts.values())} items in {len(self.counts)} language(s)"]
        for lang, n in self.counts.items():
            dist = ", ".join(f"{k} {v}" for k, v in self.label_counts[lang].items())
            dis = self.disagreements.get(lang)
            extra = f"; {len(dis)} label(s) differ from the parallel English file" if dis else ""
            out.append(f"  {lang}: {n} items ({dist}){extra}")
        for p in self.problems + self.too_long:
            out.append(f"{p.severity}: {p}")
        for lang, idx in self.disagreements.items():
            if idx:
                out.append(f"warning: {lang}: items whose label differs from English: {', '.join(map(str, idx[:20]))}"
                           + (" ..." if len(idx) > 20 else ""))
        errors = sum(p.severity == "error" for p in self.problems + self.too_long)
        warnings = sum(p.severity == "warning" for p in self.problems + self.too_long) + sum(
            bool(v) for v in self.disagreements.values())
        out.append(f"{errors} error(s), {warnings} warning(s)")
        return out


CONTEXT_MARGIN = 8  # tokens kept free after the prompt (label words in loglik scoring)


def context_problems(items: Sequence[Item], n_prefix: int, rows: Sequence[Sequence[int]], max_len: int) -> list[Problem]:
    """One Problem per item whose prompt (prefix + its tokens + CONTEXT_MARGIN) exceeds the model's context."""
    return [
        Problem(it.source, it.index, f"prompt of {n_prefix + len(r)} tokens does not fit the model's context of "
                                     f"{max_len} (with {CONTEXT_MARGIN} tokens to spare); use fewer --shots")
        for it, r in zip(items, rows)
        if n_prefix + len(r) + CONTEXT_MARGIN > max_len
    ]


def check_files(task: Task, source: str, langs: Sequence[str]) -> tuple[CheckReport, Dataset]:
    """Validate the task files of langs in source (fields, labels, duplicates, parallel agreement with English);
    the report and the items read."""
    ds: Dataset = read_dataset(task, source, langs)
    counts = {lang: len(items) for lang, items in ds.items.items()}
    label_counts = {lang: {lb: sum(it.label == lb for it in items) for lb in task.labels}
                    for lang, items in ds.items.items()}
    for lang, items in ds.items.items():
        unmapped = sorted({it.answer for it in items if it.label is None and it.answer is not None})
        if unmapped:
            ds.problems.append(Problem(ds.sources[lang], None, f"answers that map to no label: {', '.join(map(repr, unmapped))}"))
    return CheckReport(task.name, counts, label_counts, ds.problems, parallel_disagreements(ds)), ds

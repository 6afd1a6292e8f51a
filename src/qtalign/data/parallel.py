"""Parallel files: the reference (English) items beside the data, and scoring against their labels (--gold-from)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from qtalign.data.readers import Dataset, Item, read_dataset
from qtalign.errors import QtalignError
from qtalign.tasks import Task

log = logging.getLogger(__name__)


def reference_items(task: Task, source: str | Path, data: Dataset, lang: str = "en") -> list[Item] | None:
    """The items of lang: from data when it holds them, else read from the same source (the English file beside
    the other languages' files); None when the source has no file for lang or it has problems."""
    if lang in data.items:
        return data.items[lang]
    try:
        ref = read_dataset(task, source, [lang])
    except QtalignError:
        return None
    if ref.errors or not ref.items.get(lang):
        return None
    return ref.items[lang]


def apply_gold_from(task: Task, data: Dataset, ref: Sequence[Item] | None, lang: str) -> Dataset:
    """data with every item's label replaced by the label of the parallel item of lang (same index), after checking
    that each language's file is parallel to lang's: same number of items. The answer strings stay the file's."""
    if not ref:
        raise QtalignError(f"--gold-from {lang}: the data has no {task.name} file for language {lang!r}")
    ref_source = ref[0].source
    ref_labels = {it.index: it.label for it in ref}
    items: dict[str, list[Item]] = {}
    for code, its in data.items.items():
        if code == lang:
            items[code] = its
            continue
        n_ref, n = len(ref), len(its)
        if n != n_ref or {it.index for it in its} != set(ref_labels):
            raise QtalignError(f"--gold-from {lang}: {data.sources.get(code, code)} has {n} items, {ref_source} has "
                               f"{n_ref}; the files are not parallel")
        items[code] = [replace(it, label=ref_labels[it.index]) for it in its]
        changed = sum(a.label != b.label for a, b in zip(its, items[code]))
        if changed:
            log.info("%s: %d item(s) scored against %s's label (--gold-from %s)", data.sources.get(code, code),
                     changed, lang, lang)
    return Dataset(items, data.problems, data.sources)

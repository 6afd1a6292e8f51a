"""Item ranges (START:END, END exclusive) that split one parallel test file into disjoint training and evaluation parts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from qtalign.data.readers import Dataset, Item
from qtalign.errors import QtalignError


@dataclass(frozen=True)
class ItemRange:
    """Item indices start <= i < end of a file (0-based, as `index` in predictions and pairs)."""

    start: int
    end: int

    def __contains__(self, index: object) -> bool:
        return isinstance(index, int) and self.start <= index < self.end

    def __str__(self) -> str:
        return f"{self.start}:{self.end}"

    def as_list(self) -> list[int]:
        return [self.start, self.end]


def parse_item_range(text: str, what: str = "--items") -> ItemRange:
    """'250:500' -> ItemRange(250, 500); one error line naming `what` for anything else."""
    parts = str(text).split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start, end = int(parts[0]), int(parts[1])
    except ValueError:
        raise QtalignError(f"{what} {text}: expected START:END item indices, e.g. 250:500") from None
    if start < 0 or end <= start:
        raise QtalignError(f"{what} {text}: need 0 <= START < END")
    return ItemRange(start, end)


def select_items(items: Sequence[Item], rng: ItemRange) -> list[Item]:
    """The items whose index lies in rng (their indices unchanged)."""
    return [it for it in items if it.index in rng]


def select_dataset(data: Dataset, rng: ItemRange | None) -> Dataset:
    """data restricted to rng in every language (problems outside the range dropped); data itself when rng is None."""
    if rng is None:
        return data
    items = {lang: select_items(its, rng) for lang, its in data.items.items()}
    for lang, its in items.items():
        if not its:
            raise QtalignError(f"{data.sources.get(lang, lang)}: no items in range {rng} for language {lang!r}")
    problems = [p for p in data.problems if p.index is None or p.index in rng]
    return replace(data, items=items, problems=problems)

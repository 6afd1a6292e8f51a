"""Deterministic, label-balanced choice of few-shot demonstrations, the same for every item of a language."""

from __future__ import annotations

import random
from collections.abc import Sequence

from qtalign.data.readers import Item
from qtalign.errors import QtalignError


def per_label_counts(k: int, labels: Sequence[str], seed: int) -> dict[str, int]:
    """Split k shots over labels as evenly as possible; a seeded choice of labels gets the remainder."""
    base, extra = divmod(k, len(labels))
    lucky = set(random.Random(f"{seed}:remainder").sample(list(labels), extra))
    return {label: base + (label in lucky) for label in labels}


def choose_demos(pool: Sequence[Item], labels: Sequence[str], k: int, seed: int) -> list[Item]:
    """k label-balanced items from pool, in a seeded order.

    The choice depends only on (seed, item indices, labels), so parallel files of different languages get
    the same demonstrations, translated.
    """
    if k == 0:
        return []
    rng = random.Random(seed)
    chosen: list[Item] = []
    for label, n in per_label_counts(k, labels, seed).items():
        candidates = sorted((it for it in pool if it.label == label), key=lambda it: it.index)
        if len(candidates) < n:
            src = pool[0].source if pool else "the demonstration pool"
            raise QtalignError(
                f"{src}: needs {n} demonstration(s) labelled {label!r} for language "
                f"{pool[0].lang if pool else '?'}, found {len(candidates)}"
            )
        chosen += rng.sample(candidates, n)
    rng.shuffle(chosen)
    return chosen

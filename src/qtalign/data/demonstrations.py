"""Deterministic, label-balanced choice of few-shot demonstrations, the same for every item of a language."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from qtalign.data.readers import Item
from qtalign.errors import QtalignError


def per_label_counts(k: int, labels: Sequence[str], seed: int) -> dict[str, int]:
    """Split k shots over labels as evenly as possible; a seeded choice of labels gets the remainder."""
    base, extra = divmod(k, len(labels))
    lucky = set(random.Random(f"{seed}:remainder").sample(list(labels), extra))
    return {label: base + (label in lucky) for label in labels}


SHORT_FRACTION = 0.25  # demonstrations come from the shortest quarter of each label's candidates


def choose_demos(
    pool: Sequence[Item], labels: Sequence[str], k: int, seed: int, short_fraction: float = SHORT_FRACTION
) -> list[Item]:
    """k label-balanced items from pool, in a seeded order.

    Each label's demonstrations are sampled (seeded) from the shortest `short_fraction` of its candidates, like
    the paper's short hand-written demonstrations: with Gemma 3 270M on 60 English sentiment items, two short
    demonstrations gave 0.65-0.75 accuracy where two random (long) reviews gave 0.42-0.67, with a 6x longer prefix.
    """
    if k == 0:
        return []
    rng = random.Random(seed)
    chosen: list[Item] = []
    for label, n in per_label_counts(k, labels, seed).items():
        candidates = sorted((it for it in pool if it.label == label), key=lambda it: (sum(map(len, it.texts)), it.index))
        candidates = candidates[: max(n, math.ceil(len(candidates) * short_fraction))]
        candidates.sort(key=lambda it: it.index)
        if len(candidates) < n:
            src = pool[0].source if pool else "the demonstration pool"
            raise QtalignError(
                f"{src}: needs {n} demonstration(s) labelled {label!r} for language "
                f"{pool[0].lang if pool else '?'}, found {len(candidates)}"
            )
        chosen += rng.sample(candidates, n)
    rng.shuffle(chosen)
    return chosen

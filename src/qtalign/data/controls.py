"""Control mixes for question-translation tuning: the kinds, their checks, and the shuffled, copy and english mixes."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from qtalign.data.pairs import Pair, instruction, question_of, slot
from qtalign.data.parallel_control import parallel_pairs, resolve_parallel
from qtalign.errors import QtalignError
from qtalign.tasks import Task

# kind -> what it keeps and what it removes (recorded in the manifest, shown by --help)
CONTROLS: dict[str, str] = {
    "shuffled": "X-side questions paired with the target-side question of a different item: languages, format and "
                "lengths kept, alignment destroyed",
    "copy": "X => X: the model copies the question; format kept, no cross-lingual signal",
    "english": "en => en on the real mix's English side: no other language at all",
    "parallel": "X => target translation of general (non-task) text from a parallel file: translation kept, task "
                "questions and their format removed",
}

_WINDOW = 16  # shuffled: items are deranged within windows of this many neighbours in output length


def trained_languages(sources: Sequence[str], target: str, control: str | None) -> list[str]:
    """The languages a mix's pairs contain: `copy` only its sources (X => X), `english` only English, any other
    mix its sources and its target."""
    if control == "copy":
        return list(dict.fromkeys(sources))
    if control == "english":
        return ["en"]
    return list(dict.fromkeys([*sources, target]))


def check_control(control: str | None, parallel: str | Path | None, target: str) -> None:
    """Refuse an unknown kind or a missing/unused --parallel before any data is read."""
    if control is None:
        if parallel is not None:
            raise QtalignError("--parallel is only used with --control parallel")
        return
    if control not in CONTROLS:
        raise QtalignError(f"--control: unknown kind {control!r}; choose one of {', '.join(CONTROLS)}")
    if control == "parallel":
        if parallel is None:
            raise QtalignError("--control parallel needs --parallel FILE (JSONL of {lang: text} per line)")
        resolve_parallel(parallel)
    elif parallel is not None:
        raise QtalignError(f"--parallel is only used with --control parallel, not --control {control}")
    if control == "english" and target != "en":
        raise QtalignError(f"--control english pairs the real mix's English side with itself; it needs --target en, "
                           f"not {target!r}")


def make_control(
    task: Task,
    kind: str,
    real: Sequence[Pair],
    target: str,
    seed: int,
    parallel: str | Path | None = None,
    exclude_texts: set[str] | None = None,
    sources: Sequence[str] | None = None,
) -> tuple[list[Pair], dict[str, Any]]:
    """The control pairs standing for the real mix, position by position, and a description for the manifest.

    exclude_texts: normalized evaluation field texts; parallel lines with one are not used.
    sources: the real mix's source languages in the order given (default: sorted).
    """
    check_control(kind, parallel, target)
    info: dict[str, Any] = {"kind": kind, "isolates": CONTROLS[kind]}
    if kind == "shuffled":
        pairs = shuffled(real, seed)
        info["instruction"] = "unchanged (Translate the input from <X> to <target>:)"
        info["pairing"] = (f"within each source language, a seeded derangement among neighbours in output length "
                           f"(windows of {_WINDOW}); never an item whose target text shares a field line with the "
                           "item's own translation")
    elif kind == "copy":
        pairs = [Pair(question_of(p) + "\n" + instruction(p.source_lang, p.source_lang) + "\n", question_of(p),
                      p.source_lang, p.source_lang, p.task, p.index, stands_for=p.source_lang) for p in real]
        info["instruction"] = "Translate the input from <X> to <X>:"
    elif kind == "english":
        pairs = [Pair(p.output + "\n" + instruction("en", "en") + "\n", p.output, "en", "en", p.task, p.index,
                      stands_for=p.source_lang) for p in real]
        info["instruction"] = "Translate the input from English to English:"
    else:
        assert parallel is not None
        pairs, info["parallel"] = parallel_pairs(task, real, parallel, seed, exclude_texts or set(),
                                                  sources)
        info["instruction"] = "unchanged (Translate the input from <X> to <target>:)"
    languages: dict[str, int] = {}
    for p in pairs:
        key = f"{p.source_lang}->{p.target_lang}"
        languages[key] = languages.get(key, 0) + 1
    info["languages"] = languages
    return pairs, info


# ---- shuffled -------------------------------------------------------------------------------------------------
def _field_lines(text: str) -> frozenset[str]:
    """The field lines of a rendered item (the answer-cue line dropped), whitespace-normalized."""
    lines = text.split("\n")
    return frozenset(" ".join(x.split()) for x in (lines[:-1] if len(lines) > 1 else lines))


def shuffled(real: Sequence[Pair], seed: int) -> list[Pair]:
    """Each pair keeps its X side and gets the target side of another item of the same source language."""
    out = list(real)
    by_slot: dict[str, list[int]] = {}
    for pos, p in enumerate(real):
        by_slot.setdefault(slot(p), []).append(pos)
    for lang, positions in by_slot.items():
        rng = random.Random(f"{seed}:shuffled:{lang}")
        fields = [_field_lines(real[pos].output) for pos in positions]
        order = sorted(range(len(positions)), key=lambda k: (len(real[positions[k]].output), rng.random()))
        perm = _derange_in_windows(order, lambda i, j, f=fields: i == j or bool(f[i] & f[j]), rng)
        if perm is None:
            raise QtalignError(f"--control shuffled: source language {lang!r}: cannot give each of its "
                               f"{len(positions)} pairs the target side of a different item (too many share the "
                               "same target text)")
        for k, pos in enumerate(positions):
            donor = real[positions[perm[k]]]
            out[pos] = replace(real[pos], output=donor.output, stands_for=lang, output_index=donor.index)
    return out


def _derange_in_windows(order: list[int], conflict: Callable[[int, int], bool],
                        rng: random.Random) -> dict[int, int] | None:
    """item -> donor item, deranged within consecutive windows of `order`; a window that cannot be deranged is
    merged with its neighbour until one window spans everything."""
    n = len(order)
    if n < 2:
        return None
    bounds = list(range(0, n, _WINDOW)) + [n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < _WINDOW:
        del bounds[-2]  # a short last window joins the previous one
    perm: dict[int, int] = {}
    w = 0
    while w < len(bounds) - 1:
        items = order[bounds[w] : bounds[w + 1]]
        local = _derange(len(items), lambda a, b, it=items: conflict(it[a], it[b]), rng)
        if local is None:
            if len(bounds) == 2:
                return None
            if w + 2 < len(bounds):
                del bounds[w + 1]  # merge with the next window
            else:
                del bounds[w]  # the last window merges with the previous one, which is redone
                w -= 1
            continue
        for a, b in enumerate(local):
            perm[items[a]] = items[b]
        w += 1
    return perm


def _derange(m: int, conflict: Callable[[int, int], bool], rng: random.Random) -> list[int] | None:
    """A seeded permutation p of range(m) with conflict(i, p[i]) false for every i, or None."""
    if m < 2:
        return None
    perm = list(range(m))
    rng.shuffle(perm)
    for _ in range(4):
        bad = [i for i in range(m) if conflict(i, perm[i])]
        if not bad:
            return perm
        for i in bad:
            if not conflict(i, perm[i]):
                continue
            js = list(range(m))
            rng.shuffle(js)
            for j in js:
                if not conflict(i, perm[j]) and not conflict(j, perm[i]):
                    perm[i], perm[j] = perm[j], perm[i]
                    break
    return perm if not any(conflict(i, perm[i]) for i in range(m)) else None

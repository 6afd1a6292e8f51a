"""The length profile of a mix (content characters per side, per language) that a control mix keeps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qtalign.data.pairs import Pair, question_of, slot
from qtalign.tasks import Task

LENGTH_UNIT = ("content characters (Unicode code points) of the question (the input without its instruction line) "
               "and of the output: a rendered item counts its field texts only (field names, ': ', line breaks and "
               "the answer cue removed), a parallel passage counts whole; *_eq: divided by the language's content "
               "characters per target-language content character, measured on the real mix's own pairs (the same "
               "items in both languages)")
TOLERANCE = 0.05  # relative difference of mean lengths a control is expected to keep
_QUANTILES = {"p10": 0.1, "p50": 0.5, "p90": 0.9}


def template_chars(task: Task, lang: str) -> int:
    """Characters the prompt template adds to an item in this language (field names, ': ', line breaks, cue)."""
    return len(task.render_item(lang, [""] * len(task.input_fields)))


def content_chars(task: Task, lang: str, text: str) -> int:
    """Characters of a side's text content: a rendered item without its template, anything else whole."""
    entry = task.table.get(lang)
    if entry is None:
        return len(text)
    first = f"{entry.fields[0]}: " if entry.fields[0] else ""
    if text.startswith(first) and text.endswith(f'{entry.cue}: "') and "\n" in text:
        return len(text) - template_chars(task, lang)
    return len(text)


def side_chars(task: Task, p: Pair) -> tuple[int, int]:
    """Content characters of a pair's question and output."""
    return content_chars(task, p.source_lang, question_of(p)), content_chars(task, p.target_lang, p.output)


def language_ratios(task: Task, real: Sequence[Pair]) -> dict[str, float]:
    """Content characters per target-language content character for each source language, from the real mix's
    own pairs (the same items in both languages); 1 for the target."""
    sums: dict[str, list[int]] = {}
    for p in real:
        x, t = side_chars(task, p)
        s = sums.setdefault(p.source_lang, [0, 0])
        s[0] += x
        s[1] += t
    ratios = {lang: (x / t if t else 1.0) for lang, (x, t) in sums.items()}
    for p in real:
        ratios[p.target_lang] = 1.0
    return ratios


def _stats(values: Sequence[float]) -> dict[str, float]:
    v = sorted(values)
    if not v:
        return {"mean": 0.0, **{k: 0.0 for k in _QUANTILES}}
    out = {"mean": round(sum(v) / len(v), 2)}
    for name, q in _QUANTILES.items():
        pos = q * (len(v) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(v) - 1)
        out[name] = round(v[lo] + (v[hi] - v[lo]) * (pos - lo), 2)
    return out


def _profile(task: Task, pairs: Sequence[Pair], ratios: dict[str, float]) -> dict[str, Any]:
    sides = [side_chars(task, p) for p in pairs]
    return {
        "n": len(pairs),
        "input": _stats([x for x, _ in sides]),
        "output": _stats([t for _, t in sides]),
        "input_eq": _stats([x / ratios.get(p.source_lang, 1.0) for (x, _), p in zip(sides, pairs)]),
        "output_eq": _stats([t / ratios.get(p.target_lang, 1.0) for (_, t), p in zip(sides, pairs)]),
    }


def length_profile(task: Task, pairs: Sequence[Pair], ratios: dict[str, float]) -> dict[str, Any]:
    """Per source language (the language a control pair stands for) and over all pairs ("all"): n, and
    mean/p10/p50/p90 of question and output content characters, raw and target-equivalent (*_eq)."""
    groups: dict[str, list[Pair]] = {}
    for p in pairs:
        groups.setdefault(slot(p), []).append(p)
    prof = {lang: _profile(task, ps, ratios) for lang, ps in groups.items()}
    prof["all"] = _profile(task, pairs, ratios)
    return prof


def profile_difference(real: dict[str, Any], control: dict[str, Any]) -> dict[str, Any]:
    """control / real - 1 of the target-equivalent mean and median, per source language and over all pairs."""
    diff: dict[str, Any] = {}
    for key, r in real.items():
        c = control.get(key)
        if c is None:
            continue
        diff[key] = {side: {stat: (round(c[side][stat] / r[side][stat] - 1, 4) if r[side][stat] else None)
                            for stat in ("mean", "p50")} for side in ("input_eq", "output_eq")}
    return diff


def worst_mean_difference(diff: dict[str, Any]) -> float:
    return max((abs(d[side]["mean"]) for d in diff.values() for side in ("input_eq", "output_eq")
                if d[side]["mean"] is not None), default=0.0)

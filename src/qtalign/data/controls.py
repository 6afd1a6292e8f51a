"""Control mixes for question-translation tuning (shuffled, copy, english, parallel) and the length profile they keep."""

from __future__ import annotations

import bisect
import json
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from qtalign.data.build import Pair, instruction, question_of
from qtalign.errors import QtalignError
from qtalign.languages import LANGUAGES
from qtalign.store import sha256_file
from qtalign.tasks import Task

log = logging.getLogger(__name__)

# kind -> what it keeps and what it removes (recorded in the manifest, shown by --help)
CONTROLS: dict[str, str] = {
    "shuffled": "X-side questions paired with the target-side question of a different item: languages, format and "
                "lengths kept, alignment destroyed",
    "copy": "X => X: the model copies the question; format kept, no cross-lingual signal",
    "english": "en => en on the real mix's English side: no other language at all",
    "parallel": "X => target translation of general (non-task) text from a parallel file: translation kept, task "
                "questions and their format removed",
}

LENGTH_UNIT = ("content characters (Unicode code points) of the question (the input without its instruction line) "
               "and of the output: a rendered item counts its field texts only (field names, ': ', line breaks and "
               "the answer cue removed), a parallel passage counts whole; *_eq: divided by the language's content "
               "characters per target-language content character, measured on the real mix's own pairs (the same "
               "items in both languages)")
TOLERANCE = 0.05  # relative difference of mean lengths a control is expected to keep
_QUANTILES = {"p10": 0.1, "p50": 0.5, "p90": 0.9}
_WINDOW = 16  # shuffled: items are deranged within windows of this many neighbours in output length
_JOINER_BY_SCRIPT = {"Han": "", "Japanese": ""}  # sentences of a parallel passage are joined by " " otherwise
_NEIGHBOURS = 32  # parallel: candidates examined on each side of the best length when growing a passage


def slot(pair: Pair) -> str:
    """The real mix's source language a pair stands for (its own source language in a real mix)."""
    return pair.stands_for or pair.source_lang


def resolve_parallel(parallel: str | Path) -> Path:
    """The --parallel file; "demo" is the general parallel sample shipped with qtalign (qtalign/demo/parallel.jsonl)."""
    if str(parallel) == "demo":
        from importlib.resources import files

        path = Path(str(files("qtalign.demo").joinpath("parallel.jsonl")))
        if not path.is_file():
            raise QtalignError("--parallel demo: this qtalign ships no demo parallel file (qtalign/demo/parallel.jsonl)")
        return path
    path = Path(parallel)
    if not path.is_file():
        raise QtalignError(f"{parallel}: --parallel file not found")
    return path


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


# ---- parallel -------------------------------------------------------------------------------------------------
def read_parallel(path: str | Path, langs: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """(line number, {language: whitespace-normalized text}) of every non-blank line; keys that are not language
    codes (e.g. "id") are ignored; every language in langs must appear somewhere."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise QtalignError(f"{path}: --parallel file not found") from None
    except UnicodeDecodeError as e:
        raise QtalignError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    rows: list[tuple[int, dict[str, str]]] = []
    seen: set[str] = set()
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise QtalignError(f"{path}: line {n}: invalid JSON ({e.msg})") from None
        if not isinstance(rec, dict):
            raise QtalignError(f"{path}: line {n}: expected a JSON object {{lang: text}}, found {type(rec).__name__}")
        texts: dict[str, str] = {}
        for key, value in rec.items():
            if key not in LANGUAGES:
                continue
            if not isinstance(value, str):
                raise QtalignError(f"{path}: line {n}: language {key!r}: expected text, found {type(value).__name__}")
            if value.strip():
                texts[key] = " ".join(value.split())
                seen.add(key)
        rows.append((n, texts))
    if not rows:
        raise QtalignError(f"{path}: no lines in the --parallel file")
    missing = [lang for lang in langs if lang not in seen]
    if missing:
        raise QtalignError(f"{path}: no text in language {', '.join(map(repr, missing))} (the file has: "
                           f"{', '.join(sorted(seen)) or 'none'}); --control parallel needs every source and the target")
    return rows


def parallel_pairs(task: Task, real: Sequence[Pair], path: str | Path, seed: int, exclude_texts: set[str],
                   sources: Sequence[str] | None = None) -> tuple[list[Pair], dict[str, Any]]:
    """For each real pair, a passage of whole parallel sentences (X side, target side) whose content lengths match
    the real pair's question and output; each line used at most once per source language. A line any of whose
    texts equals an evaluation field text (exclude_texts) is not used."""
    path = resolve_parallel(path)
    present = {slot(p) for p in real}
    slots = [lang for lang in (sources or sorted(present)) if lang in present]
    target = real[0].target_lang
    rows = read_parallel(path, [*slots, target])
    out = list(real)
    info: dict[str, Any] = {"file": str(path), "sha256": sha256_file(path), "usable": {}, "contaminated": {},
                            "used": {}}
    for lang in slots:
        positions = [pos for pos, p in enumerate(real) if slot(p) == lang]
        pool: list[tuple[int, int, int]] = []  # (target chars, X chars, line)
        texts: dict[int, tuple[str, str]] = {}
        bad = 0
        for n, row in rows:
            if lang not in row or target not in row:
                continue
            if exclude_texts and any(t in exclude_texts for t in row.values()):
                bad += 1
                continue
            x, t = row[lang], row[target]
            pool.append((len(t), len(x), n))
            texts[n] = (x, t)
        info["usable"][lang], info["contaminated"][lang] = len(pool), bad
        targets = [_sides(task, real[pos]) for pos in positions]
        need = sum(b for _, b in targets)
        have = sum(t for t, _, _ in pool)
        if len(pool) < len(targets) or have < need:
            raise QtalignError(f"{path}: too few sentences for {lang}->{target}: {len(pool)} usable lines with "
                               f"{have} {target} characters; the real mix's {len(targets)} {lang} pairs need at "
                               f"least {len(targets)} lines and {need} characters")
        jx = len(_joiner(lang))
        jt = len(_joiner(target))
        passages = _match_passages(targets, pool, jx, jt, random.Random(f"{seed}:parallel:{lang}"))
        if passages is None:
            raise QtalignError(f"{path}: too few sentences for {lang}->{target}: the file's {len(pool)} usable lines "
                               f"ran out while matching the real mix's {len(targets)} {lang} pairs")
        used = 0
        for pos, lines in zip(positions, passages):
            x = _joiner(lang).join(texts[n][0] for n in lines)
            t = _joiner(target).join(texts[n][1] for n in lines)
            out[pos] = Pair(x + "\n" + instruction(lang, target) + "\n", t, lang, target, real[pos].task, lines[0],
                            stands_for=lang, parallel_lines=tuple(lines))
            used += len(lines)
        info["used"][lang] = used
    return out, info


def _joiner(lang: str) -> str:
    return _JOINER_BY_SCRIPT.get(LANGUAGES[lang].script, " ")


def _match_passages(targets: Sequence[tuple[int, int]], pool: list[tuple[int, int, int]], jx: int, jt: int,
                    rng: random.Random) -> list[list[int]] | None:
    """Lines for each target (X chars a, target chars b), targets taken in seeded random order: grow a passage
    greedily with the unused sentence that most lowers |x - a'| / a' + |t - b'| / b', while it lowers it, where
    a', b' add what the passages so far fell short of their targets in total (at most half a target either way),
    so that the means match even where the file's X/target ratio differs from the real mix's. None when the pool
    runs out."""
    items = sorted(pool, key=lambda r: (r[0], rng.random()))
    keys = [r[0] for r in items]
    order = list(range(len(targets)))
    rng.shuffle(order)
    result: list[list[int]] = [[] for _ in targets]
    owed_x = owed_t = 0.0  # target characters not yet delivered, summed over the passages so far
    for k in order:
        a0, b0 = targets[k]
        a = max(a0 + max(-a0 / 2, min(a0 / 2, owed_x)), 1.0)
        b = max(b0 + max(-b0 / 2, min(b0 / 2, owed_t)), 1.0)
        cx = ct = 0
        chosen: list[int] = []
        cost = 2.0
        while items:
            sx, st = (jx, jt) if chosen else (0, 0)
            pos = bisect.bisect_left(keys, b - ct - st)
            best, best_cost = -1, cost
            for i in range(max(0, pos - _NEIGHBOURS), min(len(items), pos + _NEIGHBOURS)):
                t, x, _ = items[i]
                c = abs(cx + sx + x - a) / a + abs(ct + st + t - b) / b
                if c < best_cost:
                    best, best_cost = i, c
            if best < 0:
                break
            t, x, line = items.pop(best)
            del keys[best]
            cx, ct, cost = cx + sx + x, ct + st + t, best_cost
            chosen.append(line)
        if not chosen:
            return None
        owed_x += a0 - cx
        owed_t += b0 - ct
        result[k] = chosen
    return result


# ---- length profile -------------------------------------------------------------------------------------------
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


def _sides(task: Task, p: Pair) -> tuple[int, int]:
    return content_chars(task, p.source_lang, question_of(p)), content_chars(task, p.target_lang, p.output)


def language_ratios(task: Task, real: Sequence[Pair]) -> dict[str, float]:
    """Content characters per target-language content character for each source language, from the real mix's
    own pairs (the same items in both languages); 1 for the target."""
    sums: dict[str, list[int]] = {}
    for p in real:
        x, t = _sides(task, p)
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
    sides = [_sides(task, p) for p in pairs]
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

"""The parallel control: passages of general parallel text matched in length to the real mix's pairs."""

from __future__ import annotations

import bisect
import json
import random
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from qtalign.data.lengths import side_chars
from qtalign.data.pairs import Pair, instruction, slot
from qtalign.data.readers import read_utf8
from qtalign.errors import QtalignError
from qtalign.languages import LANGUAGES
from qtalign.store import sha256_file
from qtalign.tasks import Task

_JOINER_BY_SCRIPT = {"Han": "", "Japanese": ""}  # sentences of a parallel passage are joined by " " otherwise
_NEIGHBOURS = 32  # parallel: candidates examined on each side of the best length when growing a passage


def resolve_parallel(parallel: str | Path) -> Path:
    """The --parallel file; "demo" is the general parallel sample shipped with qtalign (qtalign/demo/parallel.jsonl)."""
    if str(parallel) == "demo":
        path = Path(str(files("qtalign.demo").joinpath("parallel.jsonl")))
        if not path.is_file():
            raise QtalignError("--parallel demo: this qtalign ships no demo parallel file (qtalign/demo/parallel.jsonl)")
        return path
    path = Path(parallel)
    if not path.is_file():
        raise QtalignError(f"{parallel}: --parallel file not found")
    return path


def read_parallel(path: str | Path, langs: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """(line number, {language: whitespace-normalized text}) of every non-blank line; keys that are not language
    codes (e.g. "id") are ignored; every language in langs must appear somewhere."""
    path = Path(path)
    text = read_utf8(path, "--parallel file")
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
        targets = [side_chars(task, real[pos]) for pos in positions]
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

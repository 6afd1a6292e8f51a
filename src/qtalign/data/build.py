"""Build question-translation training pairs (question in X ⇒ the same question in the target language), no answers."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtalign.data import controls, lengths
from qtalign.data.contamination import (
    assert_no_answers,
    evaluation_questions,
    evaluation_texts,
    is_contaminated,
    shares_text,
)
from qtalign.data.pairs import Pair, make_pair, norm, pair_row, slot, texts_from_rendered
from qtalign.data.ranges import ItemRange, select_items
from qtalign.data.readers import find_lang_file, read_dataset
from qtalign.data.sources import Sources, read_question_file, read_train_items, scan_sources
from qtalign.errors import QtalignError
from qtalign.languages import LANGUAGES
from qtalign.store import sha256_json
from qtalign.tasks import Task

log = logging.getLogger(__name__)


@dataclass
class BuildReport:
    pairs: list[Pair]
    counts: dict[str, int]  # source language -> pairs kept
    available: dict[str, int]  # source language -> clean candidates before sampling
    contaminated: dict[str, int]  # source language -> candidates equal to an evaluation item
    sources: dict[str, str]  # source language -> file / "mt:MODEL" it came from
    files: dict[str, str] = field(default_factory=dict)  # written file -> sha256
    length_profile: dict[str, Any] = field(default_factory=dict)  # unit, ratios, real (+ control, difference)
    control: dict[str, Any] | None = None  # kind, what it isolates and was derived from (None: the real mix)
    item_ranges: dict[str, Any] | None = None  # --test-items: the training range and what it was checked against


Translate = Callable[[list[str], str, str], list[str]]  # (texts, from lang, to lang) -> translations


def build_pairs(
    task: Task,
    data: Sequence[str | Path],
    sources: Sequence[str],
    target: str = "en",
    per_lang: int | None = 10000,
    seed: int = 42,
    exclude: str | Path | None = None,
    allow_contamination: bool = False,
    translate: Translate | None = None,
    translator_name: str | None = None,
    control: str | None = None,
    parallel: str | Path | None = None,
    test_items: ItemRange | None = None,
) -> BuildReport:
    """Pairs for each source language (question files first, then parallel files, then machine translation of
    the target side), contamination-filtered, sampled per language with the seed, mixed and shuffled.

    control: build this control mix (qtalign.data.controls.CONTROLS) instead, standing position by position for
    the real mix the same arguments build; parallel: the {lang: text} JSONL file the `parallel` control needs.
    test_items: build the pairs from these items of the parallel *test* files in data instead (the paper's test
    files hold more items than a CPU study scores); exclude then checks the items outside the range, field by field,
    and the manifest records both ranges.
    """
    controls.check_control(control, parallel, target)
    for code in [*sources, target]:
        if code not in LANGUAGES:
            raise QtalignError(f"unknown language {code!r}; known: {', '.join(LANGUAGES)}")
        if code not in task.table:
            raise QtalignError(f"task {task.name!r} has no prompt table for language {code!r}")
    if target in sources:
        raise QtalignError(f"source language {target!r} equals the target language")
    if per_lang is not None and per_lang < 1:
        raise QtalignError(f"--per-lang must be >= 1, got {per_lang}")
    if test_items is not None and exclude is None and not allow_contamination:
        raise QtalignError(f"--test-items {test_items}: pairs from test files need --exclude FOLDER (the evaluation "
                           "files, whose items outside the range are checked against the pairs) or "
                           "--allow-contamination")
    found = scan_sources(task, data) if test_items is None else Sources()
    questions = evaluation_questions(task, exclude, skip=test_items) if exclude is not None else set()
    eval_texts = evaluation_texts(task, exclude, skip=test_items) if exclude is not None and test_items else set()
    report = BuildReport([], {}, {}, {}, {})
    mixed: list[Pair] = []
    for src in sources:
        n_bad = 0
        if test_items is not None:
            candidates, origin, needs_mt = *_test_range_candidates(task, data, src, target, test_items), False
            shares = [shares_text(task, p, eval_texts) for p in candidates]
            n_bad += sum(shares)
            if any(shares) and not allow_contamination:
                candidates = [p for p, bad in zip(candidates, shares) if not bad]
        else:
            candidates, origin, needs_mt = _candidates(task, found, src, target, translate, translator_name)
        if needs_mt:
            # filter on the target side, sample, then translate only what is kept (and check the X side again)
            if questions:
                bad = [p for p in candidates if norm(p.output) in questions]
                n_bad += len(bad)
                if not allow_contamination:
                    candidates = [p for p in candidates if norm(p.output) not in questions]
            candidates = _sample(candidates, per_lang, seed, src)
            candidates = _translate_pairs(task, candidates, src, target, translate)  # type: ignore[arg-type]
        if questions:
            bad = [p for p in candidates if is_contaminated(p, questions)]
            n_bad += len(bad)
            if bad and not allow_contamination:
                candidates = [p for p in candidates if not is_contaminated(p, questions)]
        report.contaminated[src] = n_bad
        if not candidates:
            raise QtalignError(f"source language {src!r}: no usable pairs in {origin}")
        report.available[src] = len(candidates)
        kept = _sample(candidates, per_lang, seed, src)
        if per_lang is not None and len(kept) < per_lang:
            log.warning("source language %s: only %d pairs available (asked for %d)", src, len(kept), per_lang)
        report.counts[src] = len(kept)
        report.sources[src] = origin
        mixed += kept
    random.Random(seed).shuffle(mixed)
    assert_no_answers(task, mixed)
    ratios = lengths.language_ratios(task, mixed)
    real_profile = lengths.length_profile(task, mixed, ratios)
    report.length_profile = {"unit": lengths.LENGTH_UNIT, "ratios": {k: round(v, 4) for k, v in ratios.items()},
                             "template": {k: lengths.template_chars(task, k) for k in ratios}, "real": real_profile}
    report.pairs = mixed
    if test_items is not None:
        report.item_ranges = {"pairs_from": test_items.as_list(), "checked_against": str(exclude) if exclude else None,
                              "evaluation_items": f"every item outside {test_items} of each test file there",
                              "pairs_sharing_a_text_kept": 0 if not allow_contamination else sum(
                                  shares_text(task, p, eval_texts) for p in mixed)}
    if control is None:
        return report
    texts = (evaluation_texts(task, exclude) if control == "parallel" and exclude is not None
             and not allow_contamination else set())
    pairs, info = controls.make_control(task, control, mixed, target, seed, parallel, texts, sources)
    if questions and not allow_contamination:
        bad_pair = next((p for p in pairs if is_contaminated(p, questions)), None)
        if bad_pair is not None:
            raise QtalignError(f"--control {control}: pair {slot(bad_pair)}:{bad_pair.index} equals an "
                               "evaluation item")
    assert_no_answers(task, pairs, require_cue=control != "parallel")
    info["derived_from"] = {"pairs_sha256": sha256_json([pair_row(p) for p in mixed]), "total": len(mixed),
                            "counts": dict(report.counts), "sources": dict(report.sources)}
    profile = lengths.length_profile(task, pairs, ratios)
    diff = lengths.profile_difference(real_profile, profile)
    report.length_profile.update(control=profile, difference=diff)
    worst = lengths.worst_mean_difference(diff)
    if worst > lengths.TOLERANCE:
        log.warning("--control %s: mean lengths differ from the real mix's by up to %.1f%% (see manifest "
                    "length_profile.difference)", control, 100 * worst)
    report.pairs = pairs
    report.control = info
    return report


def _test_range_candidates(task: Task, data: Sequence[str | Path], src: str, tgt: str, rng: ItemRange
                           ) -> tuple[list[Pair], str]:
    """Pairs from the items in rng of the parallel test files of src and tgt (the first folder of data holding
    both), the same index on both sides."""
    for raw in data:
        folder = Path(raw)
        if not folder.is_dir():
            raise QtalignError(f"{folder}: --test-items expects folders of test files (the paper's layout)")
        f_src, f_tgt = find_lang_file(task, folder, src, "test"), find_lang_file(task, folder, tgt, "test")
        if f_src is None or f_tgt is None:
            continue
        ds = read_dataset(task, folder, [src, tgt], split="test")
        items = {lang: {it.index: it.texts for it in select_items(ds.items[lang], rng)} for lang in (src, tgt)}
        if len(ds.items[src]) != len(ds.items[tgt]):
            raise QtalignError(f"{f_src}: {len(ds.items[src])} items but {f_tgt} has {len(ds.items[tgt])}; "
                               "--test-items needs parallel files")
        common = sorted(set(items[src]) & set(items[tgt]))
        if not common:
            raise QtalignError(f"{f_src}: no items in range {rng}")
        pairs = [make_pair(task, src, tgt, items[src][i], items[tgt][i], i) for i in common]
        return pairs, f"{f_src} + {f_tgt} items {rng}"
    raise QtalignError(f"source language {src!r}: no {task.file_stem} test files for both {src} and {tgt} in "
                       f"{', '.join(map(str, data))}")


def _sample(pairs: list[Pair], n: int | None, seed: int, lang: str) -> list[Pair]:
    """n pairs drawn with a per-language seed, kept in source order (all of them when n is None or larger)."""
    if n is None or n >= len(pairs):
        return list(pairs)
    rng = random.Random(f"{seed}:{lang}")
    keep = sorted(rng.sample(range(len(pairs)), n))
    return [pairs[i] for i in keep]


def _candidates(task: Task, found: Sources, src: str, tgt: str, translate: Translate | None,
                translator_name: str | None) -> tuple[list[Pair], str, bool]:
    """(candidate pairs, description of origin, whether they still need machine translation of the X side)."""
    for path in found.question_files.get(src, []):
        pairs = [p for p in read_question_file(task, path, tgt) if p.source_lang == src]
        if pairs:
            return pairs, str(path), False
    if src in found.train_files and tgt in found.train_files:
        src_items = dict(read_train_items(task, found.train_files[src], src))
        tgt_items = dict(read_train_items(task, found.train_files[tgt], tgt))
        common = sorted(set(src_items) & set(tgt_items))
        pairs = [make_pair(task, src, tgt, src_items[i], tgt_items[i], i) for i in common]
        return pairs, f"{found.train_files[src]} + {found.train_files[tgt]}", False
    if translate is not None:
        if tgt not in found.train_files:
            raise QtalignError(f"machine translation needs a {tgt!r} training file ({task.file_stem}_{tgt}..._train.json)"
                               " in --data")
        # placeholder pairs: the target side now, the X side after translation
        pairs = [Pair("", task.render_item(tgt, texts), src, tgt, task.name, i)
                 for i, texts in read_train_items(task, found.train_files[tgt], tgt)]
        return pairs, f"mt:{translator_name} from {found.train_files[tgt]}", True
    have = sorted(set(found.question_files) | set(found.train_files))
    raise QtalignError(f"source language {src!r}: no data (no question file or parallel training file for "
                       f"{src}->{tgt}; found languages: {', '.join(have) or 'none'}); pass --translate-with MODEL "
                       "to machine-translate the target side")


def _translate_pairs(task: Task, pairs: list[Pair], src: str, tgt: str, translate: Translate) -> list[Pair]:
    """Fill in the X side of placeholder pairs by translating every field of the target-side item."""
    texts_per_item = [texts_from_rendered(task, tgt, p.output) for p in pairs]
    flat = [t for texts in texts_per_item for t in texts]
    translated = translate(flat, tgt, src)
    out: list[Pair] = []
    n = len(task.input_fields)
    skipped = 0
    for k, (p, texts) in enumerate(zip(pairs, texts_per_item)):
        mt = translated[k * n : (k + 1) * n]
        if any(not t.strip() for t in mt):
            skipped += 1
            continue
        out.append(make_pair(task, src, tgt, mt, texts, p.index))
    if skipped:
        log.warning("%s: %d items skipped because a machine translation came back empty", src, skipped)
    return out

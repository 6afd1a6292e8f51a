"""Build question-translation training pairs (question in X ⇒ the same question in the target language), no answers."""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qtalign.data.ranges import ItemRange, select_items
from qtalign.data.readers import find_lang_file, load_records, parse_records, read_dataset
from qtalign.errors import QtalignError
from qtalign.languages import LANGUAGES, language
from qtalign.store import atomic_write_json, atomic_write_text, manifest_path, sha256_file, sha256_json
from qtalign.tasks import Task

log = logging.getLogger(__name__)

INSTRUCTION = "Translate the input from {src} to {tgt}:"
_INSTRUCTION_RE = re.compile(r"\nTranslate the input from (.+?) to (.+?):\n?$")
_NAME_TO_CODE = {lang.name: code for code, lang in LANGUAGES.items()}


@dataclass(frozen=True)
class Pair:
    input: str  # question in the source language + "\nTranslate the input from X to Y:\n"
    output: str  # the same question in the target language, ending at the answer cue's opening quote
    source_lang: str
    target_lang: str
    task: str
    index: int  # item index in its source file (parallel control: line of the passage's first sentence)
    # control mixes only (rows omit them when None):
    stands_for: str | None = None  # the real mix's source language this pair stands in for
    output_index: int | None = None  # shuffled: the item whose target side this pair got
    parallel_lines: tuple[int, ...] | None = None  # parallel: the --parallel file lines of the passage


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


def pair_row(pair: Pair) -> dict[str, Any]:
    """A pair as one JSONL row (control-only fields left out when unset)."""
    return {k: v for k, v in asdict(pair).items() if v is not None}


def instruction(src: str, tgt: str) -> str:
    return INSTRUCTION.format(src=language(src).name, tgt=language(tgt).name)


def make_pair(task: Task, src: str, tgt: str, src_texts: Sequence[str], tgt_texts: Sequence[str], index: int) -> Pair:
    """One pair from the same item's texts in both languages, rendered exactly as the evaluation prompt does."""
    question = task.render_item(src, src_texts)
    return Pair(question + "\n" + instruction(src, tgt) + "\n", task.render_item(tgt, tgt_texts), src, tgt,
                task.name, index)


def question_of(pair: Pair) -> str:
    """The source-language question inside a pair's input (the instruction line removed)."""
    m = _INSTRUCTION_RE.search(pair.input)
    return pair.input[: m.start()] if m else pair.input


# ---- reading sources ------------------------------------------------------------------------------------------
def _refuse_test(path: Path) -> None:
    if "_test" in path.name:
        raise QtalignError(f"{path}: refusing to build training pairs from a file named as a test split")


def question_file_pattern(task: Task, lang: str) -> re.Pattern[str]:
    """A single-language question file, e.g. snli_zh10k_train_question.json."""
    return re.compile(rf"^{re.escape(task.file_stem)}_{re.escape(lang)}\d*k?_train_question\.jsonl?$")


QUESTION_SUFFIXES = ("_question.json", "_question.jsonl")


def question_file_langs(task: Task, name: str) -> tuple[str, ...]:
    """The source languages a question file's name announces: one (snli_zh10k_train_question.json) or a released
    mix's several (emotion_zhes10k_question.json: zh and es); () when the name is not a question file of the task."""
    m = re.match(rf"^{re.escape(task.file_stem)}_((?:[a-z]{{2}})+)\d*k?(?:_train)?_question\.jsonl?$", name)
    if m is None:
        return ()
    codes = tuple(m.group(1)[i : i + 2] for i in range(0, len(m.group(1)), 2))
    return codes if all(c in LANGUAGES for c in codes) and len(set(codes)) == len(codes) else ()


def read_question_file(task: Task, path: Path, tgt: str | None = None) -> list[Pair]:
    """Ready-made pairs from a paper-style *_train_question.json file ({"input", "answer"} per record)."""
    _refuse_test(path)
    records = load_records(path)
    if not records:
        raise QtalignError(f"{path}: no records")
    pairs: list[Pair] = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise QtalignError(f"{path}: item {i}: expected a JSON object, found {type(rec).__name__}")
        inp, out = rec.get("input"), rec.get("answer", rec.get("output"))
        if not isinstance(inp, str) or not isinstance(out, str):
            raise QtalignError(f"{path}: item {i}: expected text fields 'input' and 'answer'")
        m = _INSTRUCTION_RE.search(inp)
        if m is None:
            raise QtalignError(f"{path}: item {i}: input does not end with 'Translate the input from X to Y:'")
        src, dst = _NAME_TO_CODE.get(m.group(1)), _NAME_TO_CODE.get(m.group(2))
        if src is None or dst is None:
            raise QtalignError(f"{path}: item {i}: unknown language name in {m.group(0).strip()!r}")
        if not inp[: m.start()].strip() or not out.strip():
            raise QtalignError(f"{path}: item {i}: empty question or empty translation")
        if not inp.endswith("\n"):
            inp += "\n"
        pairs.append(Pair(inp, out, src, dst, task.name, i))
    if tgt is not None:
        pairs = [p for p in pairs if p.target_lang == tgt]
    return pairs


def _read_train_items(task: Task, path: Path, lang: str) -> list[tuple[int, tuple[str, ...]]]:
    """(index, texts) of a parallel training file; answers are read but never used."""
    _refuse_test(path)
    records = load_records(path)
    items, problems = parse_records(task, lang, records, str(path), need_answer=False)
    errors = [p for p in problems if p.severity == "error" and "answer" not in p.message]
    if errors:
        raise QtalignError(str(errors[0]))
    if not items:
        raise QtalignError(f"{path}: no usable items for language {lang!r}")
    return [(it.index, it.texts) for it in items]


@dataclass
class Sources:
    """Where each language's side comes from: question files (ready pairs) and parallel training files."""

    question_files: dict[str, list[Path]] = field(default_factory=dict)  # source lang -> files
    train_files: dict[str, Path] = field(default_factory=dict)  # lang -> parallel training file


def scan_sources(task: Task, paths: Sequence[str | Path]) -> Sources:
    """Collect question files and parallel training files from files and folders (paper layout)."""
    found = Sources()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise QtalignError(f"{path}: no such file or folder")
        if path.is_file():
            _refuse_test(path)
            if path.name.endswith(QUESTION_SUFFIXES):  # single-language or a released mix: languages from content
                pairs = read_question_file(task, path)
                for lang in sorted({p.source_lang for p in pairs}):
                    found.question_files.setdefault(lang, []).append(path)
            else:
                m = re.match(rf"^{re.escape(task.file_stem)}_([a-z]{{2}})\d*k?_train\.jsonl?$", path.name)
                lang = m.group(1) if m else path.stem
                if lang not in LANGUAGES:
                    raise QtalignError(f"{path}: cannot tell its language from the name "
                                       f"(expected {task.file_stem}_<lang>..._train.json or <lang>.jsonl)")
                found.train_files[lang] = path
            continue
        named = sorted((p, question_file_langs(task, p.name)) for p in path.iterdir() if p.is_file())
        for lang in LANGUAGES:
            # single-language files first, then released mixes holding this language (e.g. {stem}_zhes10k_question)
            qfiles = [p for p, langs in named if langs == (lang,)] + \
                     [p for p, langs in named if len(langs) > 1 and lang in langs]
            if qfiles:
                found.question_files.setdefault(lang, []).extend(qfiles)
            f = find_lang_file(task, path, lang, "train")
            if f is not None:
                found.train_files.setdefault(lang, f)
    return found


# ---- contamination --------------------------------------------------------------------------------------------
def evaluation_questions(task: Task, folder: str | Path, skip: ItemRange | None = None) -> set[str]:
    """Every evaluation (test split) item of the task in every language found, rendered as a question (items whose
    index lies in skip, the range training pairs are built from, left out)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise QtalignError(f"{folder}: --exclude expects a folder of evaluation (test) files")
    rendered: set[str] = set()
    for lang in task.table:
        if find_lang_file(task, folder, lang, "test") is None:
            continue
        ds = read_dataset(task, folder, [lang], split="test")
        for it in ds.items[lang]:
            if skip is None or it.index not in skip:
                rendered.add(_norm(task.render_item(lang, it.texts)))
    if not rendered:
        if skip is not None:
            raise QtalignError(f"{folder}: no {task.name} test items outside {skip} to check the pairs against")
        raise QtalignError(f"{folder}: no {task.name} test files found for --exclude")
    return rendered


def _norm(text: str) -> str:
    return " ".join(text.split())


def is_contaminated(pair: Pair, questions: set[str]) -> bool:
    return _norm(question_of(pair)) in questions or _norm(pair.output) in questions


def evaluation_texts(task: Task, folder: str | Path, skip: ItemRange | None = None) -> set[str]:
    """Every field text (e.g. each premise and hypothesis) of every evaluation item found, whitespace-normalized
    (items whose index lies in skip left out)."""
    folder = Path(folder)
    texts: set[str] = set()
    for lang in task.table:
        if find_lang_file(task, folder, lang, "test") is None:
            continue
        for it in read_dataset(task, folder, [lang], split="test").items[lang]:
            if skip is None or it.index not in skip:
                texts.update(_norm(t) for t in it.texts)
    return texts


# ---- label guard ----------------------------------------------------------------------------------------------
def label_words(task: Task) -> set[str]:
    words = set(task.labels) | set(task.aliases)
    for entry in task.table.values():
        words |= set(entry.labels.values())
        words |= {w for ws in entry.variants.values() for w in ws}
    return words


def assert_no_answers(task: Task, pairs: Sequence[Pair], require_cue: bool = True) -> None:
    """Fail if a gold answer appears closed after an answer cue (e.g. `Answer: "neutral"`) in any pair; unless
    require_cue is false (general text), every output must end at the answer cue's opening quote."""
    closings = [f': "{w}"' for w in label_words(task)]
    for p in pairs:
        for side in (p.input, p.output):
            hit = next((c for c in closings if c in side), None)
            if hit is not None:
                raise QtalignError(f"pair {p.source_lang}:{p.index}: contains an answer ({hit.strip()!r}); "
                                   "question-translation pairs must not contain task answers")
        if require_cue and not p.output.endswith('"'):
            raise QtalignError(f"pair {p.source_lang}:{p.index}: output must end at the answer cue's opening quote")


# ---- building -------------------------------------------------------------------------------------------------
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
    from qtalign.data import controls

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
            shares = [_shares_text(task, p, eval_texts) for p in candidates]
            n_bad += sum(shares)
            if any(shares) and not allow_contamination:
                candidates = [p for p, bad in zip(candidates, shares) if not bad]
        else:
            candidates, origin, needs_mt = _candidates(task, found, src, target, translate, translator_name)
        if needs_mt:
            # filter on the target side, sample, then translate only what is kept (and check the X side again)
            if questions:
                bad = [p for p in candidates if _norm(p.output) in questions]
                n_bad += len(bad)
                if not allow_contamination:
                    candidates = [p for p in candidates if _norm(p.output) not in questions]
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
    ratios = controls.language_ratios(task, mixed)
    real_profile = controls.length_profile(task, mixed, ratios)
    report.length_profile = {"unit": controls.LENGTH_UNIT, "ratios": {k: round(v, 4) for k, v in ratios.items()},
                             "template": {k: controls.template_chars(task, k) for k in ratios}, "real": real_profile}
    report.pairs = mixed
    if test_items is not None:
        report.item_ranges = {"pairs_from": test_items.as_list(), "checked_against": str(exclude) if exclude else None,
                              "evaluation_items": f"every item outside {test_items} of each test file there",
                              "pairs_sharing_a_text_kept": 0 if not allow_contamination else sum(
                                  _shares_text(task, p, eval_texts) for p in mixed)}
    if control is None:
        return report
    texts = (evaluation_texts(task, exclude) if control == "parallel" and exclude is not None
             and not allow_contamination else set())
    pairs, info = controls.make_control(task, control, mixed, target, seed, parallel, texts, sources)
    if questions and not allow_contamination:
        bad_pair = next((p for p in pairs if is_contaminated(p, questions)), None)
        if bad_pair is not None:
            raise QtalignError(f"--control {control}: pair {controls.slot(bad_pair)}:{bad_pair.index} equals an "
                               "evaluation item")
    assert_no_answers(task, pairs, require_cue=control != "parallel")
    info["derived_from"] = {"pairs_sha256": sha256_json([pair_row(p) for p in mixed]), "total": len(mixed),
                            "counts": dict(report.counts), "sources": dict(report.sources)}
    profile = controls.length_profile(task, pairs, ratios)
    diff = controls.profile_difference(real_profile, profile)
    report.length_profile.update(control=profile, difference=diff)
    worst = controls.worst_mean_difference(diff)
    if worst > controls.TOLERANCE:
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


def _shares_text(task: Task, pair: Pair, texts: set[str]) -> bool:
    """Whether any field text of either side of the pair equals an evaluation item's field text."""
    if not texts:
        return False
    sides = ((pair.source_lang, question_of(pair)), (pair.target_lang, pair.output))
    return any(_norm(t) in texts for lang, rendered in sides for t in _texts_from_rendered(task, lang, rendered))


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
        src_items = dict(_read_train_items(task, found.train_files[src], src))
        tgt_items = dict(_read_train_items(task, found.train_files[tgt], tgt))
        common = sorted(set(src_items) & set(tgt_items))
        pairs = [make_pair(task, src, tgt, src_items[i], tgt_items[i], i) for i in common]
        return pairs, f"{found.train_files[src]} + {found.train_files[tgt]}", False
    if translate is not None:
        if tgt not in found.train_files:
            raise QtalignError(f"machine translation needs a {tgt!r} training file ({task.file_stem}_{tgt}..._train.json)"
                               " in --data")
        # placeholder pairs: the target side now, the X side after translation
        pairs = [Pair("", task.render_item(tgt, texts), src, tgt, task.name, i)
                 for i, texts in _read_train_items(task, found.train_files[tgt], tgt)]
        return pairs, f"mt:{translator_name} from {found.train_files[tgt]}", True
    have = sorted(set(found.question_files) | set(found.train_files))
    raise QtalignError(f"source language {src!r}: no data (no question file or parallel training file for "
                       f"{src}->{tgt}; found languages: {', '.join(have) or 'none'}); pass --translate-with MODEL "
                       "to machine-translate the target side")


def _translate_pairs(task: Task, pairs: list[Pair], src: str, tgt: str, translate: Translate) -> list[Pair]:
    """Fill in the X side of placeholder pairs by translating every field of the target-side item."""
    texts_per_item = [_texts_from_rendered(task, tgt, p.output) for p in pairs]
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


def _texts_from_rendered(task: Task, lang: str, rendered: str) -> list[str]:
    """Invert Task.render_item for one item (field lines, then the cue line)."""
    entry = task.lang(lang)
    lines = rendered.split("\n")[:-1]
    texts = []
    for name, line in zip(entry.fields, lines, strict=True):
        texts.append(line[len(name) + 2 :] if name else line)
    return texts


# ---- writing --------------------------------------------------------------------------------------------------
def claim_build(out: str | Path, settings: dict[str, Any], overwrite: bool = False) -> Path:
    """The resume rule (store.open_run) for `data build`, checked before any reading or translating.

    Each build is described by its own manifest (store.manifest_path: FILE.manifest.json beside FILE.jsonl, or an
    older folder's manifest.json), so several builds share a folder. The same output and settings are rebuilt
    (identical pairs; a machine-translation cache resumes); other settings for the same output are refused, naming
    the flags, unless overwrite. The folder is held (store.hold_folder) while the build runs."""
    from qtalign.store import RESUME_HINT, claim_out_file, describe_changes, hold_folder, manifest_path

    out = claim_out_file(out)
    if out.suffix != ".jsonl":
        raise QtalignError(f"--out {out}: must be a .jsonl file")
    hold_folder(out.parent)  # builds in one folder share dataset_info.json: one at a time
    manifest = manifest_path(out)
    if not manifest.is_file():
        return out
    try:
        old_settings = dict(json.loads(manifest.read_text(encoding="utf-8"))["settings"])
    except (ValueError, KeyError, TypeError):
        if overwrite:
            return out
        raise QtalignError(f"{manifest}: unreadable manifest of an earlier build; add --overwrite to replace it") from None
    if overwrite:
        return out
    changes = describe_changes(old_settings, settings)
    if changes:
        raise QtalignError(f"{out}: is a build made with other settings ({'; '.join(changes)}); "
                           f"{RESUME_HINT}")
    return out


def write_outputs(report: BuildReport, out: str | Path, settings: dict[str, Any]) -> dict[str, str]:
    """Write FILE.jsonl, FILE_alpaca.json, dataset_info.json (merged) and FILE.manifest.json beside it; return
    hashes."""
    out = Path(out)
    if out.suffix != ".jsonl":
        raise QtalignError(f"{out}: --out must be a .jsonl file")
    rows = [pair_row(p) for p in report.pairs]
    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    alpaca = out.with_name(out.stem + "_alpaca.json")
    atomic_write_json(alpaca, [{"instruction": p.input, "input": "", "output": p.output} for p in report.pairs])
    info_path = out.with_name("dataset_info.json")
    info: dict[str, Any] = {}
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            info = {}
    info[out.stem] = {"file_name": alpaca.name,
                      "columns": {"prompt": "instruction", "query": "input", "response": "output"}}
    if settings.get("template"):  # LLaMA-Factory ignores this key; its users pass the same name as --template
        info[out.stem]["template"] = settings["template"]
    atomic_write_json(info_path, info)
    hashes = {str(p): sha256_file(p) for p in (out, alpaca)}
    settings = {**settings, "control": report.control["kind"] if report.control else settings.get("control")}
    manifest: dict[str, Any] = {
        "kind": "question-translation pairs",
        "output": str(out),
        "settings": settings,
        "seed": settings.get("seed"),
        "sources": report.sources,
        "counts": report.counts,
        "available": report.available,
        "contaminated": report.contaminated,
        "total": len(report.pairs),
        "sha256": hashes,
        "pairs_sha256": sha256_json(rows),
        "length_profile": report.length_profile,
    }
    if report.control is not None:
        manifest["control"] = report.control
    if report.item_ranges is not None:
        manifest["item_ranges"] = report.item_ranges
    legacy = manifest_path(out)
    atomic_write_json(manifest_path(out, legacy=False), manifest)
    if legacy != manifest_path(out, legacy=False):
        legacy.unlink(missing_ok=True)  # an older qtalign's manifest.json of this same build
    report.files = hashes
    return hashes

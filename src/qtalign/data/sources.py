"""Where a build's pairs come from: paper-style question files (ready pairs) and parallel training files."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qtalign.data.pairs import INSTRUCTION_RE, NAME_TO_CODE, Pair
from qtalign.data.paper_names import question_name
from qtalign.data.readers import find_lang_file, load_records, parse_records
from qtalign.errors import QtalignError
from qtalign.languages import LANGUAGES
from qtalign.tasks import Task

QUESTION_SUFFIXES = ("_question.json", "_question.jsonl")


def refuse_test(path: Path) -> None:
    """Refuse a file named as a test split (training pairs never come from one by name)."""
    if "_test" in path.name:
        raise QtalignError(f"{path}: refusing to build training pairs from a file named as a test split")


def question_file_pattern(task: Task, lang: str) -> re.Pattern[str]:
    """A single-language question file, e.g. snli_zh10k_train_question.json."""
    return re.compile(rf"^{re.escape(task.file_stem)}_{re.escape(lang)}\d*k?_train_question\.jsonl?$")


def question_file_langs(task: Task, name: str) -> tuple[str, ...]:
    """The source languages a question file's name announces: one (snli_zh10k_train_question.json), a released
    mix's several (emotion_zhes10k_question.json: zh and es) or those of a mix into another target
    (emotion_en2zhja2zh10k_question.json: en and ja, into zh; data.paper_names states the rule); () when the name is
    not a question file of the task or its languages cannot be read."""
    q = question_name(name)
    return q.sources if q is not None and q.stem == task.file_stem else ()


def read_question_file(task: Task, path: Path, tgt: str | None = None) -> list[Pair]:
    """Ready-made pairs from a paper-style *_train_question.json file ({"input", "answer"} per record)."""
    refuse_test(path)
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
        m = INSTRUCTION_RE.search(inp)
        if m is None:
            raise QtalignError(f"{path}: item {i}: input does not end with 'Translate the input from X to Y:'")
        src, dst = NAME_TO_CODE.get(m.group(1)), NAME_TO_CODE.get(m.group(2))
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


def read_train_items(task: Task, path: Path, lang: str) -> list[tuple[int, tuple[str, ...]]]:
    """(index, texts) of a parallel training file; answers are read but never used."""
    refuse_test(path)
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
            refuse_test(path)
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

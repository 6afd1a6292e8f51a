"""Read task items per language from the paper's JSON layout, JSONL files/folders or a Hugging Face dataset."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from qtalign.errors import QtalignError
from qtalign.languages import PAPER_LANGS
from qtalign.tasks import Task, get_task, normalize_answer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Item:
    lang: str
    index: int  # position in its source (0-based)
    texts: tuple[str, ...]  # the task's input fields, in task order
    answer: str | None  # gold answer as written in the source
    label: str | None  # canonical label, None when the answer maps to none
    source: str


@dataclass(frozen=True)
class Problem:
    source: str
    index: int | None
    message: str
    severity: str = "error"  # "error" stops evaluation, "warning" is reported

    def __str__(self) -> str:
        where = self.source if self.index is None else f"{self.source}: item {self.index}"
        return f"{where}: {self.message}"


@dataclass
class Dataset:
    """Items per language plus the problems found while reading them."""

    items: dict[str, list[Item]]
    problems: list[Problem] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # language -> file or dataset it came from

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def paper_file_pattern(task: Task, lang: str, split: str) -> re.Pattern[str]:
    """Matches e.g. emotion_de500_test.json, snli_en10k_train.json, emotion_zh_train.jsonl."""
    return re.compile(rf"^{re.escape(task.file_stem)}_{re.escape(lang)}\d*k?_{re.escape(split)}\.jsonl?$")


def find_lang_file(task: Task, folder: Path, lang: str, split: str) -> Path | None:
    """The file for one language in a folder: the paper's name, else {lang}.jsonl / {lang}.json."""
    pattern = paper_file_pattern(task, lang, split)
    matches = sorted(p for p in folder.iterdir() if pattern.match(p.name))
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches)
        raise QtalignError(f"{folder}: several {split} files for language {lang!r}: {names}; keep one")
    if matches:
        return matches[0]
    for name in (f"{lang}.jsonl", f"{lang}.json"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_utf8(path: Path, what: str = "file") -> str:
    """The text of a data file; a missing file or one that is not UTF-8 is a QtalignError naming it (what: the
    kind of file, as the message names it)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise QtalignError(f"{path}: {what} not found") from None
    except UnicodeDecodeError as e:
        raise QtalignError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def load_records(path: Path) -> list[Any]:
    """A JSON list or JSONL file as a list of records; invalid JSON is a QtalignError naming file and line."""
    text = read_utf8(path)
    stripped = text.lstrip()
    if path.suffix != ".jsonl" and stripped[:1] == "{":
        try:  # a whole-file JSON object where a list of items is expected
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None  # several objects: JSON lines in a .json file
        if isinstance(data, dict):
            keys = ", ".join(map(repr, list(data)[:5])) + (", ..." if len(data) > 5 else "")
            raise QtalignError(f"{path}: expected a JSON list of items (or one item per line), found a JSON object "
                               f"with keys {keys}")
    if path.suffix == ".jsonl" or (stripped and stripped[0] == "{"):
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise QtalignError(f"{path}: line {n}: invalid JSON ({e.msg})") from None
        return records
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise QtalignError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno} ({e.msg})") from None
    if not isinstance(data, list):
        found = "a JSON object" if isinstance(data, dict) else f"{type(data).__name__}"
        raise QtalignError(f"{path}: expected a JSON list of items, found {found}")
    return data


def parse_records(
    task: Task, lang: str, records: Sequence[Any], source: str, need_answer: bool = True
) -> tuple[list[Item], list[Problem]]:
    """Turn raw records into Items, collecting one Problem per bad record."""
    answers = task.answer_map(lang)
    items: list[Item] = []
    problems: list[Problem] = []
    seen: dict[tuple[str, ...], int] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            problems.append(Problem(source, i, f"expected a JSON object, found {type(rec).__name__}"))
            continue
        missing = [f for f in task.input_fields if f not in rec]
        if missing:
            have = ", ".join(sorted(rec)) or "none"
            problems.append(Problem(source, i, f"missing field {', '.join(map(repr, missing))} (has: {have})"))
            continue
        texts = tuple(rec[f] for f in task.input_fields)
        bad = [f for f, t in zip(task.input_fields, texts) if not isinstance(t, str) or not t.strip()]
        if bad:
            problems.append(Problem(source, i, f"empty or non-text field {', '.join(map(repr, bad))}"))
            continue
        answer = rec.get("answer", rec.get("label"))
        label: str | None = None
        if answer is None:
            if need_answer:
                problems.append(Problem(source, i, "missing field 'answer'"))
                continue
        else:
            answer = str(answer)
            label = answers.get(normalize_answer(answer))
            if label is None:
                problems.append(
                    Problem(
                        source,
                        i,
                        f"answer {answer!r} maps to no {task.name} label in language {lang!r} "
                        f"(labels: {', '.join(task.labels)})",
                    )
                )
        if texts in seen:
            problems.append(Problem(source, i, f"duplicate of item {seen[texts]}", "warning"))
        else:
            seen[texts] = i
        items.append(Item(lang, i, texts, answer, label, source))
    return items, problems


def read_dataset(task: Task, source: str | Path, langs: Sequence[str], split: str = "test") -> Dataset:
    """Read a task's items for the given languages.

    source: a folder (the paper's layout or {lang}.jsonl files), one JSONL/JSON file whose records carry a
    "lang" field, or "hf:NAME" for a Hugging Face dataset with one configuration per language.
    """
    text = str(source)
    if text == "demo":
        source = demo_file(task)
    elif text.startswith("hf:"):
        return _read_hf(task, text[3:], langs, split)
    path = Path(source)
    if not path.exists():
        raise QtalignError(f"{path}: no such file or folder")
    ds = Dataset(items={})
    reported: set[str] = set()  # languages whose absence is already a problem
    if path.is_dir():
        for lang in langs:
            f = find_lang_file(task, path, lang, split)
            if f is None:
                raise QtalignError(
                    f"{path}: no {split} file for language {lang!r} "
                    f"(expected {task.file_stem}_{lang}<N>_{split}.json or {lang}.jsonl)"
                )
            items, problems = parse_records(task, lang, load_records(f), str(f))
            ds.items[lang], ds.sources[lang] = items, str(f)
            ds.problems += problems
    else:
        records = load_records(path)
        by_lang: dict[str, list[Any]] = {lang: [] for lang in langs}
        others: dict[str, int] = {}
        for n, rec in enumerate(records):
            lang = _record_lang(path, n, rec)
            if lang in by_lang:
                by_lang[lang].append(rec)
            else:
                others[lang] = others.get(lang, 0) + 1
        absent = [lang for lang in langs if not by_lang[lang]]
        reported.update(absent)
        if absent:
            found = ", ".join(f"{k} ({v})" for k, v in others.items()) or "none"
            ds.problems.append(Problem(str(path), None, f"no usable items for language(s) {', '.join(absent)} "
                                                        f"(other 'lang' values in this file: {found})"))
        for lang in langs:
            items, problems = parse_records(task, lang, by_lang[lang], str(path))
            ds.items[lang], ds.sources[lang] = items, str(path)
            ds.problems += problems
    for lang in langs:
        if not ds.items[lang] and lang not in reported:
            ds.problems.append(Problem(ds.sources[lang], None, f"no usable items for language {lang!r}"))
    return ds


def _record_lang(path: Path, n: int, rec: Any) -> str:
    """The 'lang' field of item n of a single file holding many languages."""
    if not isinstance(rec, dict):
        raise QtalignError(f"{path}: item {n}: expected a JSON object, found {type(rec).__name__}")
    if rec.get("lang") is None:
        raise QtalignError(f"{path}: item {n}: missing field 'lang' (needed in a single file of many languages)")
    return str(rec["lang"])


def data_langs(task: Task, source: str | Path, split: str = "test") -> tuple[str, ...]:
    """The languages present in a data source, in the paper's language order: the default of --langs.

    A folder: the languages with a test file for the task; a file: the items' 'lang' values that are known language
    codes; hf: data cannot be listed without downloading, so all 20. No known language is a QtalignError naming what
    was found."""
    text = str(source)
    if text.startswith("hf:"):
        return PAPER_LANGS
    path = demo_file(task) if text == "demo" else Path(source)
    if not path.exists():
        raise QtalignError(f"{path}: no such file or folder")
    if path.is_dir():
        langs = tuple(lang for lang in PAPER_LANGS if find_lang_file(task, path, lang, split) is not None)
        if not langs:
            raise QtalignError(f"{path}: no {task.name} {split} files here (expected "
                               f"{task.file_stem}_<lang><N>_{split}.json or <lang>.jsonl, e.g. "
                               f"{task.file_stem}_en500_{split}.json)")
        return langs
    counts: dict[str, int] = {}
    for n, rec in enumerate(load_records(path)):
        lang = _record_lang(path, n, rec)
        counts[lang] = counts.get(lang, 0) + 1
    langs = tuple(lang for lang in PAPER_LANGS if lang in counts)
    if not langs:
        found = ", ".join(f"{k} ({v} items)" for k, v in counts.items()) or "no items"
        raise QtalignError(f"{path}: no items in a known language (its 'lang' values: {found}; known codes: "
                           f"{', '.join(PAPER_LANGS)})")
    unknown = [k for k in counts if k not in PAPER_LANGS]
    if unknown:
        log.warning("warning: %s: items with unknown language code(s) %s are skipped", path, ", ".join(unknown))
    return langs


DEMO_FOLDERS = {"emotion": "sentiment"}  # task -> folder of {lang}.jsonl under qtalign/demo


def demo_file(task: Task) -> Path:
    """The folder of the small parallel sample shipped with qtalign for a task (emotion only): --data demo."""
    name = DEMO_FOLDERS.get(task.name)
    if name is None:
        raise QtalignError(f"--data demo: qtalign ships a demo sample for the emotion task only, not {task.name!r}")
    path = Path(str(files("qtalign.demo").joinpath(name)))
    if not path.is_dir():
        raise QtalignError(f"--data demo: the shipped sample {path} is missing; reinstall qtalign")
    return path


def _read_hf(task: Task, name: str, langs: Sequence[str], split: str) -> Dataset:
    """A Hugging Face dataset with one configuration per language code (downloads; not used in tests)."""
    try:
        import datasets
    except ImportError:  # pragma: no cover
        raise QtalignError("reading hf: data needs the 'datasets' package") from None
    ds = Dataset(items={})
    for lang in langs:
        try:
            part = datasets.load_dataset(name, lang, split=split)
        except Exception as e:  # noqa: BLE001 - the hub raises many kinds; one line for the user
            raise QtalignError(f"hf:{name}: could not load configuration {lang!r}, split {split!r}: {e}") from None
        items, problems = parse_records(task, lang, list(part), f"hf:{name}/{lang}/{split}")
        ds.items[lang], ds.sources[lang] = items, f"hf:{name}/{lang}/{split}"
        ds.problems += problems
    return ds


def parallel_disagreements(ds: Dataset, reference: str = "en", ref: Sequence[Item] | None = None) -> dict[str, list[int]]:
    """For languages whose file is parallel to the reference language's (same item count), the item
    indices whose mapped label differs from the reference's. ref: the reference language's items when they are
    not in ds (e.g. the English file read beside the data)."""
    ref = ds.items.get(reference) if ref is None else ref
    if not ref:
        return {}
    ref_labels = {it.index: it.label for it in ref}
    n_ref = max(ref_labels) + 1
    out: dict[str, list[int]] = {}
    for lang, items in ds.items.items():
        if lang == reference or not items or max(it.index for it in items) + 1 != n_ref:
            continue
        out[lang] = [
            it.index
            for it in items
            if it.label is not None and ref_labels.get(it.index) is not None and it.label != ref_labels[it.index]
        ]
    return out


def parse_langs(value: str | None, task: str | None = None, data: str | None = None) -> list[str]:
    """--langs as a list; when not given, the languages present in --data (qtalign.data.readers.data_langs)."""
    if value is None:
        try:
            t = get_task(task or "")
        except ValueError as e:
            raise QtalignError(f"--task: {e}") from None
        return list(data_langs(t, data or ""))
    langs = [x.strip() for x in value.split(",") if x.strip()]
    if not langs:
        raise QtalignError("--langs: give at least one language code")
    if len(set(langs)) != len(langs):
        raise QtalignError(f"--langs: a language is listed twice ({value})")
    return langs

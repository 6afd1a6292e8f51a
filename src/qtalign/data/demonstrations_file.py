"""Fixed few-shot demonstrations in the layout of the paper's demos files ({task}_demos.json): read, find, render."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtalign.errors import QtalignError
from qtalign.tasks import Task


@dataclass(frozen=True)
class DemoItem:
    texts: tuple[str, ...]  # the task's input fields, in task order
    label: str  # canonical label
    lines: tuple[str, ...]  # the demonstration exactly as the prefix writes it, one string per line
    answer_at: int  # where the label word starts in the last line (right after the answer cue)


@dataclass(frozen=True)
class LangDemos:
    """One language's demonstrations, cues and label tables, byte for byte as the file gives them."""

    lang: str
    prefix: str  # the file's literal prefix (the demonstrations with English label words)
    items: tuple[DemoItem, ...]
    cues: Mapping[str, str]  # input field -> text written before it ("" for none); "answer" -> the answer cue
    label_words: Mapping[str, Mapping[str, str | None]]  # "enout"/"native" -> canonical label -> word (None = none)
    gold: str = "native"  # which table the scripts compare gold answers with: "native" (the test language's) or "enout"

    def render_prefix(self, words: Mapping[str, str]) -> str:
        """The demonstrations with each answer written as words[label], joined by single newlines (no trailing one).

        Everything else stays byte for byte (trailing spaces, full-width cues and other quirks of the file)."""
        lines: list[str] = []
        for d in self.items:
            last = d.lines[-1]
            old = _answer_word(d)
            rest = last[d.answer_at + len(old):]
            lines += [*d.lines[:-1], last[: d.answer_at] + words[d.label] + rest]
        return "\n".join(lines)

    def render_item(self, fields: Sequence[str], texts: Sequence[str]) -> str:
        """A test item as the paper's scripts write it: each field after its cue, one per line, then the answer cue."""
        lines = [self.cues.get(f, "") + t for f, t in zip(fields, texts, strict=True)]
        return "\n".join([*lines, self.cues["answer"]])

    def gold_table(self) -> dict[str, str]:
        """The strings the paper's scripts compare a test item's answer with, per canonical label: the native table
        where the scripts use it and it has a word for every label, else the English words (PAWS, whose files
        answer in English)."""
        native = self.label_words.get("native", {})
        if self.gold == "native" and native and all(native.get(label) for label in self.label_words["enout"]):
            return {label: str(word) for label, word in native.items()}
        return {label: str(word) for label, word in self.label_words["enout"].items()}


def _answer_word(d: DemoItem) -> str:
    """The label word as written in the demonstration's last line (between the answer cue and the closing quote)."""
    last = d.lines[-1]
    end = last.find('"', d.answer_at)
    return last[d.answer_at: end if end >= 0 else len(last)]


@dataclass(frozen=True)
class DemosFile:
    path: str
    task: str  # the file's task name (the paper's: emotion, snli, paws)
    fields: tuple[str, ...]  # input fields, in task order
    labels: tuple[str, ...]  # canonical labels
    langs: Mapping[str, LangDemos]

    @property
    def shots(self) -> int:
        return len(next(iter(self.langs.values())).items) if self.langs else 0

    def lang(self, code: str) -> LangDemos:
        try:
            return self.langs[code]
        except KeyError:
            raise QtalignError(f"{self.path}: no demonstrations for language {code!r} "
                               f"(has: {', '.join(self.langs)})") from None


def demos_file_candidates(task: Task, data: str | Path) -> list[Path]:
    """Where the paper's demonstrations for a data folder are looked for: DATA/../demos/{stem}_demos.json, then
    DATA/demos/{stem}_demos.json (the layout of the paper's data folder and of `qtalign data fetch paper`)."""
    path = Path(data)
    folder = path if path.is_dir() else path.parent
    name = f"{task.file_stem}_demos.json"
    return [folder.parent / "demos" / name, folder / "demos" / name]


def find_demos_file(task: Task, data: str | Path) -> Path:
    """The first of demos_file_candidates that exists; a QtalignError naming them when none does."""
    cands = demos_file_candidates(task, data)
    for cand in cands:
        if cand.is_file():
            return cand
    raise QtalignError(f"--demos-file auto: no {cands[0].name} at {cands[0]} or {cands[1]}; give --demos-file FILE "
                       f"(the paper's demonstrations, e.g. from `qtalign data fetch paper`)")


def resolve_demos_file(task: Task, demos_file: str | None, data: str | Path) -> Path | None:
    """--demos-file: None (none), "auto" (found beside the data), or a path."""
    if demos_file is None:
        return None
    return find_demos_file(task, data) if demos_file == "auto" else Path(demos_file)


def load_demos_file(path: str | Path, task: Task) -> DemosFile:
    """Read and check a demos file for task; every problem is a QtalignError naming the file and the key."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise QtalignError(f"--demos-file {path}: file not found") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise QtalignError(f"--demos-file {path}: not a JSON file ({e})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("demos"), dict):
        raise QtalignError(f"{path}: expected an object with a 'demos' mapping of languages (a paper demos file)")
    if raw.get("task") not in (task.file_stem, task.name):
        raise QtalignError(f"{path}: demonstrations for task {raw.get('task')!r}, not {task.name!r} "
                           f"(expected {task.file_stem}_demos.json)")
    fields = tuple(f for f in raw.get("item_fields", [*task.input_fields, "answer"]) if f != "answer")
    if fields != task.input_fields:
        raise QtalignError(f"{path}: item_fields {list(fields)} do not match task {task.name!r} "
                           f"({list(task.input_fields)})")
    labels = tuple(raw.get("canonical_labels", task.labels))
    if labels != task.labels:
        raise QtalignError(f"{path}: canonical_labels {list(labels)} do not match task {task.name!r} "
                           f"({list(task.labels)})")
    gold = raw.get("gold_compared_with")  # written by `qtalign data fetch paper`; absent: the native table
    langs = {lang: _lang(path, lang, entry, fields, labels, gold) for lang, entry in raw["demos"].items()}
    return DemosFile(str(path), str(raw["task"]), fields, labels, langs)


def _lang(path: Path, lang: str, entry: Any, fields: tuple[str, ...], labels: tuple[str, ...],
          raw_gold: str | None) -> LangDemos:
    where = f"{path}: demos.{lang}"
    if not isinstance(entry, dict):
        raise QtalignError(f"{where}: expected an object")
    for key in ("prefix", "items", "query_cues", "label_words"):
        if key not in entry:
            raise QtalignError(f"{where}: missing key {key!r}")
    cues = entry["query_cues"]
    if not isinstance(cues, dict) or not isinstance(cues.get("answer"), str):
        raise QtalignError(f"{where}.query_cues: needs a string 'answer' cue")
    enout = entry["label_words"].get("enout") or {label: label for label in labels}
    native = entry["label_words"].get("native") or {}
    if set(enout) != set(labels):
        raise QtalignError(f"{where}.label_words.enout: needs one word for each of {', '.join(labels)}")
    items = []
    for n, it in enumerate(entry["items"]):
        w = f"{where}.items[{n}]"
        if not isinstance(it, dict) or any(not isinstance(it.get(f), str) for f in fields):
            raise QtalignError(f"{w}: needs text fields {', '.join(fields)}")
        if it.get("answer") not in labels:
            raise QtalignError(f"{w}: answer {it.get('answer')!r} is not one of {', '.join(labels)}")
        lines = it.get("lines")
        if not isinstance(lines, list) or not lines or not all(isinstance(x, str) for x in lines):
            raise QtalignError(f"{w}: needs 'lines', the demonstration's prompt lines")
        word = enout[it["answer"]]
        at = lines[-1].rfind(f'"{word}"')  # the answer cue may differ from the query cue (a quirk); the word is quoted
        if at < 0 or lines[-1][at + len(word) + 2:].strip():
            raise QtalignError(f"{w}: last line {lines[-1]!r} does not end in the quoted label word {word!r}")
        items.append(DemoItem(tuple(it[f] for f in fields), it["answer"], tuple(lines), at + 1))
    gold = "native" if raw_gold in (None, "test language's label table") else "enout"
    ld = LangDemos(lang, entry["prefix"], tuple(items), dict(cues), {"enout": dict(enout), "native": dict(native)},
                   gold)
    if ld.render_prefix({label: enout[label] for label in labels}) != ld.prefix:
        raise QtalignError(f"{where}: 'prefix' is not the items' lines joined by newlines")
    return ld

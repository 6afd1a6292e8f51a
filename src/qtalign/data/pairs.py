"""Question-translation pairs: the Pair record, its JSONL row, the instruction line and the question inside it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from qtalign.languages import LANGUAGES, language
from qtalign.tasks import Task

INSTRUCTION = "Translate the input from {src} to {tgt}:"
INSTRUCTION_RE = re.compile(r"\nTranslate the input from (.+?) to (.+?):\n?$")
NAME_TO_CODE = {lang.name: code for code, lang in LANGUAGES.items()}


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


def pair_row(pair: Pair) -> dict[str, Any]:
    """A pair as one JSONL row (control-only fields left out when unset)."""
    return {k: v for k, v in asdict(pair).items() if v is not None}


def instruction(src: str, tgt: str) -> str:
    """The instruction line of a pair, e.g. "Translate the input from Chinese to English:"."""
    return INSTRUCTION.format(src=language(src).name, tgt=language(tgt).name)


def make_pair(task: Task, src: str, tgt: str, src_texts: Sequence[str], tgt_texts: Sequence[str], index: int) -> Pair:
    """One pair from the same item's texts in both languages, rendered exactly as the evaluation prompt does."""
    question = task.render_item(src, src_texts)
    return Pair(question + "\n" + instruction(src, tgt) + "\n", task.render_item(tgt, tgt_texts), src, tgt,
                task.name, index)


def question_of(pair: Pair) -> str:
    """The source-language question inside a pair's input (the instruction line removed)."""
    m = INSTRUCTION_RE.search(pair.input)
    return pair.input[: m.start()] if m else pair.input


def slot(pair: Pair) -> str:
    """The real mix's source language a pair stands for (its own source language in a real mix)."""
    return pair.stands_for or pair.source_lang


def norm(text: str) -> str:
    """Whitespace-normalized text (how pairs are compared with evaluation items)."""
    return " ".join(text.split())


def texts_from_rendered(task: Task, lang: str, rendered: str) -> list[str]:
    """Invert Task.render_item for one item (field lines, then the cue line)."""
    entry = task.lang(lang)
    lines = rendered.split("\n")[:-1]
    texts = []
    for name, line in zip(entry.fields, lines, strict=True):
        texts.append(line[len(name) + 2 :] if name else line)
    return texts

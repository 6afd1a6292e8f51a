"""A task: its canonical labels, input fields and per-language prompt table; prompt rendering and label mapping."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LangTable:
    """How one language writes a task's prompt and labels."""

    fields: tuple[str, ...]  # prompt name of each input field, in the task's field order; "" = text alone
    cue: str  # name of the answer field, e.g. "Emotion" / "情感" / "Answer"
    labels: Mapping[str, str]  # canonical label -> the label word in this language (for --labels native)
    variants: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # other spellings seen in gold answers


@dataclass(frozen=True)
class Task:
    name: str
    input_fields: tuple[str, ...]  # keys of an item's texts in the data, e.g. ("premise", "hypothesis")
    labels: tuple[str, ...]  # canonical labels, which are also the English label words
    shots: int  # default number of demonstrations
    table: Mapping[str, LangTable]  # language code -> prompt table
    file_stem: str  # file name stem of the paper's released files, e.g. "snli" in snli_de600_test.json
    aliases: Mapping[str, str] = field(default_factory=dict)  # extra gold words valid in any language -> label

    def lang(self, code: str) -> LangTable:
        try:
            return self.table[code]
        except KeyError:
            known = ", ".join(self.table)
            raise ValueError(f"task {self.name!r} has no prompt table for language {code!r}; known: {known}") from None

    def render_item(self, lang: str, texts: Sequence[str], answer: str | None = None) -> str:
        """One item as the prompt writes it; ends right after the answer's opening quote unless answer is given."""
        entry = self.lang(lang)
        lines = [f"{name}: {text}" if name else text for name, text in zip(entry.fields, texts, strict=True)]
        lines.append(f'{entry.cue}: "' + ("" if answer is None else f'{answer}"'))
        return "\n".join(lines)

    def render_prefix(self, lang: str, demos: Sequence[tuple[Sequence[str], str]]) -> str:
        """The shared few-shot prefix: each demonstration with its answer word, one per block, then a newline."""
        if not demos:
            return ""
        return "\n".join(self.render_item(lang, texts, answer) for texts, answer in demos) + "\n"

    def label_words(self, lang: str, mode: str | Sequence[str]) -> tuple[str, ...]:
        """The words the model chooses between, in canonical label order.

        mode: "en" (English words everywhere, the paper's default), "native" (the language's words),
        or a sequence of arbitrary words, one per label (the paper's "ox,horse" control).
        """
        if mode == "en":
            return self.labels
        if mode == "native":
            entry = self.lang(lang)
            return tuple(entry.labels[label] for label in self.labels)
        if isinstance(mode, str):
            msg = f"labels must be 'en', 'native' or a list of {len(self.labels)} words, got {mode!r}"
            raise ValueError(msg)  # noqa: TRY004 -- a wrong word, not a wrong type
        words = tuple(mode)
        if len(words) != len(self.labels) or len(set(words)) != len(words) or not all(w.strip() for w in words):
            raise ValueError(
                f"task {self.name!r} needs {len(self.labels)} distinct non-empty label words "
                f"(for {', '.join(self.labels)}), got {', '.join(words) or 'none'}"
            )
        return words

    def answer_map(self, lang: str) -> dict[str, str]:
        """Normalized gold answer word -> canonical label, for files in this language.

        Accepts the English words and aliases in every language, plus the language's own words and variants.
        """
        mapping: dict[str, str] = {}

        def add(word: str, label: str) -> None:
            key = normalize_answer(word)
            if mapping.get(key, label) != label:
                raise ValueError(f"task {self.name!r}, language {lang!r}: answer {word!r} maps to two labels")
            mapping[key] = label

        for label in self.labels:
            add(label, label)
        for word, label in self.aliases.items():
            add(word, label)
        entry = self.table.get(lang)
        if entry is not None:
            for label, word in entry.labels.items():
                add(word, label)
            for label, words in entry.variants.items():
                for word in words:
                    add(word, label)
        return mapping


def normalize_answer(word: str) -> str:
    """Case-, width- and spacing-insensitive form of a gold answer word."""
    text = unicodedata.normalize("NFKC", word).strip().strip('"“”«»„\'').strip().casefold()
    return " ".join(text.split())

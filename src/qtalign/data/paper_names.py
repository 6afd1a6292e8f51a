"""What a released data file's name says: its kind and, for a question-translation file, its languages."""

from __future__ import annotations

import re
from dataclasses import dataclass

from qtalign.languages import LANGUAGES

# {stem}_{languages}{size}[_train]_question.json, e.g. snli_zh10k_train_question.json, emotion_zhes10k_question.json,
# emotion_en2zhja2zh10k_question.json; {languages} is letters, or letter groups joined by "2"
_QUESTION = re.compile(r"^(?P<stem>[a-z]+)_(?P<langs>[a-z]+(?:2[a-z]+)*)\d*k?(?:_train)?_question\.jsonl?$")
_CODE = 2  # every language code of the released names has two letters


@dataclass(frozen=True)
class QuestionName:
    """A question-translation file's name read: its task stem, source languages and target; () and None when the
    name does not say them in a form this module reads (never guessed)."""

    stem: str
    sources: tuple[str, ...]
    target: str | None


def _codes(letters: str) -> tuple[str, ...] | None:
    """'zhes' -> ('zh', 'es'); None unless every two letters are one of the 20 languages, each once."""
    if not letters or len(letters) % _CODE:
        return None
    codes = tuple(letters[i : i + _CODE] for i in range(0, len(letters), _CODE))
    return codes if all(c in LANGUAGES for c in codes) and len(set(codes)) == len(codes) else None


def _arrows(parts: list[str]) -> tuple[tuple[str, ...], str] | None:
    """['en', 'zhja', 'zh'] (the name en2zhja2zh) -> (('en', 'ja'), 'zh'): the name is a run of source2target pairs
    written without separators (en2zh + ja2zh), so every part between two '2's is one pair's target followed by the
    next pair's source; every pair must have the same target."""
    if any(len(p) != (_CODE if i in (0, len(parts) - 1) else 2 * _CODE) for i, p in enumerate(parts)):
        return None
    sources = [parts[0]] + [p[_CODE:] for p in parts[1:-1]]
    targets = {p[:_CODE] for p in parts[1:-1]} | {parts[-1]}
    if len(targets) != 1 or _codes("".join(sources)) is None or _codes(next(iter(targets))) is None:
        return None
    target = targets.pop()
    return (tuple(sources), target) if target not in sources else None


def question_name(name: str) -> QuestionName | None:
    """Read a question file's name; None when the name is not one of a question file.

    The rule: letters only (zh, zhes, zhdeit) are the source languages, two letters each, translated into English
    (the released files' instruction is "Translate the input from <X> to English:"); letters joined by '2' are
    source2target pairs run together (en2zhja2zh = en2zh + ja2zh: en and ja into Chinese), valid only when every
    pair names the same target. Anything else (a code that is none of the 20 languages, a repeated code, pairs with
    different targets) is listed with unknown languages."""
    m = _QUESTION.match(name)
    if m is None:
        return None
    stem, langs = m.group("stem"), m.group("langs")
    if "2" not in langs:
        codes = _codes(langs)
        return QuestionName(stem, codes, "en") if codes is not None else QuestionName(stem, (), None)
    read = _arrows(langs.split("2"))
    return QuestionName(stem, *read) if read is not None else QuestionName(stem, (), None)


def file_kind(name: str) -> str | None:
    """test, train (a task's own training items, with answers) or question (question-translation pairs) from a data
    file's name; None for any other name."""
    if re.search(r"_question\.jsonl?$", name):
        return "question"
    if re.search(r"_test\.jsonl?$", name):
        return "test"
    if re.search(r"_train\.jsonl?$", name):
        return "train"
    return None

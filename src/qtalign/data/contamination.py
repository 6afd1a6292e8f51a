"""Guards of a build: pairs equal to (or sharing a text with) evaluation items, and pairs holding a task answer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from qtalign.data.pairs import Pair, norm, question_of, texts_from_rendered
from qtalign.data.ranges import ItemRange
from qtalign.data.readers import find_lang_file, read_dataset
from qtalign.errors import QtalignError
from qtalign.tasks import Task


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
                rendered.add(norm(task.render_item(lang, it.texts)))
    if not rendered:
        if skip is not None:
            raise QtalignError(f"{folder}: no {task.name} test items outside {skip} to check the pairs against")
        raise QtalignError(f"{folder}: no {task.name} test files found for --exclude")
    return rendered


def is_contaminated(pair: Pair, questions: set[str]) -> bool:
    """Whether either side of the pair equals an evaluation item's rendered question."""
    return norm(question_of(pair)) in questions or norm(pair.output) in questions


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
                texts.update(norm(t) for t in it.texts)
    return texts


def shares_text(task: Task, pair: Pair, texts: set[str]) -> bool:
    """Whether any field text of either side of the pair equals an evaluation item's field text."""
    if not texts:
        return False
    sides = ((pair.source_lang, question_of(pair)), (pair.target_lang, pair.output))
    return any(norm(t) in texts for lang, rendered in sides for t in texts_from_rendered(task, lang, rendered))


def label_words(task: Task) -> set[str]:
    """Every word that names a label of the task in any language (canonical, table words, aliases, variants)."""
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

"""Few-shot prompts per language: demonstrations chosen once per language, one shared prefix, one text per item."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qtalign.data.demos import choose_demos
from qtalign.data.readers import Dataset, Item
from qtalign.errors import QtalignError
from qtalign.tasks import Task


@dataclass(frozen=True)
class LangPrompts:
    lang: str
    label_words: tuple[str, ...]  # what the model chooses between, in canonical label order
    demos: tuple[Item, ...]
    prefix: str  # the demonstrations, shared by every item of the language
    items: tuple[Item, ...]  # the items to score (demonstrations excluded when drawn from the same pool)
    texts: tuple[str, ...]  # each item rendered, ending right after the answer's opening quote

    def prompt(self, i: int) -> str:
        return self.prefix + self.texts[i]


def parse_labels(value: str) -> str | tuple[str, ...]:
    """--labels: 'en', 'native', or a comma list of words."""
    if value in ("en", "native"):
        return value
    words = tuple(w.strip() for w in value.split(","))
    if len(words) < 2 or not all(words):
        raise QtalignError(f"--labels must be 'en', 'native' or a comma list of words, got {value!r}")
    return words


def build_prompts(
    task: Task,
    data: Dataset,
    langs: Sequence[str],
    *,
    shots: int | None = None,
    labels: str | Sequence[str] = "en",
    seed: int = 0,
    demo_data: Dataset | None = None,
    limit: int | None = None,
) -> dict[str, LangPrompts]:
    """Prompts for each language. Demonstrations come from demo_data when given, else from the language's own
    items, which are then not scored. limit keeps the first N remaining items per language.

    Demonstrations are parallel where the data is: they are chosen once in the reference language (English when
    it is among langs, else the first) and every language whose pool has the same item indices with the same
    labels uses those items, so all languages see the same demonstrations, translated (the paper's setup, and
    what makes pooled hidden states comparable across languages). Other languages get their own choice.
    """
    k = task.shots if shots is None else shots
    if k < 0:
        raise QtalignError(f"--shots must be >= 0, got {k}")
    source = data if demo_data is None else demo_data

    def pool_of(lang: str) -> list[Item]:
        return [it for it in source.items.get(lang, []) if it.label is not None]

    reference = "en" if "en" in langs else langs[0]
    ref_pool = pool_of(reference)
    shared = choose_demos(ref_pool, task.labels, k, seed) if k and ref_pool else []
    out: dict[str, LangPrompts] = {}
    for lang in langs:
        try:
            words = task.label_words(lang, labels)
        except ValueError as e:
            raise QtalignError(str(e)) from None
        items = [it for it in data.items[lang] if it.label is not None]
        pool = pool_of(lang)
        if k and not pool:
            raise QtalignError(f"no demonstration items for language {lang!r}")
        by_index = {it.index: it for it in pool}
        parallel = [by_index.get(d.index) for d in shared]
        if shared and all(p is not None and p.label == d.label for p, d in zip(parallel, shared)):
            demos = [p for p in parallel if p is not None]
        else:
            demos = choose_demos(pool, task.labels, k, seed)
        if demo_data is None:
            used = {d.index for d in demos}
            items = [it for it in items if it.index not in used]
        if limit is not None:
            items = items[:limit]
        if not items:
            raise QtalignError(f"{data.sources.get(lang, lang)}: no items left to score for language {lang!r}")
        word = dict(zip(task.labels, words))
        prefix = task.render_prefix(lang, [(d.texts, word[d.label]) for d in demos])  # type: ignore[index]
        texts = tuple(task.render_item(lang, it.texts) for it in items)
        out[lang] = LangPrompts(lang, words, tuple(demos), prefix, tuple(items), texts)
    return out

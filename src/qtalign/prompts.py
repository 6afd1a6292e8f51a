"""Few-shot prompts per language: demonstrations chosen once per language, one shared prefix, one text per item."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from qtalign.calibration import CONTENT_FREE_INPUTS
from qtalign.data.demonstrations import choose_demos
from qtalign.data.demonstrations_file import DemosFile
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
    native_words: tuple[str, ...] = ()  # the language's own label words, canonical order (for the logit lens)
    gold_table: Mapping[str, str] | None = None  # label -> the paper scripts' gold string (--paper-gold)
    content_free: tuple[str, ...] = ()  # calibration.CONTENT_FREE_INPUTS in every field, rendered like texts

    def prompt(self, i: int) -> str:
        return self.prefix + self.texts[i]

    def take(self, keep: Sequence[int]) -> LangPrompts:
        """The same prompts for the items at positions keep only."""
        return replace(self, items=tuple(self.items[k] for k in keep), texts=tuple(self.texts[k] for k in keep))


def prompt_rows(task_name: str, prompts: Mapping[str, LangPrompts]) -> Iterator[dict[str, object]]:
    """The prompts as `qtalign prompts` prints them: {task, lang, index, prompt}, languages in order, items in order."""
    for lang, lp in prompts.items():
        for i, it in enumerate(lp.items):
            yield {"task": task_name, "lang": lang, "index": it.index, "prompt": lp.prompt(i)}


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
    reference: Sequence[Item] | None = None,
    keep_demo_items: bool = False,
) -> dict[str, LangPrompts]:
    """Prompts for each language. Demonstrations come from demo_data when given, else from the language's own
    items, which are then not scored (unless keep_demo_items). limit keeps the first N remaining items per language.

    Demonstrations are parallel where the data is: they are chosen once in the reference language (the reference
    items when given, e.g. the English file read beside the data; else English when it is among langs, else the
    first) and every language whose file is parallel to the reference's (same number of items) shows the same
    items, translated, each with the reference item's label: a language's own label is never shown where it
    disagrees with the parallel English item (the released Norwegian SNLI file swaps neutral and contradiction).
    This is the paper's setup, and what makes pooled hidden states comparable across languages. Languages whose
    file is not parallel get their own choice.
    """
    k = task.shots if shots is None else shots
    if k < 0:
        raise QtalignError(f"--shots must be >= 0, got {k}")
    source = data if demo_data is None else demo_data

    def pool_of(lang: str) -> list[Item]:
        return [it for it in source.items.get(lang, []) if it.label is not None]

    if reference is None or demo_data is not None:
        ref_lang = "en" if "en" in langs else langs[0]
        reference = source.items.get(ref_lang, [])
    ref_pool = [it for it in reference if it.label is not None]
    shared = choose_demos(ref_pool, task.labels, k, seed) if k and ref_pool else []
    out: dict[str, LangPrompts] = {}
    for lang in langs:
        try:
            words = task.label_words(lang, labels)
            native = task.label_words(lang, "native")
        except ValueError as e:
            raise QtalignError(str(e)) from None
        items = [it for it in data.items[lang] if it.label is not None]
        pool = pool_of(lang)
        if k and not pool:
            raise QtalignError(f"no demonstration items for language {lang!r}")
        by_index = {it.index: it for it in pool}
        parallel = len(source.items.get(lang, [])) == len(reference)
        if shared and parallel and all(d.index in by_index for d in shared):
            demos = [replace(by_index[d.index], label=d.label) for d in shared]
        else:
            demos = choose_demos(pool, task.labels, k, seed)
        if demo_data is None and not keep_demo_items:
            used = {d.index for d in demos}
            items = [it for it in items if it.index not in used]
        if limit is not None:
            items = items[:limit]
        if not items:
            raise QtalignError(f"{data.sources.get(lang, lang)}: no items left to score for language {lang!r}")
        word = dict(zip(task.labels, words))
        prefix = task.render_prefix(lang, [(d.texts, word[d.label]) for d in demos])  # type: ignore[index]
        texts = tuple(task.render_item(lang, it.texts) for it in items)
        cf = tuple(task.render_item(lang, [x] * len(task.input_fields)) for x in CONTENT_FREE_INPUTS)
        out[lang] = LangPrompts(lang, words, tuple(demos), prefix, tuple(items), texts, native, content_free=cf)
    return out


def build_file_prompts(
    task: Task,
    data: Dataset,
    langs: Sequence[str],
    demos: DemosFile,
    *,
    labels: str | Sequence[str] = "en",
    limit: int | None = None,
    keep_demo_items: bool = False,
    gold: bool = False,
) -> dict[str, LangPrompts]:
    """Prompts with a demos file's fixed demonstrations, assembled byte for byte as the paper's scripts do:
    the file's demonstration lines (answers written as the chosen label words) + "\n" + each field after its cue,
    one per line, + "\n" + the answer cue. Data items equal to a demonstration (all fields, stripped) are not
    scored unless keep_demo_items (the paper scores them). gold: attach the paper's gold-string table.
    """
    out: dict[str, LangPrompts] = {}
    for lang in langs:
        ld = demos.lang(lang)
        try:
            own = task.label_words(lang, "native")
        except ValueError as e:
            raise QtalignError(str(e)) from None
        native = tuple(ld.label_words["native"].get(label) or w for label, w in zip(task.labels, own))
        if labels == "en":
            words = task.labels
        elif labels == "native":
            words = native
        else:
            try:
                words = task.label_words(lang, labels)
            except ValueError as e:
                raise QtalignError(str(e)) from None
        word = dict(zip(task.labels, words))
        key = lambda texts: tuple(t.strip() for t in texts)
        by_texts = {key(it.texts): it for it in data.items[lang]}
        demo_items = []
        for d in ld.items:
            match = by_texts.get(key(d.texts))
            demo_items.append(Item(lang, match.index if match else -1, d.texts, word[d.label], d.label, demos.path))
        used = {d.index for d in demo_items}
        items = [it for it in data.items[lang] if it.label is not None and (keep_demo_items or it.index not in used)]
        if limit is not None:
            items = items[:limit]
        if not items:
            raise QtalignError(f"{data.sources.get(lang, lang)}: no items left to score for language {lang!r}")
        prefix = ld.render_prefix(word) + "\n" if ld.items else ""
        texts = tuple(ld.render_item(task.input_fields, it.texts) for it in items)
        cf = tuple(ld.render_item(task.input_fields, [x] * len(task.input_fields)) for x in CONTENT_FREE_INPUTS)
        out[lang] = LangPrompts(lang, tuple(words), tuple(demo_items), prefix, tuple(items), texts, native,
                                ld.gold_table() if gold else None, cf)
    return out

"""Prompt building: parallel demonstrations across languages, label balance, exclusion from scoring."""

from __future__ import annotations

from qtalign.data.readers import Dataset, Item
from qtalign.prompts import build_prompts
from qtalign.tasks import get_task


def _dataset(labels_by_lang: dict[str, list[str]], n_fields: int = 1) -> Dataset:
    def texts(lang: str, i: int) -> tuple[str, ...]:
        return tuple(f"{lang} text {i} field {f}" + "x" * (i % 5) for f in range(n_fields))

    items = {
        lang: [Item(lang, i, texts(lang, i), lb, lb, f"{lang}.jsonl") for i, lb in enumerate(lbs)]
        for lang, lbs in labels_by_lang.items()
    }
    return Dataset(items=items, sources={lang: f"{lang}.jsonl" for lang in items})


def test_demonstrations_are_parallel_and_balanced() -> None:
    task = get_task("nli")
    labels = [task.labels[i % 3] for i in range(30)]
    data = _dataset({"de": labels, "en": labels, "zh": labels}, n_fields=2)
    prompts = build_prompts(task, data, ["de", "en", "zh"], seed=3)
    idx = {lang: [d.index for d in p.demos] for lang, p in prompts.items()}
    assert idx["de"] == idx["en"] == idx["zh"]
    assert sorted(d.label for d in prompts["en"].demos) == sorted(task.labels * 2)  # 6 shots, 2 per label
    for p in prompts.values():
        assert not {d.index for d in p.demos} & {it.index for it in p.items}  # demonstrations are not scored
        cue = task.lang(p.lang).cue
        assert p.prefix.count(f'{cue}: "') == 6 and p.texts[0].endswith(f'{cue}: "')


def test_parallel_language_whose_labels_disagree_shows_the_english_labels() -> None:
    """A parallel file with wrong labels (like the released Norwegian SNLI file) shows the English item's label on
    each demonstration, never its own; a file that is not parallel gets its own choice."""
    task = get_task("emotion")
    en = [task.labels[i % 2] for i in range(20)]
    swapped = [task.labels[(i + 1) % 2] for i in range(20)]
    prompts = build_prompts(task, _dataset({"en": en, "de": swapped, "fr": en[:14]}), ["en", "de", "fr"], seed=0)
    en_demos = [(d.index, d.label) for d in prompts["en"].demos]
    assert [(d.index, d.label) for d in prompts["de"].demos] == en_demos
    for d in prompts["de"].demos:
        assert f'Emotion: "{d.label}"' in prompts["de"].prefix and swapped[d.index] != d.label
    assert sorted(d.label for d in prompts["fr"].demos) == sorted(task.labels)  # own choice, still balanced


def test_reference_items_beside_the_data_fix_the_demonstrations() -> None:
    """The English items given as reference choose the demonstrations even when English is not evaluated, so a
    language's prompts do not depend on which other languages are listed."""
    task = get_task("emotion")
    en = [task.labels[i % 2] for i in range(20)]
    data = _dataset({"en": en, "de": en})
    alone = build_prompts(task, data, ["de"], seed=1, reference=data.items["en"])
    both = build_prompts(task, data, ["en", "de"], seed=1)
    assert alone["de"].prompt(0) == both["de"].prompt(0)


def test_keep_demo_items_scores_every_item() -> None:
    task = get_task("emotion")
    data = _dataset({"en": [task.labels[i % 2] for i in range(10)]})
    kept = build_prompts(task, data, ["en"], keep_demo_items=True)
    assert [it.index for it in kept["en"].items] == list(range(10))
    assert len(build_prompts(task, data, ["en"])["en"].items) == 8

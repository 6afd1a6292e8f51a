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


def test_language_whose_labels_disagree_gets_its_own_demonstrations() -> None:
    task = get_task("emotion")
    en = [task.labels[i % 2] for i in range(20)]
    swapped = [task.labels[(i + 1) % 2] for i in range(20)]
    prompts = build_prompts(task, _dataset({"en": en, "de": swapped}), ["en", "de"], seed=0)
    en_demos = [(d.index, d.label) for d in prompts["en"].demos]
    de_demos = [(d.index, d.label) for d in prompts["de"].demos]
    assert sorted(lb for _, lb in de_demos) == sorted(task.labels)
    assert [i for i, _ in en_demos] != [i for i, _ in de_demos] or en_demos != de_demos

"""The shipped demo data: parallel sentiment sample, question-translation texts and parallel general sentences."""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from qtalign.data.build import build_pairs
from qtalign.data.readers import data_langs, demo_file, read_dataset
from qtalign.errors import QtalignError
from qtalign.languages import LANGUAGES
from qtalign.tasks import get_task

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "src" / "qtalign" / "demo"
SENTIMENT = DEMO / "sentiment"
QT = DEMO / "qt"
PARALLEL = DEMO / "parallel.jsonl"
EMOTION = get_task("emotion")
LANGS = ("en", "zh", "es", "de", "fr", "it", "nl", "ru", "ja", "hi", "th", "sw")
QT_LANGS = ("en", "zh", "es")
N_ITEMS = 80
UNSPACED = {"zh", "ja", "th"}  # scripts written without spaces: label words are matched as substrings


def rows(path: Path) -> list[dict[str, Any]]:
    """Every line of a JSONL file as an object (no blank lines allowed)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "", f"{path}: must end with one newline"
    out = []
    for n, line in enumerate(lines[:-1], 1):
        rec = json.loads(line)
        assert isinstance(rec, dict), f"{path}: line {n}"
        out.append(rec)
    return out


def norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def label_words(lang: str, variants: bool = True) -> set[str]:
    """The emotion task's label words for a language (canonical names, table words, and variants)."""
    entry = EMOTION.lang(lang)
    words = set(EMOTION.labels) | set(entry.labels.values())
    if variants:
        words |= {w for ws in entry.variants.values() for w in ws}
    return words


def label_hits(lang: str, text: str, variants: bool = True) -> list[str]:
    hits = []
    for w in label_words(lang, variants):
        if lang in UNSPACED:
            found = w in text
        else:
            found = re.search(rf"(?<!\w){re.escape(w)}(?!\w)", text, re.IGNORECASE) is not None
        if found:
            hits.append(w)
    return hits


def sentiment(lang: str) -> list[dict[str, Any]]:
    return rows(SENTIMENT / f"{lang}.jsonl")


def eval_texts() -> set[str]:
    return {norm(r["input"]) for lang in LANGS for r in sentiment(lang)}


# ---- sentiment sample -----------------------------------------------------------------------------------------
def test_sentiment_languages_include_non_latin_scripts() -> None:
    assert {p.stem for p in SENTIMENT.glob("*.jsonl")} == set(LANGS)
    assert data_langs(EMOTION, "demo") == tuple(lang for lang in EMOTION.table if lang in LANGS)
    assert {LANGUAGES[lang].script for lang in LANGS} >= {"Latin", "Han", "Cyrillic", "Devanagari", "Thai"}


@pytest.mark.parametrize("lang", LANGS)
def test_sentiment_file_counts_balance_and_fields(lang: str) -> None:
    recs = sentiment(lang)
    assert len(recs) == N_ITEMS
    for i, r in enumerate(recs):
        assert set(r) == {"input", "answer"}, f"{lang}: item {i}"
        assert isinstance(r["input"], str) and r["input"].strip() == r["input"] and r["input"], f"{lang}: item {i}"
        assert r["answer"] in ("positive", "negative"), f"{lang}: item {i}"
    assert Counter(r["answer"] for r in recs) == {"positive": N_ITEMS // 2, "negative": N_ITEMS // 2}
    assert len({r["input"] for r in recs}) == N_ITEMS


def test_sentiment_labels_are_interleaved_and_parallel() -> None:
    ref = [r["answer"] for r in sentiment("en")]
    for lang in LANGS:
        assert [r["answer"] for r in sentiment(lang)] == ref, lang
    halves = [Counter(ref[:40]), Counter(ref[40:])]
    assert all(h["positive"] >= 10 and h["negative"] >= 10 for h in halves)
    longest_run = max(len(m.group(0)) for m in re.finditer(r"(P+|N+)", "".join(a[0].upper() for a in ref)))
    assert longest_run <= 6


@pytest.mark.parametrize("lang", LANGS)
def test_sentiment_texts_avoid_label_words(lang: str) -> None:
    # Thai variants (บวก, ลบ) are syllables inside ordinary words (อัลบั้ม "album"), so only its table words count.
    for i, r in enumerate(sentiment(lang)):
        assert not label_hits(lang, r["input"], variants=lang != "th"), f"{lang}: item {i}: {r['input']}"


def test_sentiment_reviews_are_short() -> None:
    words = [len(r["input"].split()) for r in sentiment("en")]
    assert max(words) <= 30 and sum(words) / len(words) <= 20


def test_data_demo_reads_every_language_cleanly() -> None:
    ds = read_dataset(EMOTION, "demo", LANGS)
    assert ds.problems == []
    for lang in LANGS:
        assert len(ds.items[lang]) == N_ITEMS
        assert Counter(it.label for it in ds.items[lang]) == {"positive": 40, "negative": 40}
        assert ds.sources[lang] == str(SENTIMENT / f"{lang}.jsonl")


def test_data_demo_is_emotion_only() -> None:
    assert demo_file(EMOTION) == SENTIMENT
    with pytest.raises(QtalignError, match="emotion task only, not 'nli'"):
        read_dataset(get_task("nli"), "demo", ["en"])


# ---- question-translation texts -------------------------------------------------------------------------------
def test_qt_files_are_parallel_unlabelled_texts() -> None:
    per_lang = {lang: rows(QT / f"emotion_{lang}_train.jsonl") for lang in QT_LANGS}
    assert {p.name for p in QT.iterdir()} == {f"emotion_{lang}_train.jsonl" for lang in QT_LANGS}
    counts = {lang: len(recs) for lang, recs in per_lang.items()}
    assert len(set(counts.values())) == 1 and counts["en"] >= 240, counts
    for lang, recs in per_lang.items():
        for i, r in enumerate(recs):
            assert set(r) == {"input"}, f"{lang}: item {i}: only 'input', no labels"
            assert isinstance(r["input"], str) and r["input"].strip(), f"{lang}: item {i}"
        assert len({r["input"] for r in recs}) == len(recs), lang


def test_qt_texts_are_disjoint_from_the_evaluation_sample_and_label_free() -> None:
    evaluation = eval_texts()
    for lang in QT_LANGS:
        for i, r in enumerate(rows(QT / f"emotion_{lang}_train.jsonl")):
            assert norm(r["input"]) not in evaluation, f"{lang}: item {i} is an evaluation text"
            assert not label_hits(lang, r["input"]), f"{lang}: item {i}: {r['input']}"


def test_qt_folder_builds_zh_es_to_en_pairs() -> None:
    report = build_pairs(EMOTION, [QT], ["zh", "es"], "en", per_lang=240, exclude=SENTIMENT)
    assert report.counts == {"zh": 240, "es": 240}
    assert report.contaminated == {"zh": 0, "es": 0}
    assert len(report.pairs) >= 400
    first = next(p for p in report.pairs if p.source_lang == "zh")
    assert first.input.endswith("\nTranslate the input from Chinese to English:\n")
    assert first.output.endswith('Emotion: "')


# ---- parallel general sentences -------------------------------------------------------------------------------
def test_parallel_demo_control_matches_the_demo_mix() -> None:
    ctrl = build_pairs(EMOTION, [QT], ["zh", "es"], "en", per_lang=240, exclude=SENTIMENT, control="parallel",
                       parallel="demo")
    assert ctrl.counts == {"zh": 240, "es": 240}
    diff = ctrl.length_profile["difference"]
    assert max(abs(d[side]["mean"]) for d in diff.values() for side in ("input_eq", "output_eq")) < 0.05


def test_parallel_file_is_complete_and_disjoint() -> None:
    recs = rows(PARALLEL)
    n_qt = len(rows(QT / "emotion_en_train.jsonl"))
    assert len(recs) >= n_qt  # the parallel control needs at least one line per pair of the demo mix
    evaluation = eval_texts()
    qt_texts = {norm(r["input"]) for lang in QT_LANGS for r in rows(QT / f"emotion_{lang}_train.jsonl")}
    langs = set(recs[0])
    assert langs >= {"en", "zh", "es"} and langs <= set(LANGUAGES)
    for n, r in enumerate(recs, 1):
        assert set(r) == langs, f"line {n}: every line has the same languages"
        for lang, text in r.items():
            assert isinstance(text, str) and text.strip() == text and text, f"line {n}: {lang}"
            assert norm(text) not in evaluation | qt_texts, f"line {n}: {lang}"
            assert not label_hits(lang, text, variants=lang != "th"), f"line {n}: {lang}: {text}"
    assert len({r["en"] for r in recs}) == len(recs)


# ---- packaging ------------------------------------------------------------------------------------------------
def test_every_demo_file_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    globs = config["tool"]["setuptools"]["package-data"]["qtalign"]
    files = [p.relative_to(DEMO.parent).as_posix() for p in DEMO.rglob("*.jsonl")]
    assert len(files) == len(LANGS) + len(QT_LANGS) + 1
    patterns = [re.escape(g).replace(r"\*", "[^/]*") for g in globs]  # setuptools: "*" stays inside a folder
    for f in files:
        assert any(re.fullmatch(p, f) for p in patterns), f"{f} is not shipped in a wheel"

"""Alignment-vs-gain: measures read from lens/PCA summaries, per-language changes, correlation with its interval."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from qtalign.metrics import correlate
from qtalign.report.alignment_gain import alignment_changes, gain_table, lens_alignment, pca_alignment


def _write(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_pca_alignment_uses_the_last_third_of_layers_towards_english(tmp_path: Path) -> None:
    rows = []
    for layer in range(9):
        for a, b in (("de", "en"), ("en", "de"), ("zh", "en"), ("de", "zh")):
            rows.append({"layer": layer, "lang_a": a, "lang_b": b, "n": 5, "cos": layer / 10,
                         "cos_other": 0, "retrieval": 1.0 if a == "de" else 0.5, "retrieval_centered": 0})
    _write(tmp_path / "alignment.csv", rows)
    got = pca_alignment(tmp_path)
    assert set(got) == {"de", "zh"}  # queries towards English only
    assert math.isclose(got["de"]["cos"], np.mean([0.6, 0.7, 0.8]))
    assert got["zh"]["retrieval"] == 0.5
    assert pca_alignment(tmp_path / "missing") == {}


def test_lens_alignment_reads_p_en(tmp_path: Path) -> None:
    rows = [{"lang": lang, "layer": layer, "quantity": q, "n": 3, "mean": layer * (2 if lang == "zh" else 1) / 100,
             "lo": 0, "hi": 1} for lang in ("en", "zh") for layer in range(6) for q in ("p_en", "entropy")]
    _write(tmp_path / "lens_layers.csv", rows)
    got = lens_alignment(tmp_path)
    assert math.isclose(got["en"]["p_en"], 0.045) and math.isclose(got["zh"]["p_en"], 0.09)


def test_correlation_and_its_interval() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=19)
    c = correlate(x, 2 * x + 1, "cos")
    assert math.isclose(c.r, 1.0) and c.lo > 0.99
    noise = correlate(x, rng.normal(size=19), "cos")
    assert noise.lo <= noise.r <= noise.hi
    assert math.isnan(correlate([1, 2], [3, 4]).r)  # too few languages
    assert math.isnan(correlate([1, 1, 1], [3, 4, 5]).r)  # no spread


def test_gain_table_pairs_languages() -> None:
    base = {"de": {"cos": 0.5, "retrieval": 0.5}, "zh": {"cos": 0.4, "retrieval": 0.2}, "sw": {"cos": 0.1,
                                                                                               "retrieval": 0.1}}
    tuned = {"de": {"cos": 0.6, "retrieval": 0.5}, "zh": {"cos": 0.6, "retrieval": 0.4}, "sw": {"cos": 0.4,
                                                                                               "retrieval": 0.3}}
    ch = alignment_changes(base, tuned)
    assert math.isclose(ch["sw"]["cos"], 0.3)
    langs, cors = gain_table(ch, {"de": 0.01, "zh": 0.02, "sw": 0.03, "fr": 0.5})
    assert langs == ["de", "zh", "sw"]
    by = {c.measure: c for c in cors}
    assert by["cos"].n == 3 and by["cos"].r > 0.9
    assert by["p_en"].n == 0 and math.isnan(by["p_en"].r)


def test_report_section_from_a_study(tmp_path: Path) -> None:
    """The report sets each analysed adapter's per-language alignment change beside its accuracy change."""
    from fakeruns import STUDY_LANGS, write_study

    from qtalign.report import build_report

    analyses = []
    for name, mix, seed, shift in (("base", None, None, 0.0), ("t1", "zh_es", 1, 0.1)):
        rows = [{"layer": layer, "lang_a": a, "lang_b": "en", "n": 5, "cos": 0.5 + shift * (k + 1) / 6,
                 "cos_other": 0.1, "retrieval": 0.5, "retrieval_centered": 0.5}
                for layer in range(6) for k, a in enumerate(STUDY_LANGS) if a != "en"]
        _write(tmp_path / "study" / "pca" / name / "alignment.csv", rows)
        analyses.append({"id": f"pca-{name}", "kind": "pca", "model": "tiny", "mix": mix, "train_seed": seed,
                         "run": f"pca/{name}"})
    study = write_study(tmp_path / "study", n=30, analyses=analyses)
    md = build_report(study, n_boot=200)["md"].read_text(encoding="utf-8")
    assert "Does alignment predict the gain?" in md
    section = md.split("Does alignment predict the gain?")[1]
    assert "zh_es (seed 1)" in section and "Pearson r" in section
    assert "| sw |" in section and "| en |" not in section.split("Pearson")[0]  # English is the anchor

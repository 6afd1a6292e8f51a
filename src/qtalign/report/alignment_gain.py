"""Does alignment predict the gain? Per language, the change of the analyses' alignment measures beside the accuracy change."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from qtalign.metrics import Correlation, correlate

REF = "en"
TOP_FRACTION = 1 / 3  # alignment measures are averaged over the last third of the layers
MEASURES: dict[str, str] = {
    "cos": "PCA: cosine of parallel items with English",
    "retrieval": "PCA: English translation retrieved as nearest neighbour",
    "p_en": "lens: probability of the correct label's English tokens",
}


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _top_layers(layers: Sequence[int], fraction: float = TOP_FRACTION) -> set[int]:
    ordered = sorted(set(layers))
    k = max(1, round(len(ordered) * fraction))
    return set(ordered[-k:])


def pca_alignment(run: Path, ref: str = REF) -> dict[str, dict[str, float]]:
    """lang -> {cos, retrieval} towards ref (query lang -> ref), mean over the last third of the layers, from a
    `qtalign pca` folder's alignment.csv; {} when it has none."""
    rows = [r for r in _rows(run / "alignment.csv") if r.get("lang_b") == ref and r.get("lang_a") != ref]
    if not rows:
        return {}
    top = _top_layers([int(r["layer"]) for r in rows])
    out: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        if int(r["layer"]) in top:
            d = out.setdefault(r["lang_a"], {"cos": [], "retrieval": []})
            d["cos"].append(float(r["cos"]))
            d["retrieval"].append(float(r["retrieval"]))
    return {lang: {k: float(np.mean(v)) for k, v in d.items()} for lang, d in out.items()}


def lens_alignment(run: Path) -> dict[str, dict[str, float]]:
    """lang -> {p_en}: mean over items of the correct label's English-token probability, averaged over the last third
    of the layers, from a `qtalign lens` folder's lens_layers.csv; {} when it has none."""
    rows = [r for r in _rows(run / "lens_layers.csv") if r.get("quantity") == "p_en"]
    if not rows:
        return {}
    top = _top_layers([int(r["layer"]) for r in rows])
    out: dict[str, list[float]] = {}
    for r in rows:
        if int(r["layer"]) in top:
            out.setdefault(r["lang"], []).append(float(r["mean"]))
    return {lang: {"p_en": float(np.mean(v))} for lang, v in out.items()}


def alignment_changes(base: Mapping[str, Mapping[str, float]], tuned: Mapping[str, Mapping[str, float]]
                      ) -> dict[str, dict[str, float]]:
    """lang -> {measure: tuned - base} for the languages and measures both have."""
    out: dict[str, dict[str, float]] = {}
    for lang in base:
        if lang in tuned:
            out[lang] = {m: float(tuned[lang][m] - base[lang][m]) for m in base[lang] if m in tuned[lang]}
    return out


def gain_table(align_change: Mapping[str, Mapping[str, float]], acc_change: Mapping[str, float],
               n_boot: int = 2000, seed: int = 0) -> tuple[list[str], list[Correlation]]:
    """The languages with both an alignment change and an accuracy change, and per measure the correlation of the
    two across those languages."""
    langs = [lang for lang in acc_change if lang in align_change]
    cors = []
    for m in MEASURES:
        have = [lang for lang in langs if m in align_change[lang]]
        cors.append(correlate([align_change[lang][m] for lang in have], [acc_change[lang] for lang in have], m,
                              n_boot, seed))
    return langs, cors

"""Lens and PCA figures (PNG + SVG) from saved run folders: lens_layers.csv, pca.npz, pca_corr.csv."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from qtalign.errors import QtalignError

LENS_STYLE = {  # quantity -> (colour, legend text)
    "p_en": ("#1f77b4", "correct label, English"),
    "p_native": ("#d62728", "correct label, input language"),
    "p_en_all": ("#6baed6", "any label, English"),
    "p_native_all": ("#fc9272", "any label, input language"),
}
RUN_STYLES = ("-", "--", ":")
LANG_COLOURS = plt.get_cmap("tab10").colors + plt.get_cmap("tab20b").colors[::2]


def run_name(folder: Path) -> str:
    """A run's name in figures from its record (lens/pca settings.json or eval run.json): its --label, else the
    model's short name plus the adapter's training mix; the folder name when there is no record."""
    from qtalign.store import run_label

    for record in ("settings.json", "run.json"):
        try:
            s = json.loads((folder / record).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(s, dict):
            return run_label(s.get("model"), s.get("adapter"), s.get("label"))
    return folder.name


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise QtalignError(f"{path}: not found (is this a finished lens/pca run folder?)")
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _save(fig: plt.Figure, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    fig.savefig(paths[0], dpi=130, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def _lens_table(run: Path) -> dict[tuple[str, str], np.ndarray]:
    """(lang, quantity) -> [layers, 3] of mean, lo, hi."""
    rows: dict[tuple[str, str], list[tuple[int, float, float, float]]] = {}
    for r in _read_csv(run / "lens_layers.csv"):
        rows.setdefault((r["lang"], r["quantity"]), []).append(
            (int(r["layer"]), float(r["mean"]), float(r["lo"]), float(r["hi"])))
    return {k: np.array([v[1:] for v in sorted(vs)]) for k, vs in rows.items()}


def lens_figure(runs: Sequence[tuple[str, Path]], stem: Path) -> list[Path]:
    """Per language: label-token probability curves with 95% bands over layers, entropy strip below.
    runs: (name, folder) pairs; the first is drawn solid, the next dashed (e.g. base vs tuned)."""
    tables = [(name, _lens_table(path)) for name, path in runs]
    langs = list(dict.fromkeys(lang for _, t in tables for lang, _ in t))
    fig, axes = plt.subplots(2, len(langs), figsize=(4.2 * len(langs), 5.2), squeeze=False, sharex="col",
                             gridspec_kw={"height_ratios": [3, 1], "hspace": 0.08})
    for col, lang in enumerate(langs):
        top, bottom = axes[0, col], axes[1, col]
        for run_i, (name, t) in enumerate(tables):
            style = RUN_STYLES[run_i % len(RUN_STYLES)]
            for q, (colour, _) in reversed(LENS_STYLE.items()):  # English drawn last: on top where identical (en)
                if (lang, q) not in t:
                    continue
                a = t[lang, q]
                x = np.arange(len(a))
                top.plot(x, a[:, 0], style, color=colour, lw=1.6)
                top.fill_between(x, a[:, 1], a[:, 2], color=colour, alpha=0.18 if run_i == 0 else 0.10, lw=0)
            if (lang, "entropy") in t:
                a = t[lang, "entropy"]
                x = np.arange(len(a))
                bottom.plot(x, a[:, 0], style, color="0.25", lw=1.4)
                bottom.fill_between(x, a[:, 1], a[:, 2], color="0.5", alpha=0.25 if run_i == 0 else 0.12, lw=0)
        top.set_title(lang)
        top.set_ylim(-0.02, 1.02)
        top.grid(alpha=0.3)
        bottom.grid(alpha=0.3)
        bottom.set_xlabel("layer (0 = embeddings)")
        if col == 0:
            top.set_ylabel("probability at last position")
            bottom.set_ylabel("entropy (nats)")
    handles = [plt.Line2D([], [], color=c, lw=2, label=label) for c, label in LENS_STYLE.values()]
    if len(tables) > 1:
        handles += [plt.Line2D([], [], color="0.2", ls=RUN_STYLES[i % 3], label=name) for i, (name, _) in enumerate(tables)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), frameon=False,
               bbox_to_anchor=(0.5, -0.02 - 0.04 * (len(handles) > 6)))
    fig.suptitle("Logit lens: " + " vs ".join(name for name, _ in tables) + " (mean, 95% bootstrap band)", y=0.99)
    fig.subplots_adjust(bottom=0.2)
    return _save(fig, stem)


def _pca_data(run: Path) -> dict[str, np.ndarray]:
    path = run / "pca.npz"
    if not path.is_file():
        raise QtalignError(f"{path}: not found (is this a finished pca run folder?)")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def pca_scatter_figure(runs: Sequence[tuple[str, Path]], stem: Path) -> list[Path]:
    """Rows: runs; columns: layers; PC1 vs PC2 of every item, coloured by language."""
    data = [(name, _pca_data(path)) for name, path in runs]
    n_layers = max(len(d["layers"]) for _, d in data)
    fig, axes = plt.subplots(len(data), n_layers, figsize=(3.4 * n_layers, 3.3 * len(data)), squeeze=False)
    langs = list(dict.fromkeys(str(x) for _, d in data for x in d["lang"]))
    for row, (name, d) in enumerate(data):
        for col, layer in enumerate(d["layers"]):
            ax = axes[row, col]
            scores, ev = d["scores"][col], d["explained"][col]  # [N, 2], [2]
            for li, lang in enumerate(langs):
                sel = d["lang"] == lang
                if sel.any():
                    ax.scatter(scores[sel, 0], scores[sel, 1], s=10, alpha=0.7, color=LANG_COLOURS[li % 20], label=lang)
            ax.set_title(f"{name}: layer {int(layer)}", fontsize=10)
            ax.set_xlabel(f"PC1 ({ev[0]:.0%})")
            ax.set_ylabel(f"PC2 ({ev[1]:.0%})")
            ax.tick_params(labelsize=7)
        for col in range(len(d["layers"]), n_layers):
            axes[row, col].axis("off")
    handles = [plt.Line2D([], [], marker="o", ls="", color=LANG_COLOURS[i % 20], label=lang) for i, lang in enumerate(langs)]
    fig.legend(handles=handles, loc="center right", frameon=False, title="language")
    fig.tight_layout(rect=(0, 0, 0.93, 1))
    return _save(fig, stem)


def pca_corr_figure(runs: Sequence[tuple[str, Path]], stem: Path) -> list[Path]:
    """Rows: runs; columns: layers; heatmap of the PC1 Pearson r between languages on parallel items."""
    tables = []
    for name, path in runs:
        by_layer: dict[int, dict[tuple[str, str], float]] = {}
        for r in _read_csv(path / "pca_corr.csv"):
            by_layer.setdefault(int(r["layer"]), {})[r["lang_a"], r["lang_b"]] = float(r["r"])
        tables.append((name, by_layer))
    langs = list(dict.fromkeys(x for _, t in tables for pairs in t.values() for pair in pairs for x in pair))
    n_layers = max(len(t) for _, t in tables)
    n = len(langs)
    size = max(2.6, 0.45 * n + 1.2)
    fig, axes = plt.subplots(len(tables), n_layers, figsize=(size * n_layers + 1, size * len(tables)), squeeze=False)
    im = None
    for row, (name, t) in enumerate(tables):
        for col, layer in enumerate(sorted(t)):
            m = np.eye(n)
            for (a, b), r in t[layer].items():
                m[langs.index(a), langs.index(b)] = m[langs.index(b), langs.index(a)] = r
            ax = axes[row, col]
            im = ax.imshow(m, vmin=-1, vmax=1, cmap="RdBu_r")
            ax.set_xticks(range(n), langs, fontsize=8)
            ax.set_yticks(range(n), langs, fontsize=8)
            ax.set_title(f"{name}: layer {layer}", fontsize=10)
            if n <= 8:
                for i in range(n):
                    for j in range(n):
                        ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7,
                                color="white" if abs(m[i, j]) > 0.6 else "black")
        for col in range(len(t), n_layers):
            axes[row, col].axis("off")
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="Pearson r of PC1 (parallel items)")
    return _save(fig, stem)

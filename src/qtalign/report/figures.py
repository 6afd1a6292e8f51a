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
            bottom.set_ylabel(f"entropy ({_entropy_unit(runs[0][1])})")
    handles = [plt.Line2D([], [], color=c, lw=2, label=label) for c, label in LENS_STYLE.values()]
    if len(tables) > 1:
        handles += [plt.Line2D([], [], color="0.2", ls=RUN_STYLES[i % 3], label=name) for i, (name, _) in enumerate(tables)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), frameon=False,
               bbox_to_anchor=(0.5, -0.02 - 0.04 * (len(handles) > 6)))
    fig.suptitle("Logit lens: " + " vs ".join(name for name, _ in tables) + " (mean, 95% bootstrap band)", y=0.99)
    fig.subplots_adjust(bottom=0.2)
    return _save(fig, stem)


def _entropy_unit(run: Path) -> str:
    """The entropy unit a lens run recorded in its settings.json (nats when it records none)."""
    path = run / "settings.json"
    if not path.is_file():
        return "nats"
    return str(json.loads(path.read_text(encoding="utf-8")).get("entropy_unit") or "nats")


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


# ---- study report figures: drawn from plain dicts that compare/report computed (no files read here) -----------
SERIES_COLOURS = plt.get_cmap("tab10").colors


def gains_figure(series: Sequence[tuple[str, dict[str, dict]]], langs: Sequence[str], modes: Sequence[str],
                 stem: Path) -> list[Path]:
    """Per scoring mode (rows): each series' paired difference from base per language and on the mean, with its
    95% interval; filled markers are significant after Holm correction.
    series: (name, {mode: compare_pair() output}); a mode a series lacks is skipped."""
    xs = [*langs, "mean"]
    fig, axes = plt.subplots(len(modes), 1, figsize=(max(6.0, 0.55 * len(xs) * max(1, len(series)) ** 0.5 + 2),
                                                      2.8 * len(modes)), squeeze=False, sharex=True)
    width = 0.7 / max(1, len(series))
    for row, mode in enumerate(modes):
        ax = axes[row, 0]
        ax.axhline(0, color="0.4", lw=0.8)
        for k, (name, by_mode) in enumerate(series):
            s = by_mode.get(mode)
            if s is None:
                continue
            colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
            entries = [s["languages"][lang] for lang in langs] + [s["mean"]]
            x = np.arange(len(xs)) - 0.35 + width * (k + 0.5)
            y = np.array([100 * e["diff"] for e in entries])
            lo = np.array([100 * e["ci95"][0] for e in entries])
            hi = np.array([100 * e["ci95"][1] for e in entries])
            ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt="none", ecolor=colour, elinewidth=1.2, capsize=2)
            sig = np.array([bool(e.get("significant", e.get("excludes_zero", False))) for e in entries])
            ax.scatter(x[sig], y[sig], color=colour, s=28, zorder=3)
            ax.scatter(x[~sig], y[~sig], facecolor="white", edgecolor=colour, s=28, zorder=3)
        ax.set_ylabel("Δ accuracy (points)")
        ax.set_title("raw" if mode == "raw" else f"calibrated ({mode})", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.axvline(len(langs) - 0.5, color="0.7", lw=0.8, ls=":")
    axes[-1, 0].set_xticks(range(len(xs)), xs)
    handles = [plt.Line2D([], [], marker="o", ls="", color=SERIES_COLOURS[k % len(SERIES_COLOURS)], label=name)
               for k, (name, _) in enumerate(series)]
    handles.append(plt.Line2D([], [], marker="o", ls="", markerfacecolor="white", markeredgecolor="0.3",
                              label="not significant (Holm) / interval covers 0"))
    fig.legend(handles=handles, loc="upper center", ncol=min(4, len(handles)), frameon=False,
               bbox_to_anchor=(0.5, 1.02))
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return _save(fig, stem)


def prior_shift_figure(series: Sequence[tuple[str, dict[str, dict[str, float]]]], langs: Sequence[str],
                       labels: Sequence[str], stem: Path) -> list[Path]:
    """Change of each label's predicted share (points) per language and series; with two labels only the first
    is drawn (the second is its mirror). series: (name, {lang: {label: change}})."""
    shown = list(labels[:1]) if len(labels) == 2 else list(labels)
    fig, axes = plt.subplots(len(shown), 1, figsize=(max(6.0, 0.5 * len(langs) + 2), 2.6 * len(shown)),
                             squeeze=False, sharex=True)
    width = 0.8 / max(1, len(series))
    for row, label in enumerate(shown):
        ax = axes[row, 0]
        ax.axhline(0, color="0.4", lw=0.8)
        for k, (name, by_lang) in enumerate(series):
            x = np.arange(len(langs)) - 0.4 + width * (k + 0.5)
            ax.bar(x, [100 * by_lang[lang][label] for lang in langs], width, color=SERIES_COLOURS[k % 10],
                   label=name if row == 0 else None)
        ax.set_ylabel(f"Δ share '{label}' (points)")
        ax.grid(axis="y", alpha=0.3)
    axes[-1, 0].set_xticks(range(len(langs)), langs)
    if series:
        fig.legend(loc="upper center", ncol=min(4, len(series)), frameon=False, bbox_to_anchor=(0.5, 1.02))
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return _save(fig, stem)


def loss_figure(runs: Sequence[tuple[str, Sequence[dict], Sequence[dict]]], stem: Path) -> list[Path]:
    """Training loss per optimizer step (left) and validation loss (right), one colour per run.
    runs: (name, train_log rows {step, loss}, val_log rows {step, val_loss})."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    for k, (name, train, val) in enumerate(runs):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        if train:
            left.plot([r["step"] for r in train], [r["loss"] for r in train], color=colour, lw=1, label=name)
        if val:
            right.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", color=colour, ms=3, label=name)
    for ax, title in ((left, "training loss"), (right, "validation loss")):
        ax.set_xlabel("optimizer step")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    left.set_ylabel("loss (output tokens)")
    if runs:
        left.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return _save(fig, stem)


def alignment_figure(runs: Sequence[tuple[str, Path]], stem: Path) -> list[Path]:
    """From each pca run's alignment.csv: per layer, the mean over language pairs of the parallel-item cosine
    (and the non-parallel baseline) and of the centred nearest-neighbour retrieval accuracy."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for k, (name, path) in enumerate(runs):
        rows = _read_csv(path / "alignment.csv")
        by_layer: dict[int, list[dict[str, str]]] = {}
        for r in rows:
            by_layer.setdefault(int(r["layer"]), []).append(r)
        layers = sorted(by_layer)

        def mean(key: str, by_layer: dict[int, list[dict[str, str]]] = by_layer) -> list[float]:
            return [float(np.mean([float(r[key]) for r in by_layer[la]])) for la in sorted(by_layer)]

        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        left.plot(layers, mean("cos"), "-", color=colour, label=f"{name}: parallel")
        left.plot(layers, mean("cos_other"), ":", color=colour, label=f"{name}: other items")
        right.plot(layers, mean("retrieval_centered"), "-", color=colour, label=name)
    left.set_ylabel("mean cosine")
    right.set_ylabel("retrieval of the translation (centred)")
    right.set_ylim(-0.02, 1.02)
    for ax in (left, right):
        ax.set_xlabel("layer (0 = embeddings)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return _save(fig, stem)

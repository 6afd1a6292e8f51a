"""Study report figures (PNG + SVG): gains, prior shift and loss from plain dicts; alignment from pca runs' CSV."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from qtalign.figures.common import SERIES_COLOURS, read_csv, save_figure


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
    return save_figure(fig, stem)


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
    return save_figure(fig, stem)


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
    return save_figure(fig, stem)


def alignment_figure(runs: Sequence[tuple[str, Path]], stem: Path) -> list[Path]:
    """From each pca run's alignment.csv: per layer, the mean over language pairs of the parallel-item cosine
    (and the non-parallel baseline) and of the centred nearest-neighbour retrieval accuracy."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for k, (name, path) in enumerate(runs):
        rows = read_csv(path / "alignment.csv")
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
    return save_figure(fig, stem)

"""The findings figure: each arm's change from base per language, high- and low-resource languages apart, seen
languages filled (PNG + SVG)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from qtalign.figures.common import SERIES_COLOURS, save_figure

Series = Sequence[tuple[str, Mapping[str, float], Sequence[str]]]  # (arm, {lang: change}, the arm's languages)


def _style(k: int) -> tuple[str, str]:
    """(colour, marker) of the k-th arm: ten colours, then the next marker shape."""
    return SERIES_COLOURS[k % len(SERIES_COLOURS)], ("o", "s", "^", "D")[(k // len(SERIES_COLOURS)) % 4]


def resource_gains_figure(by_mode: Mapping[str, Series], high: Sequence[str], low: Sequence[str],
                          stem: Path) -> list[Path]:
    """One panel per scoring mode: per language (high-resource, then low-resource), each arm's change from base
    (fraction; drawn in points) as a dot, filled where the language is in the arm's training pairs; a black bar per
    language at the mean over arms, and a dashed line per resource group at the mean over its languages and arms."""
    modes = [m for m, series in by_mode.items() if series]
    langs = [*high, *low]
    fig, axes = plt.subplots(max(1, len(modes)), 1, figsize=(max(7.0, 0.5 * len(langs) + 2.5),
                                                             3.0 * max(1, len(modes))), squeeze=False, sharex=True)
    names: list[str] = []
    for row, mode in enumerate(modes):
        ax = axes[row, 0]
        ax.axhline(0, color="0.4", lw=0.8)
        series = by_mode[mode]
        for k, (name, per_lang, seen) in enumerate(series):
            if name not in names:
                names.append(name)
            colour, marker = _style(names.index(name))
            offset = (k - (len(series) - 1) / 2) * 0.6 / max(1, len(series))
            for j, lang in enumerate(langs):
                if lang not in per_lang:
                    continue
                filled = lang in seen
                ax.scatter(j + offset, 100 * per_lang[lang], s=18, zorder=3, marker=marker,
                           color=colour if filled else "white", edgecolor=colour, linewidth=1.0)
        for j, lang in enumerate(langs):
            vals = [100 * p[lang] for _, p, _ in series if lang in p]
            if vals:
                ax.hlines(np.mean(vals), j - 0.35, j + 0.35, color="black", lw=1.6, zorder=4)
        for group, start in ((high, 0), (low, len(high))):
            vals = [100 * p[lang] for _, p, _ in series for lang in group if lang in p]
            if vals:
                ax.hlines(np.mean(vals), start - 0.5, start + len(group) - 0.5, color="0.3", lw=1.0, ls="--")
        ax.axvline(len(high) - 0.5, color="0.6", lw=0.8, ls=":")
        ax.set_ylabel("Δ accuracy (points)")
        ax.set_title(("raw" if mode == "raw" else f"calibrated ({mode})") +
                     " — high-resource | low-resource", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[-1, 0].set_xticks(range(len(langs)), langs)
    handles = [plt.Line2D([], [], marker=_style(k)[1], ls="", color=_style(k)[0], label=n) for k, n in enumerate(names)]
    handles += [plt.Line2D([], [], marker="o", ls="", markerfacecolor="white", markeredgecolor="0.3",
                           label="hollow: unseen by that arm"),
                plt.Line2D([], [], color="black", lw=1.6, label="mean over arms"),
                plt.Line2D([], [], color="0.3", lw=1.0, ls="--", label="mean over a resource group")]
    fig.legend(handles=handles, loc="upper center", ncol=min(5, len(handles)), frameon=False, fontsize=8,
               bbox_to_anchor=(0.5, 1.0 + 0.02 * (len(handles) // 5)))
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return save_figure(fig, stem)

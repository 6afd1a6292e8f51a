"""Lens and PCA figures (PNG + SVG) from saved run folders: lens_layers.csv, pca.npz, pca_corr.csv."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from qtalign.errors import QtalignError
from qtalign.figures.common import RUN_STYLES, lang_style, read_csv, save_figure

LENS_STYLE = {  # quantity -> (colour, legend text, band hatch); bands only where a hatch is given
    "p_en": ("#0072B2", "correct label, English", ""),
    "p_native": ("#D55E00", "correct label, input language", "////"),
    "p_en_all": ("#56B4E9", "any label, English", None),
    "p_native_all": ("#E69F00", "any label, input language", None),
}
LENS_COLUMNS = 5  # languages per row of the lens figure


def _lens_table(run: Path) -> tuple[dict[tuple[str, str], np.ndarray], dict[str, int]]:
    """((lang, quantity) -> [layers, 3] of mean, lo, hi; lang -> n items)."""
    rows: dict[tuple[str, str], list[tuple[int, float, float, float]]] = {}
    n: dict[str, int] = {}
    for r in read_csv(run / "lens_layers.csv"):
        rows.setdefault((r["lang"], r["quantity"]), []).append(
            (int(r["layer"]), float(r["mean"]), float(r["lo"]), float(r["hi"])))
        if r.get("n"):
            n[r["lang"]] = int(r["n"])
    return {k: np.array([v[1:] for v in sorted(vs)]) for k, vs in rows.items()}, n


def lens_figure(runs: Sequence[tuple[str, Path]], stem: Path) -> list[Path]:
    """Per language: label-token probability curves over layers (95% bands on the correct-label curves: English
    filled, input language hatched), entropy strip below; panel titles give n. runs: (name, folder) pairs; the first
    is drawn solid, the next dashed (e.g. base vs tuned)."""
    tables = [(name, *_lens_table(path)) for name, path in runs]
    langs = list(dict.fromkeys(lang for _, t, _ in tables for lang, _ in t))
    n_cols = min(len(langs), LENS_COLUMNS)
    n_rows = -(-len(langs) // n_cols)
    height = 4.6 * n_rows + 1.6  # inches: panels, title above, axis labels below
    fig = plt.figure(figsize=(4.2 * n_cols, height))
    outer = fig.add_gridspec(n_rows, n_cols, hspace=0.32, wspace=0.28, top=1 - 0.9 / height, bottom=0.75 / height)
    for k, lang in enumerate(langs):
        row, col = divmod(k, n_cols)
        cell = outer[row, col].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.08)
        top = fig.add_subplot(cell[0])
        bottom = fig.add_subplot(cell[1], sharex=top)
        top.tick_params(labelbottom=False)
        bottom.ticklabel_format(axis="y", useOffset=False)
        for run_i, (_, t, _) in enumerate(tables):
            style = RUN_STYLES[run_i % len(RUN_STYLES)]
            for q, (colour, _, hatch) in reversed(LENS_STYLE.items()):  # English drawn last: on top where identical
                if (lang, q) not in t:
                    continue
                a = t[lang, q]
                x = np.arange(len(a))
                top.plot(x, a[:, 0], style, color=colour, lw=1.8 if hatch is not None else 1.1)
                if hatch is None:
                    continue
                if hatch:  # outline hatching only: never blends with the filled band into a third colour
                    top.fill_between(x, a[:, 1], a[:, 2], facecolor="none", edgecolor=colour, hatch=hatch, lw=0,
                                     alpha=0.6 if run_i == 0 else 0.35)
                else:
                    top.fill_between(x, a[:, 1], a[:, 2], color=colour, alpha=0.22 if run_i == 0 else 0.12, lw=0)
            if (lang, "entropy") in t:
                a = t[lang, "entropy"]
                x = np.arange(len(a))
                bottom.plot(x, a[:, 0], style, color="0.2", lw=1.4)
                bottom.fill_between(x, a[:, 1], a[:, 2], color="0.5", alpha=0.25 if run_i == 0 else 0.12, lw=0)
        ns = [str(n[lang]) for _, _, n in tables if lang in n]
        top.set_title(f"{lang} (n={' / '.join(dict.fromkeys(ns)) or '?'})")
        top.set_ylim(-0.02, 1.02)
        top.grid(alpha=0.3)
        bottom.grid(alpha=0.3)
        bottom.set_xlabel("layer (0 = embeddings)")
        bottom.yaxis.set_major_locator(plt.MaxNLocator(3))
        if col == 0:
            top.set_ylabel("probability at last position")
            bottom.set_ylabel(f"entropy ({_entropy_unit(runs[0][1])})")
    from matplotlib.patches import Patch

    handles: list[object] = []
    for colour, label, hatch in LENS_STYLE.values():
        if hatch is None:
            handles.append(plt.Line2D([], [], color=colour, lw=1.1, label=label))
        else:
            handles.append((plt.Line2D([], [], color=colour, lw=1.8),
                            Patch(facecolor="none" if hatch else colour, edgecolor=colour, hatch=hatch,
                                  alpha=0.6 if hatch else 0.22)))
    labels = [label for _, label, _ in LENS_STYLE.values()]
    if len(tables) > 1:
        handles += [plt.Line2D([], [], color="0.2", ls=RUN_STYLES[i % 3]) for i in range(len(tables))]
        labels += [name for name, _, _ in tables]
    fig.legend(handles=handles, labels=labels, loc="upper center", ncol=min(len(handles), 3), frameon=False,
               bbox_to_anchor=(0.5, 0.25 / height))
    title = " vs ".join(name for name, _, _ in tables)
    fig.suptitle(f"Logit lens: {title}\n(mean over items, 95% bootstrap band)", y=1 - 0.1 / height, va="top")
    return save_figure(fig, stem)


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
    """Rows: runs; columns: layers; PC1 vs PC2 of every item, coloured (and, beyond eight, shaped) by language.
    Each panel's title gives the layer and n (items); each row is labelled with its run."""
    data = [(name, _pca_data(path)) for name, path in runs]
    n_layers = max(len(d["layers"]) for _, d in data)
    fig, axes = plt.subplots(len(data), n_layers, figsize=(3.4 * n_layers + 1.2, 3.4 * len(data)), squeeze=False,
                             layout="constrained")
    langs = list(dict.fromkeys(str(x) for _, d in data for x in d["lang"]))
    for row, (name, d) in enumerate(data):
        for col, layer in enumerate(d["layers"]):
            ax = axes[row, col]
            scores, ev = d["scores"][col], d["explained"][col]  # [N, 2], [2]
            for li, lang in enumerate(langs):
                sel = d["lang"] == lang
                if sel.any():
                    colour, marker = lang_style(li)
                    ax.scatter(scores[sel, 0], scores[sel, 1], s=12, alpha=0.75, color=colour, marker=marker,
                               label=lang, linewidths=0)
            ax.set_title(f"layer {int(layer)} (n={len(d['lang'])})", fontsize=10)
            ax.set_xlabel(f"PC1 ({ev[0]:.0%})", fontsize=9)
            ax.set_ylabel((f"{name}\n" if col == 0 else "") + f"PC2 ({ev[1]:.0%})", fontsize=9)
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(plt.MaxNLocator(4))
        for col in range(len(d["layers"]), n_layers):
            axes[row, col].axis("off")
    handles = [plt.Line2D([], [], marker=lang_style(i)[1], ls="", color=lang_style(i)[0], label=lang)
               for i, lang in enumerate(langs)]
    fig.legend(handles=handles, loc="outside right center", frameon=False, title="language")
    return save_figure(fig, stem)


def pca_corr_figure(runs: Sequence[tuple[str, Path]], stem: Path) -> list[Path]:
    """Rows: runs; columns: layers; heatmap of the PC1 Pearson r between languages on parallel items. Column titles
    give the layer and n (parallel items); each row is labelled with its run."""
    tables = []
    for name, path in runs:
        by_layer: dict[int, dict[tuple[str, str], float]] = {}
        n_pairs: dict[int, set[int]] = {}
        for r in read_csv(path / "pca_corr.csv"):
            by_layer.setdefault(int(r["layer"]), {})[r["lang_a"], r["lang_b"]] = float(r["r"])
            n_pairs.setdefault(int(r["layer"]), set()).add(int(r["n"]) if r.get("n") else -1)
        tables.append((name, by_layer, n_pairs))
    langs = list(dict.fromkeys(x for _, t, _ in tables for pairs in t.values() for pair in pairs for x in pair))
    n_layers = max(len(t) for _, t, _ in tables)
    n = len(langs)
    size = max(2.8, 0.45 * n + 1.4)
    fig, axes = plt.subplots(len(tables), n_layers, figsize=(size * n_layers + 1.5, size * len(tables) + 0.4),
                             squeeze=False, layout="constrained")
    im = None
    for row, (name, t, n_pairs) in enumerate(tables):
        for col, layer in enumerate(sorted(t)):
            m = np.eye(n)
            for (a, b), r in t[layer].items():
                m[langs.index(a), langs.index(b)] = m[langs.index(b), langs.index(a)] = r
            ax = axes[row, col]
            im = ax.imshow(m, vmin=-1, vmax=1, cmap="RdBu_r")
            ax.set_xticks(range(n), langs, fontsize=8)
            ax.set_yticks(range(n), langs, fontsize=8)
            ns = sorted(x for x in n_pairs.get(layer, set()) if x >= 0)
            n_text = f"n={ns[0]}" if len(ns) == 1 else (f"n={ns[0]}-{ns[-1]}" if ns else "n=?")
            ax.set_title(f"layer {layer} ({n_text})", fontsize=10)
            if col == 0:
                ax.set_ylabel(name, fontsize=10)
            if n <= 8:
                for i in range(n):
                    for j in range(n):
                        ax.text(j, i, "n/a" if np.isnan(m[i, j]) else f"{m[i, j]:.2f}", ha="center", va="center",
                                fontsize=7, color="white" if abs(np.nan_to_num(m[i, j])) > 0.6 else "black")
        for col in range(len(t), n_layers):
            axes[row, col].axis("off")
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label="Pearson r of PC1 (parallel items)")
    return save_figure(fig, stem)

"""Inside the model: logit lens and PCA figures, and whether alignment changes predict the gain."""

from __future__ import annotations

from pathlib import Path

from qtalign.compare import RAW
from qtalign.report.format import mode_title, ordered_langs, signed, slugify
from qtalign.report.page import Builder
from qtalign.report.render import Cell, Heading, Table, Text


def analyses(page: Builder) -> None:
    """The logit-lens and PCA figures of each analysed model."""
    page.blocks.append(Heading(2, "Inside the model: logit lens and PCA", "analyses"))
    if not page.s.analyses:
        page.blocks.append(Text("no lens or PCA analysis in this study", "note"))
        return
    from qtalign.figures.analysis import lens_figure, pca_corr_figure, pca_scatter_figure
    from qtalign.figures.results import alignment_figure

    by: dict[tuple[str, str], list[tuple[str, Path]]] = {}
    for a in page.s.analyses:
        name = "base" if a.get("mix") is None else str(a["mix"])
        if a.get("train_seed") is not None and a.get("mix") is not None:
            name += f" (seed {a['train_seed']})"
        by.setdefault((str(a.get("kind")), str(a.get("model", ""))), []).append((name, page.s.root / a["run"]))
    for (kind, model), runs in by.items():
        slug = slugify(kind, model)
        if kind == "lens":
            page.blocks.append(Heading(3, f"Logit lens · {model}"))
            page.figure(f"{slug}", lambda stem, runs=runs: lens_figure(runs, stem),
                        "Logit lens at the last prompt position: probability of the correct label's English "
                        "tokens and its input-language tokens per layer (mean, 95% band), entropy below; "
                        + ", ".join(f"{n}: {'solid' if i % 3 == 0 else 'dashed' if i % 3 == 1 else 'dotted'}"
                                    for i, (n, _) in enumerate(runs)) + ".")
        elif kind == "pca":
            page.blocks.append(Heading(3, f"PCA of hidden states · {model}"))
            page.figure(f"{slug}-scatter", lambda stem, runs=runs: pca_scatter_figure(runs, stem),
                        "PC1 vs PC2 of the mean-pooled hidden states per layer, fitted jointly over languages.")
            page.figure(f"{slug}-corr", lambda stem, runs=runs: pca_corr_figure(runs, stem),
                        "Pearson r of PC1 between languages on parallel items, per layer.")
            have = [(n, p) for n, p in runs if (p / "alignment.csv").is_file() and
                    (p / "alignment.csv").stat().st_size > 0 and
                    len((p / "alignment.csv").read_text(encoding="utf-8").splitlines()) > 1]
            if have:
                page.figure(f"{slug}-alignment", lambda stem, runs=have: alignment_figure(runs, stem),
                            "Cross-language alignment per layer: cosine of parallel items vs other items, and "
                            "how often an item's nearest neighbour in another language is its translation.")
        else:
            page.s.notes.append(f"analysis kind {kind!r} is not drawn")


def alignment_vs_gain(page: Builder) -> None:
    """Per language, the change of the analyses' alignment measures beside the accuracy change of the same adapter
    (its evaluation with the first demonstration seed), and their correlation across languages."""
    from qtalign.report.alignment_gain import MEASURES, alignment_changes, gain_table, lens_alignment, pca_alignment

    runs: dict[tuple[str, str | None, int | None], dict[str, dict[str, dict[str, float]]]] = {}
    for a in page.s.analyses:
        read = pca_alignment if a.get("kind") == "pca" else lens_alignment if a.get("kind") == "lens" else None
        if read is None:
            continue
        key = (str(a.get("model", "")), a.get("mix"), a.get("train_seed"))
        merged = runs.setdefault(key, {})
        for lang, values in read(page.s.root / a["run"]).items():
            merged.setdefault(lang, {}).update(values)
    tuned = [k for k in runs if k[1] is not None and (k[0], None, None) in runs]
    if not tuned:
        return
    page.blocks.append(Heading(2, "Does alignment predict the gain?", "alignment-gain"))
    page.blocks.append(Text(
        "The paper explains its gains by tuning aligning other languages with English. Per language: the accuracy "
        "change of the analysed adapter (tuned − base, points, first demonstration seed) beside the change of "
        "each alignment measure, averaged over the last third of the layers: "
        + "; ".join(f"{k} = {v}" for k, v in MEASURES.items())
        + ". Below, Pearson r across languages with a 95% bootstrap interval (languages resampled); with about "
          "20 languages only a strong relation shows."))
    for ti, (model, mix, seed) in enumerate(tuned):
        base_e = [e for e in page.s.evals if e.model == model and e.mix is None]
        tuned_e = [e for e in page.s.evals if e.model == model and e.mix == mix and e.train_seed == seed]
        pair = None
        for t in sorted(tuned_e, key=lambda e: e.demo_seed):
            b = next((x for x in base_e if x.group == t.group), None)
            if b is not None and (pair := page.s.pair(b, t)) is not None:
                break
        if pair is None:
            page.s.notes.append(f"alignment vs gain, {mix} (seed {seed}): no evaluation paired with base")
            continue
        modes = [m for m in (RAW, "batch") if m in pair["scores"]]
        acc = {m: {lang: v["diff"] for lang, v in pair["scores"][m]["languages"].items()} for m in modes}
        change = alignment_changes(runs[(model, None, None)], runs[(model, mix, seed)])
        langs = [lang for lang in ordered_langs(list(acc[RAW]))[0] + ordered_langs(list(acc[RAW]))[1]
                 if lang in change]
        name = f"{mix} (seed {seed})" if seed is not None else str(mix)
        page.blocks.append(Heading(3, f"{model} · {name}"))
        head = [Cell("lang", cls="label"), *[f"Δ accuracy {mode_title(m)}" for m in modes],
                *[f"Δ {k}" for k in MEASURES]]
        rows: list[list[Cell | str]] = []
        for lang in langs:
            rows.append([Cell(lang, cls="label"), *[signed(acc[m][lang]) for m in modes],
                         *[f"{change[lang][k]:+.3f}" if k in change[lang] else "–" for k in MEASURES]])
        page.blocks.append(Table(f"alignment-gain-{ti}", head, rows,
                                 caption="accuracy change in points; alignment changes in their own units"))
        crow: list[list[Cell | str]] = []
        for m in modes:
            _, cors = gain_table(change, acc[m], n_boot=page.s.n_boot)
            for c in cors:
                ok = c.n >= 3 and c.r == c.r
                page.alignment.append({"model": model, "mix": mix, "train_seed": seed, "measure": c.measure,
                                        "mode": m, "n": c.n, "r": c.r if ok else None,
                                        "ci95": [c.lo, c.hi] if ok else None,
                                        "changes": {lang: {"accuracy": acc[m][lang], **change[lang]}
                                                    for lang in langs}})
                crow.append([Cell(f"{c.measure} vs accuracy {mode_title(m)}", cls="label"), str(c.n),
                             Cell(f"{c.r:+.2f} [{c.lo:+.2f}, {c.hi:+.2f}]" if ok else "–",
                                  cls=("up" if c.lo > 0 else "down" if c.hi < 0 else "ns") if ok else "")])
        page.blocks.append(Table(f"alignment-corr-{ti}", [Cell("measure", cls="label"), "languages",
                                                          "Pearson r [95% CI]"], crow))

"""Prior shift: how often each label is predicted, base vs each mix, per group and scoring mode."""

from __future__ import annotations

from qtalign.compare import RAW
from qtalign.report.format import group_title, mode_title, pct, signed
from qtalign.report.groups import Groups, comparisons, row_name
from qtalign.report.page import Builder
from qtalign.report.render import Cell, Heading, Table, Text


def prior_shift(page: Builder, groups: Groups) -> None:
    """Per group: each label's predicted share, base → mix, per scoring mode; the raw per-language change as a
    figure."""
    page.blocks.append(Heading(2, "Prior shift: predicted-label shares", "prior-shift"))
    page.blocks.append(Text("How often each label is predicted (% of items, mean over languages), base → mix, "
                            "and the change. A raw gain that comes with a large shift toward one label and no "
                            "calibrated gain is a moved prior, not better understanding."))
    for gi, (g, es) in enumerate(groups.items()):
        series: list[tuple[str, dict[str, dict[str, float]]]] = []
        rows: list[list[Cell | str]] = []
        labels: list[str] = []
        langs: list[str] = []
        for e, c in comparisons(page.s, es):
            for mode, sc in c["scores"].items():
                labels = list(sc["predicted_share"])
                langs = list(sc["languages"])
                row: list[Cell | str] = [Cell(row_name(e, es), cls="label"), mode_title(mode)]
                for label in labels:
                    v = sc["predicted_share"][label]
                    row.append(Cell(f"{pct(v['base'])} → {pct(v['other'])}", sub=signed(v["change"])))
                first = labels[0]
                ups = sum(v["predicted_share"][first]["change"] > 0 for v in sc["languages"].values())
                downs = sum(v["predicted_share"][first]["change"] < 0 for v in sc["languages"].values())
                row.append(f"{ups} / {downs} of {len(sc['languages'])}")
                rows.append(row)
                if mode == RAW:
                    series.append((row_name(e, es), {lang: {lb: x["change"] for lb, x in
                                                                 v["predicted_share"].items()}
                                                          for lang, v in sc["languages"].items()}))
        if not rows:
            continue
        page.blocks.append(Heading(3, group_title(g)))
        head = [Cell("mix", cls="label"), "scoring", *[f"share '{lb}'" for lb in labels],
                f"languages where '{labels[0]}' rose / fell"]
        page.blocks.append(Table(f"prior-{gi}", head, rows, caption="predicted share (%), mean over languages"))
        from qtalign.figures.results import prior_shift_figure

        page.figure(f"prior-shift-{gi}", lambda stem, series=series, langs=langs, labels=labels:
                    prior_shift_figure(series, langs, labels, stem),
                    f"Change of the predicted share per language, raw scores ({group_title(g)}).")

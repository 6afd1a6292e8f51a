"""Per-language accuracy: the paper-style table per group and mode, and the seen vs unseen changes."""

from __future__ import annotations

import numpy as np

from qtalign.languages import LANGUAGES
from qtalign.report.format import (
    SIG_LEGEND,
    ci_text,
    gain_cell,
    group_title,
    mode_title,
    ordered_langs,
    pct,
    run_accuracy,
    signed,
    slugify,
)
from qtalign.report.groups import Groups, base_of, comparisons, row_name, scheme_note, scoring_modes
from qtalign.report.page import Builder
from qtalign.report.render import Cell, Heading, Table, Text


def paper_tables(page: Builder, groups: Groups) -> None:
    """Per group and scoring mode: accuracy per language (high-, then low-resource) and the mean, change from base
    below each cell; the gains figure of each group."""
    page.blocks.append(Heading(2, "Accuracy by language (paper-style table)", "accuracy"))
    page.blocks.append(Text("Rows: the base model and each training mix (controls beside the real mixes); "
                            "columns: languages grouped high-/low-resource as in the paper, then the mean. Each "
                            "cell: accuracy (%) and, below it, the change from base in points. " + SIG_LEGEND +
                            ". Mean column: change with its paired 95% bootstrap interval (coloured when the "
                            f"interval excludes 0; {scheme_note(page.s, groups)}). Shaded cells: languages in that "
                            "row's training mix (seen)."))
    for gi, (g, es) in enumerate(groups.items()):
        base = base_of(es)
        langs_all = page.s.run(base).langs if base is not None and page.s.run(base) else \
            list(dict.fromkeys(x for e in es for x in (page.s.run(e).langs if page.s.run(e) else [])))
        high, low = ordered_langs(langs_all)
        langs = high + low
        for mode in scoring_modes(page.s, es):
            page.blocks.append(Heading(3, f"{group_title(g)} — {mode_title(mode)}"))
            rows: list[list[Cell | str]] = []
            for e in es:
                run = page.s.run(e)
                c = page.s.pair(base, e) if base is not None and e is not base else None
                sc = c["scores"].get(mode) if c else None
                seen = set((c or {}).get("seen_langs") or [])
                row: list[Cell | str] = [Cell(row_name(e, es), cls="label", title=e.id)]
                for lang in langs:
                    a = run_accuracy(run, mode, lang)
                    if a is None:
                        row.append(Cell("–"))
                        continue
                    cell = Cell(pct(a), cls="seen" if lang in seen else "")
                    if sc is not None and lang in sc["languages"]:
                        v = sc["languages"][lang]
                        direction = ("up" if v["diff"] > 0 else "down") if v["significant"] else "ns"
                        cell.sub = signed(v["diff"]) + v["mark"]
                        cell.cls = f"{cell.cls} {direction}".strip()
                        cell.title = f"p = {v['p']:.3g}, Holm {v['p_holm']:.3g}, 95% CI {ci_text(v['ci95'])}"
                    row.append(cell)
                accs = [run_accuracy(run, mode, lang) for lang in langs]
                if all(a is not None for a in accs) and accs:
                    cell = Cell(pct(float(np.mean(accs))))
                    if sc is not None:
                        m = sc["mean"]
                        cell.sub = f"{signed(m['diff'])} {ci_text(m['ci95'])}"
                        cell.cls = ("up" if m["diff"] > 0 else "down") if m["excludes_zero"] else "ns"
                    row.append(cell)
                else:
                    row.append(Cell("–"))
                rows.append(row)
            groups_row = [("", 1)] + ([("high-resource", len(high))] if high else []) + \
                         ([("low-resource", len(low))] if low else []) + [("", 1)]
            head = [Cell("model / mix", cls="label")] + \
                   [Cell(x, title=LANGUAGES[x].name if x in LANGUAGES else x) for x in langs] + [Cell("mean")]
            caption = (f"{mode_title(mode)} accuracy (%); high-resource: {' '.join(high) or '—'}; "
                       f"low-resource: {' '.join(low) or '—'}")
            page.blocks.append(Table(f"acc-{gi}-{slugify(mode)}", head, rows, groups_row, caption, "paper"))
        # the gains figure of this group, all modes
        series = [(row_name(e, es), c["scores"]) for e, c in comparisons(page.s, es)]
        if series:
            from qtalign.figures.results import gains_figure

            modes = scoring_modes(page.s, es)
            page.figure(f"gains-{gi}", lambda stem, series=series, langs=langs, modes=modes:
                        gains_figure(series, langs, modes, stem),
                        f"Change from base per language and on the mean, with paired 95% bootstrap intervals "
                        f"({group_title(g)}); filled: significant after Holm correction (mean: interval "
                        f"excludes 0).")


def seen_unseen(page: Builder, groups: Groups) -> None:
    """Mean change from base over the seen languages, the unseen ones and all, per tuned run and scoring mode."""
    page.blocks.append(Heading(2, "Seen vs unseen languages", "seen-unseen"))
    page.blocks.append(Text("Seen: languages of the adapter's training mix (its manifest's sources and target); "
                            "unseen: every other evaluated language. Mean change from base (points) with a paired "
                            f"95% bootstrap interval ({scheme_note(page.s, groups)})."))
    rows: list[list[Cell | str]] = []
    for g, es in groups.items():
        for e, c in comparisons(page.s, es):
            for mode, sc in c["scores"].items():
                row: list[Cell | str] = [Cell(group_title(g), cls="label"),
                                         Cell(row_name(e, es), cls="label"), mode_title(mode),
                                         Cell(", ".join(c.get("seen_langs") or []) or "unknown", cls="label",
                                              title=c.get("seen_from", ""))]
                for key in ("seen", "unseen"):
                    grp = sc.get(key)
                    row.append(gain_cell(grp) if grp else Cell("–"))
                row.append(gain_cell(sc["mean"]))
                rows.append(row)
    if rows:
        head = [Cell("task · model", cls="label"), Cell("mix", cls="label"), "scoring",
                Cell("seen languages", cls="label"), "Δ seen", "Δ unseen", "Δ all"]
        page.blocks.append(Table("seen-unseen-table", head, rows, caption="mean change from base (points)"))
    else:
        page.blocks.append(Text("no tuned run compared with a base run", "note"))

"""Real mix vs its control: the paired per-language difference of the two runs."""

from __future__ import annotations

from typing import Any

from qtalign.compare import RAW
from qtalign.report.format import SIG_LEGEND, GroupKey, gain_cell, group_title, mode_title, ordered_langs, pct, signed
from qtalign.report.groups import row_name
from qtalign.report.page import Builder
from qtalign.report.render import Cell, Heading, Table, Text
from qtalign.report.study import EvalEntry


def _minus(v: dict[str, Any], flip: bool) -> dict[str, Any]:
    """A paired change read as real minus control: flip (the comparison was control vs real) negates the difference,
    reverses its interval and swaps the two accuracies; the same numbers, one sign convention."""
    if not flip:
        return v
    out = {**v, "diff": 0.0 - v["diff"], "base": v["other"], "other": v["base"]}  # 0.0 - x: no "-0.0"
    if v.get("ci95") is not None:
        out["ci95"] = [0.0 - v["ci95"][1], 0.0 - v["ci95"][0]]
    return out


def controls(page: Builder) -> None:
    """Per group: each real mix minus its control, per language and on the mean, per scoring mode."""
    page.blocks.append(Heading(2, "Real mix vs its control", "controls"))
    pairs: list[tuple[EvalEntry, EvalEntry]] = []  # (base, other) as compared: the runner's, or (control, real)
    for c in page.s.compares:
        if c.get("kind") == "vs-control" and c.get("base") in page.s.by_id and c.get("other") in page.s.by_id:
            pairs.append((page.s.by_id[c["base"]], page.s.by_id[c["other"]]))
    if not pairs:  # pair each control with the real mix of the same name, seeds and settings
        for e in page.s.evals:
            if e.control and e.mix is not None:
                real = next((r for r in page.s.evals if r.control is None and r.mix == e.mix
                             and r.group == e.group and r.train_seed == e.train_seed), None)
                if real is not None:
                    pairs.append((e, real))
    rows_by_group: dict[GroupKey, list[list[Cell | str]]] = {}
    langs_by_group: dict[GroupKey, list[str]] = {}
    for base, other in pairs:
        if page.s.run(base) is None or page.s.run(other) is None:
            continue
        c = page.s.pair(base, other)  # the runner's compare.json where it wrote one (other minus base)
        if c is None:
            continue
        flip = base.control is None and other.control is not None  # compared as control minus real
        real, ctl = (base, other) if flip else (other, base)
        es = [e for e in page.s.evals if e.group == real.group]
        high, low = ordered_langs(list(c["scores"][RAW]["languages"]))
        langs_by_group[real.group] = high + low
        for mode, sc in c["scores"].items():
            row: list[Cell | str] = [Cell(f"{row_name(real, es)} − {row_name(ctl, es)}", cls="label"),
                                     mode_title(mode)]
            for lang in high + low:
                if sc["languages"].get(lang) is None:
                    row.append(Cell("–"))
                    continue
                v = _minus(sc["languages"][lang], flip)
                cls = ("up" if v["diff"] > 0 else "down") if v["significant"] else "ns"
                row.append(Cell(signed(v["diff"]) + v["mark"], cls=cls,
                                sub=f"{pct(v['base'])}→{pct(v['other'])}"))
            row.append(gain_cell(_minus(sc["mean"], flip)))
            rows_by_group.setdefault(real.group, []).append(row)
    if not rows_by_group:
        page.blocks.append(Text("no control mix in this study", "note"))
        return
    page.blocks.append(Text("Paired on the same items: the real mix minus its control (the first run named in the "
                            "row minus the second), in points, with the accuracies below it (control → real mix). "
                            + SIG_LEGEND + ". "
                            "A real mix that beats its control on calibrated scores is evidence for the "
                            "question-translation effect; one that only beats it raw is not."))
    for gi, (g, rows) in enumerate(rows_by_group.items()):
        page.blocks.append(Heading(3, group_title(g)))
        langs = langs_by_group[g]
        head = [Cell("comparison", cls="label"), "scoring", *langs, "mean"]
        page.blocks.append(Table(f"controls-{gi}", head, rows, caption="difference (points), Holm-marked"))

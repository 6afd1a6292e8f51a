"""The headline: every tuned run's mean change from base, and each setting's seed-aware change."""

from __future__ import annotations

from qtalign.metrics import SeedAwareInterval
from qtalign.report.format import Arm, ci_text, group_title, mode_title, pct, signed
from qtalign.report.groups import Groups, base_of, row_name, scheme_note
from qtalign.report.page import Builder
from qtalign.report.render import Heading, Items, Text


def headline(page: Builder, groups: Groups) -> None:
    """Every tuned run's mean change from base, then each seed-aware change, one line each."""
    page.blocks.append(Heading(2, "Headline", "headline"))
    lines = []
    for g, es in groups.items():
        base = base_of(es)
        if base is None:
            continue
        for e in es:
            if e is base:
                continue
            c = page.s.pair(base, e)
            if c is None:
                continue
            parts = []
            for mode, sc in c["scores"].items():
                m = sc["mean"]
                parts.append(f"{mode_title(mode)} {pct(m['base'])} → {pct(m['other'])} "
                             f"({signed(m['diff'])} {ci_text(m['ci95'])})")
            lines.append(f"{group_title(g)}: {row_name(e, es)} vs base — mean accuracy " + "; ".join(parts))
    by_lead: dict[tuple[Arm, str, str], tuple[SeedAwareInterval, list[str]]] = {}
    for arm, _, lead, word, mode, u in page.seeds.every(groups):
        iv = u.interval
        by_lead.setdefault((arm, lead, word), (iv, []))[1].append(f"{mode_title(mode)} {signed(iv.value)} "
                                                                 f"{ci_text([iv.lo, iv.hi])}")
    for (arm, lead, word), (iv, parts) in by_lead.items():
        left = f" ({'; '.join(iv.left_out)})" if iv.left_out else ""
        lines.append(f"{arm[1]} · {arm[0]} · labels {arm[2]}: {lead}, {iv.text}{left} — {word} " + "; ".join(parts))
    if not lines:
        lines.append("no tuned run compared with a base run yet")
    page.blocks.append(Items(lines))
    page.blocks.append(Text("Means are unweighted over languages; brackets are paired 95% bootstrap intervals "
                            f"of the change (points), {scheme_note(page.s, groups)}. The lines 'over N training "
                            "seeds x M demonstration sets' resample training seeds, demonstration seeds and "
                            "items (see Uncertainty); with one of each they leave that variance out."))

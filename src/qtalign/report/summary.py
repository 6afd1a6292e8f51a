"""The report's numbers as data: report/summary.json."""

from __future__ import annotations

from typing import Any

from qtalign.metrics import SeedAwareInterval
from qtalign.report.groups import Groups, base_of, comparisons
from qtalign.report.page import Builder


def summary(page: Builder, groups: Groups) -> dict[str, Any]:
    """The report's numbers as data (report/summary.json): every paired comparison's mean change and change of
    each label's predicted share, each tuned setting's and each real-minus-control contrast's seed-aware change
    with its breakdown; the findings table's rows and arms (report.findings); fractions, not %."""
    def interval(iv: SeedAwareInterval) -> dict[str, Any]:
        return {"value": iv.value, "ci95": [iv.lo, iv.hi], "scope": iv.text, "left_out": list(iv.left_out)}

    pairs, shares = [], []
    for es in groups.values():
        for e, c in comparisons(page.s, es):
            base = base_of(es)
            for mode, sc in c["scores"].items():
                m = sc["mean"]
                pairs.append({"base": base.id if base else None, "other": e.id, "mode": mode, "base_acc": m["base"],
                              "other_acc": m["other"], "diff": m["diff"], "ci95": m["ci95"],
                              "mde80": m.get("mde80"), "resampling": (m.get("resampling") or {}).get("text")})
                for label, v in sc.get("predicted_share", {}).items():
                    shares.append({"base": base.id if base else None, "other": e.id, "mode": mode, "label": label,
                                   "base_share": v["base"], "other_share": v["other"], "diff": v["change"],
                                   "ci95": v.get("change_ci95")})
    arms = [{"model": a[0], "task": a[1], "labels": a[2], "mix": a[3], "control": a[4], "mode": mode,
             **interval(u.interval), "sd": u.breakdown.record()}
            for (a, mode), u in page.seeds.arms(groups).items()]
    contrasts = [{"real": ra[3], "control": ca[3], "control_kind": ca[4], "model": ra[0], "task": ra[1],
                  "labels": ra[2], "mode": mode, **interval(u.interval), "sd": u.breakdown.record()}
                 for (ra, ca, mode), u in page.seeds.contrasts().items()]
    return {"study": page.s.data.get("name"), "pairs": pairs, "shares": shares, "arms": arms, "contrasts": contrasts,
            "alignment": page.alignment, "findings": page.findings}

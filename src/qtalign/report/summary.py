"""The report's numbers as data: report/summary.json (every number the docs may quote from a study)."""

from __future__ import annotations

from typing import Any

import numpy as np

from qtalign.compare import RAW, Run
from qtalign.metrics import SeedAwareInterval, bootstrap_mean_accuracy, macro_f1
from qtalign.metrics.intervals import INDEPENDENT, Resampling
from qtalign.report.groups import Groups, base_of, comparisons
from qtalign.report.page import Builder
from qtalign.store import read_json_object

INDEPENDENT_ITEMS = Resampling(INDEPENDENT, "items resampled independently per language")


def _f1(run: Run, mode: str) -> float:
    """Unweighted mean over languages of macro-F1 (raw or one calibration mode)."""
    return float(np.mean([macro_f1([r["gold"] for r in run.item_rows(lang)], run.preds(lang, mode), run.labels)
                          for lang in run.langs]))


def _gold_shares(run: Run) -> dict[str, float]:
    """Each label's share of the gold labels, mean over languages."""
    return {label: float(np.mean([np.mean([r["gold"] == label for r in run.item_rows(lang)]) for lang in run.langs]))
            for label in run.labels}


def _independent(base: Run, other: Run, mode: str, n_boot: int) -> list[float]:
    """The mean change's interval with each language's items resampled on their own: what intervals were before
    items were resampled jointly (kept so that the docs can show the difference)."""
    diffs = {lang: other.correct(lang, mode).astype(np.float64) - base.correct(lang, mode).astype(np.float64)
             for lang in base.langs}
    iv = bootstrap_mean_accuracy(diffs, n_boot, 0, resampling=INDEPENDENT_ITEMS)
    return [iv.lo, iv.hi]


def _pairs_and_shares(page: Builder, groups: Groups) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    pairs, shares = [], []
    for es in groups.values():
        base = base_of(es)
        rb = page.s.run(base) if base else None
        for e, c in comparisons(page.s, es):
            ro = page.s.run(e)
            gold = _gold_shares(rb) if rb is not None else {}
            for mode, sc in c["scores"].items():
                m, langs = sc["mean"], sc["languages"]
                pair = {"base": base.id if base else None, "other": e.id, "mode": mode, "base_acc": m["base"],
                        "other_acc": m["other"], "diff": m["diff"], "ci95": m["ci95"], "mde80": m.get("mde80"),
                        "resampling": (m.get("resampling") or {}).get("text"),
                        "langs": {lang: {"base_acc": v["base"], "other_acc": v["other"], "diff": v["diff"],
                                         "ci95": v["ci95"]} for lang, v in langs.items()}}
                if rb is not None and ro is not None and (mode == RAW or mode in rb.modes and mode in ro.modes):
                    pair.update(base_f1=_f1(rb, mode), other_f1=_f1(ro, mode),
                                ci95_independent=_independent(rb, ro, mode, page.s.n_boot))
                pairs.append(pair)
                for label, v in sc.get("predicted_share", {}).items():
                    shares.append({"base": base.id if base else None, "other": e.id, "mode": mode, "label": label,
                                   "base_share": v["base"], "other_share": v["other"], "diff": v["change"],
                                   "ci95": v.get("change_ci95"), "gold_share": gold.get(label),
                                   "langs": {lang: {k: lv["predicted_share"][label][x] for k, x in
                                                    (("base_share", "base"), ("other_share", "other"),
                                                     ("diff", "change"))} for lang, lv in langs.items()}})
    return pairs, shares


def _trains(page: Builder) -> list[dict[str, Any]]:
    """Each training run's size and validation loss (first and best), as train_summary.json records them."""
    out = []
    for t in page.s.trains:
        s = read_json_object(page.s.root / str(t.get("run", "")) / "train_summary.json") or {}
        out.append({"id": t.get("id"), "mix": t.get("mix"), "control": t.get("control"),
                    "train_seed": t.get("train_seed"), "train_pairs": s.get("train_pairs"), "steps": s.get("steps"),
                    "first_val_loss": s.get("first_val_loss"), "best_val_loss": s.get("best_val_loss")})
    return out


def summary(page: Builder, groups: Groups) -> dict[str, Any]:
    """The report's numbers as data (report/summary.json), fractions, not %: every paired comparison with base
    (`pairs`: mean and per-language accuracies, the change with its joint interval and, for comparison, the
    interval with items resampled independently per language; macro-F1; power), each label's predicted share
    (`shares`: mean and per language, with the gold share), each tuned setting's and each real-minus-control
    contrast's seed-aware change with its breakdown (`arms`, `contrasts`; and per demonstration set when there
    are several: `arms_by_demo`, `contrasts_by_demo`), the alignment correlations, the training runs and the
    findings table's rows and arms (report.findings)."""
    def interval(iv: SeedAwareInterval) -> dict[str, Any]:
        return {"value": iv.value, "ci95": [iv.lo, iv.hi], "scope": iv.text, "left_out": list(iv.left_out)}

    pairs, shares = _pairs_and_shares(page, groups)
    arms = [{"model": a[0], "task": a[1], "labels": a[2], "mix": a[3], "control": a[4], "mode": mode,
             **interval(u.interval), "sd": u.breakdown.record()}
            for (a, mode), u in page.seeds.arms(groups).items()]
    contrasts = [{"real": ra[3], "control": ca[3], "control_kind": ca[4], "model": ra[0], "task": ra[1],
                  "labels": ra[2], "mode": mode, **interval(u.interval), "sd": u.breakdown.record()}
                 for (ra, ca, mode), u in page.seeds.contrasts().items()]
    arms_by_demo = [{"model": a[0], "task": a[1], "labels": a[2], "mix": a[3], "control": a[4], "demo_seed": demo,
                     "mode": mode, **interval(u.interval), "sd": u.breakdown.record()}
                    for a, ctl, demo, mode, u in page.seeds.by_demo(groups) if ctl is None]
    contrasts_by_demo = [{"real": ra[3], "control": ca[3], "control_kind": ca[4], "model": ra[0], "task": ra[1],
                          "labels": ra[2], "demo_seed": demo, "mode": mode, **interval(u.interval),
                          "sd": u.breakdown.record()}
                         for ra, ca, demo, mode, u in page.seeds.by_demo(groups) if ca is not None]
    return {"study": page.s.data.get("name"), "pairs": pairs, "shares": shares, "arms": arms, "contrasts": contrasts,
            "arms_by_demo": arms_by_demo, "contrasts_by_demo": contrasts_by_demo, "alignment": page.alignment,
            "trains": _trains(page), "findings": page.findings}

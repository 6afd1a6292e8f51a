"""Spread over seeds, seed-aware intervals with their variance breakdown, and each comparison's power."""

from __future__ import annotations

from typing import Any

import numpy as np

from qtalign.report.format import (
    arm_name,
    ci_text,
    group_title,
    mode_title,
    ordered_langs,
    pct,
    run_accuracy,
    signed,
    slugify,
    spread_cell,
)
from qtalign.report.groups import Groups, comparisons, row_name, scoring_modes
from qtalign.report.page import Builder
from qtalign.report.render import Cell, Heading, Table, Text
from qtalign.report.study import EvalEntry


def spread(page: Builder) -> None:
    """Accuracy mean ± sd over training seeds, then over demonstration seeds, of every setting run with several."""
    page.blocks.append(Heading(2, "Spread over seeds", "seeds"))
    found = False
    for seed_kind, field in (("training", "train_seed"), ("demonstration", "demo_seed")):
        by_key: dict[tuple[Any, ...], list[EvalEntry]] = {}
        for e in page.s.evals:
            if page.s.run(e) is None or (seed_kind == "training" and e.mix is None):
                continue
            key = (e.model, e.task, e.labels, e.mix, e.control) + \
                  ((e.demo_seed,) if seed_kind == "training" else (e.train_seed,))
            by_key.setdefault(key, []).append(e)
        rows: list[list[Cell | str]] = []
        langs: list[str] = []
        for key, es in by_key.items():
            seeds = sorted({getattr(e, field) for e in es})
            if len(seeds) < 2:
                continue
            runs = [page.s.run(e) for e in es]
            langs = langs or [x for part in ordered_langs(runs[0].langs) for x in part]  # type: ignore[union-attr]
            name = (key[3] or "base") + (f" [{key[4]}]" if key[4] and key[4] not in (key[3] or "") else "")
            for mode in scoring_modes(page.s, es):
                row: list[Cell | str] = [Cell(f"{key[1]} · {key[0]}", cls="label"), Cell(name, cls="label"),
                                         mode_title(mode), ", ".join(map(str, seeds))]
                per_run_means = []
                for lang in langs:
                    accs = [run_accuracy(r, mode, lang) for r in runs]
                    accs_ok = [a for a in accs if a is not None]
                    row.append(spread_cell(accs_ok))
                for r in runs:
                    accs = [run_accuracy(r, mode, lang) for lang in langs]
                    if all(a is not None for a in accs):
                        per_run_means.append(float(np.mean(accs)))  # type: ignore[arg-type]
                row.append(spread_cell(per_run_means))
                rows.append(row)
        if rows:
            found = True
            page.blocks.append(Heading(3, f"over {seed_kind} seeds"))
            head = [Cell("task · model", cls="label"), Cell("mix", cls="label"), "scoring", "seeds", *langs, "mean"]
            page.blocks.append(Table(f"spread-{slugify(seed_kind)}", head, rows,
                                     caption=f"accuracy (%), mean ± sd over {seed_kind} seeds"))
    if not found:
        page.blocks.append(Text("Every configuration was run with one seed: no spread to show. Add seeds in the "
                                "study config to see how much of a difference is seed noise.", "note"))


def _by_demo(page: Builder, groups: Groups) -> None:
    """The same changes over the runs of one demonstration set at a time, for settings run with several."""
    rows: list[list[Cell | str]] = []
    for arm, ctl, demo, mode, u in page.seeds.by_demo(groups):
        iv = u.interval
        cls = ("up" if iv.value > 0 else "down") if (iv.lo > 0 or iv.hi < 0) else "ns"
        name = arm_name(arm) + (f" − {arm_name(ctl)}" if ctl is not None else "")
        rows.append([Cell(f"{arm[1]} · {arm[0]} · labels {arm[2]}", cls="label"), Cell(name, cls="label"),
                     str(demo), mode_title(mode), Cell(iv.text, cls="label"),
                     Cell(signed(iv.value), sub=ci_text([iv.lo, iv.hi]), cls=cls)])
    if rows:
        page.blocks.append(Heading(3, "Per demonstration set"))
        page.blocks.append(Text(
            "The same changes over the runs of one demonstration set at a time (training seeds and items "
            "resampled). Two demonstration sets are two levels, not a sample of prompts: where they disagree, the "
            "pooled interval above averages two different answers."))
        head = [Cell("task · model", cls="label"), Cell("mix", cls="label"), "demonstration set", "scoring",
                Cell("runs", cls="label"), "Δ mean"]
        page.blocks.append(Table("uncertainty-by-demo", head, rows, caption="mean change (points)"))


def uncertainty(page: Builder, groups: Groups) -> None:
    """Each seed-aware change with its SD breakdown, then the detectable change of each single comparison."""
    page.blocks.append(Heading(2, "Uncertainty: items, demonstrations, training seeds", "uncertainty"))
    page.blocks.append(Text(
        "Per tuned setting: the mean change from base over all its runs (each run paired with the base run of "
        "the same demonstration seed) and a two-level bootstrap interval that resamples training seeds, "
        "demonstration seeds and then items (one item draw for every language). With 2–3 seeds the seed level is "
        "coarse and the interval approximate. SD columns: the standard deviation of the mean change that one "
        "run's items, one demonstration set and one training seed contribute (item noise removed from the seed "
        "levels, floored at 0; – where there is one seed); spend compute on the largest. docs/report.md says "
        "how each is computed."))
    rows: list[list[Cell | str]] = []
    sd = lambda x: "–" if x is None else pct(x)
    for arm, name, _, _, mode, u in page.seeds.every(groups):
        iv, b = u.interval, u.breakdown
        cls = ("up" if iv.value > 0 else "down") if (iv.lo > 0 or iv.hi < 0) else "ns"
        rows.append([Cell(f"{arm[1]} · {arm[0]} · labels {arm[2]}", cls="label"), Cell(name, cls="label"),
                     mode_title(mode), Cell(iv.text, cls="label", title="; ".join(iv.left_out)),
                     Cell(signed(iv.value), sub=ci_text([iv.lo, iv.hi]), cls=cls),
                     sd(b.items), sd(b.demos), sd(b.train), sd(b.grand_sd)])
    if rows:
        head = [Cell("task · model", cls="label"), Cell("mix", cls="label"), "scoring", Cell("runs", cls="label"),
                "Δ mean", "SD items", "SD demo set", "SD training seed", "SD of Δ mean"]
        page.blocks.append(Table("uncertainty-table", head, rows,
                                 caption="mean change (points) over seeds and demonstrations; SDs in points"))
    else:
        page.blocks.append(Text("no tuned run compared with a base run", "note"))
    _by_demo(page, groups)
    power: list[list[Cell | str]] = []
    for g, es in groups.items():
        for e, c in comparisons(page.s, es):
            for mode, sc in c["scores"].items():
                m = sc["mean"]
                power.append([Cell(group_title(g), cls="label"), Cell(row_name(e, es), cls="label"),
                              mode_title(mode), Cell(signed(m["diff"]), sub=ci_text(m["ci95"])),
                              Cell((m.get("resampling") or {}).get("text", "–"), cls="label"),
                              f"±{pct(m['mde80'])}" if m.get("mde80") is not None else "–"])
    if power:
        page.blocks.append(Heading(3, "Power of each comparison"))
        page.blocks.append(Text("The smallest mean change each single comparison could detect at 80% power "
                                "(two-sided α = 0.05): (1.96 + 0.84) times the bootstrap SD of its mean change. "
                                "A 'not significant' change smaller than this is not evidence of no effect."))
        head = [Cell("task · model", cls="label"), Cell("mix", cls="label"), "scoring", "Δ mean",
                Cell("items resampled", cls="label"), "detectable at 80% power"]
        page.blocks.append(Table("power-table", head, power, caption="points"))

"""The paper's findings table: each finding of the study config's `findings` block tested by a contrast of arms
paired through demonstration sets (metrics.contrast_interval), with its verdict; each arm's change; the figure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qtalign.compare import RAW
from qtalign.data.controls import trained_languages
from qtalign.metrics import Arm, ContrastInterval, RunDiff, contrast_interval, contrast_verdict, restrict
from qtalign.report.format import ci_text, mode_title, ordered_langs, pct, signed
from qtalign.report.page import Builder
from qtalign.report.render import Cell, Heading, Table, Text
from qtalign.report.seed_aware import run_diff
from qtalign.report.study import EvalEntry, Study

UNTESTABLE = "not testable"
RULE = ("Verdict rule: a finding the paper states as a direction is 'reproduced' when its 95% interval excludes 0 "
        "in that direction, 'contradicted' when it excludes 0 the other way, and 'not shown' otherwise; a finding "
        "stated as a similarity is 'reproduced' when the interval lies inside ± its margin, 'contradicted' when it "
        "lies wholly outside, and 'not shown' otherwise. Both intervals must agree — the hierarchical bootstrap and "
        "the crossed random-effects model — or the verdict is 'not shown'. Power: the smallest change the contrast "
        "detects at 80% power (two-sided 5%), 2.8 × the larger of the two standard errors.")


# Bootstrap resamples of the findings' intervals unless the spec says `bootstrap`: a 95% percentile bound over three
# demonstration sets lies in a thin tail (the extreme set drawn three times is 1 in 27 replicates), where 2,000
# resamples moved a bound by up to 2 points between bootstrap seeds; 20,000 kept it within about 0.5
FINDINGS_BOOT = 20000


@dataclass
class Scope:
    """What the findings compare: one model, task and label mode; the base run of each demonstration seed; every
    mix's evaluations by (training seed, demonstration seed); the languages no mix trains on."""

    model: str
    task: str
    labels: str
    base: dict[int, EvalEntry]
    arms: dict[str, dict[tuple[Any, int], EvalEntry]]
    langs: list[str]
    unseen: list[str]
    seen: dict[str, list[str]]  # mix -> the languages its pairs contain
    n_boot: int = FINDINGS_BOOT  # bootstrap resamples of every contrast (at least the report's --bootstrap)


def scope_of(s: Study, spec: dict[str, Any]) -> Scope | None:
    """The findings' model, task and labels (the spec's, else the first of the study), and the runs they read."""
    cfg = s.data.get("config") or {}
    task = spec.get("task") or next(iter((cfg.get("eval") or {}).get("tasks") or {}), None)
    labels = spec.get("labels") or next(iter((cfg.get("eval") or {}).get("labels") or ["en"]))
    evals = [e for e in s.evals if e.task == task and e.labels == labels and s.run(e) is not None]
    model = spec.get("model") or next((e.model for e in evals if e.mix is None), None)
    base = {e.demo_seed: e for e in evals if e.mix is None and e.model == model}
    if model is None or not base:
        return None
    arms: dict[str, dict[tuple[Any, int], EvalEntry]] = {}
    for e in evals:
        if e.mix is not None and e.model == model and e.demo_seed in base and s.pair(base[e.demo_seed], e):
            arms.setdefault(e.mix, {})[e.train_seed, e.demo_seed] = e
    seen = {m["name"]: trained_languages(m["sources"], m.get("target", "en"), m.get("control"))
            for m in cfg.get("mixes") or []}
    run = s.run(next(iter(base.values())))
    assert run is not None
    high, low = ordered_langs(run.langs)
    langs = high + low
    every = {x for v in seen.values() for x in v}
    return Scope(str(model), str(task), str(labels), base, arms, langs, [x for x in langs if x not in every], seen,
                 max(int(spec.get("bootstrap") or FINDINGS_BOOT), s.n_boot))


def _arm(s: Study, sc: Scope, name: str, weight: float, mode: str, langs: Sequence[str]) -> Arm | None:
    """An arm of a contrast: each of the mix's runs minus the base run of its demonstration seed, over langs."""
    runs: dict[tuple[Any, int], RunDiff] = {}
    for key, e in sc.arms.get(name, {}).items():
        base = sc.base[key[1]]
        if mode != RAW and not all(mode in (s.run(x).modes or []) for x in (base, e)):  # type: ignore[union-attr]
            continue
        runs[key] = restrict(run_diff(s, base, e, mode), langs)
    return Arm(name, weight, runs) if runs else None


def langs_of(sc: Scope, which: Any) -> list[str]:
    """A finding's languages: all, the unseen ones, or a list (those evaluated)."""
    if which == "all":
        return sc.langs
    if which == "unseen":
        return sc.unseen
    return [x for x in which if x in sc.langs]


def contrast(s: Study, sc: Scope, plus: Sequence[str], minus: Sequence[str], mode: str, langs: Sequence[str],
             train_sd: float | None, mixed: bool) -> tuple[ContrastInterval | None, str]:
    """mean(plus arms' changes) - mean(minus arms' changes) over langs, or None and why."""
    arms = [_arm(s, sc, n, 1 / len(plus), mode, langs) for n in plus] + \
           [_arm(s, sc, n, -1 / len(minus), mode, langs) for n in minus]
    missing = [n for n, a in zip([*plus, *minus], arms) if a is None]
    if missing:
        return None, f"no finished {mode_title(mode)} runs of {', '.join(missing)}"
    if not langs:
        return None, "no language to compare"
    try:
        return contrast_interval([a for a in arms if a is not None], sc.n_boot, 0, train_sd=train_sd,
                                 mixed=mixed), ""
    except ValueError as err:
        return None, str(err)


def contrast_text(row: dict[str, Any], langs: Sequence[str]) -> str:
    """'mean(a, b) − mean(c)' with the languages it averages."""
    def group(names: Sequence[str]) -> str:
        return names[0] if len(names) == 1 else f"mean({', '.join(names)})"

    text = group(row["plus"]) + (f" − {group(row['minus'])}" if row.get("minus") else " − base")
    which = row.get("langs", "all")
    where = (f"{len(langs)} unseen languages" if which == "unseen" else
             f"all {len(langs)} languages" if which == "all" else ", ".join(langs))
    return f"{text}; {where}"


def findings(page: Builder) -> None:
    """The findings section: the table (one row per finding, one column group per scoring mode), each arm's change
    over all and unseen languages, and the per-language figure; page.findings gets the numbers for summary.json."""
    spec = (page.s.data.get("config") or {}).get("findings")
    if not spec:
        return
    s = page.s
    page.blocks.append(Heading(2, "The paper's findings", "findings"))
    sc = scope_of(s, spec)
    if sc is None:
        page.blocks.append(Text("no base run of the findings' task and model yet", "note"))
        return
    modes = list(spec.get("modes") or [RAW])
    train_sd = spec.get("train_sd") or {}
    page.blocks.append(Text(
        f"Each finding is tested by a contrast of arms ({sc.task} · {sc.model} · labels {sc.labels}): each arm's "
        "per-item change from the base run of the same demonstration set, combined with the contrast's weights "
        "set by set, over the demonstration sets every arm of the contrast ran. Intervals: hierarchical bootstrap "
        f"({sc.n_boot:,} resamples of the demonstration sets, each arm's training seeds, and item indices; items "
        "matched by index across runs and jointly across languages) beside a crossed random-effects model (REML; t interval on sets − 1 "
        "degrees of freedom). " + ("Arms with one training seed get a training-seed SD of "
                                   + ", ".join(f"{pct(train_sd[k])} points ({mode_title(k)})" for k in modes
                                               if k in train_sd)
                                   + f" added, measured in {spec.get('train_sd_from') or 'another study'}. "
                                   if train_sd else "") +
        f"Unseen languages: those no mix of the study trains on ({', '.join(sc.unseen) or 'none'}). " + RULE))
    rows: list[list[Cell | str]] = []
    for k, row in enumerate(spec.get("rows") or [], 1):
        rows.append(_finding_row(page, sc, row, k, modes, train_sd))
    head = [Cell("#", cls="label"), Cell("finding (the paper's claim)", cls="label"), Cell("contrast", cls="label")]
    for mode in modes:
        head += [f"{mode_title(mode)}: Δ [bootstrap] · model", f"{mode_title(mode)}: verdict"]
    head += ["power (80%)", Cell("the paper's number", cls="label")]
    page.blocks.append(Table("findings-table", head, rows, caption="changes and contrasts in points; 95% intervals"))
    _arm_table(page, sc, spec, modes, train_sd)


def _finding_row(page: Builder, sc: Scope, row: dict[str, Any], k: int, modes: Sequence[str],
                 train_sd: dict[str, float]) -> list[Cell | str]:
    s = page.s
    out: list[Cell | str] = [Cell(str(k), cls="label"), Cell(row["claim"], cls="label", title=row["id"])]
    base = {"table": "findings", "finding": row["id"], "claim": row["claim"], "paper": row.get("paper", "")}
    if row.get("untestable"):
        out.append(Cell(row["untestable"], cls="label"))
        out += [Cell("–"), Cell(UNTESTABLE)] * len(modes) + ["–", Cell(row.get("paper") or "–", cls="label")]
        page.findings.append({**base, "mode": None, "verdict": UNTESTABLE, "untestable": row["untestable"]})
        return out
    langs = langs_of(sc, row.get("langs", "all"))
    direction = row.get("direction", "up")
    out.append(Cell(contrast_text(row, langs), cls="label",
                    sub=f"the paper: {direction}" + (f" within ±{pct(row.get('margin', 0.0))} points"
                                                     if direction == "similar" else "")))
    power = []
    for mode in modes:
        c, why = contrast(s, sc, row["plus"], row.get("minus") or [], mode, langs, train_sd.get(mode), True)
        if c is None:
            out += [Cell("–", title=why), Cell("–")]
            s.notes.append(f"finding {row['id']} ({mode_title(mode)}): not computed ({why})")
            continue
        v = contrast_verdict(c, direction, row.get("margin", 0.0))
        m = c.mixed
        sub = ci_text([c.lo, c.hi]) + (f" · {signed(m.value)} {ci_text([m.lo, m.hi])}" if m else "")
        cls = "up" if v == "reproduced" else "down" if v == "contradicted" else "ns"
        out += [Cell(signed(c.value), sub=sub, cls=cls, title="; ".join((c.text, *c.left_out))), Cell(v, cls=cls)]
        power.append(f"±{pct(c.mde80)} ({mode_title(mode)})")
        page.findings.append({**base, "mode": mode, "verdict": v, "direction": direction,
                              "margin": row.get("margin", 0.0), "contrast": contrast_text(row, langs),
                              "plus": list(row["plus"]), "minus": list(row.get("minus") or []), "langs": langs,
                              "langs_set": row.get("langs", "all") if isinstance(row.get("langs", "all"), str)
                              else "list",
                              **c.record()})
    out += ["; ".join(power) or "–", Cell(row.get("paper") or "–", cls="label")]
    return out


def _arm_table(page: Builder, sc: Scope, spec: dict[str, Any], modes: Sequence[str],
               train_sd: dict[str, float]) -> None:
    """Each arm of any finding: its change from base over all languages and over the unseen ones, per mode; then
    each arm's per-language change in a figure, high- and low-resource languages apart, seen ones filled."""
    s = page.s
    named = list(dict.fromkeys(n for r in spec.get("rows") or [] for n in (*r.get("plus", ()), *r.get("minus", ()))))
    rows: list[list[Cell | str]] = []
    series: dict[str, list[tuple[str, dict[str, float], list[str]]]] = {m: [] for m in modes}
    for name in named:
        if name not in sc.arms:
            continue
        runs = sc.arms[name]
        row: list[Cell | str] = [Cell(name, cls="label"),
                                 Cell(", ".join(sc.seen.get(name, [])) or "?", cls="label"),
                                 f"{len({k[0] for k in runs})} × {len({k[1] for k in runs})}"]
        for mode in modes:
            for which in ("all", "unseen"):
                c, why = contrast(s, sc, [name], [], mode, langs_of(sc, which), train_sd.get(mode), False)
                if c is None:
                    row.append(Cell("–", title=why))
                    continue
                row.append(Cell(signed(c.value), sub=ci_text([c.lo, c.hi]), title=c.text,
                                cls=("up" if c.value > 0 else "down") if c.lo > 0 or c.hi < 0 else "ns"))
                page.findings.append({"table": "arms", "arm": name, "mode": mode, "langs_set": which,
                                      "langs": langs_of(sc, which), **c.record()})
            arm = _arm(s, sc, name, 1.0, mode, sc.langs)
            if arm is not None:
                per_lang = {lang: float(np.mean([r.values[r.langs.index(lang)].mean() for r in arm.runs.values()
                                                 if lang in r.langs])) for lang in sc.langs}
                series[mode].append((name, per_lang, sc.seen.get(name, [])))
        rows.append(row)
    if not rows:
        return
    head = [Cell("arm", cls="label"), Cell("trained on", cls="label"), "seeds × sets"]
    for mode in modes:
        head += [f"{mode_title(mode)}: Δ all", f"{mode_title(mode)}: Δ unseen"]
    page.blocks.append(Heading(3, "Each arm's change from base"))
    page.blocks.append(Table("findings-arms", head, rows, caption="mean change from base (points) over its runs, "
                                                                  "with the bootstrap interval of the table above"))
    from qtalign.figures.findings import resource_gains_figure

    high, low = ordered_langs(sc.langs)
    page.figure("findings-languages", lambda stem: resource_gains_figure(series, high, low, stem),
                "Change from base per language (points; mean over each arm's runs), the paper's high-resource "
                "languages left of the dotted line and low-resource ones right; filled: a language of the arm's "
                "training pairs (seen), hollow: unseen; black bars: mean over the arms.")

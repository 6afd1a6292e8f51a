"""Numbers, names and cells as the report's sections write them: points, intervals, modes, language order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from qtalign.compare import RAW, Run
from qtalign.languages import LANGUAGES, PAPER_LANGS
from qtalign.report.render import Cell

MODE_ORDER = (RAW, "batch", "content-free")
SIG_LEGEND = ("* / ** / *** = exact McNemar p < 0.05 / 0.01 / 0.001 after Holm correction over the table's "
              "languages (green: up, red: down, grey: not significant)")

GroupKey = tuple[str, str, str, int]  # (model, task, labels, demo seed): the evals one table compares
Arm = tuple[str, str, str, str, str | None]  # (model, task, labels, mix, control): one tuned setting over its seeds


def pct(x: float) -> str:
    """A fraction as a percentage, one decimal."""
    return f"{100 * x:.1f}"


def signed(x: float) -> str:
    """A change as signed points, one decimal."""
    return f"{100 * x:+.1f}"


def ci_text(ci: Sequence[float]) -> str:
    """An interval as signed points in brackets."""
    return f"[{signed(ci[0])}, {signed(ci[1])}]"


def mode_title(mode: str) -> str:
    """'raw' or 'calibrated (MODE)'."""
    return "raw" if mode == RAW else f"calibrated ({mode})"


def slugify(*parts: object) -> str:
    """Lower-case alphanumerics joined by dashes: an id for anchors and figure names."""
    text = "-".join(str(p) for p in parts if p is not None)
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def group_title(g: GroupKey) -> str:
    """'task · model · labels L · demo seed D'."""
    model, task, labels, demo_seed = g
    return f"{task} · {model} · labels {labels} · demo seed {demo_seed}"


def arm_name(arm: Arm) -> str:
    """The mix, with its control kind when the name does not say it."""
    mix, control = arm[3], arm[4]
    return mix + (f" [{control}]" if control and control not in mix else "")


def ordered_langs(langs: Sequence[str]) -> tuple[list[str], list[str]]:
    """(high-resource, low-resource) in the paper's order; codes outside the table count as low-resource."""
    rank = {code: k for k, code in enumerate(PAPER_LANGS)}
    ordered = sorted(langs, key=lambda x: rank.get(x, len(rank)))
    high = [x for x in ordered if x in LANGUAGES and LANGUAGES[x].high_resource]
    return high, [x for x in ordered if x not in high]


def run_accuracy(run: Run | None, mode: str, lang: str) -> float | None:
    """A run's accuracy in one language and scoring mode (None: no run, mode or language)."""
    if run is None or (mode != RAW and mode not in run.modes) or lang not in run.items:
        return None
    return float(run.correct(lang, mode).mean())


def gain_cell(grp: dict[str, Any]) -> Cell:
    """A mean change (points) with its interval below, coloured when the interval excludes 0."""
    cls = ("up" if grp["diff"] > 0 else "down") if grp.get("excludes_zero") else "ns"
    return Cell(signed(grp["diff"]), sub=ci_text(grp["ci95"]), cls=cls)


def spread_cell(values: Sequence[float]) -> Cell:
    """Mean ± sd (%) of accuracies over seeds."""
    if not values:
        return Cell("–")
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return Cell(f"{pct(float(np.mean(values)))} ± {pct(sd)}")

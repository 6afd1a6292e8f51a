"""Wall-time estimate of a study plan's steps from measured per-item and per-pair costs (`qtalign run --dry-run`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from qtalign.data.ranges import parse_item_range
from qtalign.study.plan import Plan, Step

# Seconds of wall time per unit of work, measured on this project's 2-core CPU while it was shared with other work,
# from the step seconds in the study.json of committed evidence (packaged Gemma 3 270M; 2-shot sentiment prompts of
# the paper's review test files, 20 languages x 100 items, content-free prompts included):
# - eval float32 and train (per built pair and epoch; LoRA r 8, batch 4, float32; review questions = a mix of task
#   emotion, SNLI questions = task nli) from preset:cpu-paper-findings' stage 1 (docs/evidence/findings.json.xz: 42
#   evaluations, 12 trainings of 240 review-question pairs, 1 of 240 SNLI-question pairs), run with `--jobs 2` and
#   one thread per step: each cost is a step's own wall time while another step ran beside it;
# - eval bfloat16 from preset:cpu-intask (20 evaluations, docs/evidence/intask.json.xz), one step at a time;
# - lens and PCA, per language x item: cpu-intask (bfloat16) and cpu-reproduction (float32);
# - report, per evaluation it reads: cpu-intask (20 evaluations); build and compare: fixed.
COSTS: dict[str, Any] = {
    "source": "step seconds of preset:cpu-paper-findings (float32 evaluation, training; --jobs 2, one thread per "
              "step), preset:cpu-intask and preset:cpu-reproduction (docs/evidence), packaged Gemma 3 270M, this "
              "2-core CPU shared with other work",
    "models": {
        "gemma-3-270m": {
            "eval_item": {"bfloat16": 0.2518, "float32": 0.3983},
            "train_pair": {"emotion": 2.058, "nli": 0.7165},
            "lens_item": {"bfloat16": 1.037, "float32": 1.322},
            "pca_item": {"bfloat16": 0.4725, "float32": 0.5427},
        },
    },
    "build": 0.5,
    "compare": 1.0,
    "report_per_eval": 1.58,
}


@dataclass(frozen=True)
class KindEstimate:
    """The estimate of one step kind: how many steps, their seconds, and what the estimate assumed."""

    kind: str
    steps: int
    seconds: float
    basis: str
    unknown: int = 0  # steps with no measured cost (another model, dtype or task)


def _items(settings: dict[str, Any]) -> int | None:
    """Items an evaluation scores: languages x (limit, else the item range's size)."""
    per_lang = settings.get("limit")
    if per_lang is None and settings.get("items"):
        rng = parse_item_range(str(settings["items"]))
        per_lang = rng.end - rng.start
    return None if per_lang is None else per_lang * len(settings.get("langs") or [])


def _dtype(value: Any) -> str:
    return str(value or "float32").removeprefix("torch.")


def step_seconds(step: Step, plan: Plan, costs: dict[str, Any] = COSTS) -> float | None:
    """Estimated wall seconds of one step (None: no measured cost for its model, dtype or task)."""
    if step.kind in ("build", "compare"):
        return float(costs[step.kind])
    if step.kind == "report":
        return costs["report_per_eval"] * sum(1 for d in step.deps if plan[d].kind == "eval")
    settings = step.params.get("settings", step.params)
    model = costs["models"].get(str(settings.get("model")))
    if model is None:
        return None
    if step.kind == "eval":
        per, n = model["eval_item"].get(_dtype(settings.get("dtype"))), _items(settings)
        return None if per is None or n is None else per * n
    if step.kind == "train":
        build = plan[step.deps[0]].params
        per = model["train_pair"].get(str(build.get("task")))
        if per is None or build.get("per_lang") is None:
            return None
        return per * build["per_lang"] * len(build["sources"]) * float(settings.get("epochs", 1))
    if step.kind in ("lens", "pca"):
        per = model[f"{step.kind}_item"].get(_dtype(settings.get("dtype")))
        return None if per is None else per * len(settings["langs"]) * int(settings["limit"] or 0)
    return None


def estimate(plan: Plan, to_run: Iterable[str], costs: dict[str, Any] = COSTS) -> list[KindEstimate]:
    """Per step kind, the estimated wall time of the steps in to_run (ids), in plan order of kinds."""
    todo = set(to_run)
    out: dict[str, list[float | None]] = {}
    for s in plan.steps:
        if s.id in todo:
            out.setdefault(s.kind, []).append(step_seconds(s, plan, costs))
    basis = {"eval": "seconds per scored item", "train": "seconds per training pair and epoch",
             "lens": "seconds per language x item", "pca": "seconds per language x item",
             "report": "seconds per evaluation read", "build": "a fixed cost", "compare": "a fixed cost"}
    return [KindEstimate(k, len(v), sum(x for x in v if x is not None), basis.get(k, ""),
                         sum(x is None for x in v)) for k, v in out.items()]


def schedule_seconds(plan: Plan, to_run: Iterable[str], jobs: int, costs: dict[str, Any] = COSTS) -> float:
    """Wall seconds of the steps in to_run when up to `jobs` run at a time, as `qtalign run --jobs` starts them: in
    plan order, each as soon as a worker is free and the steps it depends on have ended (a list schedule; steps
    with no measured cost count 0 s). Assumes each step keeps its measured cost with `jobs` running beside it (one
    core per step)."""
    wanted = set(to_run)
    todo = [s for s in plan.steps if s.id in wanted]
    ends: dict[str, float] = {}
    free = [0.0] * max(1, jobs)  # when each worker is next free
    for s in todo:  # plan order is a topological order
        ready = max([ends[d] for d in s.deps if d in ends], default=0.0)
        k = min(range(len(free)), key=lambda i: max(free[i], ready))
        start = max(free[k], ready)
        ends[s.id] = free[k] = start + (step_seconds(s, plan, costs) or 0.0)
    return max(ends.values(), default=0.0)


def format_estimate(kinds: list[KindEstimate], costs: dict[str, Any] = COSTS, *,
                    scheduled: tuple[int, float] | None = None) -> str:
    """The dry run's closing lines: each kind's steps and minutes, the total in hours, what the costs are;
    scheduled: (jobs, wall seconds of schedule_seconds) when the run would take several steps at a time."""
    total = sum(k.seconds for k in kinds)
    unknown = sum(k.unknown for k in kinds)
    several = scheduled is not None and scheduled[0] > 1
    lines = [f"estimated wall time of the steps to run: {total / 3600:.1f} h ({total / 60:.0f} min)" +
             (" one step at a time" if several else "") +
             (f", not counting {unknown} step(s) with no measured cost (a model, dtype or task the costs table "
              "lacks)" if unknown else "")]
    if scheduled is not None and several:
        jobs, wall = scheduled
        lines.append(f"  with --jobs {jobs}: about {wall / 3600:.1f} h ({wall / 60:.0f} min), {jobs} steps at a time "
                     f"where the plan's order allows, each at its measured cost (one core per step)")
    for k in kinds:
        unknown = f"; {k.unknown} with no measured cost, not counted" if k.unknown else ""
        mean = k.seconds / max(1, k.steps - k.unknown)
        each = f"{mean / 60:.1f} min" if mean >= 60 else f"{mean:.0f} s" if mean >= 10 else f"{mean:.1f} s"
        lines.append(f"  {k.kind:<8} {k.steps:>4} steps  {k.seconds / 60:7.1f} min  (about {each} each; "
                     f"{k.basis}{unknown})")
    lines.append(f"  costs: {costs['source']}; an idle or faster machine takes less")
    return "\n".join(lines)

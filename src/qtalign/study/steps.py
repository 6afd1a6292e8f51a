"""What each kind of study step does: library calls on the step's folder, given its finished dependencies."""

from __future__ import annotations

import contextlib
import inspect
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtalign.errors import QtalignError
from qtalign.study.plan import Plan, Step

PAIRS = "pairs.jsonl"


@dataclass
class Context:
    root: Path  # the study folder
    plan: Plan
    progress: bool = True

    def out(self, step: Step) -> Path:
        return self.root / step.out

    def dep_out(self, step: Step, kind: str) -> Path:
        dep = next(d for d in step.deps if self.plan[d].kind == kind)
        return self.root / self.plan[dep].out


def build_supports_controls() -> bool:
    from qtalign.data.build import build_pairs

    return "control" in inspect.signature(build_pairs).parameters


def run_build(step: Step, ctx: Context) -> None:
    from qtalign.data.build import build_pairs
    from qtalign.data.build_output import write_outputs
    from qtalign.tasks import get_task

    p = step.params
    kwargs: dict[str, Any] = {}
    if p["control"] is not None:
        if not build_supports_controls():
            raise QtalignError(f"control {p['control']!r} needs qtalign.data.build.build_pairs(control=...), "
                               "which this installation lacks")
        kwargs = {"control": p["control"], "parallel": p["parallel"]}
    if p.get("test_items") is not None:
        from qtalign.data.ranges import parse_item_range

        kwargs["test_items"] = parse_item_range(p["test_items"], "test_items")
    report = build_pairs(get_task(p["task"]), p["data"], p["sources"], p["target"], p["per_lang"], p["seed"],
                         p["exclude"], p["allow_contamination"], **kwargs)
    settings = {k: p[k] for k in ("task", "data", "sources", "target", "per_lang", "seed", "exclude",
                                  "allow_contamination")}
    settings["translate_with"] = None
    if p["control"] is not None:
        settings.update(control=p["control"], parallel=p["parallel"])
    if p.get("test_items") is not None:
        settings["test_items"] = p["test_items"]
    write_outputs(report, ctx.out(step) / PAIRS, settings)


def run_train(step: Step, ctx: Context) -> None:
    from qtalign.train import TrainSettings
    from qtalign.train import run as train

    out = ctx.out(step)
    s = TrainSettings.parse({**step.params["settings"], "data": str(ctx.dep_out(step, "build") / PAIRS),
                             "out": str(out), "device": step.runtime["device"]}, step.id)
    checkpoint = (out / "checkpoint" / "state.json").is_file() or (out / "checkpoint.old" / "state.json").is_file()
    if not checkpoint and (out / "adapter" / "adapter_config.json").is_file():
        return  # finished before a crash that came before the step was marked done
    train(s, resume=checkpoint, progress=ctx.progress)


def run_eval_step(step: Step, ctx: Context) -> None:
    from qtalign.eval import EvalSettings
    from qtalign.eval import run as run_eval

    fields = {**step.params["settings"], **step.runtime}
    if step.deps:
        fields["adapter"] = str(ctx.dep_out(step, "train") / "adapter")
    run_eval(EvalSettings.parse(fields, step.id), ctx.out(step), progress=ctx.progress)


def run_compare(step: Step, ctx: Context) -> None:
    try:
        from qtalign.compare import compare_runs, write_compare
    except ImportError:
        raise QtalignError("this installation has no qtalign.compare (the compare step needs it)") from None
    runs = [ctx.root / ctx.plan[d].out for d in step.deps]
    p = step.params
    result = compare_runs(runs, names=p["names"], n_boot=p["n_boot"], seed=p["seed"])
    write_compare(result, ctx.out(step))


def _analysis_argv(step: Step, ctx: Context) -> list[str]:
    p, r = step.params, step.runtime
    argv = [step.kind, "--model", p["model"], "--task", p["task"], "--data", p["data"], "--langs", ",".join(p["langs"]),
            "--seed", str(p["seed"]), "--device", r["device"], "--batch-size", str(r["batch_size"]),
            "--out", str(ctx.out(step))]
    if not p.get("protocol"):  # a protocol presets its own label words
        argv += ["--labels", p["labels"]]
    for flag, key in (("--limit", "limit"), ("--shots", "shots"), ("--demos", "demos"), ("--dtype", "dtype"),
                      ("--protocol", "protocol"), ("--items", "items")):
        if p.get(key) is not None:
            argv += [flag, str(p[key])]
    if p.get("trust_remote_code"):
        argv.append("--trust-remote-code")
    if step.kind == "lens":
        argv += ["--bootstrap", str(p["bootstrap"])]
    else:
        argv += ["--pool", p["pool"]] + (["--layers", p["layers"]] if p.get("layers") else [])
    if any(ctx.plan[d].kind == "train" for d in step.deps):
        argv += ["--adapter", str(ctx.dep_out(step, "train") / "adapter"),
                 "--compare", str(ctx.dep_out(step, step.kind))]
    return argv


def run_analysis(step: Step, ctx: Context) -> None:
    """lens/pca through their subcommand's run function, in this process (their loops live in the CLI modules)."""
    from qtalign.cli.main import build_parser

    args = build_parser().parse_args(_analysis_argv(step, ctx))
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):  # the subcommand prints the files it wrote
        args.func(args)
    (ctx.out(step) / "files.txt").write_text(buf.getvalue(), encoding="utf-8")


def run_report(step: Step, ctx: Context) -> None:
    try:
        from qtalign.report import build_report  # type: ignore[attr-defined]
    except ImportError:
        raise QtalignError("this installation has no qtalign.report.build_report (the report step needs it)") from None
    build_report(ctx.root)


EXECUTORS: dict[str, Callable[[Step, Context], None]] = {
    "build": run_build, "train": run_train, "eval": run_eval_step, "compare": run_compare,
    "lens": run_analysis, "pca": run_analysis, "report": run_report,
}


def missing_support(plan: Plan) -> list[str]:
    """What the plan needs that this installation lacks (checked before anything runs)."""
    problems = []
    kinds = {s.kind for s in plan.steps}
    if "compare" in kinds:
        try:
            import qtalign.compare  # noqa: F401
        except ImportError:
            problems.append("compare steps need qtalign.compare (set `compare: false` to skip them)")
    if "report" in kinds:
        try:
            from qtalign.report import build_report  # type: ignore[attr-defined]  # noqa: F401
        except ImportError:
            problems.append("the report step needs qtalign.report.build_report (set `report: false` to skip it)")
    controls = sorted({s.params["control"] for s in plan.steps if s.kind == "build" and s.params["control"]})
    if controls and not build_supports_controls():
        problems.append(f"control mixes ({', '.join(controls)}) need build_pairs(control=...)")
    return problems

"""What each kind of study step does: library calls on the step's folder, given its finished dependencies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtalign.runs.train import ADAPTER, CHECKPOINT
from qtalign.study.plan import Plan, Step

if TYPE_CHECKING:
    from qtalign.analysis.lens_run import LensSettings
    from qtalign.analysis.pca_run import PCASettings

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


def run_build(step: Step, ctx: Context) -> None:
    """The mix's pairs through the build stage's entry, into the step's folder (the runner holds it: overwrite)."""
    from qtalign.data.build_run import BuildSettings
    from qtalign.data.build_run import run as build

    p = step.params
    keys = ("task", "data", "sources", "target", "per_lang", "seed", "exclude", "allow_contamination", "control",
            "parallel", "test_items")
    fields: dict[str, Any] = {k: p[k] for k in keys if k in p}  # test_items only where the mix sets it
    build(BuildSettings.parse({**fields, "out": str(ctx.out(step) / PAIRS), "overwrite": True}, step.id),
          progress=ctx.progress)


def run_train(step: Step, ctx: Context) -> None:
    from qtalign.train import TrainSettings
    from qtalign.train import run as train
    from qtalign.train.checkpoint import existing_checkpoint

    out = ctx.out(step)
    s = TrainSettings.parse({**step.params["settings"], "data": str(ctx.dep_out(step, "build") / PAIRS),
                             "out": str(out), "device": step.runtime["device"]}, step.id)
    checkpoint = existing_checkpoint(out / CHECKPOINT) is not None  # also the .old one a kill mid-swap leaves
    if not checkpoint and (out / ADAPTER / "adapter_config.json").is_file():
        return  # finished before a crash that came before the step was marked done
    train(s, progress=ctx.progress)  # resumes from the checkpoint, if there is one


def run_eval_step(step: Step, ctx: Context) -> None:
    from qtalign.eval import EvalSettings
    from qtalign.eval import run as run_eval

    fields = {**step.params["settings"], **step.runtime, "out": str(ctx.out(step))}
    if step.deps:
        fields["adapter"] = str(ctx.dep_out(step, "train") / ADAPTER)
    run_eval(EvalSettings.parse(fields, step.id), progress=ctx.progress)


def run_compare(step: Step, ctx: Context) -> None:
    """The compare stage's entry on the step's eval runs (the first is the base), written to the step's folder."""
    from qtalign.compare.run import CompareSettings
    from qtalign.compare.run import run as compare

    p = step.params
    compare(CompareSettings.parse({"runs": [str(ctx.root / ctx.plan[d].out) for d in step.deps], "names": p["names"],
                                   "n_boot": p["n_boot"], "seed": p["seed"], "out": str(ctx.out(step))}, step.id),
            progress=ctx.progress)


def analysis_settings(step: Step, ctx: Context) -> LensSettings | PCASettings:
    """The lens or pca settings of a step (qtalign.analysis.lens_run.LensSettings / pca_run.PCASettings): what
    `qtalign lens`/`pca` would be given for it, a tuned model's run compared with its base model's."""
    p, r = step.params, step.runtime
    fields: dict[str, Any] = {"model": p["model"], "task": p["task"], "data": p["data"], "langs": p["langs"],
                              "seed": p["seed"], "device": r["device"], "batch_size": r["batch_size"],
                              "out": str(ctx.out(step))}
    if not p.get("protocol"):  # a protocol presets its own label words
        fields["labels"] = p["labels"]
    for key in ("limit", "shots", "demos", "dtype", "protocol", "items"):
        if p.get(key) is not None:
            fields[key] = p[key]
    if p.get("trust_remote_code"):
        fields["trust_remote_code"] = True
    if any(ctx.plan[d].kind == "train" for d in step.deps):
        fields.update(adapter=str(ctx.dep_out(step, "train") / ADAPTER), compare=str(ctx.dep_out(step, step.kind)))
    if step.kind == "lens":
        from qtalign.analysis.lens_run import LensSettings

        return LensSettings.parse({**fields, "bootstrap": p["bootstrap"]}, step.id)
    from qtalign.analysis.pca_run import PCASettings

    return PCASettings.parse({**fields, "pool": p["pool"], **({"layers": p["layers"]} if p.get("layers") else {})},
                             step.id)


def run_analysis(step: Step, ctx: Context) -> None:
    """lens/pca through the library run; files.txt lists the files it wrote, one a line."""
    from qtalign.analysis import lens_run, pca_run

    s = analysis_settings(step, ctx)
    if isinstance(s, lens_run.LensSettings):  # no progress lines under `qtalign run --no-progress`
        result = lens_run.run(s, progress=ctx.progress)
    else:
        result = pca_run.run(s, progress=ctx.progress)
    (ctx.out(step) / "files.txt").write_text("".join(f"{path}\n" for path in result.files), encoding="utf-8")


def run_report(step: Step, ctx: Context) -> None:
    """The report stage's entry on the whole study folder."""
    from qtalign.report.run import ReportSettings
    from qtalign.report.run import run as report

    report(ReportSettings(study=str(ctx.root)), progress=ctx.progress)


EXECUTORS: dict[str, Callable[[Step, Context], None]] = {
    "build": run_build, "train": run_train, "eval": run_eval_step, "compare": run_compare,
    "lens": run_analysis, "pca": run_analysis, "report": run_report,
}

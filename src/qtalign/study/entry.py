"""The study entries: `qtalign run` (a config or preset) and `qtalign demo`, settings in, the study run, its account out."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from qtalign.errors import QtalignError
from qtalign.settings import Progress, Settings, bars, say

if TYPE_CHECKING:
    from qtalign.study.runner import RunSummary
    from qtalign.study.schema import StudyConfig

class StudySettings(Settings):
    """What `qtalign run` runs: a study config file or preset:NAME, in a study folder."""

    config: str | None = None
    out: str | None = None  # study folder (None: runs/<name> from the config)
    data_root: str | None = None  # folder relative data paths resolve against (None: the config's folder)
    dry_run: bool = False  # print the plan and stop
    verify: bool = False  # check every finished step's recorded outputs, run nothing (entry.verify)
    jobs: int | None = Field(None, ge=1)  # steps at a time in worker processes (None: 1 here, every ready one on an engine)
    engine: Literal["slurm", "submitit-local"] | None = None  # each step a job of this engine (study.engine)
    engine_options: list[str] = Field(default_factory=list)  # KEY=VALUE submitit parameters


class DemoSettings(Settings):
    """What `qtalign demo` runs: the demo preset, or the same loop on the paper's data layout."""

    data: str | None = None  # a folder with emotion/ and snli/ in the paper's layout (None: the shipped data)
    out: str | None = None  # study folder (None: runs/demo, or runs/demo-paper with data)
    model: str | None = None
    limit: int | None = None  # items per language
    pairs: int | None = None  # question pairs per source language
    dry_run: bool = False


@dataclass
class StudyResult:
    """A study run (or dry run, or verification): its folder, the runner's summary, and the closing account: the mean
    gains and the report (a demo: its headline), the dry run's estimate, or what the verification found."""

    out: Path
    summary: RunSummary | None = None  # None for a verification
    closing: list[str] = field(default_factory=list)
    verified: bool | None = None  # a verification: every finished step would be reused

    def lines(self) -> list[str]:
        """What `qtalign run` / `qtalign demo` print once the steps are done."""
        return list(self.closing)


def run(s: StudySettings, *, progress: Progress = True) -> StudyResult:
    """Load and run the study (cached steps reused), or with s.verify only verify it. progress: the study folder, the
    plan and each step as it starts and ends (progress lines), and the bars inside steps."""
    from qtalign.study.config import load_study
    from qtalign.study.runner import run_study
    from qtalign.study.summary import gain_lines, report_lines

    if not s.config:
        raise QtalignError("give a study config file or preset:NAME (see --presets)")
    cfg = load_study(s.config, data_root=s.data_root)
    out = Path(s.out) if s.out else Path("runs") / cfg.name
    if s.verify:
        return verify(s, cfg, out)
    say(progress)(f"study {cfg.name!r} -> {out}")
    if s.engine_options and s.engine is None:
        raise QtalignError("--engine-option: needs --engine")
    workers = None
    if s.jobs is not None or s.engine is not None:
        from qtalign.study.engine import parse_options
        from qtalign.study.runner import Workers

        workers = Workers(s.jobs, s.engine, parse_options(s.engine_options))
    summary = run_study(cfg, out, dry_run=s.dry_run, progress=bars(progress), echo=say(progress), workers=workers)
    closing = [dry_run_estimate(summary, s.jobs)] if s.dry_run else gain_lines(out) + report_lines(out)
    return StudyResult(out, summary, closing)


def dry_run_estimate(summary: RunSummary, jobs: int | None = None) -> str:
    """The estimated wall time of the plan's steps that the dry run found not reusable (study.estimate), also with
    `jobs` steps at a time when --jobs asks for several."""
    from qtalign.study.estimate import estimate, format_estimate, schedule_seconds

    reused = set(summary.reused)
    todo = [st.id for st in summary.plan.steps if st.id not in reused]
    scheduled = (jobs, schedule_seconds(summary.plan, todo, jobs)) if jobs and jobs > 1 else None
    return format_estimate(estimate(summary.plan, todo), scheduled=scheduled)


def verify(s: StudySettings, cfg: StudyConfig, out: Path) -> StudyResult:
    """Check every step of the study's plan against what its folder holds, running nothing: a count per status and a
    line per failed file; verified when every finished step would be reused."""
    from qtalign.study.plan import make_plan
    from qtalign.study.verify import check_steps, verify_failed, verify_lines

    if not out.is_dir():
        raise QtalignError(f"--out {out}: no such study folder")
    plan = make_plan(cfg)
    checks = check_steps(out, plan)
    return StudyResult(out, closing=verify_lines(out, plan, checks), verified=not verify_failed(checks))


def run_demo(s: DemoSettings, *, progress: Progress = True) -> StudyResult:
    """Run the demo study; progress as for run; the closing account is the demo's headline and control."""
    from qtalign.study.demo import demo_config
    from qtalign.study.runner import run_study
    from qtalign.study.summary import demo_lines

    cfg = demo_config(s.data, s.model, s.limit, s.pairs)
    out = Path(s.out) if s.out else Path("runs") / cfg.name
    say(progress)(f"qtalign demo -> {out}")
    t0 = time.perf_counter()
    summary = run_study(cfg, out, dry_run=s.dry_run, progress=bars(progress), echo=say(progress))
    closing = [] if s.dry_run else demo_lines(cfg, out, None if summary.nothing_to_do else t0)
    return StudyResult(out, summary, closing)

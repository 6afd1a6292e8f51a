"""The study entries: `qtalign run` (a config or preset) and `qtalign demo`, settings in, the study run, its account out."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from qtalign.errors import QtalignError
from qtalign.settings import Settings

if TYPE_CHECKING:
    from qtalign.study.runner import RunSummary

Echo = Callable[[str], None]


class StudySettings(Settings):
    """What `qtalign run` runs: a study config file or preset:NAME, in a study folder."""

    config: str | None = None
    out: str | None = None  # study folder (None: runs/<name> from the config)
    data_root: str | None = None  # folder relative data paths resolve against (None: the config's folder)
    dry_run: bool = False  # print the plan and stop
    verify: bool = False  # check every finished step's recorded outputs, run nothing (entry.verify)
    progress: bool = True  # progress bars inside steps
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
    progress: bool = True


def run(s: StudySettings, echo: Echo = print) -> RunSummary:
    """Load and run the study (cached steps reused); echo gets the plan, each step, the mean gains and the report."""
    from qtalign.study.config import load_study
    from qtalign.study.runner import run_study
    from qtalign.study.summary import gain_lines, report_lines

    if not s.config:
        raise QtalignError("give a study config file or preset:NAME (see --presets)")
    cfg = load_study(s.config, data_root=s.data_root)
    out = Path(s.out) if s.out else Path("runs") / cfg.name
    echo(f"study {cfg.name!r} -> {out}")
    if s.engine_options and s.engine is None:
        raise QtalignError("--engine-option: needs --engine")
    workers = None
    if s.jobs is not None or s.engine is not None:
        from qtalign.study.engine import parse_options
        from qtalign.study.runner import Workers

        workers = Workers(s.jobs, s.engine, parse_options(s.engine_options))
    summary = run_study(cfg, out, dry_run=s.dry_run, progress=s.progress, echo=echo, workers=workers)
    if s.dry_run:
        echo(dry_run_estimate(summary))
    else:
        for line in gain_lines(out) + report_lines(out):
            echo(line)
    return summary


def dry_run_estimate(summary: RunSummary) -> str:
    """The estimated wall time of the plan's steps that the dry run found not reusable (study.estimate)."""
    from qtalign.study.estimate import estimate, format_estimate

    reused = set(summary.reused)
    return format_estimate(estimate(summary.plan, [st.id for st in summary.plan.steps if st.id not in reused]))


def verify(s: StudySettings, echo: Echo = print) -> bool:
    """Check every step of the study's plan against what its folder holds, running nothing; echo gets a count per
    status and a line per failed file. True when every finished step would be reused."""
    from qtalign.study.config import load_study
    from qtalign.study.plan import make_plan
    from qtalign.study.verify import check_steps, verify_failed, verify_lines

    if not s.config:
        raise QtalignError("give a study config file or preset:NAME (see --presets)")
    cfg = load_study(s.config, data_root=s.data_root)
    out = Path(s.out) if s.out else Path("runs") / cfg.name
    if not out.is_dir():
        raise QtalignError(f"--out {out}: no such study folder")
    plan = make_plan(cfg)
    checks = check_steps(out, plan)
    for line in verify_lines(out, plan, checks):
        echo(line)
    return not verify_failed(checks)


def run_demo(s: DemoSettings, echo: Echo = print) -> RunSummary:
    """Run the demo study; echo gets the plan, each step, and the demo's closing account (headline, control)."""
    from qtalign.study.demo import demo_config
    from qtalign.study.runner import run_study
    from qtalign.study.summary import demo_lines

    cfg = demo_config(s.data, s.model, s.limit, s.pairs)
    out = Path(s.out) if s.out else Path("runs") / cfg.name
    echo(f"qtalign demo -> {out}")
    t0 = time.perf_counter()
    summary = run_study(cfg, out, dry_run=s.dry_run, progress=s.progress, echo=echo)
    if not s.dry_run:
        for line in demo_lines(cfg, out, None if summary.nothing_to_do else t0):
            echo(line)
    return summary

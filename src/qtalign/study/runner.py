"""Run a planned study in dependency order: cached steps are verified and reused, the rest run; S/study.json after every
step."""

from __future__ import annotations

import gc
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtalign import __version__
from qtalign.errors import QtalignError, QtalignProblems, raise_problems
from qtalign.runs.study import STUDY
from qtalign.store import atomic_write_json, folder_locks, hold_folder, read_json_object
from qtalign.study.plan import Plan, Step, make_plan
from qtalign.study.schema import StudyConfig
from qtalign.study.steps import Context
from qtalign.study.verify import check_steps, prepare_reuse, problem_lines, reused_steps
from qtalign.study.worker import JOBS, execute_step, now


@dataclass
class Workers:
    """How steps run: one after another in the runner's process (jobs 1, no engine, one process per step), else in
    worker processes, up to `jobs` at a time, locally or as the jobs of an engine (None: as many as are ready)."""

    jobs: int | None = None
    engine: str | None = None  # slurm | submitit-local (study.engine.ENGINES)
    options: dict[str, Any] = field(default_factory=dict)  # submitit parameters (--engine-option)

    def in_process(self, cfg: StudyConfig) -> bool:
        several = any(getattr(cfg.processes, k) > 1 for k in ("train", "eval", "lens", "pca"))
        return self.engine is None and (self.jobs or 1) == 1 and not several


RECORD_KEYS = {"train": "trains", "eval": "evals", "compare": "compares", "lens": "analyses", "pca": "analyses"}


@dataclass
class StepState:
    status: str = "pending"  # done | reused | failed | pending
    seconds: float | None = None
    error: str | None = None
    worker: str | None = None  # where it ran: main (this process), local-N (--jobs), slurm:JOBID / local:PID (engine)
    started: str | None = None  # UTC wall-clock times of its start and end (ISO 8601)
    ended: str | None = None


@dataclass
class RunSummary:
    plan: Plan
    states: dict[str, StepState] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def nothing_to_do(self) -> bool:
        return not self.ran


def study_document(cfg: StudyConfig, plan: Plan, states: dict[str, StepState]) -> dict[str, Any]:
    """S/study.json: the validated config, every step with status and wall time, and the runs by role."""
    doc: dict[str, Any] = {
        "name": cfg.name, "config": cfg.model_dump(mode="json"), "qtalign_version": __version__,
        "steps": [], "trains": [], "evals": [], "compares": [], "analyses": [],
    }
    for s in plan.steps:
        st = states[s.id]
        doc["steps"].append({"id": s.id, "kind": s.kind, "hash": s.hash, "out": s.out, "status": st.status,
                             "seconds": st.seconds, "deps": list(s.deps),
                             **({"error": st.error} if st.error else {}),
                             **{k: v for k, v in (("worker", st.worker), ("started", st.started), ("ended", st.ended))
                                if v is not None}})
        if s.record is not None:
            rec = dict(s.record)
            rec["run" if s.kind != "compare" else "out"] = s.out
            doc[RECORD_KEYS[s.kind]].append(rec)
    return doc


@contextmanager
def study_lock(root: Path) -> Iterator[None]:
    """One runner per study folder at a time (store.hold_folder: the lock goes with the process, also on kill -9; a
    second runner is refused naming the holder's pid and host)."""
    from qtalign.store import claim_out

    with folder_locks():
        hold_folder(claim_out(root))
        yield


def format_plan(plan: Plan, cached: set[str]) -> str:
    lines = [f"plan: {len(plan.steps)} steps ({len(cached)} cached, {len(plan.steps) - len(cached)} to run)"]
    for i, s in enumerate(plan.steps, 1):
        mark = "cached" if s.id in cached else "run"
        lines.append(f"  {i:>3}. [{mark:<6}] {s.id}")
    return "\n".join(lines)


def _free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


def run_study(cfg: StudyConfig, root: str | Path, dry_run: bool = False, progress: bool = True,
              echo: Callable[[str], None] = print, plan: Plan | None = None,
              workers: Workers | None = None) -> RunSummary:
    """Plan and run a study in root; returns what ran and what was reused. Steps run one after another in this
    process, or in worker processes (workers: --jobs N, --engine). A failing step is marked failed in study.json and
    stops the run with a QtalignError naming it (running steps finish first); a rerun continues from there."""
    root = Path(root)
    workers = workers or Workers()
    plan = plan or make_plan(cfg)
    summary = RunSummary(plan)
    checks = check_steps(root, plan)  # a finished step is reused only when its recorded outputs verify
    cached = reused_steps(checks)
    for line in problem_lines(root, plan, checks):
        echo(line)
    echo(format_plan(plan, cached))
    if dry_run:
        summary.reused = [s.id for s in plan.steps if s.id in cached]
        return summary
    with study_lock(root):
        prepare_reuse(root, plan, checks)  # distrusted steps' folders emptied; older markers get their file list
        states = summary.states
        for s in plan.steps:
            marker = checks[s.id].marker if s.id in cached else None
            states[s.id] = StepState("reused", marker.get("seconds")) if marker else StepState()
        summary.reused = [s.id for s in plan.steps if states[s.id].status == "reused"]
        previous = {x["id"]: x for x in (read_json_object(root / STUDY) or {}).get("steps", []) if "id" in x}
        write = lambda: atomic_write_json(root / STUDY, study_document(cfg, plan, states))
        write()
        todo = [s for s in plan.steps if states[s.id].status != "reused"]
        if not todo:
            echo(f"nothing to do: all {len(plan.steps)} steps are cached in {root} (reused)")
            return summary
        if summary.reused:
            kinds = Counter(plan[i].kind for i in summary.reused)
            echo("reusing " + ", ".join(f"{n} {k}" for k, n in kinds.items()) + " cached step(s)")
        t_all = time.perf_counter()
        if workers.in_process(cfg):
            summary.ran = run_in_process(todo, Context(root, plan, progress), states, write, echo)
        else:
            summary.ran = run_workers(cfg, root, plan, todo, states, write, echo, workers, progress, previous)
        summary.seconds = time.perf_counter() - t_all
        echo(f"ran {len(summary.ran)} step(s) in {summary.seconds:.0f} s; reused {len(summary.reused)}; "
             f"results in {root / STUDY}")
    return summary


def run_in_process(todo: list[Step], ctx: Context, states: dict[str, StepState], write: Callable[[], None],
                   echo: Callable[[str], None]) -> list[str]:
    """The steps one after another in this process (--jobs 1); the ids of those that ran."""
    ran: list[str] = []
    for n, s in enumerate(todo, 1):
        failed_deps = [d for d in s.deps if states[d].status not in ("done", "reused")]
        if failed_deps:  # cannot happen in order unless a dep failed, which stops the run
            raise QtalignError(f"step {s.id}: dependency {failed_deps[0]} did not finish")
        echo(f"[{n}/{len(todo)}] {s.id} -> {s.out}")
        t0 = time.perf_counter()
        states[s.id] = StepState("pending", worker="main", started=now())
        try:
            seconds = execute_step(s, ctx)
        except QtalignError as e:
            states[s.id] = StepState("failed", time.perf_counter() - t0, str(e), "main", states[s.id].started, now())
            write()
            lines = e.problems if isinstance(e, QtalignProblems) else [str(e)]
            raise_problems([f"step {s.id} failed: {line} (fix it and rerun: finished steps are kept)"
                            for line in lines])
        except BaseException as e:
            states[s.id] = StepState("failed", time.perf_counter() - t0, f"{type(e).__name__}: {e}", "main",
                                     states[s.id].started, now())
            write()
            raise
        finally:
            _free_memory()
        states[s.id] = StepState("done", seconds, None, "main", states[s.id].started, now())
        ran.append(s.id)
        write()
        echo(f"      done in {seconds:.1f} s")
    return ran


def run_workers(cfg: StudyConfig, root: Path, plan: Plan, todo: list[Step], states: dict[str, StepState],
                write: Callable[[], None], echo: Callable[[str], None], workers: Workers, progress: bool,
                previous: dict[str, dict[str, Any]]) -> list[str]:
    """The steps in worker processes, up to workers.jobs at a time, on this machine or an engine's jobs."""
    from qtalign.study.jobs import JobRun, LocalProcesses, Machine, given_threads

    backend: Any
    if workers.engine is None:
        jobs = workers.jobs or 1
        shape: Any = Machine(cfg, jobs, threads=given_threads())
        backend, runner = LocalProcesses(jobs), (os.getpid(), os.getpgrp())
        echo(f"running up to {jobs} step(s) at a time, each in a process of its own: {shape.describe()}; "
             f"logs in {root / JOBS}")
    else:
        from qtalign.study.engine import SubmititEngine

        backend = SubmititEngine(root, workers.engine, workers.options, cfg, workers.jobs)
        shape, runner, jobs = backend.shape, None, workers.jobs
        echo(f"submitting each step as a job of {workers.engine} (submitit) once its dependencies finished, "
             f"{'up to ' + str(jobs) if jobs else 'all ready ones'} at a time: {shape.describe()}; logs in "
             f"{root / JOBS}")
    run = JobRun(root, plan, states, write, echo, backend, shape, jobs, progress, runner)
    return run.run(todo, len(todo), previous)

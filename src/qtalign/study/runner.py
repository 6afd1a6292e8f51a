"""Run a planned study in dependency order: cached steps are verified and reused, the rest run; S/study.json after every
step."""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtalign import __version__
from qtalign.errors import QtalignError, QtalignProblems, raise_problems
from qtalign.runs.study import STUDY, write_marker
from qtalign.store import atomic_write_json, folder_locks, hold_folder
from qtalign.study.plan import Plan, make_plan
from qtalign.study.schema import StudyConfig
from qtalign.study.steps import EXECUTORS, Context
from qtalign.study.verify import check_steps, prepare_reuse, problem_lines, reused_steps

RECORD_KEYS = {"train": "trains", "eval": "evals", "compare": "compares", "lens": "analyses", "pca": "analyses"}


@dataclass
class StepState:
    status: str = "pending"  # done | reused | failed | pending
    seconds: float | None = None
    error: str | None = None


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
                             **({"error": st.error} if st.error else {})})
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
              echo: Callable[[str], None] = print, plan: Plan | None = None) -> RunSummary:
    """Plan and run a study in root; returns what ran and what was reused. A failing step is marked failed in
    study.json and stops the run with a QtalignError naming it; a rerun continues from there."""
    root = Path(root)
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
        write = lambda: atomic_write_json(root / STUDY, study_document(cfg, plan, states))
        write()
        todo = [s for s in plan.steps if states[s.id].status != "reused"]
        if not todo:
            echo(f"nothing to do: all {len(plan.steps)} steps are cached in {root} (reused)")
            return summary
        if summary.reused:
            kinds = Counter(plan[i].kind for i in summary.reused)
            echo("reusing " + ", ".join(f"{n} {k}" for k, n in kinds.items()) + " cached step(s)")
        ctx = Context(root, plan, progress)
        t_all = time.perf_counter()
        for n, s in enumerate(todo, 1):
            failed_deps = [d for d in s.deps if states[d].status not in ("done", "reused")]
            if failed_deps:  # cannot happen in order unless a dep failed, which stops the run
                raise QtalignError(f"step {s.id}: dependency {failed_deps[0]} did not finish")
            echo(f"[{n}/{len(todo)}] {s.id} -> {s.out}")
            t0 = time.perf_counter()
            try:
                with folder_locks():  # the step's folder is held while it runs, like any command's --out
                    (root / s.out).mkdir(parents=True, exist_ok=True)
                    hold_folder(root / s.out)
                    EXECUTORS[s.kind](s, ctx)
            except QtalignError as e:
                states[s.id] = StepState("failed", time.perf_counter() - t0, str(e))
                write()
                lines = e.problems if isinstance(e, QtalignProblems) else [str(e)]
                raise_problems([f"step {s.id} failed: {line} (fix it and rerun: finished steps are kept)"
                                for line in lines])
            except BaseException as e:
                states[s.id] = StepState("failed", time.perf_counter() - t0, f"{type(e).__name__}: {e}")
                write()
                raise
            finally:
                _free_memory()
            seconds = time.perf_counter() - t0
            write_marker(root, s, seconds)
            states[s.id] = StepState("done", seconds)
            summary.ran.append(s.id)
            write()
            echo(f"      done in {seconds:.1f} s")
        summary.seconds = time.perf_counter() - t_all
        echo(f"ran {len(summary.ran)} step(s) in {summary.seconds:.0f} s; reused {len(summary.reused)}; "
             f"results in {root / STUDY}")
    return summary

"""One study step: the one place that runs a step's executor and writes its marker, in the runner or a worker process."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qtalign.distributed import launched_rank
from qtalign.errors import QtalignError
from qtalign.runs.study import write_marker
from qtalign.store import atomic_write_json, folder_locks, hold_folder, read_json_object
from qtalign.study.plan import Plan, Step
from qtalign.study.steps import EXECUTORS, Context

JOBS = "jobs"  # S/jobs/: each worker's spec (NAME.json), output (NAME.log) and, for an engine job, NAME.status.json
MODEL_KINDS = ("train", "eval", "lens", "pca")  # the kinds that load a model (a device, threads, torchrun)
BUSY = 75  # a worker's exit status when another process holds its step's folder (a job of an earlier runner)


class StepBusy(QtalignError):
    """The step's folder is held by another process: the step is running elsewhere."""


def now() -> str:
    """A wall-clock time for study.json (UTC, milliseconds)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def execute_step(step: Step, ctx: Context) -> float:
    """Run one step in this process: hold its folder (like any command's --out), call its executor, write its
    marker; returns the step's wall time. Under torchrun the main process holds the folder and writes the marker."""
    t0 = time.perf_counter()
    main = launched_rank() == 0
    with folder_locks():  # the step's folder is held while it runs
        if main:
            (ctx.root / step.out).mkdir(parents=True, exist_ok=True)
            try:
                hold_folder(ctx.root / step.out)
            except QtalignError as e:
                raise StepBusy(str(e)) from None
        EXECUTORS[step.kind](step, ctx)
        seconds = time.perf_counter() - t0
        if main:
            write_marker(ctx.root, step, seconds)
    return seconds


# ---- a step in a process of its own ------------------------------------------------------------------------------
@dataclass
class StepSpec:
    """What a worker process needs to run one step: written by the runner as S/jobs/NAME.json."""

    root: str  # the study folder, as the runner was given it (relative to cwd)
    cwd: str  # the runner's working directory (relative data paths in the plan resolve against it)
    step: dict[str, Any]  # the Step
    deps: list[dict[str, Any]]  # its dependencies (id, kind, out)
    progress: bool = True
    threads: int | None = None  # torch CPU threads of this step
    runner: tuple[int, int] | None = None  # (pid, process group) of a local runner: the worker dies with it


def job_name(step: Step) -> str:
    return f"{step.kind}-{Path(step.out).name}"


def write_spec(root: Path, step: Step, plan: Plan, progress: bool, threads: int | None,
               runner: tuple[int, int] | None) -> Path:
    """S/jobs/NAME.json for step (overwritten at every launch)."""
    deps = [{"id": plan[d].id, "kind": plan[d].kind, "out": plan[d].out} for d in step.deps]
    spec = StepSpec(str(root), os.getcwd(), dataclasses.asdict(step), deps, progress, threads, runner)
    path = root / JOBS / f"{job_name(step)}.json"
    atomic_write_json(path, dataclasses.asdict(spec))
    return path


def read_spec(path: str | Path) -> StepSpec:
    data = read_json_object(path, strict=True)
    if data is None:
        raise QtalignError(f"{path}: not found")
    try:
        return StepSpec(**{**data, "runner": tuple(data["runner"]) if data.get("runner") else None})
    except TypeError as e:
        raise QtalignError(f"{path}: not a step spec written by `qtalign run` ({e})") from None


def _step(d: dict[str, Any]) -> Step:
    return Step(**{k: v for k, v in d.items() if k in {f.name for f in dataclasses.fields(Step)}}
                | {"deps": tuple(d.get("deps", ()))})


def run_spec(path: str | Path) -> float:
    """`qtalign step SPEC`: run the step a runner described (threads set, dying with a local runner); its wall time."""
    spec = read_spec(path)
    step = _step(spec.step)
    if spec.threads and step.kind in MODEL_KINDS:  # OMP_NUM_THREADS, set by the runner, covers the others
        import torch

        torch.set_num_threads(spec.threads)
    if spec.runner is not None:
        watch_runner(*spec.runner)
    os.chdir(spec.cwd)
    plan = Plan([*(Step(d["id"], d["kind"], (), {}, out=d["out"]) for d in spec.deps), step])
    return execute_step(step, Context(Path(spec.root), plan, spec.progress))


def step_command(spec: Path, processes: int) -> list[str]:
    """The command line of a worker: `qtalign step SPEC`, under torchrun when the step asks for several processes."""
    if processes <= 1:
        return [sys.executable, "-m", "qtalign", "step", str(spec)]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
            "-m", "qtalign", "step", str(spec)]


# ---- a local worker dies with its runner (kill -9 included); an engine's job does not -----------------------------
def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a killed runner not yet reaped is a zombie
    except FileNotFoundError:
        return False
    except (OSError, IndexError):  # no /proc (not Linux)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True


def watch_runner(pid: int, group: int) -> None:
    """End this worker's process group (it, and torchrun with its processes) once the runner is gone: a killed
    runner leaves no step running, and the rerun resumes what they wrote."""

    def watch() -> None:
        while _alive(pid):
            time.sleep(1.0)
        if os.getpgrp() != group:  # the worker's own group (the runner starts it in a new session)
            os.killpg(os.getpgrp(), signal.SIGKILL)
        os._exit(BUSY)

    threading.Thread(target=watch, name="qtalign-runner-watch", daemon=True).start()


def run_command(argv: list[str], env: dict[str, str], cwd: str, log: str, status: str) -> int:
    """What an engine's job runs: the worker's command line, its output appended to log, its exit status written to
    status (JSON) for the runner (which reads no pickle from the engine)."""
    with open(log, "ab") as f:
        rc = subprocess.run(argv, env={**os.environ, **env}, cwd=cwd, stdout=f, stderr=subprocess.STDOUT,
                            check=False).returncode
    atomic_write_json(status, {"rc": rc})
    return rc

"""Several steps at a time, in dependency order, each in a worker process of its own (local processes or an engine's
jobs): the runner releases a step once its dependencies are finished and records worker, start and end."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from qtalign.errors import QtalignError, raise_problems
from qtalign.runs.study import read_marker
from qtalign.store import folder_locks, hold_folder
from qtalign.study.plan import Plan, Step
from qtalign.study.schema import StudyConfig
from qtalign.study.worker import BUSY, JOBS, MODEL_KINDS, job_name, now, step_command, write_spec

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
FINISHED = ("done", "reused")


@dataclass
class Resources:
    """What one step gets: its processes (torchrun when several), GPUs and CPU threads per process."""

    processes: int = 1
    gpus: tuple[str, ...] = ()  # CUDA_VISIBLE_DEVICES entries (empty: CPU, or whatever the runner sees)
    threads: int = 1

    def env(self) -> dict[str, str]:
        env = {k: str(self.threads) for k in THREAD_ENV}
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)
        return env

    def describe(self) -> str:
        where = (f"GPU{'s' if len(self.gpus) > 1 else ''} {','.join(self.gpus)}" if self.gpus
                 else f"{self.threads} CPU thread{'s' if self.threads > 1 else ''}")
        return where + (f", torchrun x{self.processes}" if self.processes > 1 else "")


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as CUDA_VISIBLE_DEVICES names them (none without CUDA)."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return []
    if not torch.cuda.is_available():
        return []
    n = torch.cuda.device_count()
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = [x.strip() for x in given.split(",") if x.strip()] if given is not None else [str(i) for i in range(n)]
    return names[:n]


def given_threads() -> int | None:
    """$OMP_NUM_THREADS when the user set it to a positive number: the threads of every step, as in one process."""
    try:
        n = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return None
    return n if n > 0 else None


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (not Linux)
        return os.cpu_count() or 1


@dataclass
class Machine:
    """One machine's cores and GPUs shared by up to `jobs` steps: a model step takes the least-used GPUs (so with
    more jobs than GPUs they go round-robin), CPU threads are divided among the jobs."""

    cfg: StudyConfig
    jobs: int
    cores: int = field(default_factory=cpu_cores)
    threads: int | None = None  # threads per process when given (the runner passes $OMP_NUM_THREADS), else divided
    gpus: list[str] = field(default_factory=list)
    load: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cfg.device in ("auto", "cuda") and not self.gpus:
            self.gpus = visible_gpus()
        self.load = {g: 0 for g in self.gpus}
        wanted = max(processes(self.cfg, k) for k in MODEL_KINDS)
        if self.gpus and wanted > len(self.gpus):
            raise QtalignError(f"processes: a step asks for {wanted} processes (one GPU each) but "
                               f"{len(self.gpus)} GPU(s) are visible")

    def take(self, step: Step) -> Resources:
        k = processes(self.cfg, step.kind) if step.kind in MODEL_KINDS else 1
        threads = self.threads or max(1, self.cores // max(1, self.jobs) // k)
        if step.kind not in MODEL_KINDS or not self.gpus:
            return Resources(k, (), threads)
        chosen = tuple(sorted(self.gpus, key=lambda g: (self.load[g], self.gpus.index(g)))[:k])
        for g in chosen:
            self.load[g] += 1
        return Resources(k, chosen, threads)

    def give(self, res: Resources) -> None:
        for g in res.gpus:
            self.load[g] -= 1

    def describe(self) -> str:
        threads = self.threads or max(1, self.cores // max(1, self.jobs))
        why = "OMP_NUM_THREADS" if self.threads else f"{self.cores} cores / {self.jobs} jobs"
        cpu = f"{threads} CPU thread{'s' if threads > 1 else ''} per step ({why})"
        if self.gpus:
            return f"{cpu}; model steps on GPUs {','.join(self.gpus)}, one per process, round-robin"
        return cpu


def processes(cfg: StudyConfig, kind: str) -> int:
    return int(getattr(cfg.processes, kind, 1)) if kind in MODEL_KINDS else 1


class Shape(Protocol):
    """What a step gets where it runs (Machine here; study.engine.ClusterShape on a cluster)."""

    def take(self, step: Step) -> Resources: ...

    def give(self, res: Resources) -> None: ...

    def describe(self) -> str: ...


class Backend(Protocol):
    """Where worker processes run: local processes, or an engine's jobs (study.engine)."""

    poll_seconds: float

    def start(self, step: Step, argv: list[str], log: Path, res: Resources) -> tuple[Any, str]:
        """Start the worker; (handle, worker name for study.json)."""

    def poll(self, handle: Any) -> int | None:
        """The worker's exit status once it ended, else None."""

    def stop(self, handle: Any) -> None:
        """The runner is interrupted: local workers are stopped, an engine's jobs go on (a rerun picks them up)."""

    def attach(self, worker: str, log: Path) -> Any | None:
        """A job an earlier runner started that is still running (engines only), to wait for instead of rerunning."""


class LocalProcesses:
    """Worker processes on this machine, each in its own session; they die with the runner (also on kill -9)."""

    poll_seconds = 0.2

    def __init__(self, jobs: int) -> None:
        self.free = list(range(1, jobs + 1))
        self.slots: dict[int, int] = {}

    def start(self, step: Step, argv: list[str], log: Path, res: Resources) -> tuple[Any, str]:
        slot = self.free.pop(0)
        with log.open("ab") as f:
            proc = subprocess.Popen(argv, env={**os.environ, **res.env()}, stdout=f, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.slots[proc.pid] = slot
        return proc, f"local-{slot}"

    def poll(self, handle: Any) -> int | None:
        rc = handle.poll()
        if rc is not None:
            self.free.append(self.slots.pop(handle.pid))
            self.free.sort()
        return rc

    def stop(self, handle: Any) -> None:
        for sig, wait in ((signal.SIGINT, 20.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(handle.pid, sig)
            except ProcessLookupError:
                return
            try:
                handle.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def attach(self, worker: str, log: Path) -> Any | None:
        return None


def folder_holder(folder: Path) -> str | None:
    """Why a step's folder cannot be taken now (another process holds it), or None."""
    if not folder.is_dir():
        return None
    try:
        with folder_locks():
            hold_folder(folder)
    except QtalignError as e:
        return str(e).split(";")[0]
    return None


def log_errors(log: Path, offset: int) -> list[str]:
    """The `qtalign: error:` lines a worker wrote to its log since offset."""
    try:
        with log.open("rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    tag = "qtalign: error: "
    return [line[line.index(tag) + len(tag):].strip() for line in text.splitlines() if tag in line]


@dataclass
class Launched:
    step: Step
    n: int
    handle: Any
    worker: str
    res: Resources
    log: Path
    offset: int
    started: str


@dataclass
class JobRun:
    """One pass of the runner over the steps still to run, up to `jobs` at a time (None: as many as are ready)."""

    root: Path
    plan: Plan
    states: dict[str, Any]  # runner.StepState by step id
    write: Callable[[], None]
    echo: Callable[[str], None]
    backend: Backend
    machine: Shape
    jobs: int | None
    progress: bool = True
    runner: tuple[int, int] | None = None  # (pid, group) for local workers, which die with the runner
    ran: list[str] = field(default_factory=list)
    running: list[Launched] = field(default_factory=list)
    busy: dict[str, Step] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    started: int = 0
    previous: dict[str, dict[str, Any]] = field(default_factory=dict)  # the last study.json's steps, by id
    total: int = 0  # steps to run in this pass

    def run(self, todo: list[Step], total: int, previous: dict[str, dict[str, Any]]) -> list[str]:
        """Run todo (plan order); previous: last study.json's step entries (jobs an earlier runner left running)."""
        pending = list(todo)
        self.previous, self.total = previous, total
        for s in list(pending):
            old = previous.get(s.id) or {}
            handle = self.backend.attach(old["worker"], self._log(s)) if old.get("worker") and not old.get("ended") else None
            if handle is not None:
                pending.remove(s)
                self.started += 1
                self.running.append(Launched(s, self.started, handle, old["worker"], Resources(), self._log(s), 0,
                                             old.get("started") or now()))
                self.states[s.id].worker, self.states[s.id].started = old["worker"], old.get("started")
                self.echo(f"[{self.started}/{total}] {s.id}: still running as {old['worker']} (started by an "
                          "earlier runner): waiting for it")
        self.write()
        try:
            while pending or self.running or self.busy:
                changed = self._start_ready(pending, total)
                changed |= self._reap()
                changed |= self._recheck_busy(pending)
                if self.failed and not self.running and not self.busy:
                    break
                if not changed and pending and not self.running and not self.busy:
                    raise QtalignError(f"step {pending[0].id}: its dependencies did not finish")
                if not changed:
                    time.sleep(self.backend.poll_seconds)
        except BaseException:
            for job in self.running:
                self.backend.stop(job.handle)
            self.write()
            raise
        if self.problems:
            raise_problems(self.problems)
        return self.ran

    def _log(self, s: Step) -> Path:
        return self.root / JOBS / f"{job_name(s)}.log"

    def _start_ready(self, pending: list[Step], total: int) -> bool:
        changed = False
        for s in list(pending):
            if self.failed or (self.jobs is not None and len(self.running) >= self.jobs):
                break
            if any(self.states[d].status not in FINISHED for d in s.deps):
                continue
            pending.remove(s)
            changed = True
            holder = folder_holder(self.root / s.out)
            if holder is not None:
                self.busy[s.id] = s
                old, st = self.previous.get(s.id) or {}, self.states[s.id]
                st.worker, st.started = old.get("worker"), old.get("started")
                self.echo(f"      {s.id}: {holder} (a job of an earlier runner?): waiting for it")
                continue
            res = self.machine.take(s)
            spec = write_spec(self.root, s, self.plan, self.progress, res.threads, self.runner)
            log = self._log(s)
            offset = log.stat().st_size if log.is_file() else 0
            handle, worker = self.backend.start(s, step_command(spec, res.processes), log, res)
            self.started += 1
            job = Launched(s, self.started, handle, worker, res, log, offset, now())
            self.running.append(job)
            st = self.states[s.id]
            st.worker, st.started, st.ended = worker, job.started, None
            self.write()
            self.echo(f"[{job.n}/{total}] {s.id} -> {s.out} on {worker} ({res.describe()})")
        return changed

    def _reap(self) -> bool:
        changed = False
        for job in list(self.running):
            rc = self.backend.poll(job.handle)
            if rc is None:
                continue
            changed = True
            self.running.remove(job)
            self.machine.give(job.res)
            self._finish(job, rc)
        return changed

    def _finish(self, job: Launched, rc: int) -> None:
        s, st = job.step, self.states[job.step.id]
        st.ended = now()
        marker = read_marker(self.root, s)
        errors = log_errors(job.log, job.offset)
        if rc == 0 and marker is not None:
            st.status, st.seconds, st.error = "done", marker.get("seconds"), None
            self.ran.append(s.id)
            self.echo(f"[{job.n}/{self.total}] {s.id} done in {float(marker.get('seconds') or 0):.1f} s ({job.worker})")
        elif rc == BUSY and marker is None:
            self.busy[s.id] = s  # its folder is held elsewhere: wait for that holder, then look again
            st.ended = None
        else:
            why = errors or [f"its worker {job.worker} ended with exit status {rc}" +
                             (f" ({signal.Signals(-rc).name})" if rc < 0 and -rc in signal.valid_signals() else "")]
            st.status, st.error = "failed", "; ".join(why)
            self.failed.append(s.id)
            rel = job.log.relative_to(self.root) if job.log.is_relative_to(self.root) else job.log
            self.problems += [f"step {s.id} failed: {line} (log: {rel}; fix it and rerun: finished steps are kept)"
                              for line in why]
            more = f"; waiting for {len(self.running)} running step(s), starting no new one" if self.running else ""
            self.echo(f"[{job.n}/{self.total}] {s.id} FAILED: {why[0]}{more}")
        self.write()

    def _recheck_busy(self, pending: list[Step]) -> bool:
        changed = False
        for sid, s in list(self.busy.items()):
            if folder_holder(self.root / s.out) is not None:
                continue
            changed = True
            del self.busy[sid]
            marker = read_marker(self.root, s)
            if marker is not None:  # it finished meanwhile (a job of an earlier runner): picked up
                st = self.states[sid]
                st.status, st.seconds, st.ended = "done", marker.get("seconds"), st.ended or now()
                self.ran.append(sid)
                self.echo(f"      {sid}: finished by its earlier job (picked up)")
                self.write()
            else:
                pending.insert(0, s)  # that holder ended without finishing it: run it here
        return changed

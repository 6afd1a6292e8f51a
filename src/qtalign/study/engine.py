"""The cluster backend: each step one job of an existing engine, Slurm through submitit (its local executor for a
single machine and the tests). The engine queues, places and runs the jobs; qtalign plans, submits and records."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from qtalign.errors import QtalignError
from qtalign.store import read_json_object
from qtalign.study.jobs import THREAD_ENV, Machine, Resources, given_threads, processes
from qtalign.study.plan import Step
from qtalign.study.schema import StudyConfig
from qtalign.study.worker import JOBS, MODEL_KINDS, run_command

ENGINES: dict[str, str] = {"slurm": "slurm", "submitit-local": "local"}  # --engine -> submitit's cluster name
STATUS_WAIT = 30  # seconds a finished job's status file may take to appear
DEFAULTS: dict[str, Any] = {"timeout_min": 24 * 60, "cpus_per_task": 4}  # per job, unless --engine-option says


def parse_options(pairs: list[str] | dict[str, Any]) -> dict[str, Any]:
    """--engine-option KEY=VALUE (repeatable) as submitit parameters; VALUE is read as YAML (numbers, lists)."""
    if isinstance(pairs, dict):
        return dict(pairs)
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise QtalignError(f"--engine-option {pair}: expected KEY=VALUE, e.g. slurm_partition=gpu")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


class ClusterShape:
    """What each job asks the cluster for: model steps one GPU per process (unless the study runs on CPU), every job
    cpus_per_task cores; the engine's scheduler finds them (nothing is divided here)."""

    def __init__(self, cfg: StudyConfig, options: dict[str, Any]) -> None:
        self.cfg = cfg
        self.cpus = int(options.get("cpus_per_task", DEFAULTS["cpus_per_task"]))
        self.gpu = cfg.device != "cpu" and int(options.get("gpus_per_node", 1)) > 0

    def take(self, step: Step) -> Resources:
        k = processes(self.cfg, step.kind) if step.kind in MODEL_KINDS else 1
        return Resources(k, (), max(1, self.cpus // k))

    def give(self, res: Resources) -> None:
        pass

    def gpus(self, step: Step, res: Resources) -> int:
        return res.processes if self.gpu and step.kind in MODEL_KINDS else 0

    def describe(self) -> str:
        gpu = "model steps one GPU per process" if self.gpu else "no GPUs"
        return f"each step one Slurm job: {gpu}, {self.cpus} CPUs per job"


class SubmititEngine:
    """Steps as submitit jobs (S/jobs/submitit holds submitit's files); they outlive the runner, and a rerun waits
    for the ones still running (Slurm: by their job ids), picks up those that finished and reruns the lost ones."""

    def __init__(self, root: Path, engine: str, options: dict[str, Any], cfg: StudyConfig, jobs: int | None) -> None:
        try:
            import submitit
        except ImportError:
            raise QtalignError(f"--engine {engine}: needs submitit (pip install 'qtalign[slurm]')") from None
        self.cluster = ENGINES[engine]
        self.folder = root / JOBS / "submitit"
        self.executor = submitit.AutoExecutor(folder=self.folder, cluster=self.cluster)
        self.options = {**DEFAULTS, **options}
        self.shape: Machine | ClusterShape = (Machine(cfg, jobs or 1, threads=given_threads()) if self.cluster == "local"
                                              else ClusterShape(cfg, self.options))
        self.poll_seconds = 0.5 if self.cluster == "local" else 10.0
        self._parameters(gpus=0, cpus=1, name="qtalign-check")  # a wrong option is one line, before any job

    def _parameters(self, gpus: int, cpus: int, name: str) -> None:
        asked = {"nodes": 1, "tasks_per_node": 1, "gpus_per_node": gpus, "cpus_per_task": cpus, "name": name,
                 **{k: v for k, v in self.options.items() if k not in ("gpus_per_node", "cpus_per_task")}}
        if self.cluster == "local":  # the local executor knows no cpus; its GPUs are given per step below
            asked.pop("cpus_per_task")
        try:
            self.executor.update_parameters(**asked)
        except (NameError, AssertionError, ValueError, TypeError) as e:
            raise QtalignError(f"--engine-option: {str(e).splitlines()[0]}") from None

    def start(self, step: Step, argv: list[str], log: Path, res: Resources) -> tuple[Any, str]:
        if isinstance(self.shape, ClusterShape):  # Slurm gives the job its GPUs (CUDA_VISIBLE_DEVICES)
            self._parameters(self.shape.gpus(step, res), self.shape.cpus, f"qtalign-{step.kind}")
            env = {k: str(res.threads) for k in THREAD_ENV}
        else:  # one machine: the GPUs the runner chose for this step
            self._parameters(0, res.threads * res.processes, f"qtalign-{step.kind}")
            env = res.env()
        status = log.with_suffix(".status.json")
        status.unlink(missing_ok=True)
        job = self.executor.submit(run_command, argv, env, os.getcwd(), str(log), str(status))
        return EngineJob(job, log), f"{self.cluster}:{job.job_id}"

    def poll(self, handle: Any) -> int | None:
        if not handle.job.done():
            return None
        for _ in range(STATUS_WAIT):  # a shared filesystem may show the job's last file a little later
            got = read_json_object(handle.log.with_suffix(".status.json"))
            if got is not None and isinstance(got.get("rc"), int):
                return int(got["rc"])
            if handle.job.state not in ("COMPLETED", "FINISHED"):
                break
            time.sleep(1.0)
        with handle.log.open("a", encoding="utf-8") as f:  # the runner reads the reason from the step's log
            f.write(f"qtalign: error: the engine ended job {handle.job.job_id} ({handle.job.state}) before the step "
                    "finished; rerun to resume it\n")
        return -1

    def stop(self, handle: Any) -> None:
        pass  # the engine's jobs go on; a rerun picks them up

    def attach(self, worker: str, log: Path) -> Any | None:
        cluster, _, job_id = worker.partition(":")
        if cluster != self.cluster or self.cluster == "local":  # a local job is found by its folder's lock instead
            return None
        import submitit

        job = submitit.SlurmJob(self.folder, job_id)
        return None if job.done() else EngineJob(job, log)


@dataclass
class EngineJob:
    job: Any  # a submitit Job
    log: Path  # the step's log; its exit status beside it (NAME.status.json)

"""`qtalign run --jobs N` and the submitit engine on tiny models: a study's outputs equal the one-process run's, steps
overlap (by study.json's recorded start and end), a killed runner is resumed to the same end, and a failing step is
reported while the steps already running finish."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from qtalign.cli.main import main
from qtalign.errors import QtalignError
from qtalign.store import LOCK_NAME
from qtalign.study.config import load_study
from qtalign.study.runner import run_study

sys.path.insert(0, str(Path(__file__).parent))
from test_study import config, numbers, statuses, write_config, write_data

SRC = str(Path(__file__).resolve().parents[2] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
# what the deterministic outputs leave out: timings (training log and summary), the marker's wall time, the lock, and
# adapter_config.json (PEFT writes target_modules from a set: its order follows the process's hash seed)
TIMED = {"train_log.jsonl", "train_summary.json", ".qtalign_step.json", LOCK_NAME}


def grid(model: Path) -> dict[str, Any]:
    """One build, two trainings, four evaluations (base with two demonstration seeds, each adapter with one), two
    comparisons, the report: 10 steps."""
    cfg = config(model, seeds={"train": [1, 2], "demo": [0, 1]})
    cfg["mixes"][0]["demo_seeds"] = [0]
    return cfg


@pytest.fixture(scope="module")
def study(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(config, the study run one step after another in this process). It ran in the folder S beside it, as the
    tests' runs do (records name their paths), and was then moved."""
    tmp = tmp_path_factory.mktemp("jobs")
    write_data(tmp)
    path = write_config(tmp, grid(tiny_llama))
    run_study(load_study(str(path)), tmp / "S", progress=False, echo=lambda s: None)
    assert {s["worker"] for s in json.loads((tmp / "S" / "study.json").read_text())["steps"]} == {"main"}
    return path, (tmp / "S").rename(tmp / "ref")


def fresh(study: tuple[Path, Path]) -> Path:
    """The folder S where the reference ran, emptied for this test's run."""
    out = study[1].with_name("S")
    shutil.rmtree(out, ignore_errors=True)
    return out


def assert_same_outputs(ref: Path, out: Path) -> None:
    """Every file of every step folder equal byte for byte, but for timings; adapter configs equal as JSON."""
    files = sorted(p.relative_to(ref) for p in (ref / "steps").rglob("*") if p.is_file() and p.name not in TIMED)
    assert files and files == sorted(p.relative_to(out) for p in (out / "steps").rglob("*")
                                     if p.is_file() and p.name not in TIMED)
    for rel in files:
        a, b = (ref / rel).read_bytes(), (out / rel).read_bytes()
        if rel.name == "adapter_config.json":
            a, b = (json.dumps(json.loads(x), sort_keys=True, default=str).encode() for x in (a, b))
            a, b = (x.replace(b'["v_proj", "q_proj"]', b'["q_proj", "v_proj"]') for x in (a, b))
        assert a == b, f"{rel} differs"
    assert numbers(out) == numbers(ref)


def steps(root: Path) -> list[dict[str, Any]]:
    return json.loads((root / "study.json").read_text())["steps"]


def when(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def overlapping(root: Path) -> int:
    """How many pairs of steps ran at the same time, by study.json's start and end times."""
    spans = [(when(s["started"]), when(s["ended"])) for s in steps(root) if s.get("started") and s.get("ended")]
    return sum(1 for i, a in enumerate(spans) for b in spans[i + 1:] if a[0] < b[1] and b[0] < a[1])


def test_jobs_2_equals_one_process(study: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    path, ref = study
    out = fresh(study)
    assert main(["run", str(path), "--out", str(out), "--no-progress", "--jobs", "2"]) == 0
    text = capsys.readouterr().out
    assert "running up to 2 step(s) at a time, each in a process of its own: 1 CPU thread per step" in text
    assert_same_outputs(ref, out)
    doc = steps(out)
    assert {s["status"] for s in doc} == {"done"}
    assert {s["worker"] for s in doc} <= {"local-1", "local-2"} and all(s["started"] < s["ended"] for s in doc)
    by_id = {s["id"]: s for s in doc}
    for s in doc:  # dependency order: nothing starts before what it depends on ended
        assert all(when(by_id[d]["ended"]) <= when(s["started"]) for d in s["deps"]), s["id"]
    assert overlapping(out) >= 1
    assert (out / "jobs").is_dir() and len(list((out / "jobs").glob("*.log"))) == len(doc)
    assert main(["run", str(path), "--out", str(out), "--no-progress", "--jobs", "2"]) == 0
    assert "nothing to do" in capsys.readouterr().out


def _runner(path: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "qtalign", "run", str(path), "--out", str(out), "--no-progress", *extra]


def _kill_in_tuned_eval(path: Path, out: Path, extra: list[str], env: dict[str, str]) -> str:
    """Start a runner and SIGKILL it while a tuned evaluation has written some predictions; the step killed in."""
    proc = subprocess.Popen(_runner(path, out, *extra), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 400
    try:
        while time.time() < deadline and proc.poll() is None:
            if (out / "study.json").is_file():
                for s in steps(out):
                    run = out / s["out"] / "predictions.jsonl"
                    if (s["id"].startswith("eval:") and ":base:" not in s["id"] and s["status"] == "pending"
                            and run.is_file() and run.read_text().count("\n") >= 3):
                        os.kill(proc.pid, signal.SIGKILL)
                        return str(s["id"])
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    raise AssertionError("the runner was not killed in a tuned evaluation")


def held_by(out: Path) -> list[int]:
    """The pids named in the step folders' lock files that are still running."""
    pids = []
    for lock in (out / "steps").rglob(LOCK_NAME):
        try:
            pid = int(json.loads(lock.read_text())["pid"])
        except (ValueError, KeyError, OSError):
            continue
        if Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]:
            pids.append(pid)
    return pids


def test_killed_runner_leaves_no_worker_and_resumes(study: tuple[Path, Path]) -> None:
    """kill -9 of a `--jobs 2` runner mid-study: its workers end with it, and the rerun ends identical."""
    path, ref = study
    out = fresh(study)
    killed = _kill_in_tuned_eval(path, out, ["--jobs", "2"], {**ENV, "QTALIGN_SLOW_TEST": "0.1"})
    deadline = time.time() + 30
    while held_by(out) and time.time() < deadline:
        time.sleep(0.2)
    assert not held_by(out), "a worker outlived its runner"
    assert statuses(out)[killed] == "pending"
    res = subprocess.run(_runner(path, out, "--jobs", "2"), env=ENV, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert "reusing" in res.stdout
    assert statuses(out)[killed] == "done" and statuses(out)["build:zh-es-en"] == "reused"
    assert_same_outputs(ref, out)


def test_engine_local_mode_killed_runner_picks_up_its_jobs(study: tuple[Path, Path]) -> None:
    """The submitit engine in its local mode: the runner killed while jobs run; its jobs go on, the rerun waits for
    the one still running, picks up what finished, runs the rest, and ends with the one-process run's outputs."""
    pytest.importorskip("submitit")
    path, ref = study
    out = fresh(study)
    extra = ["--engine", "submitit-local", "--jobs", "2"]
    killed = _kill_in_tuned_eval(path, out, extra, {**ENV, "QTALIGN_SLOW_TEST": "0.5"})
    assert statuses(out)[killed] == "pending" and held_by(out), "the engine's jobs should outlive the runner"
    res = subprocess.run(_runner(path, out, *extra), env=ENV, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    # the job killed in went on: the rerun found it finished (reused) or waited for it (picked up), never reran it
    assert f"] {killed} -> " not in res.stdout, res.stdout
    doc = {s["id"]: s for s in steps(out)}
    picked = [i for i, s in doc.items() if f"{i}: finished by its earlier job (picked up)" in res.stdout]
    assert doc[killed]["status"] == "reused" or killed in picked
    assert all(doc[i]["worker"].startswith("local:") for i in picked)  # the earlier runner's job
    assert {s["status"] for s in doc.values()} <= {"done", "reused"}
    assert all(s["worker"].startswith("local:") for s in doc.values() if s["status"] == "done")
    assert_same_outputs(ref, out)


def test_failing_step_stops_new_ones_and_lets_running_ones_finish(study: tuple[Path, Path]) -> None:
    path, _ = study
    out = fresh(study)
    res = subprocess.run(_runner(path, out, "--jobs", "2"), env={**ENV, "QTALIGN_FAIL_STEP": "train:tiny:zh-es-en:s1"},
                         capture_output=True, text=True, check=False)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    log = f"jobs/train-{Path(next(s['out'] for s in steps(out) if s['id'].endswith('s1'))).name}.log"
    expect = (f"qtalign: error: step train:tiny:zh-es-en:s1 failed: injected failure in train:tiny:zh-es-en:s1 "
              f"(log: {log}; fix it and rerun: finished steps are kept)")
    assert lines == [expect], res.stderr
    doc = {s["id"]: s for s in steps(out)}
    failed = doc["train:tiny:zh-es-en:s1"]
    assert failed["status"] == "failed" and "injected failure" in failed["error"]
    others = [s for s in doc.values() if s.get("started") and s["id"] != failed["id"]]
    assert all(when(s["started"]) < when(failed["ended"]) for s in others)  # nothing started after the failure
    assert all(s["status"] == "done" and s.get("ended") for s in others)  # what was running finished
    assert any(not s.get("started") for s in doc.values())  # the rest never started
    assert "train:tiny:zh-es-en:s1 FAILED: injected failure" in res.stdout


# ---- resources and options, without running anything ------------------------------------------------------------
def test_gpus_round_robin_and_threads_divided() -> None:
    from qtalign.study.jobs import Machine
    from qtalign.study.plan import Step
    from qtalign.study.schema import StudyConfig

    cfg = StudyConfig.model_validate({"name": "x", "models": ["m"], "eval": {"tasks": {"emotion": "d"}},
                                      "processes": {"train": 2}})
    m = Machine(cfg, jobs=3, cores=8, gpus=["3", "5"])
    e1, e2, e3 = (m.take(Step(f"eval:{i}", "eval", (), {})) for i in range(3))
    assert (e1.gpus, e2.gpus, e3.gpus) == (("3",), ("5",), ("3",)) and e1.threads == 8 // 3
    assert e1.env()["CUDA_VISIBLE_DEVICES"] == "3" and e1.env()["OMP_NUM_THREADS"] == "2"
    m.give(e1)
    m.give(e2)
    train = m.take(Step("train:a", "train", (), {}))
    assert train.processes == 2 and sorted(train.gpus) == ["3", "5"] and train.threads == 1
    assert m.take(Step("compare:a", "compare", (), {})).gpus == ()  # no model: no GPU
    cpu = Machine(cfg, jobs=2, cores=2, gpus=[])
    assert cpu.take(Step("eval:a", "eval", (), {})).describe() == "1 CPU thread"
    assert cpu.describe() == "1 CPU thread per step (2 cores / 2 jobs)"
    assert Machine(cfg, jobs=2, cores=2, gpus=[], threads=2).take(Step("eval:a", "eval", (), {})).threads == 2
    with pytest.raises(QtalignError, match="asks for 2 processes .* but 1 GPU"):
        Machine(cfg, jobs=1, cores=2, gpus=["0"])


def test_engine_options_are_checked(study: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    path, _ = study
    out = str(study[1].with_name("options"))
    assert main(["run", str(path), "--out", out, "--engine-option", "timeout_min=5"]) == 2
    assert capsys.readouterr().err.strip() == "qtalign: error: --engine-option: needs --engine"
    pytest.importorskip("submitit")
    assert main(["run", str(path), "--out", out, "--engine", "submitit-local", "--engine-option", "colour=blue"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("qtalign: error: --engine-option: ") and "colour" in err and "\n" not in err

"""Faults and friction, round two (issue 19): OS errors as one line, --dest, builds side by side, every config
problem, one writer per run folder. Real processes and real file systems where the item is about them."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from qtalign.cli.main import main
from qtalign.data.build_files import manifest_path
from qtalign.errors import MAX_PROBLEMS
from qtalign.store import LOCK_NAME

sys.path.insert(0, str(Path(__file__).parent))
from test_eval import write_paper_folder

SRC = str(Path(__file__).resolve().parents[2] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
N_ITEMS = 24  # per language: enough rows that a small disk fills part-way


# ---- helpers -----------------------------------------------------------------------------------------------------
def qtalign(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`qtalign ARGV` in a real process."""
    return subprocess.run([sys.executable, "-m", "qtalign", *argv], env=env or ENV, capture_output=True, text=True,
                          check=False, timeout=300)


def one_line_error(p: subprocess.CompletedProcess[str] | tuple[int, str]) -> str:
    rc, err = (p.returncode, p.stderr) if isinstance(p, subprocess.CompletedProcess) else p
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert rc == 2, err
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("qtalign: error: "), err
    return lines[0]


def error_among_progress(p: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a command that also shows progress bars and log lines (train has no --no-progress)."""
    found = [x[x.index("qtalign: error: "):] for x in p.stderr.splitlines() if "qtalign: error: " in x]
    assert p.returncode == 2 and "Traceback" not in p.stderr and len(found) == 1, p.stderr
    return found[0]


def eval_argv(model: Path, data: Path, out: Path) -> list[str]:
    return ["eval", "--task", "emotion", "--data", str(data), "--model", str(model), "--langs", "en,de", "--device",
            "cpu", "--batch-size", "1", "--out", str(out), "--no-progress"]


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def assert_same_run(ref: Path, run: Path) -> None:
    """Exactly the rows (and results) of an uninterrupted run: nothing lost, nothing duplicated."""
    assert rows(run / "predictions.jsonl") == rows(ref / "predictions.jsonl")
    a, b = (json.loads((p / "results.json").read_text()) for p in (ref, run))
    assert a["languages"] == b["languages"] and a["mean"] == b["mean"]


@pytest.fixture(scope="module")
def eval_ref(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data folder, finished uninterrupted eval run) for the eval fault tests."""
    tmp = tmp_path_factory.mktemp("ref")
    data = write_paper_folder(tmp / "data", n=N_ITEMS)
    p = qtalign(*eval_argv(tiny_llama, data, tmp / "ref"))
    assert p.returncode == 0, p.stderr
    return data, tmp / "ref"


def can_mount() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount") is not None


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str = "256k") -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True,
                      check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)


def fill(disk: Path, leave: int) -> Path:
    """A filler file that leaves about `leave` bytes free on disk."""
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    filler = disk / "filler"
    with filler.open("wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


# ---- 1. operating-system errors: one line naming the file, exit 2, the rerun resumes exactly ----------------------
@pytest.mark.skipif(not can_mount(), reason="needs root to mount a small tmpfs and a read-only bind mount")
def test_no_space_then_read_only_then_resume(tiny_llama: Path, eval_ref: tuple[Path, Path], tmp_path: Path) -> None:
    data, ref = eval_ref
    with small_tmpfs(tmp_path / "disk") as disk:
        out = disk / "run"
        filler = fill(disk, leave=4 * 4096)  # the lock, record and content-free scores fit; the predictions do not
        p = qtalign(*eval_argv(tiny_llama, data, out))
        line = one_line_error(p)
        assert "no space left on device" in line and str(out) in line and "rerun" in line and "Errno" not in line
        written = (out / "predictions.jsonl").read_bytes() if (out / "predictions.jsonl").exists() else b""
        total = len(rows(ref / "predictions.jsonl"))
        assert 0 < written.count(b"\n") < total, "the disk did not fill part-way through the predictions"
        filler.unlink()
        # permission lost: the predictions file is now on a read-only mount
        pred = out / "predictions.jsonl"
        subprocess.run(["mount", "--bind", str(pred), str(pred)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(pred)], check=True)
            line = one_line_error(qtalign(*eval_argv(tiny_llama, data, out)))
            assert f"{pred}: read-only file system" in line
        finally:
            subprocess.run(["umount", str(pred)], check=True)
        p = qtalign(*eval_argv(tiny_llama, data, out))
        assert p.returncode == 0, p.stderr
        assert_same_run(ref, out)


@pytest.mark.skipif(not can_mount(), reason="needs root to mount a small tmpfs")
def test_no_space_in_data_build_and_train(tiny_llama: Path, tmp_path: Path) -> None:
    from test_build import folder

    d = folder(tmp_path)
    ref = tmp_path / "ref" / "train.jsonl"
    build = ["data", "build", "--task", "nli", "--data", str(d), "--sources", "zh", "--per-lang", "4"]
    assert main([*build, "--out", str(ref)]) == 0
    with small_tmpfs(tmp_path / "disk") as disk:
        out = disk / "qt" / "train.jsonl"
        out.parent.mkdir()
        filler = fill(disk, leave=4096)
        line = one_line_error(qtalign(*build, "--out", str(out)))
        assert "no space left on device" in line and str(out.parent) in line
        filler.unlink()
        assert qtalign(*build, "--out", str(out)).returncode == 0
        assert out.read_bytes() == ref.read_bytes()
        # train: checkpoints and the adapter are written by torch/safetensors; a full disk is one line too
        tr = ["train", "--model", str(tiny_llama), "--data", str(out), "--device", "cpu", "--batch-size", "2",
              "--grad-accum", "1", "--epochs", "1", "--lr", "0.01", "--save-every", "1"]
        filler = fill(disk, leave=8 * 4096)
        line = error_among_progress(qtalign(*tr, "--out", str(disk / "T")))
        assert "no space left on device" in line or "file write failed" in line
        filler.unlink()
        p = qtalign(*tr, "--out", str(disk / "T"))
        assert p.returncode == 0, p.stderr
        assert (disk / "T" / "adapter" / "adapter_config.json").is_file()


def test_a_file_replaced_by_a_folder(tiny_llama: Path, eval_ref: tuple[Path, Path], tmp_path: Path) -> None:
    data, ref = eval_ref
    out = tmp_path / "run"
    shutil.copytree(ref, out)  # a run whose results are to be written again (e.g. after an upgrade)
    (out / "results.json").unlink()
    (out / "results.json").mkdir()  # where the run writes its results at the end
    line = one_line_error(qtalign(*eval_argv(tiny_llama, data, out)))
    assert line.startswith(f"qtalign: error: {out / 'results.json'}: is a folder, not a file; ")
    assert rows(out / "predictions.jsonl") == rows(ref / "predictions.jsonl")  # every scored row is kept
    (out / "results.json").rmdir()
    (out / "predictions.jsonl").rename(tmp_path / "kept.jsonl")
    (out / "predictions.jsonl").mkdir()  # and the predictions file itself
    line = one_line_error(qtalign(*eval_argv(tiny_llama, data, out)))
    assert line.startswith(f"qtalign: error: {out / 'predictions.jsonl'}: is a folder, not a file; ")
    (out / "predictions.jsonl").rmdir()
    (tmp_path / "kept.jsonl").rename(out / "predictions.jsonl")
    p = qtalign(*eval_argv(tiny_llama, data, out))
    assert p.returncode == 0, p.stderr
    assert_same_run(ref, out)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores file permissions (the "
                    "read-only mount test covers this as root)")
def test_permission_lost(tiny_llama: Path, eval_ref: tuple[Path, Path], tmp_path: Path) -> None:
    data, ref = eval_ref
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    (out / "results.json").unlink()
    os.chmod(out / "predictions.jsonl", 0o444)
    line = one_line_error(qtalign(*eval_argv(tiny_llama, data, out)))
    assert f"{out / 'predictions.jsonl'}: permission denied" in line
    os.chmod(out / "predictions.jsonl", 0o644)
    assert qtalign(*eval_argv(tiny_llama, data, out)).returncode == 0
    assert_same_run(ref, out)


def test_os_errors_at_the_entry_point(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """An OSError from anywhere (not only the store's writers) is one line naming its file; -v shows the traceback."""
    import errno

    import qtalign.cli.compare as cli_compare

    def boom(args: Any) -> int:
        raise OSError(errno.EDQUOT, "Disk quota exceeded", str(tmp_path / "x.json"))

    monkeypatch.setattr(cli_compare, "run", boom)
    rc = main(["compare", "a", "b", "--out", str(tmp_path / "c")])
    line = one_line_error((rc, capsys.readouterr().err))
    assert line.startswith(f"qtalign: error: {tmp_path / 'x.json'}: disk quota exceeded; ")
    with pytest.raises(OSError):
        main(["-v", "compare", "a", "b", "--out", str(tmp_path / "c")])


def test_library_write_errors_are_translated() -> None:
    from qtalign.store import OutputError, output_errors

    with pytest.raises(OutputError, match=r"^/x/adapter.tmp: no space left on device; "), \
            output_errors("/x/adapter.tmp"):
        raise RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space '
                           'left on device" })')
    with pytest.raises(OutputError, match=r"^/x/a.tmp: no space left on device; "), output_errors("/x/a.tmp"):
        raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")
    with pytest.raises(OutputError, match="file write failed"), output_errors("/x/checkpoint.tmp"):
        raise RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")
    with pytest.raises(ValueError, match="not an I/O"), output_errors("/x"):  # anything else goes through untouched
        raise ValueError("not an I/O problem")


# ---- 2. data fetch --dest follows the --out rule -----------------------------------------------------------------
def test_fetch_dest_follows_the_out_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from test_fetch import fake_repo, manifest

    from qtalign.data import fetch as fetch_mod

    monkeypatch.setattr(fetch_mod, "load_manifest", lambda path=None: manifest(fake_repo()))
    mirror = tmp_path / "mirror"
    for remote, data in fake_repo().items():
        (mirror / remote).parent.mkdir(parents=True, exist_ok=True)
        (mirror / remote).write_bytes(data)
    afile = tmp_path / "a_file"
    afile.write_text("x")
    argv = ["data", "fetch", "paper", "--only", "emotion", "--base-url", mirror.as_uri(), "--no-progress", "--dest"]
    for dest, says in ((afile, "exists and is not a folder"), (afile / "sub" / "d", "is a file, not a folder"),
                       (Path("/proc/qtalign-test/d"), "cannot create this folder")):
        line = one_line_error((main([*argv, str(dest)]), capsys.readouterr().err))
        assert line.startswith(f"qtalign: error: --dest {dest}: ") and says in line
    assert main([*argv, str(tmp_path / "new" / "d")]) == 0  # missing parents are created, as for --out
    assert (tmp_path / "new" / "d" / "emotion" / "emotion_zh500_test.json").is_file()


# ---- 3. several builds in one folder -----------------------------------------------------------------------------
def test_builds_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from test_build import folder

    from qtalign.compare import training_languages

    d = folder(tmp_path)
    qt = tmp_path / "qt"
    base = ["data", "build", "--task", "nli", "--data", str(d), "--sources", "zh", "--per-lang", "3"]
    assert main([*base, "--out", str(qt / "real.jsonl")]) == 0
    assert main([*base, "--control", "copy", "--out", str(qt / "copy.jsonl")]) == 0
    real, copy = (json.loads((qt / f"{n}.manifest.json").read_text()) for n in ("real", "copy"))
    assert real["settings"]["control"] is None and copy["settings"]["control"] == "copy"
    assert not (qt / "manifest.json").exists()
    assert set(json.loads((qt / "dataset_info.json").read_text())) == {"real", "copy"}
    assert manifest_path(qt / "real.jsonl") == qt / "real.manifest.json"
    # the rule per build: the same settings rebuild identically, others are refused naming the flag
    before = (qt / "real.jsonl").read_bytes()
    assert main([*base, "--out", str(qt / "real.jsonl")]) == 0 and (qt / "real.jsonl").read_bytes() == before
    capsys.readouterr()
    line = one_line_error((main([*base[:-1], "2", "--out", str(qt / "real.jsonl")]), capsys.readouterr().err))
    assert str(qt / "real.jsonl") in line and "--per-lang 3 -> 2" in line and "--overwrite" in line
    assert main([*base[:-1], "2", "--out", str(qt / "real.jsonl"), "--overwrite"]) == 0
    assert json.loads((qt / "copy.manifest.json").read_text())["settings"]["per_lang"] == 3  # untouched
    # readers find each build's manifest: compare's training languages, the adapter label
    train = tmp_path / "T"
    train.mkdir()
    (train / "train_settings.json").write_text(json.dumps({"data": str(qt / "copy.jsonl")}))
    langs, where = training_languages(str(train))
    assert langs == ["zh"] and where == f"{qt / 'copy.manifest.json'} (control copy)"


def test_old_folders_manifest_is_still_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A folder built by an older qtalign (one manifest.json) resumes, and its manifest is found by every reader."""
    from test_build import folder

    from qtalign.compare import training_languages
    from qtalign.runs.train import adapter_label

    d = folder(tmp_path)
    qt = tmp_path / "qt"
    base = ["data", "build", "--task", "nli", "--data", str(d), "--sources", "zh", "--per-lang", "3",
            "--out", str(qt / "train.jsonl")]
    assert main(base) == 0
    (qt / "train.manifest.json").rename(qt / "manifest.json")  # as an older qtalign left it
    assert manifest_path(qt / "train.jsonl") == qt / "manifest.json"
    assert manifest_path(qt / "other.jsonl") == qt / "other.manifest.json"  # describes another file
    train = tmp_path / "T"
    train.mkdir()
    (train / "train_settings.json").write_text(json.dumps({"data": str(qt / "train.jsonl")}))
    assert training_languages(str(train))[0] == ["zh", "en"] and adapter_label(train) == "LoRA zh=>en"
    line = one_line_error((main([*base[:-4], "--per-lang", "2", *base[-2:]]), capsys.readouterr().err))
    assert "--per-lang 3 -> 2" in line  # the old manifest still guards its build
    assert main(base) == 0  # same settings: rebuilt, recorded under the new name
    assert (qt / "train.manifest.json").is_file() and not (qt / "manifest.json").exists()


# ---- 4. study configs list every problem ------------------------------------------------------------------------
def test_study_config_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "models": ["owner/m"], "evals": {"tasks": {"emotion": "x"}}}))
    rc = main(["run", str(path), "--dry-run"])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2 and "Traceback" not in err and "more problem" not in err
    assert all(x.startswith(f"qtalign: error: {path}: ") for x in lines)
    assert any(x.endswith("eval: is required") for x in lines)
    assert any("unknown setting 'evals'" in x for x in lines) and len(lines) == 2
    # semantic checks too: every bad mix and language, one line each, up to the cap
    (tmp_path / "data").mkdir()
    cfg = {"name": "s", "models": ["owner/m"], "eval": {"tasks": {"emotion": "data"}, "langs": ["xx"]},
           "mixes": [{"name": f"m{i}", "task": "emotion", "sources": ["zz"], "target": "en", "data": f"nope{i}"}
                     for i in range(MAX_PROBLEMS + 5)]}
    path.write_text(yaml.safe_dump(cfg))
    rc = main(["run", str(path), "--dry-run"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(lines) == MAX_PROBLEMS + 1 and all(x.startswith("qtalign: error: ") for x in lines)
    assert "eval.langs: unknown language 'xx'" in lines[0]
    assert "mixes[0] (m0).data: " in lines[1] and "nope0: no such file or folder" in lines[1]
    assert lines[-1].startswith("qtalign: error: ... and ") and lines[-1].endswith("more problem(s) not shown")


def test_settings_parse_lists_every_problem() -> None:
    from qtalign.errors import QtalignError, QtalignProblems
    from qtalign.train import TrainSettings

    with pytest.raises(QtalignProblems) as e:
        TrainSettings.parse({"model": "m", "data": "d", "out": "o", "lr": -1, "epochs": "x", "bogus": 1},
                            "train.yaml")
    assert len(e.value.problems) == 3 and all(p.startswith("train.yaml: ") for p in e.value.problems)
    assert any("unknown setting 'bogus'" in p for p in e.value.problems)
    with pytest.raises(QtalignError) as one:  # one problem stays one plain line
        TrainSettings.parse({"model": "m", "data": "d", "out": "o", "bogus": 1}, "train.yaml")
    assert not isinstance(one.value, QtalignProblems) and "\n" not in str(one.value)


# ---- 5. one writer per run folder -------------------------------------------------------------------------------
def test_second_writer_is_refused_and_a_killed_one_leaves_no_lock(tiny_llama: Path, eval_ref: tuple[Path, Path],
                                                                  tmp_path: Path) -> None:
    data, ref = eval_ref
    out = tmp_path / "run"
    env = {**ENV, "QTALIGN_SLOW_TEST": "0.2"}
    first = subprocess.Popen([sys.executable, "-m", "qtalign", *eval_argv(tiny_llama, data, out)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pred = out / "predictions.jsonl"
        deadline = time.time() + 120
        while time.time() < deadline and (not pred.exists() or pred.read_bytes().count(b"\n") < 2):
            assert first.poll() is None, "the first run ended early"
            time.sleep(0.05)
        second = qtalign(*eval_argv(tiny_llama, data, out))  # the same command launched twice
        line = one_line_error(second)
        assert f"{out}: in use by another qtalign process (pid {first.pid} on {socket.gethostname()})" in line
        assert first.poll() is None, "the first run was not running while the second was refused"
    finally:
        os.kill(first.pid, signal.SIGKILL)  # a killed holder: its lock goes with it
        first.wait()
    assert (out / LOCK_NAME).is_file()
    p = qtalign(*eval_argv(tiny_llama, data, out))
    assert p.returncode == 0, p.stderr
    assert_same_run(ref, out)


HOLD = ("import sys, time; from qtalign.store import hold_folder; hold_folder(sys.argv[1], sys.argv[2] if "
        "len(sys.argv) > 2 else None); print('held', flush=True); time.sleep(120)")


@contextlib.contextmanager
def held(folder: Path, lock: Path | None = None) -> Iterator[subprocess.Popen[str]]:
    """Another process holding folder's lock."""
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), *([str(lock)] if lock else [])], env=ENV,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_every_folder_writer_takes_the_lock(tiny_llama: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """data build, lens, train, data fetch and the study runner are refused while another process holds the folder;
    once it is gone the same command runs."""
    from test_build import folder

    d = folder(tmp_path)
    qt = tmp_path / "qt"
    build = ["data", "build", "--task", "nli", "--data", str(d), "--sources", "zh", "--per-lang", "3", "--out",
             str(qt / "train.jsonl")]
    data = write_paper_folder(tmp_path / "data", n=4)
    lens = ["lens", "--task", "emotion", "--data", str(data), "--model", str(tiny_llama), "--device", "cpu",
            "--limit", "2", "--out", str(tmp_path / "L")]
    train = ["train", "--model", str(tiny_llama), "--data", str(qt / "train.jsonl"), "--device", "cpu",
             "--batch-size", "2", "--grad-accum", "1", "--max-steps", "1", "--out", str(tmp_path / "T")]
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({"name": "s", "models": [str(tiny_llama)],
                                     "eval": {"tasks": {"emotion": str(data)}, "langs": ["en"], "limit": 2}}))
    run = ["run", str(study), "--out", str(tmp_path / "S"), "--no-progress"]
    for argv, where in ((build, qt), (lens, tmp_path / "L"), (train, tmp_path / "T"), (run, tmp_path / "S")):
        with held(where) as holder:
            line = one_line_error((main(argv), capsys.readouterr().err))
            assert f"{where}: in use by another qtalign process (pid {holder.pid} on " in line, argv[0]
        assert main(argv) == 0, capsys.readouterr().err
        capsys.readouterr()
    merged = tmp_path / "M"
    with held(merged, merged.with_name(f".M{LOCK_NAME}")) as holder:
        line = one_line_error((main(["merge", "--model", str(tiny_llama), "--adapter", str(tmp_path / "T"), "--out",
                                     str(merged)]), capsys.readouterr().err))
        assert f"pid {holder.pid}" in line


def test_one_process_may_claim_a_folder_again(tmp_path: Path) -> None:
    """The lock is per process: a study step's folder, held by the runner, is claimed again by the step's command;
    main() releases what a command held, so the next command (or another process) can take it."""
    from qtalign.store import _held, folder_locks, hold_folder, open_run

    with folder_locks():
        (tmp_path / "r").mkdir()
        hold_folder(tmp_path / "r")
        run = open_run(tmp_path / "r", "run.json", {"a": 1})
        assert run.path == tmp_path / "r" and (tmp_path / "r" / LOCK_NAME).resolve() in _held
    assert (tmp_path / "r" / LOCK_NAME).resolve() not in _held
    p = subprocess.run([sys.executable, "-c", HOLD.replace("time.sleep(120)", "pass"), str(tmp_path / "r")], env=ENV,
                       capture_output=True, text=True, check=False)
    assert p.returncode == 0 and p.stdout.strip() == "held", p.stderr


def test_a_closed_pipe_is_not_an_error() -> None:
    """`qtalign ... | head`: the reader going away ends the command quietly (no error line, no traceback)."""
    import subprocess
    import sys

    cmd = f"{sys.executable} -m qtalign prompts --task emotion --data demo --langs en,de --limit 20 | head -c 10"
    p = subprocess.run(["bash", "-c", cmd], check=False, capture_output=True, text=True, timeout=300)
    assert len(p.stdout) == 10
    assert "error" not in p.stderr and "Traceback" not in p.stderr, p.stderr


@pytest.mark.parametrize(("control", "seen"), [(None, ["zh", "es", "en"]), ("copy", ["zh", "es"]),
                                               ("english", ["en"])])
def test_training_languages_follow_the_control(tmp_path: Path, control: str | None, seen: list[str]) -> None:
    """A copy control's pairs hold only its sources and an English control's only English: compare's seen/unseen
    split counts what the pairs contain (data.controls.trained_languages), not the manifest's target."""
    from qtalign.compare import training_languages

    qt = tmp_path / "qt"
    qt.mkdir()
    (qt / "train.jsonl").write_text("")
    settings = {"sources": ["zh", "es"], "target": "en", "control": control}
    (qt / "train.manifest.json").write_text(json.dumps({"settings": settings}))
    train = tmp_path / "T"
    train.mkdir()
    (train / "train_settings.json").write_text(json.dumps({"data": str(qt / "train.jsonl")}))
    langs, where = training_languages(str(train))
    assert langs == seen, where
    assert ("control" in where) == (control is not None)

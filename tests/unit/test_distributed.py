"""Multi-process runs on CPU (gloo, 2 processes, tiny models): eval (content-free prompts and calibration included),
lens and PCA equal one process; resume after a kill with another process count; the resume/overwrite rule decided
once by the main process; training (micro-batches, gradient checkpointing) matches one process within a stated
tolerance; sharded batches split on out-of-memory as one process's do."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from qtalign import distributed
from qtalign.cli.main import main
from qtalign.distributed import Dist, Shard

sys.path.insert(0, str(Path(__file__).parent))
from test_eval import write_paper_folder
from test_train import write_pairs

# On CPU, torch's kernels may round differently with another thread count (measured: 16 of 116 eval rows differ in
# the last digits between 1 and 2 threads in ONE process); launchers give each process one thread, so the reference
# one-process runs here use one thread too. On GPU each process has its own device and no such difference.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
N_ITEMS = 40  # per language; 38 scored (2 demonstrations)


def launch(n: int, *argv: str, accelerate: bool = False) -> list[str]:
    """The command line of `qtalign ARGV` in n processes: torchrun (or accelerate launch) for n > 1."""
    if n == 1:
        return [sys.executable, "-m", "qtalign", *argv]
    if accelerate:  # on a machine without GPUs accelerate starts several processes with --multi_gpu (or MPI)
        return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(n),
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--main_process_port", str(_free_port()), "-m", "qtalign", *argv]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n),
            "-m", "qtalign", *argv]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(n: int, *argv: str, env: dict[str, str] | None = None, accelerate: bool = False, fails: bool = False,
        ) -> subprocess.CompletedProcess[str]:
    """Run and check the exit status: 0, or with fails an error (torchrun exits 1 when its processes exit 2)."""
    p = subprocess.run(launch(n, *argv, accelerate=accelerate), env=env or ENV, capture_output=True, text=True,
                       check=False, timeout=300)
    assert (p.returncode != 0) == fails, p.stderr[:3000] + "\n...\n" + p.stderr[-1000:]  # the processes', then torchrun's
    return p


def eval_args(model: Path, data: Path, out: Path) -> list[str]:
    return ["eval", "--task", "emotion", "--data", str(data), "--model", str(model), "--langs", "en,de", "--device",
            "cpu", "--batch-size", "3", "--no-progress", "--out", str(out)]


def assert_same_eval(ref: Path, other: Path) -> None:
    """Byte-identical predictions.jsonl (rewritten in item order, calibrated keys included) and content_free.json, and
    the same results numbers (raw and calibrated)."""
    rows = (other / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 2 * (N_ITEMS - 2) and all("pred_cal" in json.loads(r) for r in rows)
    assert rows == (ref / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert (other / "content_free.json").read_bytes() == (ref / "content_free.json").read_bytes()
    a, b = (json.loads((d / "results.json").read_text()) for d in (ref, other))
    assert a["languages"] == b["languages"] and a["mean"] == b["mean"] and b["complete"]
    assert set(b["mean"]["calibrated"]) == {"batch", "content-free"}
    assert not (other / "parts").exists()


@pytest.fixture(scope="module")
def eval_ref(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A one-process eval run and its data."""
    root = tmp_path_factory.mktemp("dist-eval")
    data = write_paper_folder(root / "data", n=N_ITEMS)
    run(1, *eval_args(tiny_llama, data, root / "ref"))
    return data, root / "ref"


def test_eval_two_processes_equal_one(tiny_llama: Path, eval_ref: tuple[Path, Path], tmp_path: Path) -> None:
    data, ref = eval_ref
    out = run(2, *eval_args(tiny_llama, data, tmp_path / "two"), accelerate=True).stdout
    assert out.count("wrote ") == 1  # the main process reports, once
    assert_same_eval(ref, tmp_path / "two")


def _kill_part_way(cmd: list[str], written: Callable[[], int], env: dict[str, str]) -> None:
    """Start cmd in its own process group and SIGKILL the whole group once written() rows exist."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and written() < 6 and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _kill_workers(cmd)


def _kill_workers(cmd: list[str], timeout: float = 60) -> None:
    """The launcher's workers run in sessions of their own and outlive a SIGKILL of its group (holding the run
    folder's one-writer lock): kill them too, as a cluster kills a job, and wait until the lock is free."""
    import fcntl

    out = Path(cmd[cmd.index("--out") + 1])
    subprocess.run(["pkill", "-9", "-f", f"qtalign.* {out}"], check=False)
    lock = out / ".qtalign.lock"
    deadline = time.time() + timeout
    while lock.is_file() and time.time() < deadline:
        with lock.open("a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                time.sleep(0.2)
                continue
            fcntl.flock(f, fcntl.LOCK_UN)
            return


def _rows(*files: Path) -> int:
    return sum(f.read_bytes().count(b"\n") for f in files if f.is_file())


@pytest.mark.parametrize("first,then", [(2, 1), (1, 2)])
def test_eval_killed_then_resumed_with_another_process_count(tiny_llama: Path, eval_ref: tuple[Path, Path],
                                                             tmp_path: Path, first: int, then: int) -> None:
    data, ref = eval_ref
    out = tmp_path / "run"
    env = {**ENV, "QTALIGN_SLOW_TEST": "0.1"}
    files = lambda: [out / "predictions.jsonl", *sorted((out / "parts").glob("*.jsonl"))]
    _kill_part_way(launch(first, *eval_args(tiny_llama, data, out)), lambda: _rows(*files()), env)
    n_partial = _rows(*files())
    assert 0 < n_partial < 2 * (N_ITEMS - 2), "the run was not interrupted part-way"
    if first > 1:
        assert list((out / "parts").glob("predictions.*.jsonl")), "each process writes its own part file"
    run(then, *eval_args(tiny_llama, data, out))
    assert_same_eval(ref, out)


def test_eval_folder_rule_and_content_free_in_two_processes(tiny_llama: Path, eval_ref: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    """The main process alone claims the folder: other settings are one error line and leave the record as it was;
    --overwrite starts over. A finished run without content-free scores (made before they were stored) gets them from
    the main process, items untouched."""
    data, ref = eval_ref
    out = tmp_path / "run"
    shutil.copytree(ref, out)
    record = (out / "run.json").read_bytes()
    p = run(2, *eval_args(tiny_llama, data, out), "--shots", "1", fails=True)
    assert p.stderr.count("qtalign: error: ") == 1 and "holds results made with other settings (--shots" in p.stderr
    assert (out / "run.json").read_bytes() == record
    (out / "content_free.json").unlink()
    run(2, *eval_args(tiny_llama, data, out))
    assert_same_eval(ref, out)
    run(2, *eval_args(tiny_llama, data, out), "--overwrite")
    assert_same_eval(ref, out)


def test_shards_split_their_batches_on_out_of_memory(tiny_llama: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes' shares of eval and PCA with an adaptive batch size that runs out of memory above 2 rows: every
    item once, with the values of one process at batch size 2 (the batches stay those of the requested size, which
    decide the shares; only the pieces shrink)."""
    from test_eval import settings

    from qtalign.analysis import pca
    from qtalign.batchsize import BatchSizer
    from qtalign.eval import prepare
    from qtalign.eval import run as run_eval
    from qtalign.eval.loop import score_language
    from qtalign.models import load_model
    from qtalign.scoring import Scorer, TokenIndex
    from qtalign.store import JsonlWriter, read_jsonl_rows

    data = write_paper_folder(tmp_path / "data", n=N_ITEMS)
    s = settings(tiny_llama, data, calibrate=())
    run_eval(s.model_copy(update={"batch_size": 2, "out": str(tmp_path / "ref")}), progress=False)
    ref = {(r["lang"], r["index"]): r for r in read_jsonl_rows(tmp_path / "ref" / "predictions.jsonl")}
    lm = load_model(str(tiny_llama), device="cpu")
    scorer, index, prep = Scorer(lm.model, lm.tokenizer, batch_size=8), TokenIndex(lm.tokenizer), prepare(s)
    layers = (0, lm.base.config.num_hidden_layers)
    pooled_ref = [pca.collect_pooled(scorer, lp, layers, batch_size=2) for lp in prep.prompts.values()]

    def fails_above_two(real: Callable[..., object], n_rows: Callable[..., int]) -> Callable[..., object]:
        def limited(*args: object) -> object:
            if n_rows(*args) > 2:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")
            return real(*args)
        return limited

    monkeypatch.setattr(Scorer, "first_token_batch", fails_above_two(Scorer.first_token_batch, lambda *a: len(a[2])))
    monkeypatch.setattr(pca, "pool_batch", fails_above_two(pca.pool_batch, lambda *a: len(a[2])))
    keys: list[set[tuple[str, int]]] = []
    pooled: list[list[pca.Pooled]] = []
    for rank in range(2):
        shard, sizer = Shard(rank, 2), BatchSizer(8, adaptive=True)
        with JsonlWriter(tmp_path / f"part{rank}.jsonl") as writer:
            for lp in prep.prompts.values():
                score_language(s, prep.task, lp, scorer, index, None, set(), writer,
                               SimpleNamespace(update=lambda n: None), None, sizer, None, shard)
        assert sizer.size == 2 and sizer.shrinks == 2
        rows = read_jsonl_rows(tmp_path / f"part{rank}.jsonl")
        keys.append({(r["lang"], r["index"]) for r in rows})
        for r in rows:
            ref_row = ref[(r["lang"], r["index"])]
            assert r["pred"] == ref_row["pred"]
            np.testing.assert_allclose(list(r["probs"].values()), list(ref_row["probs"].values()), atol=1e-6)
        pooled.append([pca.collect_pooled(scorer, lp, layers, batch_size=8, shard=Shard(rank, 2), keep_done=False,
                                          sizer=BatchSizer(8, adaptive=True)) for lp in prep.prompts.values()])
    assert keys[0] and keys[1] and not keys[0] & keys[1] and keys[0] | keys[1] == set(ref)
    for k, want in enumerate(pooled_ref):
        got = {int(i): st for part in (pooled[0][k], pooled[1][k]) for i, st in zip(part.index, part.states)}
        assert sorted(got) == sorted(int(i) for i in want.index)
        np.testing.assert_allclose(np.stack([got[int(i)] for i in want.index]), want.states, atol=1e-5)


def _analysis_args(cmd: str, model: Path, data: Path, out: Path) -> list[str]:
    extra = ["--bootstrap", "50"] if cmd == "lens" else ["--layers", "0,2,3"]
    return [cmd, "--task", "emotion", "--data", str(data), "--model", str(model), "--langs", "en,de", "--device",
            "cpu", "--batch-size", "3", "--limit", "10", "--out", str(out), *extra]


@pytest.mark.parametrize("cmd,npz,csvs", [("lens", "lens.npz", ["lens_layers.csv"]),
                                          ("pca", "pca.npz", ["pca_corr.csv", "alignment.csv"])])
def test_lens_and_pca_two_processes_equal_one(tiny_gemma: Path, tmp_path: Path, cmd: str, npz: str,
                                              csvs: list[str]) -> None:
    data = write_paper_folder(tmp_path / "data", n=14)
    run(1, *_analysis_args(cmd, tiny_gemma, data, tmp_path / "one"))
    run(2, *_analysis_args(cmd, tiny_gemma, data, tmp_path / "two"))
    a, b = np.load(tmp_path / "one" / npz), np.load(tmp_path / "two" / npz)
    assert a.files == b.files
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    for name in csvs:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert not list((tmp_path / "two" / "parts").glob("*.rank*.npz"))  # gathered into one part per language


@pytest.mark.parametrize("cmd,npz,stem", [("lens", "lens.npz", "lens"), ("pca", "pca.npz", "pooled")])
def test_rerun_gathers_the_parts_a_killed_multi_process_analysis_left(tiny_gemma: Path, tmp_path: Path, cmd: str,
                                                                     npz: str, stem: str) -> None:
    """A 2-process lens/pca run killed after both processes saved their parts, rerun in one process: the main
    process gathers the rank parts before the model loads, and the outputs equal an uninterrupted run's."""
    from qtalign.analysis.common import load_npz, rank_part, save_npz
    from qtalign.analysis.lens import QUANTITIES
    from qtalign.analysis.pca_run import POOLED_PER_ITEM

    per_item = ("index", *QUANTITIES, "top_id") if cmd == "lens" else POOLED_PER_ITEM
    data = write_paper_folder(tmp_path / "data", n=14)
    ref, killed = tmp_path / "one", tmp_path / "killed"
    run(1, *_analysis_args(cmd, tiny_gemma, data, ref))
    shutil.copytree(ref, killed)
    for f in killed.iterdir():  # what the run writes once every language is done
        if f.is_file() and f.name != "settings.json":
            f.unlink()
    langs = sorted((killed / "parts").glob(f"{stem}_*.npz"))
    assert [p.name for p in langs] == [f"{stem}_de.npz", f"{stem}_en.npz"]
    for part in langs:  # each process's share: every other item
        z = load_npz(part)
        assert z is not None
        for rank in (0, 1):
            save_npz(rank_part(part, rank), {**z, **{k: z[k][rank::2] for k in per_item}})
        part.unlink()
    run(1, *_analysis_args(cmd, tiny_gemma, data, killed))
    assert not list((killed / "parts").glob("*.rank*.npz"))
    a, b = np.load(ref / npz), np.load(killed / npz)
    assert a.files == b.files
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# ---- training ---------------------------------------------------------------------------------------------------
# Tolerance of a 2-process run against the one-process run (same global batch): each micro-batch's gradient is the
# same; only the order of their float32 sums differs. Measured on this test: adapter max |diff| 3.7e-8 (weights up
# to 0.19), training loss max |diff| 1.6e-7, validation loss max |diff| 1.3e-7.
ADAPTER_ATOL, LOSS_ATOL = 1e-6, 1e-5


def train_args(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--model", str(model), "--data", str(data), "--out", str(out), "--batch-size", "2",
            "--grad-accum", "4", "--epochs", "3", "--lr", "5e-3", "--val-ratio", "0.2", "--save-every", "1",
            "--eval-every", "2", "--device", "cpu", "--seed", "1", *extra]


def assert_same_training(a: Path, b: Path) -> None:
    wa = load_file(str(a / "adapter" / "adapter_model.safetensors"))
    wb = load_file(str(b / "adapter" / "adapter_model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=ADAPTER_ATOL)
    for log, key in (("train_log.jsonl", "loss"), ("val_log.jsonl", "val_loss")):
        ra = [json.loads(x) for x in (a / log).read_text().splitlines()]
        rb = [json.loads(x) for x in (b / log).read_text().splitlines()]
        assert [r["step"] for r in ra] == [r["step"] for r in rb] and ra
        np.testing.assert_allclose([r[key] for r in ra], [r[key] for r in rb], rtol=0, atol=LOSS_ATOL)


@pytest.fixture(scope="module")
def train_ref(tiny_gemma: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("dist-train")
    data = write_pairs(root / "pairs.jsonl", 24)
    run(1, *train_args(tiny_gemma, data, root / "one"))
    return data, root / "one"


def test_train_two_processes_match_one(tiny_gemma: Path, train_ref: tuple[Path, Path], tmp_path: Path) -> None:
    data, one = train_ref
    out = run(2, *train_args(tiny_gemma, data, tmp_path / "two")).stdout
    assert out.count("adapter -> ") == 1
    assert_same_training(one, tmp_path / "two")
    assert json.loads((tmp_path / "two" / "train_summary.json").read_text())["processes"] == 2
    # the resume rule, decided by the main process: the same settings find the finished run, others are refused once
    assert run(2, *train_args(tiny_gemma, data, tmp_path / "two")).stdout.count("already finished") == 1
    p = run(2, *train_args(tiny_gemma, data, tmp_path / "two", "--rank", "4"), fails=True)
    assert p.stderr.count("qtalign: error: ") == 1 and "holds results made with other settings" in p.stderr


@pytest.mark.parametrize("first,then", [(2, 1), (1, 2)])
def test_train_checkpoint_resumes_with_another_process_count(tiny_gemma: Path, train_ref: tuple[Path, Path],
                                                             tmp_path: Path, first: int, then: int) -> None:
    """A rerun resumes (--resume accepted, not needed); the 2-process half runs in micro-batches of 1 with gradient
    checkpointing (settings a resume may change), and the result still matches one process."""
    data, one = train_ref
    out = tmp_path / "run"
    memory = ("--micro-batch", "1", "--gradient-checkpointing")
    extra = lambda n: memory if n > 1 else ()
    # interrupted right after the checkpoint of step 4 (tests/hooks/interrupt.py); the launcher ends the other process
    run(first, *train_args(tiny_gemma, data, out, *extra(first)), env={**ENV, "QTALIGN_TEST_STOP_AFTER": "4"},
        fails=True)
    assert json.loads((out / "checkpoint" / "state.json").read_text())["step"] == 4
    run(then, *train_args(tiny_gemma, data, out, *extra(then), *(("--resume",) if then == 1 else ())))
    assert_same_training(one, out)


# ---- no processes launched ----------------------------------------------------------------------------------------
def test_shard_is_round_robin_across_calls() -> None:
    shards = [Shard(r, 3) for r in range(3)]
    owners = [[s.mine() for s in shards].index(True) for _ in range(7)]
    assert owners == [0, 1, 2, 0, 1, 2, 0]
    assert all(Shard().mine() for _ in range(3))


def test_one_process_dist_is_a_no_op() -> None:
    d = Dist()
    assert d.is_main and not d.enabled and d.gather(5) == [5] and d.broadcast("x") == "x"
    assert d.agree(lambda: 3) == 3 and d.on_main(lambda: 4) == 4 and d.local_device("auto") == "auto"
    t = torch.ones(2)
    assert d.all_reduce_sum(t) is t and t.tolist() == [1.0, 1.0]


def test_single_process_commands_are_refused_when_launched_in_several(monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["compare", "a", "b", "--out", "c"]) == 2
    assert "qtalign compare runs in one process" in capsys.readouterr().err
    monkeypatch.setenv("RANK", "1")
    assert main(["compare", "a", "b", "--out", "c"]) == 2
    assert capsys.readouterr().err == ""  # the main process reports it


def test_accelerate_cpu_launch_of_one_process_is_explained(monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    for name in distributed.WORLD_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setattr(distributed, "_DIST", None)
    try:
        with caplog.at_level(logging.WARNING):
            assert not distributed.get_dist("cpu").enabled
    finally:
        monkeypatch.setattr(distributed, "_DIST", None)
    assert "torchrun --nproc-per-node N" in caplog.text


def test_deepspeed_or_fsdp_launch_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from qtalign.errors import QtalignError

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setattr(distributed, "_DIST", None)
    try:
        with pytest.raises(QtalignError, match="FSDP config: qtalign runs data-parallel"):
            distributed.get_dist("cpu")
    finally:
        monkeypatch.setattr(distributed, "_DIST", None)

"""--batch-size auto: halving on (fake) CUDA out-of-memory, remembering the size, and the same results as a fixed size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from qtalign import batchsize
from qtalign.batchsize import BatchSizer, batch_sizer, parse_batch_size, run_split
from qtalign.errors import QtalignError
from qtalign.scoring import length_batches


def fake_oom(limit: int):
    calls: list[list[int]] = []

    def fn(chunk: list[int]) -> list[int]:
        calls.append(list(chunk))
        if len(chunk) > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (fake)")
        return [2 * i for i in chunk]

    return fn, calls


def test_parse_batch_size() -> None:
    assert parse_batch_size("auto") == "auto" and parse_batch_size("AUTO") == "auto"
    assert parse_batch_size("16") == 16 and parse_batch_size(4) == 4
    for bad in ("0", "-2", "x", "1.5", 0):
        with pytest.raises(QtalignError, match="positive integer or auto"):
            parse_batch_size(bad)


def run_all(sizer: BatchSizer, batches: list[list[int]], fn):
    return [(piece, r) for batch in batches for piece, r in run_split(sizer, batch, fn)]


def test_a_fixed_size_runs_each_batch_whole() -> None:
    lengths = [5, 9, 9, 1, 7, 3, 8, 2, 6, 4, 9]
    batches = length_batches(lengths, 3)
    assert [p for p, _ in run_all(BatchSizer(3), batches, lambda c: None)] == batches


def test_auto_halves_on_oom_processes_every_item_once_and_remembers(tmp_path: Path) -> None:
    memory = tmp_path / "batch_sizes.json"
    sizer = batch_sizer("auto", torch.device("cuda"), key="eval|m|emotion", memory=memory, start=16)
    assert sizer.adaptive and sizer.size == 16
    batches = length_batches(list(range(20, 0, -1)), sizer.size)  # the batches stay [16 items], [4 items]
    fn, calls = fake_oom(limit=3)
    out = run_all(sizer, batches, fn)
    assert [len(c) for c in calls[:3]] == [16, 8, 4]  # 16 -> 8 -> 4 fail on the same first items, 2 runs
    assert [len(p) for p, _ in out] == [2] * 10  # later batches are cut into pieces of the size that ran
    assert [i for p, _ in out for i in p] == [i for b in batches for i in b]  # each item once, in order
    assert all(r == [2 * i for i in p] for p, r in out)
    assert sizer.size == 2 and sizer.shrinks == 3
    assert json.loads(memory.read_text()) == {"eval|m|emotion": 2}
    # the next run starts from the remembered size: no failing attempt
    again = batch_sizer("auto", torch.device("cuda"), key="eval|m|emotion", memory=memory, start=16)
    fn2, calls2 = fake_oom(limit=3)
    run_all(again, length_batches([1] * 5, again.size), fn2)
    assert [len(c) for c in calls2] == [2, 2, 1]
    # another task keeps its own entry
    other = batch_sizer("auto", torch.device("cuda"), key="eval|m|nli", memory=memory, start=4)
    run_all(other, [list(range(4))], fake_oom(limit=8)[0])
    assert json.loads(memory.read_text()) == {"eval|m|emotion": 2, "eval|m|nli": 4}


def test_auto_on_cpu_is_the_default_eight(tmp_path: Path) -> None:
    sizer = batch_sizer("auto", torch.device("cpu"), key="k", memory=tmp_path / "m.json")
    assert sizer.size == batchsize.CPU_DEFAULT == 8 and not sizer.adaptive
    assert batch_sizer(5, torch.device("cuda")).size == 5 and not batch_sizer(5, torch.device("cuda")).adaptive


def test_oom_with_a_fixed_size_or_at_size_one_is_one_line() -> None:
    fn, _ = fake_oom(limit=2)
    with pytest.raises(QtalignError, match=r"--batch-size 4: out of device memory .*--batch-size auto"):
        list(run_split(BatchSizer(4), list(range(8)), fn))
    fn, _ = fake_oom(limit=0)
    with pytest.raises(QtalignError, match="out of device memory at batch size 1"):
        list(run_split(BatchSizer(4, adaptive=True), list(range(8)), fn))


def test_other_errors_are_not_taken_for_oom() -> None:
    def fn(chunk: list[int]) -> None:
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    sizer = BatchSizer(4, adaptive=True)
    with pytest.raises(RuntimeError, match="shapes"):
        list(run_split(sizer, [1, 2, 3], fn))
    assert sizer.size == 4
    assert batchsize.is_oom(RuntimeError("CUDA error: out of memory"))
    assert not batchsize.is_oom(ValueError("out of memory"))


def test_eval_auto_after_fake_oom_matches_a_fixed_batch_size(tiny_llama: Path, tmp_path: Path, monkeypatch) -> None:
    """eval with an adaptive sizer whose scorer fails above 2 rows ends with the predictions of --batch-size 2."""
    from test_eval import settings, write_paper_folder

    from qtalign.eval import loop
    from qtalign.eval import run as run_eval
    from qtalign.scoring import Scorer

    data = write_paper_folder(tmp_path / "data")
    fixed = run_eval(settings(tiny_llama, data, batch_size=2, out=str(tmp_path / "bs2")), progress=False).results
    memory = tmp_path / "batch_sizes.json"
    made: list[BatchSizer] = []

    def adaptive(requested, device, key=None, **kw):
        assert requested == "auto" and key.startswith("eval-first-token|")
        made.append(BatchSizer(8, adaptive=True, key=key, memory=memory))
        return made[-1]

    real = Scorer.first_token_batch

    def limited(self, prefix, rows, sets):
        if len(rows) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")
        return real(self, prefix, rows, sets)

    monkeypatch.setattr(loop, "batch_sizer", adaptive)
    monkeypatch.setattr(Scorer, "first_token_batch", limited)
    auto = run_eval(settings(tiny_llama, data, batch_size="auto", out=str(tmp_path / "auto")), progress=False).results
    assert made[0].size == 2 and json.loads(memory.read_text()) == {made[0].key: 2}
    assert auto["settings"]["batch_size"] == "auto"

    def rows(run: str) -> dict[tuple[str, int], dict]:
        lines = (tmp_path / run / "predictions.jsonl").read_text().splitlines()
        return {(r["lang"], r["index"]): r for r in map(json.loads, lines)}

    a, f = rows("auto"), rows("bs2")
    assert a.keys() == f.keys() and len(a) == 20
    for k in a:
        assert a[k]["pred"] == f[k]["pred"]
        np.testing.assert_allclose(list(a[k]["probs"].values()), list(f[k]["probs"].values()), atol=1e-6)
    assert auto["mean"]["accuracy"] == fixed["mean"]["accuracy"]


def test_cli_batch_size_flag(capsys) -> None:
    from qtalign.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["eval", "--task", "emotion", "--data", "x", "--out", "y", "--batch-size", "zero"])
    assert e.value.code == 2
    assert "--batch-size" in capsys.readouterr().err

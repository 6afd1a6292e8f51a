"""The training stage's entry: run(settings) tunes a LoRA adapter into OUT, resuming an interrupted run."""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from qtalign.errors import QtalignError
from qtalign.runs.train import (
    ADAPTER,
    ADAPTER_RECORD,
    CHECKPOINT,
    TRAIN_LOG,
    TRAIN_OUTPUTS,
    TRAIN_RECORD,
    TRAIN_SUMMARY,
    VAL_LOG,
    read_train_summary,
)
from qtalign.store import RunFolder, atomic_write_json, atomic_write_text, output_errors, read_jsonl_rows
from qtalign.train.checkpoint import existing_checkpoint, load_trainable_state
from qtalign.train.loop import Logs, TrainState, evaluate, resume_from_checkpoint, train_epochs
from qtalign.train.pairs import read_pairs, refuse_test_data
from qtalign.train.plots import plot_losses
from qtalign.train.prepare import start
from qtalign.train.record import describe_training_precision, train_record
from qtalign.train.settings import LATER_DEFAULTS, RESUME_IGNORES, TrainSettings

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a training run did: its folder, optimizer steps, validation losses, time, and how it ended."""

    out: Path
    steps: int
    best_val_loss: float | None
    first_val_loss: float | None
    seconds: float
    stopped_early: bool
    already_done: bool = False

    def summary(self) -> str:
        """The line `qtalign train` prints when the run ends."""
        if self.stopped_early:
            return (f"stopped after {self.steps} steps; rerun the same command to continue (checkpoint in "
                    f"{self.out}/checkpoint)")
        fmt = lambda v: "n/a" if v is None else f"{v:.4f}"
        when = "already finished" if self.already_done else f"{self.seconds:.0f} s"
        return (f"adapter -> {self.out / ADAPTER} ({self.steps} steps, {when}; validation loss "
                f"{fmt(self.first_val_loss)} -> best {fmt(self.best_val_loss)}); use --adapter {self.out}")


def run(s: TrainSettings, resume: bool = False, progress: bool = True, overwrite: bool = False) -> TrainResult:
    """Tune a LoRA adapter; writes OUT/adapter, OUT/train_log.jsonl, OUT/val_log.jsonl, OUT/loss.png.

    The resume rule of every command (store.open_run): a rerun with the same settings continues from OUT/checkpoint
    (or returns the finished result), other settings are refused, overwrite starts over. resume is accepted for
    compatibility and changes nothing.

    Launched in several processes (torchrun, accelerate launch), the batches of each optimizer step are shared
    round-robin between the processes and their gradients summed (passes.accumulate_step): the global batch stays
    batch_size x grad_accum whatever the process count, and the run follows the one-process run up to the order of
    float additions. The main process claims the folder and writes every file; a checkpoint resumes with any process
    count.
    """
    from qtalign.distributed import get_dist
    from qtalign.store import open_run

    del resume  # a rerun always resumes
    dist = get_dist(s.device)
    if not s.data or not s.out:
        raise QtalignError("training needs --data and --out")
    pairs, asked = dist.agree(lambda: _read_data(s))
    # the main process claims the folder (the others wait for its verdict), then every process must see it
    folder = dist.on_main(lambda: open_run(s.out, TRAIN_RECORD, {**s.model_dump(), **asked}, outputs=TRAIN_OUTPUTS,
                                           overwrite=overwrite, ignore=RESUME_IGNORES | {"template"},
                                           names={"template_requested": "--template"}, defaults=LATER_DEFAULTS))
    out = folder.path
    dist.check_shared(out)
    ckpt_dir = out / CHECKPOINT
    existing, finished = dist.on_main(lambda: _resume_point(folder, ckpt_dir))
    if finished:
        return _finished(out)
    random.seed(s.seed)
    torch.manual_seed(s.seed)
    st = start(s, dist, pairs)
    if existing is not None:
        resume_from_checkpoint(st, existing)
    if dist.rank:  # the checkpoint holds the main process's random state; the others draw their own (dropout)
        torch.manual_seed(st.s.seed + 1_000_003 * dist.rank + st.step)
    dist.on_main(lambda: _commit(folder, {**st.s.model_dump(), **asked}, st.step if existing is not None else None))
    logs = Logs.open(out, dist.is_main)
    if st.step == 0:
        evaluate(st, 0, logs.val, progress)
    t0 = time.time()
    stopped = train_epochs(st, ckpt_dir, logs, progress)
    logs.close()
    if stopped:
        dist.barrier()  # the main process has written the checkpoint
        log.info("stopped after %d steps (stop_after); rerun the same command to continue", st.step)
        return TrainResult(out, st.step, st.best_val, st.first_val, time.time() - t0, True)
    if st.best is not None and st.s.keep == "best":
        load_trainable_state(st.model, st.best)
    dist.on_main(lambda: _finish(st, out, pairs, t0))
    return TrainResult(out, st.step, st.best_val, st.first_val, time.time() - t0, False)


def _read_data(s: TrainSettings) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """The training pairs (test data refused unless allowed) and what the run record adds about them."""
    from qtalign.store import sha256_file

    pairs = read_pairs(s.data, s.max_pairs)
    if not s.allow_test_data:
        refuse_test_data(s.data, pairs)
    # the record holds the template as resolved for the model (written after loading) and as asked (compared)
    return pairs, {"template_requested": s.template, "data_sha256": sha256_file(s.data)}


def _resume_point(folder: RunFolder, ckpt_dir: Path) -> tuple[Path | None, bool]:
    """Main process: (the checkpoint to continue or None, whether the run in the folder has finished already)."""
    existing = existing_checkpoint(ckpt_dir)
    return existing, existing is None and folder.resumed and (folder.path / ADAPTER / "adapter_config.json").is_file()


def _commit(folder: RunFolder, record: dict[str, Any], resumed_at: int | None) -> None:
    """Main process, once setup succeeded: the run record, and the logs cut back to the checkpoint's step (emptied
    for a fresh start); rows a killed run wrote after its last checkpoint are dropped."""
    folder.commit(record)
    for name in (TRAIN_LOG, VAL_LOG):
        path = folder.path / name
        rows = [r for r in read_jsonl_rows(path) if r["step"] <= resumed_at] if resumed_at is not None else []
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def _finish(st: TrainState, out: Path, pairs: list[tuple[str, str]], t0: float) -> None:
    """Main process: OUT/adapter (weights, tokenizer, qtalign_train.json) swapped in, loss.png, the checkpoints
    removed, train_summary.json."""
    from qtalign.models import quiet_transformers

    s, ckpt_dir, tmp = st.s, out / CHECKPOINT, out / f"{ADAPTER}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    with output_errors(tmp), quiet_transformers():
        st.model.save_pretrained(str(tmp), safe_serialization=True)
        st.tok.save_pretrained(str(tmp))
    atomic_write_json(tmp / ADAPTER_RECORD, train_record(s, st.template, st.tok, pairs,
                                                               describe_training_precision(s, st.dev)))
    if (out / ADAPTER).exists():
        shutil.rmtree(out / ADAPTER)
    os.replace(tmp, out / ADAPTER)
    plot_losses(out)
    for d in (ckpt_dir, ckpt_dir.with_name("checkpoint.old")):
        shutil.rmtree(d, ignore_errors=True)
    atomic_write_json(out / TRAIN_SUMMARY, {"steps": st.step, "best_val_loss": st.best_val,
                                                   "first_val_loss": st.first_val, "train_pairs": len(st.train_idx),
                                                   "val_pairs": len(st.val_idx), "seconds": time.time() - t0,
                                                   "micro_batch": st.sizer.size, "processes": st.dist.world})


def _finished(out: Path) -> TrainResult:
    """The result of a finished run in out (a rerun with the same settings has nothing left to do)."""
    summary = read_train_summary(out)
    log.info("%s: training already finished with these settings (add --overwrite to train again)", out)
    return TrainResult(out, int(summary.get("steps", 0)), summary.get("best_val_loss"), summary.get("first_val_loss"),
                       0.0, False, already_done=True)

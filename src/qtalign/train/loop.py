"""The training loop: optimizer steps over length-grouped batches, validation, checkpoints and per-step logs."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from qtalign.batchsize import BatchSizer
from qtalign.distributed import Dist
from qtalign.errors import QtalignError
from qtalign.store import JsonlWriter
from qtalign.templates import Template
from qtalign.train.checkpoint import load_checkpoint, save_checkpoint, trainable_state
from qtalign.train.encode import Example, length_grouped_batches
from qtalign.train.passes import accumulate_step, validation_loss
from qtalign.train.settings import TrainSettings, settings_key, with_later_defaults

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    """A training run's working state: settings, model, data, optimizer, and how far the run has got."""

    s: TrainSettings  # with the template resolved for the model
    model: Any  # the PEFT (LoRA-wrapped) model
    tok: Any
    template: Template
    dev: torch.device
    dist: Dist
    sizer: BatchSizer  # pairs per forward/backward pass
    examples: list[Example]
    lengths: list[int]  # tokens per example
    pad_id: int
    train_idx: list[int]
    val_idx: list[int]
    val_batches: list[list[int]]
    per_epoch: int  # optimizer steps per epoch
    total: int  # optimizer steps of the whole run
    params: list[torch.nn.Parameter]  # the trainable (LoRA) weights
    optimizer: Any
    scheduler: Any
    step: int = 0  # optimizer steps done
    best_val: float | None = None
    first_val: float | None = None
    best: dict[str, torch.Tensor] | None = None  # the weights with the lowest validation loss so far


class NoLog:
    """Stands in for a log writer on the processes that do not write logs (all but the main one)."""

    def write(self, row: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class Logs:
    """OUT/train_log.jsonl (a row per optimizer step) and OUT/val_log.jsonl (a row per validation)."""

    train: JsonlWriter | NoLog
    val: JsonlWriter | NoLog

    @classmethod
    def open(cls, out: Path, main: bool) -> Logs:
        if not main:
            return cls(NoLog(), NoLog())
        return cls(JsonlWriter(out / "train_log.jsonl"), JsonlWriter(out / "val_log.jsonl"))

    def close(self) -> None:
        self.train.close()
        self.val.close()


def resume_from_checkpoint(st: TrainState, folder: Path) -> None:
    """Continue from the checkpoint in folder (made with the same settings, else a QtalignError)."""

    def resume_from() -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
        meta, best = load_checkpoint(folder, st.model, st.optimizer, st.scheduler)
        if with_later_defaults(meta["settings_key"]) != settings_key(st.s):
            raise QtalignError(f"{folder}: checkpoint was made with other settings; rerun with the same flags to "
                               "resume or add --overwrite to start over")
        return meta, best

    meta, st.best = st.dist.agree(resume_from)
    st.step, st.best_val, st.first_val = meta["step"], meta["best_val"], meta["first_val"]
    log.info("resuming from optimizer step %d of %d", st.step, st.total)


def compute_precision(s: TrainSettings, dev: torch.device) -> contextlib.AbstractContextManager[Any]:
    """torch.autocast in s.autocast's dtype for the forward passes (their backward follows), else nothing."""
    if s.autocast is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=dev.type, dtype=getattr(torch, s.autocast))


def evaluate(st: TrainState, at: int, val_log: JsonlWriter | NoLog, progress: bool) -> None:
    """Validation loss at optimizer step `at`: logged, and the weights kept when it is the lowest so far."""
    if not st.val_batches:
        return
    with compute_precision(st.s, st.dev):
        v = validation_loss(st.model, st.examples, st.val_batches, st.pad_id, st.dev, st.sizer.size,
                            progress and st.dist.is_main, st.dist)
    val_log.write({"step": at, "epoch": round(at / st.per_epoch, 4), "val_loss": v})
    st.first_val = v if st.first_val is None else st.first_val
    if st.best_val is None or v < st.best_val:
        st.best_val, st.best = v, trainable_state(st.model)
    log.info("step %d: validation loss %.4f (best %.4f)", at, v, st.best_val)


def optimizer_step(st: TrainState, group: list[list[int]], train_log: JsonlWriter | NoLog) -> float:
    """One optimizer step over a group of grad_accum batches, logged; returns its loss per output token."""
    t_start = time.time()
    with compute_precision(st.s, st.dev):
        loss_sum, n_tok, seen = accumulate_step(st.model, st.examples, group, st.pad_id, st.dev, st.sizer, st.dist)
    if st.s.max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(st.params, st.s.max_grad_norm)
    lr = st.scheduler.get_last_lr()[0]
    st.optimizer.step()
    st.scheduler.step()
    st.optimizer.zero_grad(set_to_none=True)
    st.step += 1
    dt = time.time() - t_start
    train_log.write({"step": st.step, "epoch": round(st.step / st.per_epoch, 4), "loss": loss_sum / n_tok, "lr": lr,
                     "tokens_per_s": seen / dt if dt > 0 else None, "seconds": dt})
    return loss_sum / n_tok


def save(st: TrainState, folder: Path, epoch: int, batches: list[list[int]]) -> None:
    """A resumable checkpoint of the run so far, with the epoch's batch order."""
    save_checkpoint(folder, st.model, st.optimizer, st.scheduler,
                    {"step": st.step, "total": st.total, "best_val": st.best_val, "first_val": st.first_val,
                     "settings_key": settings_key(st.s),
                     "data_order": {"epoch": epoch, "seed": st.s.seed + epoch, "batches": batches}},
                    st.best)


def train_epoch(st: TrainState, ckpt_dir: Path, logs: Logs, bar: Any, progress: bool) -> bool:
    """The optimizer steps left in the current epoch (validating and saving on schedule); True when --stop-after
    stopped the run (its checkpoint saved), False when the epoch or the run is done."""
    s = st.s
    epoch = st.step // st.per_epoch
    batches = length_grouped_batches(st.lengths, st.train_idx, s.batch_size, s.seed + epoch)
    groups = [batches[k : k + s.grad_accum] for k in range(0, len(batches), s.grad_accum)]
    eval_every = s.eval_every or st.per_epoch
    for group in groups[st.step - epoch * st.per_epoch :]:
        loss = optimizer_step(st, group, logs.train)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")
        if st.step % eval_every == 0 or st.step == st.total:
            evaluate(st, st.step, logs.val, progress)
        stop_now = s.stop_after is not None and st.step >= s.stop_after and st.step < st.total
        if (st.step % s.save_every == 0 or stop_now) and st.dist.is_main:
            save(st, ckpt_dir, epoch, batches)
        if stop_now:
            return True
        if st.step >= st.total:
            break
    return False


def train_epochs(st: TrainState, ckpt_dir: Path, logs: Logs, progress: bool) -> bool:
    """Optimizer steps until the run's total; True when --stop-after stopped it early (checkpoint saved)."""
    from tqdm import tqdm

    bar = tqdm(total=st.total, initial=st.step, desc="train", unit="step", disable=not progress or not st.dist.is_main)
    stopped = False
    while st.step < st.total and not stopped:
        stopped = train_epoch(st, ckpt_dir, logs, bar, progress)
    bar.close()
    return stopped

"""Test-only: interrupt a training run right after it saves the checkpoint of a given optimizer step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def stopping_save(save: Callable[..., None], step: int) -> Callable[..., None]:
    """qtalign.train.loop.save, followed by a KeyboardInterrupt (what Ctrl-C raises) once the checkpoint of optimizer
    step `step` or a later one is saved: the run stops as if interrupted there (give a --save-every that divides
    step). Only the main process of a multi-process run saves, so it alone stops; the launcher ends the others."""

    def save_then_stop(st: Any, folder: Any, epoch: int, batches: Any) -> None:
        save(st, folder, epoch, batches)
        if st.step >= step:
            raise KeyboardInterrupt

    return save_then_stop

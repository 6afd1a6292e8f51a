"""Test-only start-up hook of the processes tests launch: slower eval scoring, training stopped at a step."""

from __future__ import annotations

import os
import sys
import time

# tests/conftest.py puts this folder on PYTHONPATH, so every Python process a test starts (qtalign, torchrun and its
# workers) imports this module at start-up. With QTALIGN_SLOW_TEST set, eval sleeps after writing each batch of
# predictions, which lets the resume tests kill a run part-way even with a tiny model.
_SLOW = float(os.environ.get("QTALIGN_SLOW_TEST", "0") or 0)

if _SLOW:
    from qtalign.store import JsonlWriter

    _write_many = JsonlWriter.write_many

    def _slow_write_many(self: JsonlWriter, rows: object) -> None:
        _write_many(self, rows)  # type: ignore[arg-type]
        if sys._getframe(1).f_code.co_name == "score_language":  # eval's batches only (qtalign.eval.loop)
            time.sleep(_SLOW)

    JsonlWriter.write_many = _slow_write_many  # type: ignore[method-assign]

# With QTALIGN_TEST_STOP_AFTER=N, training stops as if interrupted (Ctrl-C) once it has saved the checkpoint of optimizer
# step N (interrupt.stopping_save), which lets the resume tests continue a run from a known step.
_STOP_AFTER = int(os.environ.get("QTALIGN_TEST_STOP_AFTER", "0") or 0)

if _STOP_AFTER:
    from interrupt import stopping_save

    from qtalign.train import loop

    loop.save = stopping_save(loop.save, _STOP_AFTER)  # type: ignore[method-assign]

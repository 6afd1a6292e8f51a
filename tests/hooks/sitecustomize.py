"""Test-only start-up hook of the processes tests launch: slower eval scoring, training stopped, steps failed."""

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

# QTALIGN_FAIL_STEP=TEXT: a study step whose id contains TEXT fails at once with a QtalignError (the study runner's
# failure handling, in whatever process runs the step)
_FAIL = os.environ.get("QTALIGN_FAIL_STEP")

if _FAIL:
    from qtalign.errors import QtalignError
    from qtalign.study import steps as _steps

    def _failing(run):  # type: ignore[no-untyped-def]
        def step(s, ctx):  # type: ignore[no-untyped-def]
            if _FAIL in s.id:
                raise QtalignError(f"injected failure in {s.id}")
            return run(s, ctx)

        return step

    for _kind, _run in list(_steps.EXECUTORS.items()):
        _steps.EXECUTORS[_kind] = _failing(_run)

"""Batch sizes: `auto` finds the largest batch that fits by halving on CUDA out-of-memory, remembered per model and task."""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import torch
from pydantic import Field

from qtalign.errors import QtalignError

log = logging.getLogger(__name__)

AUTO = "auto"
BatchSize = Annotated[int, Field(ge=1)] | Literal["auto"]  # settings type of every batch-size field
CPU_DEFAULT = 8  # what auto means on CPU, where an allocation failure cannot be caught safely
AUTO_START = 256  # first size tried on CUDA when nothing is remembered (the first, longest batch finds the limit)
MEMORY_FILE = "batch_sizes.json"
T = TypeVar("T")


def parse_batch_size(value: str | int, flag: str = "--batch-size") -> BatchSize:
    """A positive integer or `auto` (argparse type and config value)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    text = str(value).strip().lower()
    if text == AUTO:
        return AUTO
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise QtalignError(f"{flag} {value}: give a positive integer or auto")


def is_oom(error: BaseException) -> bool:
    """True for a device out-of-memory error (torch's OutOfMemoryError, or a RuntimeError saying so, e.g. cuBLAS)."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def free_device_memory() -> None:
    """Return cached blocks to the device after an out-of-memory error, so a smaller retry can use them."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def memory_path() -> Path:
    from qtalign.models import cache_root

    return cache_root() / MEMORY_FILE


def device_name(device: torch.device) -> str:
    """The accelerator's name and memory (the remembered size is only valid on the same kind of card)."""
    if device.type != "cuda":
        return device.type
    props = torch.cuda.get_device_properties(device)
    return f"{props.name} {props.total_memory / 2**30:.0f}GiB"


def memory_key(kind: str, model: str, task: str, device: torch.device, dtype: torch.dtype | str,
               quantization: dict[str, Any] | None = None) -> str:
    """What a remembered batch size is valid for: command, model, task, dtype, 4-bit or not, and the card."""
    dt = str(dtype).removeprefix("torch.")
    quant = "-nf4" if quantization and quantization.get("load_in_4bit") else ""
    return f"{kind}|{model}|{task}|{dt}{quant}|{device_name(device)}"


def _read_memory(path: Path) -> dict[str, int]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, int) and v >= 1} if isinstance(data, dict) else {}


class BatchSizer:
    """The batch size a loop uses now. Adaptive sizers halve it on out-of-memory and remember the size that ran."""

    def __init__(self, size: int, adaptive: bool = False, key: str | None = None, memory: Path | None = None) -> None:
        if size < 1:
            raise ValueError(f"batch size {size} < 1")
        self.size = size
        self.adaptive = adaptive
        self.key = key
        self.memory = memory
        self.remembered = _read_memory(memory).get(key) if (memory is not None and key is not None) else None
        self.shrinks = 0

    def __repr__(self) -> str:
        return f"BatchSizer(size={self.size}, adaptive={self.adaptive}, key={self.key!r})"

    def shrink(self, error: str) -> None:
        """After an out-of-memory error at the current size: halve it, or say what to do when it cannot."""
        if not self.adaptive:
            raise QtalignError(f"--batch-size {self.size}: out of device memory ({error}); give a smaller "
                               "--batch-size or --batch-size auto")
        if self.size == 1:
            raise QtalignError(f"out of device memory at batch size 1 ({error}); the model does not fit: try "
                               "--load-in-4bit, a shorter --max-len, or a larger device")
        self.size //= 2
        self.shrinks += 1
        log.warning("out of device memory: batch size halved to %d", self.size)

    def ran(self) -> None:
        """A batch ran at the current size: remember it for this key if it differs from what was remembered."""
        if not self.adaptive or self.memory is None or self.key is None or self.remembered == self.size:
            return
        from qtalign.store import atomic_write_json

        data = _read_memory(self.memory)
        data[self.key] = self.size
        self.memory.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.memory, dict(sorted(data.items())))
        self.remembered = self.size


def batch_sizer(requested: BatchSize | BatchSizer, device: torch.device, key: str | None = None,
                memory: Path | None = None, start: int = AUTO_START) -> BatchSizer:
    """A fixed size as given; `auto`: on CUDA the remembered size for key (else start), halved on out-of-memory;
    on CPU the default 8."""
    if isinstance(requested, BatchSizer):
        return requested
    if requested != AUTO:
        return BatchSizer(int(requested))
    if device.type != "cuda":
        return BatchSizer(CPU_DEFAULT)
    memory = memory if memory is not None else memory_path()
    sizer = BatchSizer(start, adaptive=True, key=key, memory=memory)
    if sizer.remembered is not None:
        sizer.size = sizer.remembered
        log.info("batch size %d (remembered for %s in %s)", sizer.size, key, memory)
    return sizer


def run_split(sizer: BatchSizer, batch: Sequence[int], fn: Callable[[list[int]], T]) -> Iterator[tuple[list[int], T]]:
    """fn over one batch in consecutive pieces of at most sizer.size items; yields (piece, fn(piece)).

    The batches themselves stay what the caller made them (from the full item list, so resumed and multi-process runs
    agree on them); only their pieces shrink. An out-of-memory error inside fn halves the size (adaptive sizers) and
    retries the same items, so every item is processed exactly once and in order; with a fixed sizer it is one
    QtalignError line. While the size is at least the batch's, the whole batch is one piece.
    """
    pos = 0
    while pos < len(batch):
        piece = list(batch[pos : pos + sizer.size])
        failed: str | None = None
        try:
            result = fn(piece)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as e:
            if not is_oom(e):
                raise
            failed = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        if failed is not None:  # outside the except block, so the failed piece's tensors can be freed
            free_device_memory()
            sizer.shrink(failed)
            continue
        sizer.ran()
        yield piece, result
        pos += len(piece)

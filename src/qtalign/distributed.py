"""Data-parallel runs under torchrun or accelerate launch: rank and world size, collectives, errors agreed by all ranks."""

from __future__ import annotations

import datetime
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from qtalign.errors import QtalignError

log = logging.getLogger(__name__)
T = TypeVar("T")

# launchers' environment: torchrun / accelerate launch set WORLD_SIZE and RANK; MPI sets its own names
WORLD_ENV: tuple[str, ...] = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
RANK_ENV: tuple[str, ...] = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
# the subcommands that run data-parallel; any other one launched in several processes is refused
DISTRIBUTED_COMMANDS: frozenset[str] = frozenset({"eval", "lens", "pca", "train", "step"})
TIMEOUT_ENV = "QTALIGN_DIST_TIMEOUT"  # minutes a process waits for the others at a barrier (default 120)


class ReportedElsewhere(QtalignError):
    """An error that the main process reports: the other processes exit with status 2 without printing it again."""


def _env_int(names: tuple[str, ...], default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            try:
                return int(value)  # type: ignore[arg-type]
            except ValueError:
                raise QtalignError(f"environment variable {name}={value!r} is not an integer") from None
    return default


def launched_world() -> int:
    """How many processes the launcher started (1 when run without torchrun / accelerate launch / mpirun)."""
    return _env_int(WORLD_ENV, 1)


def launched_rank() -> int:
    """This process's rank as the launcher set it (0 when not launched in several processes)."""
    return _env_int(RANK_ENV, 0) if launched_world() > 1 else 0


class Shard:
    """Round-robin assignment of units of work (scoring batches, training micro-batches) to the processes.

    Every process calls mine() once per unit, for the same units in the same order; the count runs across calls,
    so the units of several languages are spread evenly. With one process every unit is its own.
    """

    def __init__(self, rank: int = 0, world: int = 1) -> None:
        self.rank, self.world, self.count = rank, world, 0

    def mine(self) -> bool:
        k = self.count
        self.count += 1
        return k % self.world == self.rank


@dataclass
class Dist:
    """This process's place in a (possibly one-process) run, and the collectives the commands use.

    Python objects travel over a gloo group (works for CPU and GPU runs alike); tensors over the default group
    (nccl on GPU, gloo on CPU).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None
    cpu: bool = True
    _objects: Any = None  # process group for Python objects (None = the default group)

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self) -> Shard:
        return Shard(self.rank, self.world)

    def local_device(self, device: str) -> str:
        """The device of this process: auto / cuda become cuda:LOCAL_RANK in a multi-process GPU run."""
        if self.enabled and not self.cpu and device in ("auto", "cuda"):
            return f"cuda:{self.local_rank}"
        return device

    # ---- collectives (no-ops with one process) -------------------------------------------------------------
    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as td

            td.barrier(group=self._objects)

    def gather(self, obj: Any) -> list[Any]:
        """Every process's obj, in rank order, on every process."""
        if not self.enabled:
            return [obj]
        import torch.distributed as td

        out: list[Any] = [None] * self.world
        td.all_gather_object(out, obj, group=self._objects)
        return out

    def broadcast(self, obj: Any) -> Any:
        """The main process's obj, on every process."""
        if not self.enabled:
            return obj
        import torch.distributed as td

        box = [obj if self.is_main else None]
        td.broadcast_object_list(box, src=0, group=self._objects)
        return box[0]

    def all_reduce_sum(self, tensor: Any) -> Any:
        """Sum a tensor over the processes, in place (on the default group's device); returns it."""
        if self.enabled:
            import torch.distributed as td

            td.all_reduce(tensor, op=td.ReduceOp.SUM)
        return tensor

    def broadcast_tensors(self, tensors: list[Any]) -> None:
        """Overwrite each tensor with the main process's values (in place)."""
        if self.enabled:
            import torch.distributed as td

            for t in tensors:
                td.broadcast(t, src=0)

    def agree(self, fn: Callable[[], T]) -> T:
        """Run fn on every process; if it raised a QtalignError on any, raise it on all: the main process raises the
        first (naming the process when it was another), the others raise ReportedElsewhere. A barrier too."""
        if not self.enabled:
            return fn()
        err: str | None = None
        result: Any = None
        try:
            result = fn()
        except ReportedElsewhere:
            err = ""
        except QtalignError as e:
            err = str(e)
        errors = self.gather(err)
        failed = [(r, e) for r, e in enumerate(errors) if e is not None]
        if failed:
            shown = [(r, e) for r, e in failed if e] or failed
            r, msg = shown[0]
            msg = msg if r == 0 else f"process {r} of {self.world}: {msg}"
            raise QtalignError(msg) if self.is_main else ReportedElsewhere(msg)
        return result

    def local_main_first(self, fn: Callable[[], T]) -> T:
        """Run fn on each node's first process, then on the node's others: what fn caches on the node's disk (a
        converted GGUF, a hub download) is then filled once, not by every process at once. Errors agreed."""
        first = self.local_rank == 0
        if not self.enabled:
            return fn()
        head = self.agree(lambda: fn() if first else None)
        rest = self.agree(lambda: None if first else fn())
        return head if first else rest

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run fn on the main process only (the others wait); its result, or its QtalignError, on every process."""
        return self.broadcast(self.agree(lambda: fn() if self.is_main else None))

    def check_shared(self, folder: Path, flag: str = "--out") -> None:
        """Every process must see the main process's files in folder (a filesystem shared by all nodes)."""
        if not self.enabled:
            return
        name = self.on_main(lambda: _touch(folder))
        try:
            self.agree(lambda: _expect(folder / name, flag))
        finally:
            if self.is_main:
                (folder / name).unlink(missing_ok=True)


def _touch(folder: Path) -> str:
    name = f".qtalign-shared-{secrets.token_hex(6)}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"")
    return name


def _expect(path: Path, flag: str) -> None:
    if not path.exists():
        raise QtalignError(f"{flag} {path.parent}: this process cannot see the main process's files there; a "
                           "multi-node run needs its output folder on a filesystem shared by all nodes")


_DIST: Dist | None = None


def get_dist(device: str = "auto") -> Dist:
    """This process's Dist; the first call in a multi-process launch joins the process group (gloo when device is cpu
    or no GPU is present, else nccl), through accelerate's PartialState (which also reads MPI launchers' variables)."""
    global _DIST
    if _DIST is not None:
        return _DIST
    world = launched_world()
    if world <= 1:
        if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") and os.environ.get("MASTER_ADDR"):
            log.warning("warning: accelerate launch --cpu started one process (it starts several CPU processes only "
                        "through MPI); for N CPU processes use torchrun --nproc-per-node N -m qtalign ...")
        _DIST = Dist()
        return _DIST
    sharded = [name for name, var in (("DeepSpeed", "ACCELERATE_USE_DEEPSPEED"), ("FSDP", "ACCELERATE_USE_FSDP"))
               if os.environ.get(var, "").lower() == "true"]
    if sharded:
        error = ReportedElsewhere if launched_rank() else QtalignError
        raise error(f"accelerate launch with a {sharded[0]} config: qtalign runs data-parallel with a whole model per "
                    "process and does not use DeepSpeed or FSDP; launch without that config (see docs/distributed.md)")
    import torch
    import torch.distributed as td
    from accelerate import PartialState

    cpu = device == "cpu" or not torch.cuda.is_available()
    timeout = datetime.timedelta(minutes=float(os.environ.get(TIMEOUT_ENV, "120") or 120))
    state = PartialState(cpu=cpu, timeout=timeout)
    if not td.is_initialized() or state.num_processes != world:
        raise QtalignError(f"launched as {world} processes but the process group did not start "
                           f"(accelerate reports {state.distributed_type}); check the launcher's environment")
    local = int(state.local_process_index)
    if not cpu:
        torch.cuda.set_device(local)
    backend = td.get_backend()
    objects = None if backend == "gloo" else td.new_group(backend="gloo", timeout=timeout)
    _DIST = Dist(int(state.process_index), int(state.num_processes), local, backend, cpu, objects)
    return _DIST


def shutdown(finished: bool = False) -> None:
    """Leave the process group at the end of a command: a process that exits while in it can abort ("terminate called
    without an active exception") as the group's threads are torn down. When the command finished in every process
    (finished), a last barrier first makes sure no process tears its connections down while another still talks."""
    global _DIST
    if _DIST is not None and _DIST.enabled:
        import torch.distributed as td

        if td.is_initialized():
            if finished:
                try:
                    td.barrier()
                except Exception as e:  # noqa: BLE001 -- another process already left (it failed): nothing to wait for
                    log.debug("last barrier: %s", e)
            td.destroy_process_group()
    _DIST = None

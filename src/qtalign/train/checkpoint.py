"""Resumable checkpoints: LoRA weights, optimizer, scheduler and random state, swapped in atomically."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from qtalign.runs.train import CHECKPOINT_STATE, read_checkpoint_state
from qtalign.store import OutputError, output_errors


def trainable_state(peft_model: Any) -> dict[str, torch.Tensor]:
    """A copy of the trainable (LoRA) weights by parameter name."""
    return {n: p.detach().clone() for n, p in peft_model.named_parameters() if p.requires_grad}


def load_trainable_state(peft_model: Any, state: dict[str, torch.Tensor]) -> None:
    """Copy saved trainable weights (trainable_state) back into the model."""
    params = dict(peft_model.named_parameters())
    with torch.no_grad():
        for n, t in state.items():
            params[n].copy_(t)


def _save_dir_atomic(target: Path, write: Any) -> None:
    """Write a folder via a temporary sibling and swap it in; a kill leaves the old or the new one, and so does a failed
    write (an OutputError naming the folder: no space, no permission)."""
    tmp = target.with_name(target.name + ".tmp")
    old = target.with_name(target.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with output_errors(tmp):
            tmp.mkdir(parents=True)
            write(tmp)
    except OutputError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def existing_checkpoint(target: Path) -> Path | None:
    """The checkpoint folder to resume from: target, or target.old left by a kill during a swap; None if neither."""
    if (target / CHECKPOINT_STATE).is_file():
        return target
    old = target.with_name(target.name + ".old")
    return old if (old / CHECKPOINT_STATE).is_file() else None


def save_checkpoint(folder: Path, peft_model: Any, optimizer: Any, scheduler: Any, state: dict[str, Any],
                    best: dict[str, torch.Tensor] | None) -> None:
    """folder/: adapter.safetensors, best.safetensors (the best weights so far), optimizer.safetensors (AdamW state,
    torch's random state), state.json (state, param groups, scheduler, Python's random state)."""
    from safetensors.torch import save_file

    def write(tmp: Path) -> None:
        save_file({k: v.contiguous() for k, v in trainable_state(peft_model).items()}, str(tmp / "adapter.safetensors"))
        if best is not None:
            save_file({k: v.contiguous() for k, v in best.items()}, str(tmp / "best.safetensors"))
        opt = optimizer.state_dict()
        tensors: dict[str, torch.Tensor] = {}
        for pid, st in opt["state"].items():
            for k, v in st.items():
                tensors[f"{pid}.{k}"] = v.detach().reshape(-1).clone() if v.dim() == 0 else v.detach().contiguous()
        tensors["rng.torch"] = torch.get_rng_state()
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        meta = {**state, "param_groups": opt["param_groups"], "scheduler": scheduler.state_dict(),
                "python_rng": _py_rng_to_json(random.getstate())}
        (tmp / CHECKPOINT_STATE).write_text(json.dumps(meta) + "\n", encoding="utf-8")

    _save_dir_atomic(folder, write)


def load_checkpoint(folder: Path, peft_model: Any, optimizer: Any, scheduler: Any
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """Restore what save_checkpoint wrote into the model, optimizer, scheduler and random generators; returns
    (the saved state, the best weights or None)."""
    from safetensors.torch import load_file

    meta = read_checkpoint_state(folder)
    load_trainable_state(peft_model, load_file(str(folder / "adapter.safetensors")))
    tensors = load_file(str(folder / "optimizer.safetensors"))
    torch.set_rng_state(tensors.pop("rng.torch"))
    shapes = {i: p.shape for i, p in enumerate(p for g in optimizer.param_groups for p in g["params"])}
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        pid, name = key.split(".", 1)
        opt_state.setdefault(int(pid), {})[name] = v.reshape(()) if name == "step" else v.reshape(shapes[int(pid)])
    optimizer.load_state_dict({"state": opt_state, "param_groups": meta.pop("param_groups")})
    scheduler.load_state_dict(meta.pop("scheduler"))
    random.setstate(_py_rng_from_json(meta.pop("python_rng")))
    best_path = folder / "best.safetensors"
    best = load_file(str(best_path)) if best_path.is_file() else None
    return meta, best


def _py_rng_to_json(state: tuple[Any, ...]) -> list[Any]:
    return [state[0], list(state[1]), state[2]]


def _py_rng_from_json(data: list[Any]) -> tuple[Any, ...]:
    return (data[0], tuple(data[1]), data[2])

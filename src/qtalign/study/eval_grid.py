"""The evaluation grid of a study: the EvalSettings fields of each evaluation, protocol presets included."""

from __future__ import annotations

from typing import Any

from qtalign.protocol import DEFAULTS
from qtalign.study.schema import ModelSpec, StudyConfig


def eval_fields(cfg: StudyConfig, task: str, model: ModelSpec, adapter: str | None, labels: str,
                demo_seed: int) -> dict[str, Any]:
    """The EvalSettings fields of one evaluation of the grid."""
    t = cfg.eval.tasks[task]
    fields: dict[str, Any] = {
        "task": task, "data": t.data, "model": model.id, "adapter": adapter, "langs": list(cfg.task_langs(task)),
        "shots": t.shots if t.shots is not None else cfg.eval.shots, "labels": labels, "scoring": cfg.eval.scoring,
        "seed": demo_seed, "demos": t.demos, "limit": t.limit or cfg.eval.limit, "batch_size": cfg.eval.batch_size,
        **({"items": t.items} if t.items is not None else {}),
        "device": cfg.device, "dtype": model.dtype, "load_in_4bit": model.load_in_4bit,
        "trust_remote_code": model.trust_remote_code, "n_boot": cfg.eval.n_boot, **cfg.eval.extra,
    }
    if cfg.eval.protocol is not None:
        fields["protocol"] = cfg.eval.protocol
        fields.update(protocol_preset(cfg, fields))
    fields["calibrate"] = list(cfg.eval.calibration)
    return fields


def protocol_preset(cfg: StudyConfig, fields: dict[str, Any]) -> dict[str, Any]:
    """The options an evaluation protocol presets (e.g. the paper's fixed demonstrations), except those the config
    sets itself (eval.scoring, or a key of eval.extra), resolved as EvalSettings resolves them (options.given_or_preset;
    a key not preset: its default), so that the step's parameters name them."""
    from qtalign.eval import EvalSettings  # here: it imports torch
    from qtalign.options import given_or_preset

    explicit = set(cfg.eval.extra) | ({"scoring"} & cfg.eval.model_fields_set)
    keys = [k for k in DEFAULTS if k in EvalSettings.model_fields and k not in ("langs", "labels")]
    given = {k: fields[k] for k in keys if k in explicit}
    resolved = given_or_preset(EvalSettings, {**given, "protocol": cfg.eval.protocol}, "eval")
    return {k: resolved[k] if k in resolved else EvalSettings.model_fields[k].default for k in keys}

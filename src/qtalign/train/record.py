"""The template resolved for the model being trained, and the adapter's record of how it was trained."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from qtalign.errors import QtalignError
from qtalign.runs.build import read_dataset_info
from qtalign.templates import DEFAULT_TEMPLATE, Template
from qtalign.train.settings import TrainSettings
from qtalign.trainable import train_dtype

log = logging.getLogger(__name__)


def describe_training_precision(s: TrainSettings, dev: torch.device) -> dict[str, Any]:
    """dtype and 4-bit settings of a training run, for the train record (qtalign_train.json)."""
    from qtalign.models import describe_four_bit, four_bit_config

    dt = train_dtype(s.weights_dtype, dev, s.load_in_4bit)
    out: dict[str, Any] = {"dtype": str(dt).removeprefix("torch."), "device": str(dev),
                           "gradient_checkpointing": s.gradient_checkpointing}
    if s.autocast is not None:  # only when set: records of float32 runs stay as they were
        out["autocast"] = s.autocast
    if s.load_in_4bit:  # "prepared" names the function as earlier records did (now qtalign.trainable's)
        out["quantization"] = {**describe_four_bit(four_bit_config(dt)), "method": "qlora",
                               "prepared": "qtalign.train.prepare_four_bit"}
    return out


def resolve_train_template(s: TrainSettings, model: Any, tok: Any) -> tuple[TrainSettings, Template]:
    """Settings with `auto` replaced by the template it picks for this model, and that template (checked)."""
    from qtalign.templates import resolve_template

    if s.chat_template and s.template != DEFAULT_TEMPLATE:
        raise QtalignError(f"--chat-template and --template {s.template} both set how pairs are rendered; give one")
    template = resolve_template(s.template, getattr(model.config, "model_type", None), tok, s.model)
    built_for = _data_template(s.data)
    if built_for is not None and built_for != template.name and not s.chat_template:
        log.warning("%s was built for template %r (dataset_info.json) but training uses %r", s.data, built_for,
                    template.name)
    return s.model_copy(update={"template": template.name}), template


def _data_template(data: str) -> str | None:
    """The template named for this pairs file in the dataset_info.json beside it (written by `qtalign data build`)."""
    try:
        entry = read_dataset_info(data).get(Path(data).stem, {})
    except OSError:
        return None
    return entry.get("template") if isinstance(entry, dict) else None


def train_record(s: TrainSettings, template: Template, tok: Any, pairs: list[tuple[str, str]],
                 precision: dict[str, Any] | None = None) -> dict[str, Any]:
    """OUT/adapter/qtalign_train.json: how the adapter was trained (template, protocol, what was kept)."""
    from qtalign.templates import describe, render

    example = None
    if pairs and not s.chat_template:
        prompt, answer = render(template, tok, pairs[0][0], pairs[0][1])
        example = {"prompt": prompt, "answer_with_end": answer}
    return {"template": "chat_template" if s.chat_template else template.name, "protocol": s.protocol,
            "keep": s.keep, "model": s.model, "data": s.data, "precision": precision,
            "template_info": describe(template, tok), "first_pair_rendered": example}

"""Training settings: the paper's LoRA recipe as typed fields, --protocol presets, the resume rule's key."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from qtalign.batchsize import BatchSize
from qtalign.errors import QtalignError
from qtalign.settings import Settings, load_config_file
from qtalign.templates import DEFAULT_TEMPLATE, TEMPLATE_CHOICES


class TrainSettings(Settings):
    """The paper's LoRA recipe (LLaMA-Factory defaults it used); every field can be set by file or flag."""

    model: str = "gemma-3-270m"
    data: str = ""
    out: str = ""
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])
    rank: int = Field(8, ge=1)
    alpha: float = 16.0
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    lr: float = Field(5e-5, gt=0)
    epochs: float = Field(3.0, gt=0)
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.1, ge=0, le=1)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(4, ge=1)
    val_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_len: int = Field(1024, ge=8)
    max_pairs: int | None = Field(None, ge=1)  # use only the first N pairs of the file
    max_steps: int | None = Field(None, ge=1)  # stop the schedule after N optimizer steps (the schedule is sized for it)
    stop_after: int | None = Field(None, ge=1)  # simulate an interruption after N optimizer steps (checkpoint saved)
    eval_every: int = Field(0, ge=0)  # optimizer steps between validations; 0 = at the end of every epoch
    save_every: int = Field(20, ge=1)  # optimizer steps between resumable checkpoints
    chat_template: bool = False
    seed: int = 42
    device: str = "auto"
    dtype: str | None = None
    load_in_4bit: bool = False  # QLoRA: the base in bitsandbytes NF4 (CUDA), LoRA and the head unquantized
    micro_batch: BatchSize | None = None  # pairs per forward/backward pass (None = batch_size; auto = largest that fits)
    gradient_checkpointing: bool = False  # recompute activations in the backward pass (less memory, ~30% slower)
    # mixed precision: the decoder's matmuls under torch.autocast in this dtype, the base weights, LoRA weights,
    # optimizer and the output head's loss in float32 (changes results slightly: an option, recorded; docs/performance.md)
    autocast: Literal["bfloat16"] | None = None
    trust_remote_code: bool = False
    template: str = DEFAULT_TEMPLATE  # how pairs are rendered: LLaMA-Factory's names (qtalign.templates) or auto
    protocol: Literal["qtalign", "paper"] = "qtalign"  # a named preset of other fields (PROTOCOLS); explicit ones win
    keep: Literal["best", "last"] = "best"  # the adapter written: lowest validation loss, or the last step
    allow_test_data: bool = False  # train on a file named like a test split or whose outputs are task answers

    @property
    def weights_dtype(self) -> str | None:
        """The dtype the base weights load in: float32 under autocast, else dtype (None: the device's default)."""
        return "float32" if self.autocast is not None else self.dtype

    @field_validator("autocast")
    @classmethod
    def _autocast_keeps_float32(cls, v: str | None, info: ValidationInfo) -> str | None:
        dtype, four_bit = info.data.get("dtype"), info.data.get("load_in_4bit")
        if v is not None and (dtype not in (None, "auto", "float32", "fp32") or four_bit):
            raise ValueError(f"autocast keeps the weights in float32: it cannot be combined with dtype {dtype} or "
                             "load_in_4bit")
        return v

    @field_validator("template")
    @classmethod
    def _known_template(cls, v: str) -> str:
        if v not in TEMPLATE_CHOICES:
            raise ValueError(f"unknown template {v!r} (choose from {', '.join(TEMPLATE_CHOICES)})")
        return v


# settings a rerun may change without changing the adapter it ends with (the resume rule ignores them)
RESUME_IGNORES = {"stop_after", "save_every", "device", "out", "allow_test_data", "trust_remote_code", "micro_batch",
                  "gradient_checkpointing"}

# --protocol presets: values used unless the config file or a flag sets the field. "paper" = the released recipe
# (LLaMA-Factory, README of Shimao-Zhang/LLM-Multilingual-Learner): the model family's template, cutoff_len 2048,
# eval_steps 50, and the last step's adapter (save_steps 150000 > total steps, so the HF Trainer never recorded a
# best checkpoint for load_best_model_at_end to restore).
PROTOCOLS: dict[str, dict[str, Any]] = {
    "qtalign": {},
    "paper": {"template": "auto", "max_len": 2048, "eval_every": 50, "keep": "last"},
}


def settings_key(s: TrainSettings) -> dict[str, Any]:
    """The settings that must match for a resume (stop_after / save_every / device / micro-batching may change)."""
    return s.model_dump(exclude={"stop_after", "save_every", "device", "out", "allow_test_data", "micro_batch",
                                 "gradient_checkpointing"})


# settings added after runs were recorded, at the value those runs used (a record without the key resumes)
LATER_DEFAULTS: dict[str, Any] = {"autocast": None}


def with_later_defaults(record: dict[str, Any]) -> dict[str, Any]:
    """A recorded settings dict (run record or checkpoint key) completed with LATER_DEFAULTS where it lacks them."""
    return {**LATER_DEFAULTS, **record}


def settings_from(config: str | None, overrides: dict[str, Any]) -> TrainSettings:
    """Settings from a YAML/JSON file (optional), then flags that were given (not None) on top."""
    data: dict[str, Any] = load_config_file(config) if config else {}
    flags = {k: v for k, v in overrides.items() if v is not None}
    data.update(flags)
    protocol = data.get("protocol", "qtalign")
    if protocol not in PROTOCOLS:
        raise QtalignError(f"--protocol {protocol}: unknown protocol (choose from {', '.join(PROTOCOLS)})")
    for key, value in PROTOCOLS[protocol].items():  # a preset never hides a setting given explicitly
        data.setdefault(key, value)
    return TrainSettings.parse(data, config or "command line", flags=set(flags))


def command_settings(config: str | None, overrides: dict[str, Any]) -> TrainSettings:
    """settings_from for `qtalign train`, which needs a pairs file and an output folder from a flag or the file."""
    settings = settings_from(config, overrides)
    if not settings.data or not settings.out:
        raise QtalignError("qtalign train needs --data and --out (or data/out in --config)")
    return settings

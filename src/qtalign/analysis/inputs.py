"""The model and data settings lens and PCA share with eval, resolved into prompts, a run record and a model."""

from __future__ import annotations

from typing import Any, Literal, Self, TypeVar

from qtalign.batchsize import BatchSize
from qtalign.data.readers import parse_langs
from qtalign.errors import QtalignError
from qtalign.models import DEFAULT_MODEL, resolve_adapter
from qtalign.settings import Settings


class AnalysisSettings(Settings):
    """What lens and PCA runs share: eval's model and data options (as their flags give them) and the run folder."""

    # model
    model: str = DEFAULT_MODEL
    adapter: str | None = None  # a LoRA adapter folder, or the `qtalign train --out` folder holding it
    device: str = "auto"
    dtype: str | None = None
    load_in_4bit: bool = False
    trust_remote_code: bool = False
    allow_pickle: bool = False
    # data and prompts; None where a protocol may preset the value (resolve_protocol)
    task: str | None = None
    data: str | None = None
    langs: str | None = None  # comma list of language codes; None: the languages present in data
    limit: int | None = None
    items: str | None = None  # START:END
    shots: int | None = None
    labels: str | None = None
    seed: int = 0
    demos: str | None = None
    batch_size: BatchSize = 8
    protocol: str | None = None
    demos_file: str | None = None
    keep_demo_items: bool | None = None
    gold_from: str | None = None
    paper_gold: bool | None = None
    label_tokens: Literal["qtalign", "paper"] | None = None
    # run folder
    out: str | None = None  # required unless redraw
    compare: str | None = None  # a second run folder of the same analysis, overlaid in the figures
    redraw: str | None = None  # only redraw the figures of this finished run folder (no model)
    overwrite: bool = False
    label: str | None = None  # the run's name in figures

    def resolve_protocol(self, command: str) -> Self:
        """The protocol-controlled settings not given (None) filled in: command's preset under the protocol, else
        qtalign's default; protocol None becomes qtalign."""
        from qtalign.protocol import DEFAULTS, resolve_options

        given = {k: getattr(self, k) for k in DEFAULTS if k in type(self).model_fields}
        resolved = resolve_options(command, self.protocol, given)
        return self.model_copy(update={**resolved, "protocol": self.protocol or "qtalign"})


A = TypeVar("A", bound=AnalysisSettings)


def prompt_setup(s: A, command: str) -> tuple[A, Any]:
    """Read and validate the data and build the evaluation prompts exactly as eval does (same checks). Returns the
    settings with command's protocol presets filled in and the adapter resolved (a training folder: its adapter/)."""
    from qtalign.eval import EvalSettings
    from qtalign.eval import prompt_setup as eval_prompt_setup

    if not s.task or not s.data:
        raise QtalignError("--task and --data are required")
    s = s.resolve_protocol(command)
    e = EvalSettings.parse(
        {
            "task": s.task, "data": s.data, "model": s.model,
            "adapter": str(resolve_adapter(s.adapter)) if s.adapter else None,
            "langs": tuple(parse_langs(s.langs, s.task, s.data)), "shots": s.shots, "labels": s.labels,
            "seed": s.seed, "demos": s.demos, "limit": s.limit, "items": s.items, "batch_size": s.batch_size,
            "device": s.device, "dtype": s.dtype, "load_in_4bit": s.load_in_4bit,
            "trust_remote_code": s.trust_remote_code, "allow_pickle": s.allow_pickle,
            "protocol": s.protocol, "demos_file": s.demos_file, "keep_demo_items": s.keep_demo_items,
            "gold_from": s.gold_from, "paper_gold": s.paper_gold, "label_tokens": s.label_tokens,
        },
        "command line",
    )
    s = s.model_copy(update={"adapter": e.adapter})
    return s, eval_prompt_setup(e)


def model_record(s: AnalysisSettings) -> dict[str, Any]:
    """The model settings that change results (device and batch size do not, beyond rounding), known before the model
    loads: the dtype as load_model will resolve it, the adapter folder and the sha256 of its weights."""
    from qtalign.models import adapter_sha256, resolve_device, resolve_dtype

    dtype = str(resolve_dtype(s.dtype, resolve_device(s.device), s.load_in_4bit)).removeprefix("torch.")
    out: dict[str, Any] = {"model": s.model, "adapter": s.adapter, "dtype": dtype, "load_in_4bit": s.load_in_4bit}
    if s.adapter:
        out["adapter"] = str(resolve_adapter(s.adapter))
        out["adapter_sha256"] = adapter_sha256(s.adapter)
    return out


def load_analysis_model(s: AnalysisSettings) -> Any:
    """qtalign.models.load_model with the model settings."""
    from qtalign.models import load_model

    return load_model(s.model, adapter=s.adapter, device=s.device, dtype=s.dtype, load_in_4bit=s.load_in_4bit,
                      trust_remote_code=s.trust_remote_code, allow_pickle=s.allow_pickle)

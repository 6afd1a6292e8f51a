"""The model and data settings lens and PCA share with eval, resolved into prompts, a run record and a model."""

from __future__ import annotations

from typing import Any

from qtalign.errors import QtalignError
from qtalign.options import ModelOptions, PromptOptions


class AnalysisSettings(ModelOptions, PromptOptions):
    """What lens and PCA runs share: eval's model and prompt option blocks (resolved on creation with the command's
    protocol presets: COMMAND of the subclass) and the run folder."""

    out: str | None = None  # required unless redraw
    compare: str | None = None  # a second run folder of the same analysis, overlaid in the figures
    redraw: str | None = None  # only redraw the figures of this finished run folder (no model)
    overwrite: bool = False
    label: str | None = None  # the run's name in figures


def prompt_setup(s: AnalysisSettings) -> Any:
    """Read and validate the data and build the evaluation prompts exactly as eval does (same checks): eval's
    settings from the same option blocks (qtalign.eval.PromptSetup)."""
    from qtalign.eval import EvalSettings
    from qtalign.eval import prompt_setup as eval_prompt_setup

    if not s.task or not s.data:
        raise QtalignError("--task and --data are required")
    shared = set(ModelOptions.model_fields) | set(PromptOptions.model_fields)
    return eval_prompt_setup(EvalSettings.model_validate(s.model_dump(include=shared)))


def model_record(s: AnalysisSettings) -> dict[str, Any]:
    """The model settings that change results (device and batch size do not, beyond rounding), known before the model
    loads: the dtype as load_model will resolve it, the adapter folder and the sha256 of its weights."""
    from qtalign.models import adapter_sha256, resolve_device, resolve_dtype

    dtype = str(resolve_dtype(s.dtype, resolve_device(s.device), s.load_in_4bit)).removeprefix("torch.")
    out: dict[str, Any] = {"model": s.model, "adapter": s.adapter, "dtype": dtype, "load_in_4bit": s.load_in_4bit}
    if s.adapter:
        out["adapter_sha256"] = adapter_sha256(s.adapter)
    return out


def load_analysis_model(s: AnalysisSettings) -> Any:
    """qtalign.models.load_model with the model settings."""
    from qtalign.models import load_model

    return load_model(s.model, adapter=s.adapter, device=s.device, dtype=s.dtype, load_in_4bit=s.load_in_4bit,
                      trust_remote_code=s.trust_remote_code, allow_pickle=s.allow_pickle)

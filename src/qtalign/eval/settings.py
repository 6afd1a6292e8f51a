"""EvalSettings: what defines an evaluation run and where it goes; which settings a resumed run must share."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from qtalign import calibration
from qtalign.options import ModelOptions, PromptOptions


class EvalSettings(ModelOptions, PromptOptions):
    """Everything that defines an evaluation run (the model and prompt option blocks, resolved on creation: protocol
    presets, the data's languages, the adapter's folder), and its run folder."""

    task: str
    data: str
    scoring: Literal["first-token", "loglik"] = "first-token"
    n_boot: int = Field(1000, ge=10)
    log_prompts: bool = False  # write prompts.jsonl beside the predictions
    # calibrated predictions to add when the run finishes (qtalign.calibration.MODES); () = raw only
    calibrate: tuple[Literal["batch", "content-free"], ...] = calibration.MODES
    out: str | None = None  # the run folder (required to run; resumed when it holds a run with these settings)
    overwrite: bool = False  # discard earlier results in out instead of resuming

    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run it continues (those that cannot change results, such as
        device, batch size and n_boot, may change; calibrate only changes what is computed from the stored scores)."""
        return self.model_dump(exclude=IDENTITY_EXCLUDES, mode="json")

    def record(self) -> dict[str, Any]:
        """The settings as results.json records them: everything but where the run folder is and how it was opened."""
        return self.model_dump(exclude=NOT_RECORDED, mode="json")

    @classmethod
    def identity_defaults(cls) -> dict[str, Any]:
        """Each optional setting at its default, as JSON values (for run records made before a setting existed)."""
        return {name: json.loads(json.dumps(f.default)) for name, f in cls.model_fields.items()
                if not f.is_required()}


NOT_RECORDED = {"out", "overwrite"}
IDENTITY_EXCLUDES = {"device", "n_boot", "calibrate", "trust_remote_code", "allow_pickle", "batch_size", "log_prompts",
                     *NOT_RECORDED}


def identity_defaults() -> dict[str, Any]:
    """EvalSettings.identity_defaults (the analyses share eval's prompt settings)."""
    return EvalSettings.identity_defaults()

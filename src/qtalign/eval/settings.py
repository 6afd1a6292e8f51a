"""EvalSettings: everything that defines an evaluation run, and which settings a resumed run must share."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from qtalign import calibration
from qtalign.batchsize import BatchSize
from qtalign.languages import PAPER_LANGS
from qtalign.models import DEFAULT_MODEL
from qtalign.settings import Settings


class EvalSettings(Settings):
    """Everything that defines an evaluation run."""

    task: str
    data: str
    model: str = DEFAULT_MODEL
    adapter: str | None = None
    langs: tuple[str, ...] = PAPER_LANGS
    shots: int | None = Field(None, ge=0)
    labels: str = "en"
    scoring: Literal["first-token", "loglik"] = "first-token"
    seed: int = 0
    demos: str | None = None
    limit: int | None = Field(None, ge=1)
    items: str | None = Field(None, pattern=r"^\d+:\d+$")  # START:END: read only these item indices of each file (qtalign.data.ranges)
    batch_size: BatchSize = 8  # a positive integer, or auto (largest that fits; qtalign.batchsize)
    device: str = "auto"
    dtype: str | None = None
    load_in_4bit: bool = False
    trust_remote_code: bool = False
    allow_pickle: bool = False
    n_boot: int = Field(1000, ge=10)
    # issue 7: protocols (qtalign.protocol), fixed demonstrations, parallel gold, the paper's scoring
    protocol: str = "qtalign"
    demos_file: str | None = None  # a demos file (the paper's layout), or "auto": found beside data
    keep_demo_items: bool = False  # demonstration items stay in the scored set (the paper's scripts)
    gold_from: str | None = None  # score every language against this parallel language's labels
    paper_gold: bool = False  # also score with the paper's exact gold strings (needs demos_file)
    label_tokens: Literal["qtalign", "paper"] = "qtalign"  # whose token sets a label word's mass sums
    log_prompts: bool = False  # write prompts.jsonl beside the predictions
    # calibrated predictions to add when the run finishes (qtalign.calibration.MODES); () = raw only
    calibrate: tuple[Literal["batch", "content-free"], ...] = calibration.MODES

    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must share with the run it continues (those that cannot change results, such as
        device, batch size and n_boot, may change; calibrate only changes what is computed from the stored scores)."""
        return self.model_dump(exclude=IDENTITY_EXCLUDES, mode="json")

    @classmethod
    def identity_defaults(cls) -> dict[str, Any]:
        """Each optional setting at its default, as JSON values (for run records made before a setting existed)."""
        return {name: json.loads(json.dumps(f.default)) for name, f in cls.model_fields.items()
                if not f.is_required()}


IDENTITY_EXCLUDES = {"device", "n_boot", "calibrate", "trust_remote_code", "allow_pickle", "batch_size", "log_prompts"}


def identity_defaults() -> dict[str, Any]:
    """EvalSettings.identity_defaults (the analyses share eval's prompt settings)."""
    return EvalSettings.identity_defaults()

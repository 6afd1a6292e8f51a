"""The option blocks eval, prompts, lens and pca share (the model; the data and prompts), resolved on creation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from qtalign.batchsize import BatchSize
from qtalign.models import DEFAULT_MODEL
from qtalign.protocol import DEFAULTS, presets
from qtalign.settings import Settings

ProtocolName = Literal["qtalign", "paper"]  # the names of qtalign.protocol.PROTOCOLS


def given_or_preset(cls: type[Settings], data: Mapping[str, Any], command: str) -> dict[str, Any]:
    """data with every setting of cls that command's protocol preset names, and that data does not give (absent or
    None), set to the preset's value; the protocol-controlled settings still None are dropped (their defaults apply)."""
    out = dict(data)
    for key, value in presets(out.get("protocol"), command).items():
        if key in cls.model_fields and out.get(key) is None:
            out[key] = value
    for key in DEFAULTS:
        if key in out and out[key] is None:
            del out[key]
    if out.get("protocol") is None:
        out.pop("protocol", None)
    return out


class ModelOptions(Settings):
    """The model a stage loads and how it runs; an adapter is resolved to its folder on creation (a `qtalign train
    --out` folder to its adapter/; a missing or unfinished one is a QtalignError)."""

    model: str = DEFAULT_MODEL
    adapter: str | None = None
    device: str = "auto"
    dtype: str | None = None
    load_in_4bit: bool = False
    trust_remote_code: bool = False
    allow_pickle: bool = False
    batch_size: BatchSize = 8  # a positive integer, or auto (largest that fits; qtalign.batchsize)

    @field_validator("adapter")
    @classmethod
    def _adapter_folder(cls, v: str | None) -> str | None:
        from qtalign.models import resolve_adapter

        return None if v is None else str(resolve_adapter(v))


class PromptOptions(Settings):
    """The data and the few-shot prompts built from it, as eval scores them and the analyses read them.

    Resolved on creation, from the fields the caller set, the same for a library call, the command line and a study
    step: a setting that COMMAND's protocol preset names (qtalign.protocol.PROTOCOLS) and the caller did not give
    (absent or None) takes the preset's value, else its default; langs not given are the preset's, else the languages
    present in data (qtalign.data.readers.data_langs); langs may be given as a comma list."""

    COMMAND: ClassVar[str] = "eval"  # whose presets apply: eval, prompts, lens or pca

    task: str | None = None  # emotion, nli or paraphrase
    data: str | None = None  # folder (paper layout or {lang}.jsonl), JSONL file, demo or hf:NAME
    langs: tuple[str, ...] = ()
    limit: int | None = Field(None, ge=1)  # score only the first N items per language
    items: str | None = Field(None, pattern=r"^\d+:\d+$")  # START:END: read only these items of each file
    shots: int | None = Field(None, ge=0)  # demonstrations per prompt (None: the task's)
    labels: str = "en"  # en, native, or a comma list of label words
    seed: int = 0  # seed of the demonstration choice
    demos: str | None = None  # take demonstrations from this data instead of the test items
    protocol: ProtocolName = "qtalign"
    demos_file: str | None = None  # a demos file (the paper's layout), or "auto": found beside data
    keep_demo_items: bool = False  # demonstration items stay in the scored set (the paper's scripts)
    gold_from: str | None = None  # score every language against this parallel language's labels
    paper_gold: bool = False  # also score with the paper's exact gold strings (needs demos_file)
    label_tokens: Literal["qtalign", "paper"] = "qtalign"  # whose token sets a label word's mass sums

    @model_validator(mode="before")
    @classmethod
    def _resolve(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        out = given_or_preset(cls, data, cls.COMMAND)
        langs = out.get("langs")
        task, data_ = out.get("task"), out.get("data")
        if isinstance(langs, str) or (not langs and isinstance(task, str) and isinstance(data_, str)):
            from qtalign.data.readers import parse_langs

            out["langs"] = tuple(parse_langs(langs if isinstance(langs, str) else None, task, data_))
        return out

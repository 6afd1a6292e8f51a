"""Typed, validated settings (unknown keys and wrong types rejected) and the progress argument of every stage entry."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from qtalign.errors import QtalignError, raise_problems

S = TypeVar("S", bound="Settings")

# The keyword of every stage entry, run(settings, *, progress) -> result: True shows progress bars and prints the
# stage's progress lines (a study's plan and steps, an evidence check's findings); a callable receives each progress
# line, without bars; False is silent. What a command prints when its stage returns is the result's lines().
Progress = bool | Callable[[str], None]


def say(progress: Progress) -> Callable[[str], None]:
    """Where a stage's progress lines go: print for True, the callable itself, nowhere for False."""
    if callable(progress):
        return progress
    return print if progress else _silent


def bars(progress: Progress) -> bool:
    """Whether a stage shows progress bars: only for progress=True."""
    return progress is True


def _silent(line: str) -> None:
    del line


class Settings(BaseModel):
    """Base of all settings objects: unknown keys are errors; values are validated on creation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def parse(cls, data: dict[str, Any], source: str = "settings", flags: Collection[str] | None = None) -> Self:
        """Validate data, turning pydantic's report into one line per problem in the user's terms (a QtalignError
        for one problem, errors.QtalignProblems for several: all are listed, up to errors.MAX_PROBLEMS).

        A key counts as a command-line flag (named `--max-steps`) when it is in flags, or when flags is None and source
        is "command line"; otherwise it is named as a key of source (`train.yaml: max_steps`). The message says what
        values are allowed (range, choices, type) and shows the value given.
        """
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise_problems(list(dict.fromkeys(cls.problem_line(err, source, flags) for err in e.errors())))
            raise  # pragma: no cover - a ValidationError always holds a problem

    @classmethod
    def problem_line(cls, err: Any, source: str, flags: Collection[str] | None) -> str:
        """One pydantic error as `--flag VALUE: what is allowed` or `SOURCE: key: what is allowed`."""
        key = ".".join(str(x) for x in err["loc"])
        as_flag = (key in flags) if flags is not None else source == "command line"
        if not key:
            where = f"{source}:"
        elif as_flag and len(err["loc"]) >= 1:
            where = "--" + str(err["loc"][0]).replace("_", "-")
            if "input" in err and err["type"] != "missing" and not isinstance(err["input"], (dict, list)):
                where += f" {err['input']}"
            where += ":"
        else:
            where = f"{source}: {key}:"
        return f"{where} {explain(err, cls)}"


def explain(err: Any, cls: type[BaseModel]) -> str:
    """One validation problem in plain words: what is allowed."""
    kind, ctx = err["type"], err.get("ctx") or {}
    bounds = {"greater_than_equal": "must be at least {ge}", "greater_than": "must be greater than {gt}",
              "less_than_equal": "must be at most {le}", "less_than": "must be less than {lt}"}
    if kind in bounds:
        return bounds[kind].format(**ctx)
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '').replace(chr(39), '')}"
    if kind == "extra_forbidden":
        known = ", ".join(sorted(cls.model_fields))
        return f"unknown setting {err['loc'][-1]!r} (known: {known})"
    if kind == "missing":
        return "is required"
    plain = {"int_parsing": "must be a whole number", "int_type": "must be a whole number",
             "int_from_float": "must be a whole number", "float_parsing": "must be a number",
             "float_type": "must be a number", "bool_parsing": "must be true or false",
             "bool_type": "must be true or false", "string_type": "must be text", "list_type": "must be a list",
             "tuple_type": "must be a list", "dict_type": "must be a mapping"}
    if kind in plain:
        return plain[kind]
    if kind == "value_error":  # a validator's own message
        return str(ctx.get("error") or err.get("msg", "")).removeprefix("Value error, ")
    msg = str(err.get("msg", kind))
    return msg[0].lower() + msg[1:] if msg else kind


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON mapping from a file; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise QtalignError(f"{path}: config file not found")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as e:  # noqa: BLE001 - yaml and json raise different errors
        raise QtalignError(f"{path}: cannot parse ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise QtalignError(f"{path}: expected a mapping of settings at the top level")
    return data

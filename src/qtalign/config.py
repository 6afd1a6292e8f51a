"""Typed, validated settings: every settings object rejects unknown keys and wrong types."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from qtalign.errors import QtalignError

S = TypeVar("S", bound="Settings")


class Settings(BaseModel):
    """Base of all settings objects: unknown keys are errors; values are validated on creation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def parse(cls, data: dict[str, Any], source: str = "settings") -> Self:
        """Validate data, turning pydantic's report into one QtalignError line naming source and key."""
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(x) for x in err["loc"]) or "(top level)"
            more = f" (and {e.error_count() - 1} more problem(s))" if e.error_count() > 1 else ""
            raise QtalignError(f"{source}: {where}: {err['msg']}{more}") from None


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

"""A compare folder: compare.json (the comparisons, read back by the report and the demo) and compare.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

COMPARE_JSON = "compare.json"
COMPARE_MD = "compare.md"


def read_compare(path: Path) -> Any:
    """The content of a compare.json file (an OSError or ValueError when it cannot be read)."""
    return json.loads(path.read_text(encoding="utf-8"))

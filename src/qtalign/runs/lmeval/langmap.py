"""`--lang-map FILE`: lm-eval tasks outside qtalign's tables, mapped to languages (and their choices named)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from qtalign.errors import QtalignError
from qtalign.runs.lmeval.tables import Group

EXAMPLE = "e.g. {group: mytask, labels: [yes, no], tasks: {mytask_de: de, mytask_fr: fr}} or {mytask_de: de, ...}"


def read_lang_map(path: str | Path) -> Group:
    """A lang-map file (YAML or JSON) as a Group: either {task: language, ...} (the group is named after the file)
    or {group: NAME, labels: [choice names], tasks: {task: language, ...}}; labels default to A, B, C, ..."""
    path = Path(path)
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise QtalignError(f"--lang-map {path}: no such file") from None
    except yaml.YAMLError as e:
        raise QtalignError(f"--lang-map {path}: not valid YAML/JSON ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise QtalignError(f"--lang-map {path}: expected a mapping of tasks to languages ({EXAMPLE})")
    structured = "tasks" in data
    tasks = data.get("tasks") if structured else data
    unknown = set(data) - {"group", "labels", "tasks"} if structured else set()
    if unknown:
        raise QtalignError(f"--lang-map {path}: unknown key {min(unknown)!r} (keys: group, labels, tasks)")
    if not isinstance(tasks, dict) or not tasks or not all(isinstance(k, str) and isinstance(v, str) and v.strip()
                                                           for k, v in tasks.items()):
        raise QtalignError(f"--lang-map {path}: tasks must map each task name to a language code ({EXAMPLE})")
    labels = data.get("labels") if structured else None
    if labels is not None and (not isinstance(labels, list) or len(labels) < 2
                               or len({str(x) for x in labels}) != len(labels)):
        raise QtalignError(f"--lang-map {path}: labels must be a list of at least two distinct choice names")
    name = str(data.get("group") or path.stem) if structured else path.stem
    pattern = "(?P<code>" + "|".join(re.escape(t) for t in sorted(tasks, key=len, reverse=True)) + ")"
    return Group(name, pattern, tuple(str(x) for x in labels or ()), {t: v.strip() for t, v in tasks.items()})

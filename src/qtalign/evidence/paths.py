"""Paths in packed records made machine-free: inside the study relative to its folder, others relative to a named root."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

DATA_ROOT = "$DATA_ROOT"  # the study config's data_root: where its relative data paths were resolved
MODEL_CACHE = "$QTALIGN_CACHE"  # qtalign's model cache (converted GGUF models) on the machine that ran the study
PATHS_NOTE = (f"paths are relative to the study folder; {DATA_ROOT}/... is under the study's data root, "
              f"{MODEL_CACHE}/... under qtalign's model cache, on the machine that ran the study")

_PATH_CHARS = r"[\w.+~/-]"  # what a path token is made of here (no spaces)
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def study_folders(study: Mapping[str, Any]) -> list[str]:
    """The folders a study.json names relative to its study folder: every step's `out` and every run's `run`/`out`."""
    found: set[str] = set()
    for step in study.get("steps") or []:
        found.add(str(step.get("out") or ""))
    for role in ("evals", "trains", "compares", "analyses"):
        for entry in study.get(role) or []:
            found.add(str(entry.get("run") or entry.get("out") or ""))
    return sorted((f.strip("/") for f in found if f.strip("/") and f.strip("/") != "."), key=len, reverse=True)


class Portable:
    """Rewrites the paths of one study's records: a path naming one of the study's folders (wherever the study was
    when it was written: absolute, or relative to the working directory of the run) becomes relative to the study
    folder; the study folder itself becomes `.`; a path under one of the named roots starts with the root's name.
    Any other path is kept as given."""

    def __init__(self, folders: Iterable[str], study_root: str | None, roots: Mapping[str, str]) -> None:
        names = sorted(set(folders), key=len, reverse=True)
        alternatives = "|".join(map(re.escape, names))
        # a path token whose components from some point on are one of the folders, then anything below it
        self._inside = re.compile(rf"(?<!{_PATH_CHARS})(?:{_PATH_CHARS}*/)?((?:{alternatives})(?:/{_PATH_CHARS}*)?)"
                                  rf"(?!{_PATH_CHARS})") if names else None
        pairs = ([(study_root, ".")] if study_root else []) + [(path, name) for name, path in roots.items() if path]
        self._roots = [(re.compile(rf"(?<!{_PATH_CHARS}){re.escape(p.rstrip('/'))}(/{_PATH_CHARS}*)?(?!{_PATH_CHARS})"),
                        name) for p, name in sorted(pairs, key=lambda x: len(x[0]), reverse=True)
                       if p.rstrip("/")]

    def inside(self, value: str) -> str | None:
        """The study-relative path when value is one path naming a file or folder of the study's folders."""
        m = self._inside.fullmatch(value) if self._inside is not None else None
        return m.group(1) if m else None

    def value(self, value: str) -> str:
        """A string with every path in it rewritten (a string may hold several, e.g. 'A + B items 0:10')."""
        if "/" not in value:
            return value
        if self._inside is not None:
            value = self._inside.sub(lambda m: m.group(1), value)
        for pattern, name in self._roots:
            value = pattern.sub(lambda m, name=name: _join(name, m.group(1)), value)
        return value

    def text(self, text: str) -> str:
        """A JSON or JSONL text with the paths in its strings (keys too) rewritten; nothing else changes."""

        def one(m: re.Match[str]) -> str:
            token = m.group(0)
            if "/" not in token:
                return token
            old = json.loads(token)
            new = self.value(old)
            return token if new == old else json.dumps(new, ensure_ascii=False)

        return _JSON_STRING.sub(one, text)


def absolute_paths(files: Mapping[str, Any]) -> list[str]:
    """The absolute paths still written in the JSON records of packed files (kept as given: outside the study folder
    and the named roots), sorted."""
    found: set[str] = set()
    for name, content in files.items():
        if isinstance(content, str) and name.endswith(".json"):
            for m in _JSON_STRING.finditer(content):
                if '"/' in m.group(0):
                    found.update(p for p in re.findall(rf"(?<!{_PATH_CHARS})/{_PATH_CHARS}+", json.loads(m.group(0))))
    return sorted(found)


def _join(name: str, rest: str | None) -> str:
    if not rest:
        return name
    return rest.lstrip("/") if name == "." else name + rest

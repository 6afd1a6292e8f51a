"""Run folders: atomic file writes, append-only JSONL with crash-safe resume, content hashes."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from qtalign.errors import QtalignError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write data to path so that readers see either the old or the new file, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def read_jsonl_rows(path: str | Path) -> list[dict[str, Any]]:
    """Complete rows of a JSONL file written by JsonlWriter; a torn last line (from a kill) is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    rows: list[dict[str, Any]] = []
    with path.open("rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    # the text after the last newline is an unfinished row
    for n, line in enumerate(lines[:-1], 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise QtalignError(f"{path}: line {n} is not valid JSON ({e.msg}); delete the file to start over") from None
    return rows


class JsonlWriter:
    """Appends rows to a JSONL file, flushed per row; truncates a torn tail left by an earlier crash."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            data = self.path.read_bytes()
            end = data.rfind(b"\n") + 1
            if end != len(data):
                with self.path.open("r+b") as f:
                    f.truncate(end)
        self._f = self.path.open("a", encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        self._f.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._f.flush()

    def write_many(self, rows: Iterable[dict[str, Any]]) -> None:
        self._f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_run_record(path: str | Path, settings: dict[str, Any], hint: str,
                     defaults: dict[str, Any] | None = None) -> None:
    """Record the settings of a run folder at path on first use; on a rerun (resume), different settings are a
    QtalignError naming each differing key with its old and new value, followed by hint.

    defaults: values of settings added after a record was written; a key missing from the record counts as its
    default there (a run made before the setting existed ran with what is now its default)."""
    path = Path(path)
    if not path.is_file():
        atomic_write_json(path, settings)
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise QtalignError(f"{path}: unreadable run record; {hint}") from None
    defaults = defaults or {}
    diff = sorted(k for k in set(old) | set(settings) if old.get(k, defaults.get(k)) != settings.get(k))
    if diff:
        what = "; ".join(f"{k}: {old.get(k)!r} -> {settings.get(k)!r}" for k in diff)
        raise QtalignError(f"{path.parent}: holds results made with other settings ({what}); {hint}")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    for p in paths:
        if p.is_dir():
            yield from sorted(q for q in p.rglob("*") if q.is_file())
        else:
            yield p

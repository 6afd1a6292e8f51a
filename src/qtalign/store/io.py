"""Writing and reading outputs safely: atomic files, crash-safe JSONL, JSON objects, one-line operating-system errors."""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Self

from qtalign.errors import QtalignError

# ---- operating-system errors: one line naming the file and the cause ------------------------------------------
FAULT_HINT = "outputs written so far are kept; fix this and rerun the same command to resume"
_CAUSES = {errno.EISDIR: "is a folder, not a file", errno.ENOTDIR: "a part of the path is a file, not a folder",
           errno.EROFS: "read-only file system"}


def os_error_cause(e: OSError) -> str:
    """The cause of an operating-system error in a few plain words (no errno number)."""
    text = _CAUSES.get(e.errno or -1) or e.strerror or " ".join(str(e).split()) or type(e).__name__
    return text[0].lower() + text[1:]


def os_error_line(e: OSError, path: str | Path | None = None) -> str:
    """An operating-system error as one line: `FILE: cause; hint` (FILE: path, else the file the error names)."""
    name = path if path is not None else (e.filename if e.filename is not None else e.filename2)
    where = f"{os.fsdecode(name)}: " if name is not None else ""
    return f"{where}{os_error_cause(e)}; {FAULT_HINT}"


class OutputError(QtalignError, OSError):
    """An operating-system error while writing or reading outputs (no space, no permission, read-only, a folder where
    a file belongs), as one line naming the file; the outputs written before it stay whole. Still an OSError, so code
    that handles those keeps doing so."""

    def __init__(self, e: OSError, path: str | Path | None = None) -> None:
        super().__init__(os_error_line(e, path))
        self.errno = e.errno


@contextmanager
def output_errors(path: str | Path | None = None) -> Iterator[None]:
    """Turn an OSError raised inside into an OutputError naming path (else the file the error names). Libraries that
    report failed writes in their own exception types (torch's `file write failed`, safetensors' `IoError(Os {..})`)
    are translated too when path is given."""
    try:
        yield
    except OutputError:
        raise
    except OSError as e:
        raise OutputError(e, path) from e
    except Exception as e:
        io = library_write_error(e)
        if io is None or path is None:
            raise
        raise OutputError(io, path) from e


def library_write_error(e: BaseException) -> OSError | None:
    """A failed write reported by torch or safetensors as their own exception, as the OSError behind it (else None)."""
    text = str(e)
    found = re.search(r"Os \{ code: (\d+)|\(os error (\d+)\)", text)  # Rust's io::Error, two spellings
    if found:
        code = int(found.group(1) or found.group(2))
        return OSError(code, os.strerror(code))
    if "file write failed" in text or "PytorchStreamWriter failed" in text:
        return OSError(errno.EIO, "file write failed (no space left or the file system refused it)")
    return None


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write data to path so that readers see either the old or the new file, never a partial one. An OSError is an
    OutputError naming path (the old file, if any, is left as it was)."""
    path = Path(path)
    with output_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600 files; outputs get the usual mode
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def current_umask() -> int:
    """The process's umask (read by setting it and restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def read_json_object(path: str | Path, strict: bool = False) -> dict[str, Any] | None:
    """A JSON file holding an object: its content; None when the file is missing or holds something else. Invalid
    JSON is None too, or with strict a QtalignError naming the file."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        if strict:
            raise QtalignError(f"{path}: not valid JSON") from None
        return None
    return data if isinstance(data, dict) else None


def read_jsonl_rows(path: str | Path) -> list[dict[str, Any]]:
    """Complete rows of a JSONL file written by JsonlWriter; a torn last line (from a kill) is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    rows: list[dict[str, Any]] = []
    with output_errors(path), path.open("rb") as f:
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
    """Appends rows to a JSONL file, written through per row (no buffer); truncates a torn tail left by an earlier
    crash. A failed write (no space, permission lost) is an OutputError naming the file: the rows before it are whole,
    a partly written row is the torn tail that the next writer truncates, so a rerun resumes exactly."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with output_errors(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists():
                data = self.path.read_bytes()
                end = data.rfind(b"\n") + 1
                if end != len(data):
                    with self.path.open("r+b") as f:
                        f.truncate(end)
            self._f: IO[bytes] = self.path.open("ab", buffering=0)

    def _write(self, text: str, sync: bool) -> None:
        data = memoryview(text.encode("utf-8"))
        with output_errors(self.path):
            while data:
                n = self._f.write(data)
                if not n:  # a raw write that wrote nothing without saying why
                    raise OSError(errno.EIO, "write failed", str(self.path))
                data = data[n:]
            if sync:
                os.fsync(self._f.fileno())

    def write(self, row: dict[str, Any]) -> None:
        self._write(json.dumps(row, ensure_ascii=False) + "\n", sync=False)

    def write_many(self, rows: Iterable[dict[str, Any]]) -> None:
        self._write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), sync=True)

    def close(self) -> None:
        self._f.close()  # unbuffered: nothing is left to flush, so closing cannot fail on a full disk

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Run folders: output-folder claims, locks and the resume rule, atomic writes, crash-safe JSONL, content hashes."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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


MANIFEST_SUFFIX = ".manifest.json"  # `data build --out DIR/FILE.jsonl` describes itself in DIR/FILE.manifest.json
LEGACY_MANIFEST = "manifest.json"  # the one manifest of a folder, written by qtalign before several builds per folder


def manifest_path(pairs: str | Path, legacy: bool = True) -> Path:
    """The manifest of a `data build` pairs file: FILE.manifest.json beside FILE.jsonl. With legacy (for readers), a
    folder's manifest.json from an older qtalign when FILE.manifest.json is missing and that manifest describes FILE
    (names it as its output, names no output, or cannot be read: its reader says so)."""
    pairs = Path(pairs)
    path = pairs.with_name(pairs.stem + MANIFEST_SUFFIX)
    if not legacy or path.is_file():
        return path
    old = pairs.with_name(LEGACY_MANIFEST)
    if old.is_file():
        try:
            data = json.loads(old.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return old
        output = data.get("output") if isinstance(data, dict) else None
        if output is None or Path(str(output)).name == pairs.name:
            return old
    return path


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


# ---- output folders: one check, one claim and one resume rule for every command that writes a folder -----------
def claim_out(path: str | Path, flag: str = "--out") -> Path:
    """Check that path can be an output folder and create it (with missing parents) before any slow setup.

    An existing file, a parent that is a file, or a folder that cannot be created or written is one QtalignError
    line naming the flag. Returns the folder.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise QtalignError(f"{flag} {path}: exists and is not a folder; give a folder path")
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise QtalignError(f"{flag} {path}: {ancestor} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise QtalignError(f"{flag} {path}: cannot create this folder ({why.lower()} in {ancestor})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise QtalignError(f"{flag} {path}: folder is not writable")
    return path


def claim_out_file(path: str | Path, flag: str = "--out") -> Path:
    """Like claim_out for an output file: the file may exist (it is replaced) but must not be a folder."""
    path = Path(path)
    if path.is_dir():
        raise QtalignError(f"{flag} {path}: is a folder; give a file path")
    claim_out(path.parent if str(path.parent) else Path("."), flag)
    if path.exists() and not os.access(path.parent, os.W_OK):
        raise QtalignError(f"{flag} {path}: its folder is not writable")
    return path


# ---- one writer per run folder: an advisory lock that goes with the process (also on kill -9) -------------------
LOCK_NAME = ".qtalign.lock"  # in a claimed folder; holds the holder's pid, host and command while it is held
_held: dict[Path, IO[str]] = {}  # lock file (resolved) -> its open file, for the locks this process holds


def hold_folder(folder: str | Path, lock: str | Path | None = None) -> Path:
    """Take the one-writer lock of a run folder (fcntl.flock on folder/.qtalign.lock, or on lock), held until
    release_folders() or the end of the process; taking a lock this process already holds is a no-op.

    Another process holding it is a QtalignError naming its pid and host (a second launch of the same command is
    refused, not interleaved). A file system without locks (some network mounts) is let through unlocked."""
    folder = Path(folder)
    path = Path(lock) if lock is not None else folder / LOCK_NAME
    key = path.resolve()
    if key in _held:
        return path
    with output_errors(path):
        f = path.open("a+", encoding="utf-8")  # not "w": the holder's pid stays readable until we hold the lock
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        f.close()
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise QtalignError(f"{folder}: in use by another qtalign process ({lock_holder(path)}); one writer per "
                               "run folder: wait for it to finish, stop it, or use another folder") from None
        return path  # no locking on this file system (ENOLCK, EOPNOTSUPP...)
    import sys

    with output_errors(path):
        f.truncate(0)
        f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                            "command": " ".join(["qtalign", *sys.argv[1:]])[:300]}) + "\n")
        f.flush()
    _held[key] = f
    return path


def lock_holder(path: str | Path) -> str:
    """`pid N on HOST` from a held lock file (what its holder wrote when it took it)."""
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8"))
        return f"pid {int(info['pid'])} on {info['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown: it is starting"


def release_folders(keep: Collection[Path] = ()) -> None:
    """Release the run-folder locks this process holds (except those in keep, resolved lock paths)."""
    for key in [k for k in _held if k not in keep]:
        _held.pop(key).close()


@contextmanager
def folder_locks() -> Iterator[None]:
    """Release, on leaving, the run-folder locks taken inside (e.g. per study step or per command)."""
    before = set(_held)
    try:
        yield
    finally:
        release_folders(keep=before)


def missing_folders(path: str | Path) -> list[Path]:
    """The folders that creating path would create, deepest first (to undo a claim when a command fails)."""
    out: list[Path] = []
    p = Path(path)
    while not p.exists() and p != p.parent:
        out.append(p)
        p = p.parent
    return out


def remove_empty_folders(folders: Iterable[Path]) -> None:
    """Remove the given folders, deepest first, where they are still empty (but for this process's lock file)."""
    for f in folders:
        lock = f / LOCK_NAME
        try:
            if [p.name for p in f.iterdir()] == [LOCK_NAME] and lock.resolve() in _held:
                _held.pop(lock.resolve()).close()
                lock.unlink()
            f.rmdir()
        except OSError:
            pass


def flag_name(key: str) -> str:
    """The command-line spelling of a settings key: batch_size -> --batch-size."""
    return "--" + key.replace("_", "-")


def _show(value: Any, width: int = 60) -> str:
    if value is None:
        text = "(none)"
    elif isinstance(value, bool):
        text = "on" if value else "off"
    elif isinstance(value, (list, tuple)):
        text = ",".join(map(str, value)) or "(none)"
    elif isinstance(value, dict):
        text = ", ".join(f"{k}={v}" for k, v in value.items()) or "(none)"
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def describe_changes(old: Mapping[str, Any], new: Mapping[str, Any], names: Mapping[str, str] | None = None,
                     ignore: Collection[str] = ()) -> list[str]:
    """Differences between two run records in the user's terms, one short phrase per changed setting.

    Keys ending in _sha256 are content hashes: a dict of file -> hash names the changed files (files added or removed
    follow from other settings and are not listed); a single hash says the content changed; a hash missing on one side
    (a record from before it was kept) is not a difference. Other keys are shown as
    `--flag OLD -> NEW` (names maps a key to another label, e.g. analysis -> command).
    """
    names = names or {}
    out: list[str] = []
    unexplained: list[str] = []
    for key in sorted(set(old) | set(new)):
        if key in ignore or old.get(key) == new.get(key):
            continue
        a, b = old.get(key), new.get(key)
        what = names.get(key)
        if key.endswith("_sha256"):
            if a is None or b is None:
                continue  # a record written before this hash was kept: nothing to compare
            subject = what or key.removesuffix("_sha256").replace("_", " ")
            changed: list[str] = []
            if isinstance(a, dict) and isinstance(b, dict):
                changed = sorted(Path(k).name for k in set(a) & set(b) if a[k] != b[k])
            if changed:
                more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
                out.append(f"{subject} changed since ({', '.join(changed[:3])}{more})")
            elif isinstance(a, str) and isinstance(b, str):
                out.append(f"{subject} changed since")
            else:
                unexplained.append(f"{subject} differs")
            continue
        out.append(f"{what or flag_name(key)} {_show(a)} -> {_show(b)}")
    return out or unexplained


@dataclass
class RunFolder:
    """A claimed output folder and the settings record that a rerun must match; commit() writes the record."""

    path: Path
    record: Path
    settings: dict[str, Any]
    resumed: bool  # a record with the same settings was there

    def commit(self, settings: Mapping[str, Any] | None = None) -> None:
        """Write the run record; call once setup (model, adapter, data) has succeeded."""
        if settings is not None:
            self.settings = dict(settings)
        atomic_write_json(self.record, self.settings)


def _has_content(path: Path) -> bool:
    """A non-empty file, or a folder holding at least one non-empty file."""
    if path.is_file():
        return path.stat().st_size > 0
    return path.is_dir() and any(_has_content(p) for p in path.iterdir())


RESUME_HINT = "rerun with the same settings to resume, add --overwrite to start over, or use another --out"


def open_run(out: str | Path, record: str, settings: Mapping[str, Any], outputs: Sequence[str] = (),
             overwrite: bool = False, names: Mapping[str, str] | None = None, ignore: Collection[str] = (),
             flag: str = "--out", defaults: Mapping[str, Any] | None = None) -> RunFolder:
    """The one resume/overwrite rule of every command that writes a folder, checked before any slow setup.

    Claims out (claim_out) and holds it (hold_folder: a second writer is refused). With overwrite, the record and the command's outputs (names relative to out; files or
    folders) are deleted. Otherwise an existing record must equal settings except for keys in ignore (settings that
    cannot change results), else a QtalignError names each changed flag, unless the earlier run left no output with
    content (a start that failed before producing anything); outputs without a record are refused too. defaults: the
    value of settings that a record written by an older qtalign lacks (a setting added later, at its default).
    Nothing is written: RunFolder.commit() writes the record once setup has succeeded, so a failed start never
    blocks the corrected command.
    """
    folder = claim_out(out, flag)
    hold_folder(folder)  # one writer at a time, from here until the command ends
    path = folder / record
    if overwrite:
        for name in [record, *outputs]:
            target = folder / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        return RunFolder(folder, path, dict(settings), False)
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            raise QtalignError(f"{path}: unreadable run record; add --overwrite to start over") from None
        if not isinstance(old, dict):
            raise QtalignError(f"{path}: unreadable run record; add --overwrite to start over")
        old = {**{k: v for k, v in (defaults or {}).items() if k not in old and k in settings}, **old}
        changes = describe_changes(old, settings, names, ignore)
        if changes and not any(_has_content(folder / name) for name in outputs):
            return RunFolder(folder, path, dict(settings), False)  # the earlier run produced nothing to protect
        if changes:
            raise QtalignError(f"{folder}: holds results made with other settings ({'; '.join(changes)}); "
                               f"{RESUME_HINT}")
        return RunFolder(folder, path, dict(settings), True)
    found = [name for name in outputs if (folder / name).exists()]
    if found:
        raise QtalignError(f"{folder}: holds {', '.join(found)} but no run record ({record}); add --overwrite to "
                           "start over or use another --out")
    return RunFolder(folder, path, dict(settings), False)


def adapter_label(adapter: str | Path) -> str:
    """A short name for an adapter in figures and tables: "LoRA zh/es=>en" when its training data's manifest is
    found (T/train_settings.json -> data -> its manifest_path), else "LoRA <training folder name>"."""
    p = Path(adapter)
    run = p.parent if p.name == "adapter" else p
    try:
        data = json.loads((run / "train_settings.json").read_text(encoding="utf-8"))["data"]
        m = json.loads(manifest_path(data).read_text(encoding="utf-8"))["settings"]
        return f"LoRA {'/'.join(m['sources'])}=>{m['target']}" + (f" ({m['control']})" if m.get("control") else "")
    except (OSError, ValueError, KeyError, TypeError):
        return f"LoRA {run.name}"


def run_label(model: str | None, adapter: str | None, label: str | None = None) -> str:
    """How a run is named in figures: its --label, else the model's short name plus the adapter's label."""
    if label:
        return label
    name = Path(model).name if model else "model"
    return f"{name} + {adapter_label(adapter)}" if adapter else name

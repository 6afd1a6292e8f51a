"""Output folders: the claim of a folder or file before any slow setup, and the one-writer lock of a run folder."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from qtalign.errors import QtalignError
from qtalign.store.io import output_errors


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

"""Download the paper's released data and evaluation scripts at a pinned commit: verified, resumable, atomic."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.client import HTTPException
from importlib.resources import files as package_files
from pathlib import Path, PurePosixPath
from typing import Any

from qtalign.data.paper_demonstrations import SCRIPTS, build_demos, tables_digest
from qtalign.errors import QtalignError
from qtalign.store import atomic_write_json, claim_out, hold_folder, sha256_file

log = logging.getLogger(__name__)

LOCK_NAME = "paper_files.lock.json"  # in DEST: every file's sha256, git blob id, url and whether sha256 was pinned
CHUNK = 1 << 16
USER_AGENT = "qtalign-data-fetch"
KINDS = ("test", "script", "train", "question")
SPLITS: dict[str, tuple[str, ...]] = {"test": ("test", "script"), "train": ("train", "question"), "all": KINDS}
# the repository's data folders and where their files go under DEST
FOLDERS: dict[str, str] = {"data/ap_emotion/": "emotion/", "data/snli/": "snli/", "data/paws/": "paws/"}
_BLOB = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class RemoteFile:
    path: str  # where it goes under DEST
    remote: str  # path in the repository at the pinned commit
    kind: str  # test, script, train (a task's own training items) or question (question-translation pairs)
    blob: str  # its git blob id at the pinned commit (from the commit's file listing): every download is checked
    sha256: str | None  # pinned where qtalign's maintainers hashed a copy; None = recorded in DEST's lock
    size: int | None  # known where sha256 is pinned
    sources: tuple[str, ...] = ()  # question files: the source languages their name announces (() = unknown)
    target: str | None = None  # ... and the language they are translated into (None = unknown)


@dataclass
class Manifest:
    repository: str
    commit: str
    base_url: str
    files: list[RemoteFile]
    demo_tables_sha256: dict[str, str] = field(default_factory=dict)


def load_manifest(path: str | Path | None = None) -> Manifest:
    """The packaged table of the paper's files (qtalign/data/paper_files.json), or another file of that shape."""
    name = str(path or "paper_files.json")
    try:
        text = Path(path).read_text(encoding="utf-8") if path else \
            package_files("qtalign.data").joinpath("paper_files.json").read_text(encoding="utf-8")
        data = json.loads(text)
        entries = [RemoteFile(e["path"], e["remote"], e["kind"], e["blob"], e.get("sha256"), e.get("size"),
                              tuple(e.get("sources") or ()), e.get("target")) for e in data["files"]]
        man = Manifest(data["repository"], data["commit"], data["base_url"], entries,
                       dict(data.get("demo_tables_sha256", {})))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise QtalignError(f"{name}: not a readable file table ({e})") from None
    for e in entries:
        bad = ("kind" if e.kind not in KINDS else "blob" if not _BLOB.match(e.blob) else
               "sha256" if e.sha256 is not None and not _SHA256.match(e.sha256) else None)
        if bad:
            raise QtalignError(f"{name}: entry {e.path!r}: bad {bad} {getattr(e, bad)!r}")
    return man


def blob_id(path: Path) -> str:
    """The git blob id of a file: sha1 of b"blob <size>\\0" followed by its bytes (what a commit's listing gives)."""
    h = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def safe_target(dest: Path, rel: str, what: str = "path") -> Path:
    """DEST/rel, refusing absolute paths, '..', backslashes and anything that resolves outside DEST."""
    pure = PurePosixPath(rel)
    bad = (not rel or "\\" in rel or "\x00" in rel or pure.is_absolute() or rel.startswith("~")
           or any(part in ("", ".", "..") for part in rel.split("/")))
    target = dest / rel
    if not bad:
        root = dest.resolve()
        resolved = target.resolve()
        bad = resolved != root and root not in resolved.parents
    if bad:
        raise QtalignError(f"file table entry {what} {rel!r}: refusing a path that escapes {dest}")
    return target


# ---- lock file ------------------------------------------------------------------------------------------------
def read_lock(dest: Path) -> dict[str, Any]:
    path = dest / LOCK_NAME
    if not path.is_file():
        return {"files": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = data.get("files") if isinstance(data, dict) else None
        if isinstance(files, dict):
            return data
        problem = "no files table"
    except ValueError as e:
        problem = str(e)
    raise QtalignError(f"{path}: unreadable lock file ({problem}); delete it to record hashes again")


# ---- one download ---------------------------------------------------------------------------------------------
class _Transient(Exception):
    """A download that stopped early (connection dropped, timeout, 5xx): resumable."""


def _open(url: str, offset: int, timeout: float) -> Any:
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            return e  # the .part already holds the whole file
        if e.code >= 500 or e.code == 429:
            raise _Transient(f"HTTP {e.code} {e.reason}") from None
        raise QtalignError(f"{url}: HTTP {e.code} {e.reason} (every file of qtalign's table is in the pinned commit's "
                           "listing: is --base-url right?)") from None
    except (TimeoutError, urllib.error.URLError, ConnectionError, HTTPException) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, FileNotFoundError):  # a file:// mirror without the file
            raise QtalignError(f"{url}: no such file in the mirror") from None
        raise _Transient(str(reason)) from None


def _download_part(url: str, part: Path, expected_size: int | None, timeout: float, bar: Any) -> str:
    """Fill part with the file at url, resuming from its current length; 'downloaded' or 'resumed'."""
    offset = part.stat().st_size if part.exists() else 0
    if expected_size is not None and offset > expected_size:
        part.unlink()
        offset = 0
    resp = _open(url, offset, timeout)
    status = getattr(resp, "status", None) or getattr(resp, "code", None)
    if status == 416:  # nothing left to fetch
        resp.close()
        return "resumed"
    mode = "ab"
    if offset and status == 206:
        content_range = resp.headers.get("Content-Range", "")
        if not content_range.startswith(f"bytes {offset}-"):
            resp.close()
            raise _Transient(f"server answered the range request with {content_range!r}")
        how = "resumed"
    else:
        if offset:
            log.info("%s: server ignored the range request; downloading from the start", url)
        mode, offset, how = "wb", 0, "downloaded"
    length = resp.headers.get("Content-Length")
    expected_now = int(length) if length is not None and length.isdigit() else None
    if bar is not None and expected_now is not None and expected_size is None:
        bar.total = (bar.total or 0) + expected_now
        bar.refresh()
    received = 0
    part.parent.mkdir(parents=True, exist_ok=True)
    with resp, part.open(mode) as f:
        while True:
            try:
                block = resp.read(CHUNK)
            except (TimeoutError, ConnectionError, HTTPException) as e:
                raise _Transient(str(e) or type(e).__name__) from None
            if not block:
                break
            f.write(block)
            received += len(block)
            if bar is not None:
                bar.update(len(block))
        f.flush()
        os.fsync(f.fileno())
    if expected_now is not None and received < expected_now:
        raise _Transient(f"connection closed after {offset + received} of {offset + expected_now} bytes")
    return how


@dataclass
class FileStatus:
    path: str
    action: str  # downloaded, resumed or present
    check: str  # sha256: pinned (matched qtalign's table), locked (matched DEST's lock), recorded (first download)
    sha256: str
    size: int
    blob: str  # the git blob id it matched (every file matches the pinned commit's listing)


def _verify(entry: RemoteFile, path: Path, expected_sha256: str | None) -> tuple[str, str, str | None]:
    """(git blob id, sha256, what is wrong or None) of a file checked against entry (size, blob id) and a sha256."""
    size = path.stat().st_size
    blob, digest = blob_id(path), sha256_file(path)
    if entry.size is not None and size != entry.size:
        return blob, digest, f"{size} bytes, expected {entry.size} bytes"
    if blob != entry.blob:
        return blob, digest, f"git blob id {blob}, expected {entry.blob} (the pinned commit's listing)"
    if expected_sha256 is not None and digest != expected_sha256:
        return blob, digest, f"sha256 {digest}, expected {expected_sha256}"
    return blob, digest, None


def fetch_file(entry: RemoteFile, dest: Path, base_url: str, lock: dict[str, Any], retries: int = 3,
               timeout: float = 60.0, bar: Any = None, backoff: float = 1.0) -> FileStatus:
    """Download one file into DEST (via DEST/path.part, resumable), verify it (git blob id; sha256 pinned or locked),
    and move it into place atomically."""
    target = safe_target(dest, entry.path)
    safe_target(dest, entry.remote, "remote path")
    url = base_url.rstrip("/") + "/" + urllib.parse.quote(entry.remote)
    recorded = lock["files"].get(entry.path, {}).get("sha256") if entry.sha256 is None else None
    expected = entry.sha256 or recorded
    check = "pinned" if entry.sha256 else ("locked" if recorded else "recorded")
    if target.is_file():
        blob, digest, wrong = _verify(entry, target, expected)
        if wrong is not None:
            where = f"the value recorded in {dest / LOCK_NAME}" if wrong.startswith("sha256") and recorded else \
                "qtalign's table"
            raise QtalignError(f"{target}: {wrong} ({where}); delete the file to download it again")
        return FileStatus(entry.path, "present", check, digest, target.stat().st_size, blob)
    part = target.with_name(target.name + ".part")
    fresh_tries = 1  # after a failed check of a resumed file, one fresh download
    attempt = 0
    while True:
        attempt += 1
        resumed_from = part.stat().st_size if part.exists() else 0
        try:
            action = _download_part(url, part, entry.size, timeout, bar)
        except _Transient as e:
            if attempt > retries:
                kept = part.stat().st_size if part.exists() else 0
                raise QtalignError(f"{url}: download incomplete ({e}); {kept} bytes kept in {part}; rerun the same "
                                   "command to resume") from None
            log.info("%s: %s; retrying (%d of %d)", entry.path, e, attempt, retries)
            time.sleep(backoff * min(2.0 ** (attempt - 1), 8.0))
            continue
        blob, digest, wrong = _verify(entry, part, expected)
        if wrong is not None:
            part.unlink()
            if resumed_from and fresh_tries:
                fresh_tries -= 1
                log.info("%s: resumed download does not verify; downloading it again from the start", entry.path)
                continue
            raise QtalignError(f"{url}: got {wrong}; the download was deleted (a truncated or changed file, or the "
                               "wrong --base-url)")
        size = part.stat().st_size
        os.replace(part, target)
        return FileStatus(entry.path, action, check, digest, size, blob)


# ---- which files ----------------------------------------------------------------------------------------------
def select_files(entries: Sequence[RemoteFile], tasks: Sequence[str] | None = None, split: str = "all"
                 ) -> list[RemoteFile]:
    """The entries of the tasks (emotion, snli, paws; None: all) and split (test: test files and the evaluation
    scripts; train: the tasks' own training items and every question-translation file; all)."""
    if split not in SPLITS:
        raise QtalignError(f"--split: unknown split {split!r} (choose from {', '.join(SPLITS)})")
    out = [e for e in entries if e.kind in SPLITS[split]]
    if tasks is not None:
        unknown = sorted(set(tasks) - set(SCRIPTS))
        if unknown:
            raise QtalignError(f"--only: unknown task(s) {', '.join(unknown)} (choose from {', '.join(SCRIPTS)})")
        scripts = {SCRIPTS[t].script for t in tasks}
        out = [e for e in out if e.path in scripts or e.path.split("/", 1)[0] in tasks]
    return out


# ---- all of it ------------------------------------------------------------------------------------------------
@dataclass
class FetchResult:
    dest: Path
    base_url: str
    files: list[FileStatus]
    demos: dict[str, Path]
    lock: Path


def fetch_paper(dest: str | Path, base_url: str | None = None, manifest: Manifest | None = None,
                tasks: Sequence[str] | None = None, demos: bool = True, retries: int = 3, timeout: float = 60.0,
                progress: bool = True, backoff: float = 1.0, split: str = "all") -> FetchResult:
    """Fetch the paper's files into DEST, verify each (its git blob id in the pinned commit's listing; its sha256,
    pinned or else recorded in DEST's lock), then write DEST/demos/{task}_demos.json from the scripts' literal
    tables. Every path is checked before anything is written."""
    man = manifest or load_manifest()
    dest = Path(dest)
    base = base_url or man.base_url
    if urllib.parse.urlparse(base).scheme not in ("http", "https", "file"):
        raise QtalignError(f"--base-url {base!r}: expected an http(s):// or file:// URL")
    entries = select_files(man.files, tasks, split)  # validates the selection before any request
    for e in entries:  # refuse escapes before touching the disk
        safe_target(dest, e.path)
        safe_target(dest, e.remote, "remote path")
    claim_out(dest, "--dest")  # the --out rule: one line when DEST cannot be a folder
    hold_folder(dest)
    lock = read_lock(dest)
    lock.update({"repository": man.repository, "commit": man.commit, "base_url": base})
    from tqdm.auto import tqdm

    known = sum(e.size or 0 for e in entries)
    bar = tqdm(total=known, unit="B", unit_scale=True, unit_divisor=1024, desc="paper files", disable=not progress,
               dynamic_ncols=True)
    statuses: list[FileStatus] = []
    try:
        for e in entries:
            bar.set_postfix_str(e.path, refresh=False)
            st = fetch_file(e, dest, base, lock, retries, timeout, bar if progress else None, backoff)
            if st.action == "present" and e.size:
                bar.update(e.size)
            statuses.append(st)
            lock["files"][e.path] = {"sha256": st.sha256, "blob": st.blob, "size": st.size,
                                     "url": base.rstrip("/") + "/" + e.remote,
                                     "check": "pinned" if e.sha256 else "recorded on first download"}
            atomic_write_json(dest / LOCK_NAME, lock)
            log.debug("%s: %s (%s)", e.path, st.action, st.check)
    finally:
        bar.close()
    written: dict[str, Path] = {}
    if demos:
        have = {e.path for e in entries}
        for task, spec in SCRIPTS.items():
            if spec.script not in have:
                continue
            out = build_demos(spec, dest, man.repository, man.commit)
            pinned = man.demo_tables_sha256.get(task)
            if pinned is not None and tables_digest(out) != pinned:
                raise QtalignError(f"{dest / spec.script}: its prompt tables differ from the pinned ones "
                                   f"(digest {tables_digest(out)[:12]}..., expected {pinned[:12]}...); demos not written")
            out["source"]["tables_sha256"] = tables_digest(out)
            path = dest / "demos" / f"{task}_demos.json"
            atomic_write_json(path, out)
            written[task] = path
    return FetchResult(dest, base, statuses, written, dest / LOCK_NAME)

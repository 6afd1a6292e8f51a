"""Download the paper's released data and evaluation scripts at a pinned commit: verified, resumable, atomic."""

from __future__ import annotations

import json
import logging
import os
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

from qtalign.errors import QtalignError
from qtalign.store import atomic_write_json, claim_out, hold_folder, sha256_file

log = logging.getLogger(__name__)

LOCK_NAME = "paper_files.lock.json"  # in DEST: every file's sha256, url and whether it was pinned or recorded
CHUNK = 1 << 16
USER_AGENT = "qtalign-data-fetch"


@dataclass(frozen=True)
class RemoteFile:
    path: str  # where it goes under DEST
    remote: str  # path in the repository at the pinned commit
    kind: str  # test, train or script
    sha256: str | None  # pinned; None = recorded on first download
    size: int | None


@dataclass
class Manifest:
    repository: str
    commit: str
    base_url: str
    files: list[RemoteFile]
    demo_tables_sha256: dict[str, str] = field(default_factory=dict)


def load_manifest(path: str | Path | None = None) -> Manifest:
    """The packaged table of the paper's files (qtalign/data/paper_files.json), or another file of that shape."""
    try:
        text = Path(path).read_text(encoding="utf-8") if path else \
            package_files("qtalign.data").joinpath("paper_files.json").read_text(encoding="utf-8")
        data = json.loads(text)
        entries = [RemoteFile(e["path"], e["remote"], e.get("kind", ""), e.get("sha256"), e.get("size"))
                   for e in data["files"]]
        return Manifest(data["repository"], data["commit"], data["base_url"], entries,
                        dict(data.get("demo_tables_sha256", {})))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise QtalignError(f"{path or 'paper_files.json'}: not a readable file table ({e})") from None


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
        raise QtalignError(f"{url}: HTTP {e.code} {e.reason} (is the file at this commit? is --base-url right?)") \
            from None
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
    action: str  # downloaded, resumed, present
    check: str  # pinned (matched the packaged sha256), locked (matched DEST's lock), recorded (first download)
    sha256: str
    size: int


def fetch_file(entry: RemoteFile, dest: Path, base_url: str, lock: dict[str, Any], retries: int = 3,
               timeout: float = 60.0, bar: Any = None, backoff: float = 1.0) -> FileStatus:
    """Download one file into DEST (via DEST/path.part, resumable), verify it, and move it into place atomically."""
    target = safe_target(dest, entry.path)
    safe_target(dest, entry.remote, "remote path")
    url = base_url.rstrip("/") + "/" + urllib.parse.quote(entry.remote)
    recorded = lock["files"].get(entry.path, {}).get("sha256") if entry.sha256 is None else None
    expected = entry.sha256 or recorded
    check = "pinned" if entry.sha256 else ("locked" if recorded else "recorded")
    if target.is_file():
        digest = sha256_file(target)
        if expected is not None and digest != expected:
            what = "the pinned value" if entry.sha256 else f"the one recorded in {dest / LOCK_NAME}"
            raise QtalignError(f"{target}: sha256 {digest[:12]}... differs from {what} ({expected[:12]}...); "
                               "delete the file to download it again")
        return FileStatus(entry.path, "present", check, digest, target.stat().st_size)
    part = target.with_name(target.name + ".part")
    fresh_tries = 1  # after a hash mismatch of a resumed file, one fresh download
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
        size = part.stat().st_size
        digest = sha256_file(part)
        bad = (entry.size is not None and size != entry.size) or (expected is not None and digest != expected)
        if bad:
            part.unlink()
            if resumed_from and fresh_tries:
                fresh_tries -= 1
                log.info("%s: resumed download does not verify; downloading it again from the start", entry.path)
                continue
            want = f"{entry.size} bytes, sha256 {expected}" if entry.size is not None else f"sha256 {expected}"
            raise QtalignError(f"{url}: got {size} bytes with sha256 {digest}, expected {want}; the download was "
                               f"deleted (a truncated or changed file, or the wrong --base-url)")
        os.replace(part, target)
        return FileStatus(entry.path, action, check, digest, size)


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
                progress: bool = True, backoff: float = 1.0) -> FetchResult:
    """Fetch the paper's files into DEST, verify each (pinned sha256, else DEST's lock), then write
    DEST/demos/{task}_demos.json from the scripts' literal tables. Every path is checked before anything is written."""
    from qtalign.data.paper_demos import SCRIPTS, build_demos, tables_digest

    man = manifest or load_manifest()
    dest = Path(dest)
    base = base_url or man.base_url
    if urllib.parse.urlparse(base).scheme not in ("http", "https", "file"):
        raise QtalignError(f"--base-url {base!r}: expected an http(s):// or file:// URL")
    entries = man.files
    if tasks is not None:
        unknown = sorted(set(tasks) - set(SCRIPTS))
        if unknown:
            raise QtalignError(f"--only: unknown task(s) {', '.join(unknown)} (choose from {', '.join(SCRIPTS)})")
        keep = {SCRIPTS[t].script for t in tasks} | {t + "/" for t in tasks}
        entries = [e for e in entries if e.path in keep or any(e.path.startswith(k) for k in keep if k.endswith("/"))]
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
            lock["files"][e.path] = {"sha256": st.sha256, "size": st.size, "url": base.rstrip("/") + "/" + e.remote,
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

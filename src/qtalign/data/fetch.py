"""Download the paper's released data and evaluation scripts at a pinned commit: verified, resumable, atomic."""

from __future__ import annotations

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

LOCK_NAME = "paper_files.lock.json"  # in DEST: every file's sha256, url and whether it was pinned or recorded
CHUNK = 1 << 16
USER_AGENT = "qtalign-data-fetch"
SPLITS: dict[str, tuple[str, ...]] = {"test": ("test", "script"), "train": ("train",), "all": ("test", "script", "train")}
# the repository's data folders and where their files go under DEST
FOLDERS: dict[str, str] = {"data/ap_emotion/": "emotion/", "data/snli/": "snli/", "data/paws/": "paws/"}
GITHUB_TREE = "https://api.github.com/repos/{repository}/git/trees/{commit}?recursive=1"


@dataclass(frozen=True)
class RemoteFile:
    path: str  # where it goes under DEST
    remote: str  # path in the repository at the pinned commit
    kind: str  # test, train or script
    sha256: str | None  # pinned; None = recorded on first download
    size: int | None
    listed: bool = True  # False: named by the paper's text or an issue, never seen in a listing of the repository;
    #                      at the pinned commit it may be absent, which is reported, not an error
    sources: tuple[str, ...] = ()  # question-translation files: the source languages of the questions
    target: str | None = None  # ... and the language they are translated into


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
        entries = [RemoteFile(e["path"], e["remote"], e.get("kind", ""), e.get("sha256"), e.get("size"),
                              bool(e.get("listed", True)), tuple(e.get("sources", ())), e.get("target"))
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


class _Absent(Exception):
    """The server has no such file (HTTP 404, or a file:// mirror without it)."""


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
        if e.code == 404:
            raise _Absent(f"HTTP 404 {e.reason}") from None
        raise QtalignError(f"{url}: HTTP {e.code} {e.reason} (is the file at this commit? is --base-url right?)") \
            from None
    except (TimeoutError, urllib.error.URLError, ConnectionError, HTTPException) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, FileNotFoundError):  # a file:// mirror without the file
            raise _Absent("no such file in the mirror") from None
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
    action: str  # downloaded, resumed, present; absent: an unlisted file the server does not have (nothing written)
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
        except _Absent as e:
            part.unlink(missing_ok=True)
            if entry.listed:
                hint = "" if "mirror" in str(e) else " (is the file at this commit? is --base-url right?)"
                raise QtalignError(f"{url}: {e}{hint}") from None
            return FileStatus(entry.path, "absent", "absent", "", 0)
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


# ---- which files ----------------------------------------------------------------------------------------------
def select_files(entries: Sequence[RemoteFile], tasks: Sequence[str] | None = None, split: str = "all"
                 ) -> list[RemoteFile]:
    """The entries of the tasks (emotion, snli, paws; None: all) and split (test: test files and the evaluation
    scripts; train: English training items and question-translation files; all)."""
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


def question_languages(name: str) -> tuple[str, ...]:
    """Source languages a released question file's name announces: snli_zh10k_train_question.json -> (zh,),
    emotion_zhes10k_question.json -> (zh, es); () for other names."""
    m = re.match(r"^[a-z]+_((?:[a-z]{2})+)\d*k?(?:_train)?_question\.jsonl?$", name)
    return tuple(m.group(1)[i : i + 2] for i in range(0, len(m.group(1)), 2)) if m else ()


def list_repository(tree_url: str, timeout: float = 60.0) -> dict[str, int]:
    """Repository path -> size of every file at the pinned commit, from a git tree listing
    ({"tree": [{"path", "type", "size"}], "truncated"}, as GitHub's API answers)."""
    try:
        req = urllib.request.Request(tree_url, headers={"User-Agent": USER_AGENT, "Accept": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            data = json.loads(resp.read().decode("utf-8"))
        tree = data["tree"]
        listing = {str(t["path"]): int(t.get("size") or 0) for t in tree if t.get("type") == "blob"}
    except (OSError, ValueError, KeyError, TypeError, HTTPException) as e:
        raise QtalignError(f"{tree_url}: no file listing ({getattr(e, 'reason', e)})") from None
    if data.get("truncated"):
        raise QtalignError(f"{tree_url}: the file listing is truncated")
    return listing


def apply_listing(entries: Sequence[RemoteFile], listing: dict[str, int]) -> tuple[list[RemoteFile], list[str]]:
    """The table checked against a listing of the commit: unlisted names it confirms become listed (with its size
    where none is pinned), unlisted names it lacks are dropped; training files of the data folders that the table lacks are
    added (trust on first use). Returns (entries, paths added)."""
    out: list[RemoteFile] = []
    for e in entries:
        if e.remote not in listing:
            if e.listed:  # kept: its download then fails with a message naming the URL
                out.append(e)
            continue
        size = e.size if e.size is not None else listing[e.remote]
        out.append(RemoteFile(e.path, e.remote, e.kind, e.sha256, size, True, e.sources, e.target))
    known = {e.remote for e in entries}
    added: list[str] = []
    for remote, size in sorted(listing.items()):
        folder = next((f for f in FOLDERS if remote.startswith(f)), None)
        name = remote.rsplit("/", 1)[-1]
        if folder is None or remote in known or "/" in remote[len(folder):]:
            continue
        if not name.endswith(("_train.json", "_train.jsonl", "_question.json", "_question.jsonl")):
            continue
        langs = question_languages(name)
        out.append(RemoteFile(FOLDERS[folder] + name, remote, "train", None, size, True, langs,
                              "en" if langs else None))
        added.append(FOLDERS[folder] + name)
    return out, added


# ---- all of it ------------------------------------------------------------------------------------------------
@dataclass
class FetchResult:
    dest: Path
    base_url: str
    files: list[FileStatus]
    demos: dict[str, Path]
    lock: Path
    listing: str = "not used"  # how the table was checked against the repository's file listing
    discovered: list[str] = field(default_factory=list)  # files the listing had and the table lacked


def fetch_paper(dest: str | Path, base_url: str | None = None, manifest: Manifest | None = None,
                tasks: Sequence[str] | None = None, demos: bool = True, retries: int = 3, timeout: float = 60.0,
                progress: bool = True, backoff: float = 1.0, split: str = "all", discover: bool | None = None,
                tree_url: str | None = None) -> FetchResult:
    """Fetch the paper's files into DEST, verify each (pinned sha256, else DEST's lock), then write
    DEST/demos/{task}_demos.json from the scripts' literal tables. Every path is checked before anything is written.

    discover: first list the repository at the pinned commit (tree_url; default GitHub's API) so that training files
    the table lacks are fetched too and unlisted names it lacks are skipped; None = only when fetching from the
    table's own base URL. A listing that cannot be had is logged and the table is used as it is."""
    man = manifest or load_manifest()
    dest = Path(dest)
    base = base_url or man.base_url
    if urllib.parse.urlparse(base).scheme not in ("http", "https", "file"):
        raise QtalignError(f"--base-url {base!r}: expected an http(s):// or file:// URL")
    entries = select_files(man.files, tasks, split)  # validates the selection before any request
    listing_note, discovered = "not used", []
    if discover if discover is not None else base.rstrip("/") == man.base_url.rstrip("/"):
        url = tree_url or GITHUB_TREE.format(repository=man.repository, commit=man.commit)
        try:
            checked, discovered = apply_listing(man.files, list_repository(url, timeout))
            entries = select_files(checked, tasks, split)
            discovered = [p for p in discovered if p in {e.path for e in entries}]
            listing_note = f"checked against {url}"
        except QtalignError as e:
            log.warning("%s; fetching the files of qtalign's table as they are", e)
            listing_note = f"unavailable ({e})"
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
            if st.action == "absent":
                log.info("%s: not in the repository at this commit (an unlisted name); skipped", e.remote)
                continue
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
    return FetchResult(dest, base, statuses, written, dest / LOCK_NAME, listing_note, discovered)

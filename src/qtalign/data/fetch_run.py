"""The data-fetch entry: FetchSettings in, the paper's files fetched and checked (or only listed), a summary out."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from qtalign.errors import QtalignError
from qtalign.settings import Settings

if TYPE_CHECKING:
    from qtalign.data.fetch import FetchResult, RemoteFile


class FetchSettings(Settings):
    """What `qtalign data fetch paper` fetches (or lists), where to, and how patiently."""

    dest: str | None = None  # required unless list_files
    base_url: str | None = None  # a mirror serving the repository's files by path (None: GitHub at the pinned commit)
    only: list[str] | None = None  # tasks: emotion, snli, paws (None: all)
    split: Literal["test", "train", "all"] = "all"
    list_files: bool = False  # print the selected files of the table (nothing downloaded, no DEST needed)
    demos: bool = True  # write DEST/demos/
    retries: int = 3
    timeout: float = 60.0
    progress: bool = True


@dataclass
class FetchOutcome:
    """A finished fetch (every file's status), or the selected table entries when only listing."""

    commit: str
    result: FetchResult | None = None
    listed: list[RemoteFile] = field(default_factory=list)

    def summary(self) -> str:
        return summary(self.result, self.commit) if self.result is not None else listing(self.listed)


def run(s: FetchSettings) -> FetchOutcome:
    """Fetch the paper's files into s.dest (data.fetch.fetch_paper with the packaged table; rerun to resume), or with
    s.list_files only select and list them."""
    from qtalign.data.fetch import fetch_paper, load_manifest, select_files

    if s.only is not None and not s.only:
        raise QtalignError("--only: give at least one task (emotion, snli, paws)")
    if s.retries < 0:
        raise QtalignError("--retries must be >= 0")
    man = load_manifest()
    if s.list_files:
        return FetchOutcome(man.commit, listed=select_files(man.files, s.only, s.split))
    if not s.dest:
        raise QtalignError("--dest: required (the folder to fill), unless --list")
    result = fetch_paper(Path(s.dest), s.base_url, man, s.only, s.demos, s.retries, s.timeout, progress=s.progress,
                         split=s.split)
    return FetchOutcome(man.commit, result)


LIST_COLUMNS = ("path", "kind", "sources", "target", "size", "git_blob")


def listing(entries: list[RemoteFile]) -> str:
    """The entries as tab-separated lines under a header (LIST_COLUMNS): sources comma-joined, '?' where a question
    file's name does not say its languages, '-' for files that are not question files and for unknown sizes."""
    lines = ["\t".join(LIST_COLUMNS)]
    for e in entries:
        question = e.kind == "question"
        sources = ",".join(e.sources) if e.sources else ("?" if question else "-")
        target = e.target or ("?" if question else "-")
        size = str(e.size) if e.size is not None else "-"
        lines.append(f"{e.path}\t{e.kind}\t{sources}\t{target}\t{size}\t{e.blob}")
    return "\n".join(lines)


def summary(result: FetchResult, commit: str) -> str:
    """What was fetched and how each file was checked, in a few lines."""
    files = result.files
    actions = {a: sum(f.action == a for f in files) for a in ("downloaded", "resumed", "present")}
    pinned = [f for f in files if f.check == "pinned"]
    locked = [f for f in files if f.check == "locked"]
    recorded = [f for f in files if f.check == "recorded"]
    lines = [f"paper files ({commit[:7]}) -> {result.dest}: {len(files)} files; "
             + ", ".join(f"{n} {a}" for a, n in actions.items() if n),
             f"  git blob id: all {len(files)} match the pinned commit's file listing",
             f"  sha256: {len(pinned)} matched qtalign's pinned hashes"
             + (f", {len(locked)} matched the hashes recorded in {result.lock}" if locked else "")]
    if recorded:
        lines.append(f"  {len(recorded)} file(s) have no pinned sha256: it was recorded now in {result.lock} "
                     "and later runs check them against it:")
        lines += textwrap.wrap(", ".join(f.path for f in recorded), 116, initial_indent="    ",
                               subsequent_indent="    ")
    for task, path in result.demos.items():
        lines.append(f"  demos: {task} -> {path}")
    return "\n".join(lines)

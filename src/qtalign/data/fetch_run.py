"""The data-fetch entry: FetchSettings in, the paper's files fetched and checked, a summary of what was done out."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from qtalign.errors import QtalignError
from qtalign.settings import Settings

if TYPE_CHECKING:
    from qtalign.data.fetch import FetchResult


class FetchSettings(Settings):
    """What `qtalign data fetch paper` fetches, where to, and how patiently."""

    dest: str
    base_url: str | None = None  # a mirror serving the repository's files by path (None: GitHub at the pinned commit)
    only: list[str] | None = None  # tasks: emotion, snli, paws (None: all)
    split: Literal["test", "train", "all"] = "all"
    listing: bool = True  # ask GitHub for the repository's file listing (only when fetching from GitHub)
    demos: bool = True  # write DEST/demos/
    retries: int = 3
    timeout: float = 60.0
    progress: bool = True


@dataclass
class FetchOutcome:
    """A finished fetch: every file's status and the pinned commit it came from."""

    result: FetchResult
    commit: str

    def summary(self) -> str:
        return summary(self.result, self.commit)


def run(s: FetchSettings) -> FetchOutcome:
    """Fetch the paper's files into s.dest (data.fetch.fetch_paper with the packaged manifest); rerun to resume."""
    from qtalign.data.fetch import fetch_paper, load_manifest

    if s.only is not None and not s.only:
        raise QtalignError("--only: give at least one task (emotion, snli, paws)")
    if s.retries < 0:
        raise QtalignError("--retries must be >= 0")
    man = load_manifest()
    result = fetch_paper(Path(s.dest), s.base_url, man, s.only, s.demos, s.retries, s.timeout, progress=s.progress,
                         split=s.split, discover=None if s.listing else False)
    return FetchOutcome(result, man.commit)


def summary(result: FetchResult, commit: str) -> str:
    """What was fetched and how each file was checked, in a few lines."""
    absent = [f.path for f in result.files if f.action == "absent"]
    files = [f for f in result.files if f.action != "absent"]
    actions = {a: sum(f.action == a for f in files) for a in ("downloaded", "resumed", "present")}
    pinned = [f for f in files if f.check == "pinned"]
    locked = [f for f in files if f.check == "locked"]
    recorded = [f for f in files if f.check == "recorded"]
    lines = [f"paper files ({commit[:7]}) -> {result.dest}: {len(files)} files; "
             + ", ".join(f"{n} {a}" for a, n in actions.items() if n),
             f"  sha256: {len(pinned)} matched qtalign's pinned hashes"
             + (f", {len(locked)} matched the hashes recorded in {result.lock}" if locked else "")]
    if recorded:
        names = ", ".join(f.path for f in recorded)
        lines.append(f"  {len(recorded)} file(s) have no pinned hash yet: their sha256 was RECORDED now in {result.lock} "
                     "(trust on first download) and later runs check them against it:")
        lines += textwrap.wrap(names, 116, initial_indent="    ", subsequent_indent="    ")
    if result.discovered:
        lines.append(f"  {len(result.discovered)} training file(s) not in qtalign's table were found in the "
                     f"repository's listing and fetched: " + ", ".join(result.discovered))
    if absent:
        lines.append(f"  {len(absent)} file(s) named in qtalign's table but never confirmed by a listing are not at "
                     "this commit (skipped):")
        lines += textwrap.wrap(", ".join(absent), 116, initial_indent="    ", subsequent_indent="    ")
    if result.listing != "not used":
        lines.append(f"  file listing: {result.listing}")
    for task, path in result.demos.items():
        lines.append(f"  demos: {task} -> {path}")
    return "\n".join(lines)

"""`qtalign data fetch paper`: download the paper's released data and scripts (pinned commit) and extract its demos."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import Any

from qtalign.errors import QtalignError


def add_fetch_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "fetch", help="download the paper's test/training files and evaluation scripts, verify, extract demos",
        description="Download the released test files, training files (English items and every question-translation "
                    "file and mix) and the three English-label evaluation scripts of "
                    "Shimao-Zhang/LLM-Multilingual-Learner at a pinned commit into DEST (emotion/, snli/, paws/, "
                    "scripts/); check each file's sha256; resume partial downloads (DEST/**/*.part); then write "
                    "DEST/demos/{emotion,snli,paws}_demos.json from the scripts' literal prompt tables (parsed, never "
                    "run). docs/data-fetch.md lists every file and what each mix is.")
    p.add_argument("source", choices=["paper"], help="what to fetch (paper: Zhang et al. 2024)")
    p.add_argument("--dest", required=True, help="folder to fill (created); rerun to resume")
    p.add_argument("--base-url", default=None,
                   help="mirror serving the repository's files by path (default: raw.githubusercontent.com at the "
                        "pinned commit)")
    p.add_argument("--only", default=None, help="comma list of tasks: emotion, snli, paws (default: all)")
    p.add_argument("--split", choices=["test", "train", "all"], default="all",
                   help="test: test files and evaluation scripts (and demos); train: English training items and "
                        "question-translation files; all (default)")
    p.add_argument("--no-listing", action="store_true",
                   help="do not ask GitHub for the repository's file listing at the pinned commit (by default, when "
                        "fetching from GitHub, it adds training files qtalign's table lacks and skips names the "
                        "commit does not have)")
    p.add_argument("--no-demos", action="store_true", help="do not write DEST/demos/")
    p.add_argument("--retries", type=int, default=3, help="retries per file after a dropped connection (default 3)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a retry (default 60)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_fetch)
    return p


def run_fetch(args: argparse.Namespace) -> int:
    from qtalign.data.fetch import fetch_paper, load_manifest

    tasks = None
    if args.only:
        tasks = [t.strip() for t in args.only.split(",") if t.strip()]
        if not tasks:
            raise QtalignError("--only: give at least one task (emotion, snli, paws)")
    if args.retries < 0:
        raise QtalignError("--retries must be >= 0")
    man = load_manifest()
    result = fetch_paper(Path(args.dest), args.base_url, man, tasks, not args.no_demos, args.retries, args.timeout,
                         progress=not args.no_progress, split=args.split,
                         discover=False if args.no_listing else None)
    print(summary(result, man.commit))
    return 0


def summary(result: Any, commit: str) -> str:
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

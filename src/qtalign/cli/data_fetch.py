"""`qtalign data fetch paper`: download the paper's released data and scripts (pinned commit) and extract its demos."""

from __future__ import annotations

import argparse
from typing import Any


def add_fetch_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "fetch", help="download the paper's test/training files and evaluation scripts, verify, extract demos",
        description="Download every data file of Shimao-Zhang/LLM-Multilingual-Learner at a pinned commit (test "
                    "files, English training items, every question-translation file and mix, by the names of the "
                    "commit's file listing) and the three English-label evaluation scripts into DEST (emotion/, "
                    "snli/, paws/, scripts/); check each file's git blob id against the listing and its sha256 "
                    "(pinned, or recorded in DEST on first download); resume partial downloads (DEST/**/*.part); "
                    "then write DEST/demos/{emotion,snli,paws}_demos.json from the scripts' literal prompt tables "
                    "(parsed, never run). --list prints the selected files (languages, sizes, blob ids) without "
                    "downloading. docs/data-fetch.md lists every file and what each mix is.")
    p.add_argument("source", choices=["paper"], help="what to fetch (paper: Zhang et al. 2024)")
    p.add_argument("--dest", default=None, help="folder to fill (created); rerun to resume; required unless --list")
    p.add_argument("--base-url", default=None,
                   help="mirror serving the repository's files by path (default: raw.githubusercontent.com at the "
                        "pinned commit)")
    p.add_argument("--only", default=None, help="comma list of tasks: emotion, snli, paws (default: all)")
    p.add_argument("--split", choices=["test", "train", "all"], default="all",
                   help="test: test files and evaluation scripts (and demos); train: English training items and "
                        "question-translation files; all (default)")
    p.add_argument("--list", action="store_true",
                   help="print the selected files as tab-separated lines (path, kind, sources, target, size, git "
                        "blob id) and download nothing")
    p.add_argument("--no-demos", action="store_true", help="do not write DEST/demos/")
    p.add_argument("--retries", type=int, default=3, help="retries per file after a dropped connection (default 3)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a retry (default 60)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_fetch)
    return p


def run_fetch(args: argparse.Namespace) -> int:
    from qtalign.data.fetch_run import FetchSettings
    from qtalign.data.fetch_run import run as fetch

    only = [t.strip() for t in args.only.split(",") if t.strip()] if args.only else None
    settings = FetchSettings.parse({"dest": args.dest, "base_url": args.base_url, "only": only, "split": args.split,
                                    "list_files": args.list, "demos": not args.no_demos,
                                    "retries": args.retries, "timeout": args.timeout,
                                    "progress": not args.no_progress}, "command line")
    print(fetch(settings).summary())
    return 0

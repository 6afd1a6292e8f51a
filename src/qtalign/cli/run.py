"""`qtalign run STUDY.yaml`: plan a whole study as cached steps and run what is not done yet."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run", help="run a study config (build -> train -> eval -> compare -> analyses -> report), cached per step",
        description="Plan a study as steps, print the plan, and run every step that is not cached yet. Each "
                    "finished step is kept under a hash of its inputs, so a rerun after a crash or an edit redoes "
                    "only what changed. See docs/study.md.")
    p.add_argument("config", help="study YAML/JSON file, or preset:NAME (qtalign run --presets lists them)",
                   nargs="?")
    p.add_argument("--out", default=None, help="study folder (default: runs/<name> from the config)")
    p.add_argument("--data-root", default=None,
                   help="folder that relative data paths in the config resolve against (default: the config's "
                        "folder; for presets the current directory)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    p.add_argument("--verify", action="store_true",
                   help="check every finished step's outputs against the sizes and sha256 its marker recorded, run "
                        "nothing, list what fails (exit status 1 when a finished step would not be reused)")
    p.add_argument("--presets", action="store_true", help="list the shipped presets and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bars inside steps")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qtalign.study.entry import StudySettings, verify
    from qtalign.study.entry import run as run_study
    from qtalign.study.summary import preset_lines

    if args.presets:
        for line in preset_lines():
            print(line)
        return 0
    settings = StudySettings.parse({"config": args.config, "out": args.out, "data_root": args.data_root,
                                    "dry_run": args.dry_run, "verify": args.verify,
                                    "progress": not args.no_progress}, "command line")
    if settings.verify:
        return 0 if verify(settings) else 1
    run_study(settings)
    return 0

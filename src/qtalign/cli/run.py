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
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="run up to N independent steps at a time, each in a process of its own (CPU threads divided "
                        "among them, one GPU per step round-robin); default 1: one after another in this process. "
                        "With --engine: at most N jobs submitted at a time (default: every ready step)")
    p.add_argument("--engine", choices=["slurm", "submitit-local"], default=None,
                   help="run each step as a job of a cluster engine through submitit: slurm, or submitit-local "
                        "(its local executor: one machine, no Slurm); the study folder must be on a filesystem "
                        "every node sees (docs/distributed.md)")
    p.add_argument("--engine-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a submitit parameter of every job, repeatable: e.g. slurm_partition=gpu, timeout_min=240, "
                        "mem_gb=64, cpus_per_task=8, slurm_account=NAME, slurm_setup=['source .venv/bin/activate']")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qtalign.study.entry import StudySettings
    from qtalign.study.entry import run as run_study
    from qtalign.study.summary import preset_lines

    if args.presets:
        for line in preset_lines():
            print(line)
        return 0
    settings = StudySettings.parse({"config": args.config, "out": args.out, "data_root": args.data_root,
                                    "dry_run": args.dry_run, "verify": args.verify, "jobs": args.jobs,
                                    "engine": args.engine, "engine_options": args.engine_option}, "command line")
    result = run_study(settings, progress=print if args.no_progress else True)  # the plan and steps as they run
    for line in result.lines():
        print(line)
    return 1 if result.verified is False else 0

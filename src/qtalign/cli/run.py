"""`qtalign run STUDY.yaml`: plan a whole study as cached steps and run what is not done yet."""

from __future__ import annotations

import argparse
from pathlib import Path
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
    p.add_argument("--presets", action="store_true", help="list the shipped presets and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bars inside steps")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qtalign.errors import QtalignError
    from qtalign.study.config import config_path, load_study, presets
    from qtalign.study.runner import run_study

    if args.presets:
        for name in presets():
            path, _ = config_path(f"preset:{name}")
            first = next((ln[2:].strip() for ln in path.read_text(encoding="utf-8").splitlines()
                          if ln.startswith("# ")), "")
            print(f"preset:{name:<16} {first}")
        return 0
    if not args.config:
        raise QtalignError("give a study config file or preset:NAME (see --presets)")
    cfg = load_study(args.config, data_root=args.data_root)
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    print(f"study {cfg.name!r} -> {out}")
    run_study(cfg, out, dry_run=args.dry_run, progress=not args.no_progress)
    if args.dry_run:
        return 0
    print_gains(out)
    report = out / "report" / "report.html"
    if report.is_file():
        print(f"report: {report}")
    return 0


def print_gains(out: Path, most: int = 30) -> None:
    """Mean gain (points, paired 95% interval) of every comparison the study holds, raw and calibrated."""
    import json

    from qtalign.study.demo import gain_line

    doc = json.loads((out / "study.json").read_text(encoding="utf-8"))
    rows = [(c["id"].split(":", 1)[1], out / c["out"] / "compare.json") for c in doc.get("compares", [])]
    rows = [(name, path) for name, path in rows if path.is_file()]
    if rows:
        print("mean gain over languages, points [paired 95% CI]:")
    for name, path in rows[:most]:
        print(f"  {name}: {gain_line(path)}")
    if len(rows) > most:
        print(f"  ... and {len(rows) - most} more in the report")

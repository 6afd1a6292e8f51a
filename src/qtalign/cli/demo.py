"""`qtalign demo`: the whole loop on CPU with the packaged model and shipped data, ending with the headline."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo", help="the whole loop on the packaged Gemma 3 270M: eval, tune, eval, compare, lens, report",
        description="Base evaluation -> zh/es => en question-translation LoRA -> tuned evaluation -> paired "
                    "comparison -> logit lens -> report, on the sentiment sample and question texts shipped with "
                    "qtalign (about 10-15 minutes on 2 CPU cores). A rerun reuses every finished step.")
    p.add_argument("--data", default=None,
                   help="run the same demo on the paper's data layout instead (a folder with emotion/ and snli/)")
    p.add_argument("--out", default=None, help="study folder (default: runs/demo, or runs/demo-paper with --data)")
    p.add_argument("--model", default=None, help="another model than the packaged gemma-3-270m")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N items per language")
    p.add_argument("--pairs", type=int, default=None, help="question pairs per source language (default: the "
                                                            "preset's)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    p.add_argument("--no-progress", action="store_true", help="no progress bars inside steps")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from qtalign.runs.build import manifest_path
    from qtalign.study.demo import demo_config, gain_line, headline
    from qtalign.study.runner import run_study
    from qtalign.study.steps import PAIRS

    cfg = demo_config(args.data, args.model, args.limit, args.pairs)
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    print(f"qtalign demo -> {out}")
    t0 = time.perf_counter()
    summary = run_study(cfg, out, dry_run=args.dry_run, progress=not args.no_progress)
    if args.dry_run:
        return 0
    doc = json.loads((out / "study.json").read_text(encoding="utf-8"))
    vs_base = [c for c in doc["compares"] if c["kind"] == "vs-base"]
    ran = "" if summary.nothing_to_do else f" in {time.perf_counter() - t0:.0f} s"
    print(f"\ndemo finished{ran}")
    report = out / "report" / "report.html"
    if report.is_file():
        print(f"report: {report}")
    if vs_base:
        m = cfg.mixes[0]
        n_pairs = sum(sum(json.loads(manifest_path(out / s["out"] / PAIRS).read_text())["counts"].values())
                      for s in doc["steps"] if s["id"] == f"build:{m.name}")  # the real mix, not its control
        print(f"{cfg.models[0].key}, {'/'.join(m.sources)} => {m.target} question translation ({n_pairs} pairs), "
              f"sentiment in {len(cfg.eval.langs)} languages; tuned vs base, paired on the same items:")
        for line in headline(out / vs_base[0]["out"] / "compare.json"):
            print(line)
    for c in doc["compares"]:
        if c["kind"] == "vs-control" and (out / c["out"] / "compare.json").is_file():
            print(f"{c['control']} control (the same questions, not translated) minus {c['mix']}, same seed, paired "
                  f"on the same items: {gain_line(out / c['out'] / 'compare.json')}")
    if not any(c["kind"] == "vs-control" for c in doc["compares"]):
        print("no control mix was run: the change above may not be specific to question translation "
              "(docs/controls.md)")
    return 0

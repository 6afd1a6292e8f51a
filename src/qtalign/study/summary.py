"""What `qtalign run` and `qtalign demo` print after a study: the presets, the mean gains, the demo's headline."""

from __future__ import annotations

import time
from pathlib import Path

from qtalign.data.build_files import read_manifest
from qtalign.runs.compare import COMPARE_JSON
from qtalign.runs.study import read_study
from qtalign.study.schema import StudyConfig


def preset_lines() -> list[str]:
    """One line per shipped preset: its name and the first comment line of its file."""
    from qtalign.study.config import config_path, presets

    lines = []
    for name in presets():
        path, _ = config_path(f"preset:{name}")
        first = next((ln[2:].strip() for ln in path.read_text(encoding="utf-8").splitlines()
                      if ln.startswith("# ")), "")
        lines.append(f"preset:{name:<16} {first}")
    return lines


def report_lines(out: Path) -> list[str]:
    """The report's path, when the study has one."""
    report = out / "report" / "report.html"
    return [f"report: {report}"] if report.is_file() else []


def gain_lines(out: Path, most: int = 30) -> list[str]:
    """Mean gain (points, paired 95% interval) of every comparison the study holds, raw and calibrated."""
    from qtalign.study.demo import gain_line

    doc = read_study(out)
    rows = [(c["id"].split(":", 1)[1], out / c["out"] / COMPARE_JSON) for c in doc.get("compares", [])]
    rows = [(name, path) for name, path in rows if path.is_file()]
    lines = ["mean gain over languages, points [paired 95% CI]:"] if rows else []
    lines += [f"  {name}: {gain_line(path)}" for name, path in rows[:most]]
    if len(rows) > most:
        lines.append(f"  ... and {len(rows) - most} more in the report")
    return lines


def demo_lines(cfg: StudyConfig, out: Path, started: float | None) -> list[str]:
    """The demo's closing account: how long it ran (started: its time.perf_counter() start; None when every step was
    cached), the report, the tuned-vs-base headline and the control's comparison."""
    from qtalign.study.demo import gain_line, headline
    from qtalign.study.steps import PAIRS

    doc = read_study(out)
    vs_base = [c for c in doc["compares"] if c["kind"] == "vs-base"]
    ran = "" if started is None else f" in {time.perf_counter() - started:.0f} s"
    lines = [f"\ndemo finished{ran}", *report_lines(out)]
    if vs_base:
        m = cfg.mixes[0]
        n_pairs = sum(sum(read_manifest(out / s["out"] / PAIRS, strict=True)["counts"].values())
                      for s in doc["steps"] if s["id"] == f"build:{m.name}")  # the real mix, not its control
        lines.append(f"{cfg.models[0].key}, {'/'.join(m.sources)} => {m.target} question translation ({n_pairs} "
                     f"pairs), sentiment in {len(cfg.eval.langs)} languages; tuned vs base, paired on the same items:")
        lines += headline(out / vs_base[0]["out"] / COMPARE_JSON)
    for c in doc["compares"]:
        if c["kind"] == "vs-control" and (out / c["out"] / COMPARE_JSON).is_file():
            # the runner compares the control (other) with its real mix (base): read as real minus control
            lines.append(f"{c['mix']} minus its {c['control']} control (the same questions, not translated), same "
                         f"seed, paired on the same items: {gain_line(out / c['out'] / COMPARE_JSON, reverse=True)}")
    if not any(c["kind"] == "vs-control" for c in doc["compares"]):
        lines.append("no control mix was run: the change above may not be specific to question translation "
                     "(docs/controls.md)")
    return lines

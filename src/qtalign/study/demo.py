"""The embedded demo as a study: the demo preset (shipped data) or the same loop on the paper's data layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtalign.errors import QtalignError
from qtalign.runs.compare import read_compare
from qtalign.settings import load_config_file
from qtalign.study.config import config_path, load_study
from qtalign.study.schema import StudyConfig

DEMO_PRESET = "preset:demo"


def demo_config(data: str | None = None, model: str | None = None, limit: int | None = None,
                pairs: int | None = None) -> StudyConfig:
    """The demo study. data: a folder in the paper's layout (emotion/ test files, snli/ with the released zh/es
    question files): sentiment is evaluated on its emotion files and the zh/es => en pairs come from its SNLI
    question files (cross-task, contamination-checked against its SNLI test files)."""
    raw = load_config_file(config_path(DEMO_PRESET)[0])
    over: dict[str, Any] = {}
    if data is not None:
        root = Path(data)
        for sub in ("emotion", "snli"):
            if not (root / sub).is_dir():
                raise QtalignError(f"--data {data}: expected the paper's layout with {sub}/ inside (see "
                                   "../shared/data/paper/README.md or `qtalign data fetch`)")
        over["mixes"] = [{**m, "task": "nli", "data": str(root / "snli"), "exclude": str(root / "snli")}
                         for m in raw["mixes"]]
        over["eval"] = {**raw["eval"], "tasks": {"emotion": str(root / "emotion")}}
        over["name"] = "demo-paper"
    if pairs is not None:
        over["mixes"] = [{**m, "per_lang": pairs} for m in over.get("mixes", raw["mixes"])]
    if model is not None:
        over["models"] = [model]
    if limit is not None:
        over["eval"] = {**over.get("eval", raw["eval"]), "limit": limit}
    return load_study(DEMO_PRESET, overrides=over)


def _pts(x: float) -> str:
    return f"{100 * x:+.1f}"


def _first_comparison(compare_json: Path) -> tuple[list[str], dict[str, Any]]:
    """The scoring modes (raw first, then calibration modes) and the first comparison of a compare.json."""
    doc = read_compare(compare_json)
    return list(doc.get("modes", ["raw"])), doc["comparisons"][0]


def headline(compare_json: Path) -> list[str]:
    """Lines for the mean gain of the tuned run over the base run, raw and each calibration mode, from compare.json."""
    modes, comp = _first_comparison(compare_json)
    scheme = (comp["scores"][modes[0]]["mean"].get("resampling") or {}).get("text")
    lines = [f"  intervals of the mean over languages: {scheme or 'resampling scheme not recorded'}"]
    for mode in modes:
        m = comp["scores"][mode]["mean"]
        lo, hi = m["ci95"]
        verdict = ("interval excludes 0" if m.get("excludes_zero") else "interval includes 0: no clear effect")
        name = "raw" if mode == "raw" else f"calibrated ({mode})"
        power = f"; detectable at 80% power: ±{100 * m['mde80']:.1f}" if m.get("mde80") is not None else ""
        lines.append(f"  {name:<22} mean accuracy {m['base']:.3f} -> {m['other']:.3f}: gain {_pts(m['diff'])} points "
                     f"[95% CI {_pts(lo)}, {_pts(hi)}] ({verdict}{power})")
    shares = comp["scores"]["raw"].get("predicted_share") or {}
    if shares:
        lines.append("  predicted-label share (mean over languages): " + ", ".join(
            f"{label} {v['base']:.2f} -> {v['other']:.2f}" for label, v in shares.items()))
    return lines


def gain_line(compare_json: Path, *, reverse: bool = False) -> str:
    """One line per comparison: the mean gain with its interval in each scoring mode (raw, calibrated); reverse: read
    as base minus other (the difference negated, its interval reversed: the same numbers, the other sign)."""
    modes, comp = _first_comparison(compare_json)
    parts = []
    for mode in modes:
        m = comp["scores"][mode]["mean"]
        diff, (lo, hi) = m["diff"], m["ci95"]
        if reverse:
            diff, lo, hi = 0.0 - diff, 0.0 - hi, 0.0 - lo  # 0.0 - x: no "-0.0"
        parts.append(f"{mode} {_pts(diff)} [{_pts(lo)}, {_pts(hi)}]")
    scheme = comp["scores"][modes[0]]["mean"].get("resampling")
    return "; ".join(parts) + (f" ({scheme['scheme']} resampling)" if scheme else "")

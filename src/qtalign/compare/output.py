"""A comparison as text: the printed tables, compare.md, and compare.json / compare.md written to a folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qtalign.compare.pairs import ALPHA, POWER
from qtalign.compare.runs import RAW
from qtalign.runs.compare import COMPARE_JSON, COMPARE_MD
from qtalign.store import atomic_write_json, atomic_write_text


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None or not np.isfinite(x):
        return "–"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def _p(p: float) -> str:
    return "1" if p >= 0.9995 else (f"{p:.3f}" if p >= 0.001 else f"{p:.1e}")


def _ci(ci: Sequence[float]) -> str:
    return f"[{_pct(ci[0], True)}, {_pct(ci[1], True)}]"


def _mode_title(mode: str) -> str:
    return "raw" if mode == RAW else f"calibrated ({mode})"


def _comparison_rows(c: dict[str, Any], mode: str) -> tuple[list[str], list[list[str]]]:
    s = c["scores"][mode]
    head = ["lang", "n", c["base"], c["other"], "diff", "95% CI", "b/c", "p", "p Holm", "", "seen"]
    rows = []
    for lang, v in s["languages"].items():
        seen = "" if v["seen"] is None else ("seen" if v["seen"] else "unseen")
        rows.append([lang, str(v["n"]), _pct(v["base"]), _pct(v["other"]), _pct(v["diff"], True), _ci(v["ci95"]),
                     f"{v['base_only']}/{v['other_only']}", _p(v["p"]), _p(v["p_holm"]), v["mark"], seen])
    m = s["mean"]
    rows.append(["mean", "", _pct(m["base"]), _pct(m["other"]), _pct(m["diff"], True), _ci(m["ci95"]),
                 "", "", "", "", ""])
    for group in ("seen", "unseen"):
        g = s.get(group)
        if g:
            rows.append([f"{group} ({len(g['langs'])})", "", "", "", _pct(g["diff"], True), _ci(g["ci95"]),
                         "", "", "", "", ""])
    return head, rows


def _shift_rows(c: dict[str, Any], mode: str, labels: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    s = c["scores"][mode]
    head = ["lang"] + [f"{label} share" for label in labels]
    rows = []
    for lang, v in list(s["languages"].items()) + [("mean", {"predicted_share": s["predicted_share"]})]:
        cells = [lang]
        for lb in labels:
            x = v["predicted_share"][lb]
            ci = f" {_ci(x['change_ci95'])}" if x.get("change_ci95") else ""
            cells.append(f"{_pct(x['base'])} → {_pct(x['other'])} ({_pct(x['change'], True)}{ci})")
        rows.append(cells)
    return head, rows


def _text_table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = lambda r: "  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(head)] + [fmt(r) for r in rows])


def md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table (cells' '|' escaped)."""
    esc = lambda x: str(x).replace("|", "\\|")
    lines = ["| " + " | ".join(esc(h) for h in head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(esc(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


LEGEND = ("accuracy in %; diff = other - base (points) with a paired bootstrap 95% interval; b/c = items only the "
          "base / only the other got right; p = exact McNemar; p Holm = Holm-corrected over languages; "
          "* p Holm < 0.05, ** < 0.01, *** < 0.001")


def _summary_line(c: dict[str, Any], mode: str) -> str:
    s = c["scores"][mode]
    m = s["mean"]
    sig = sum(v["significant"] for v in s["languages"].values())
    up = sum(v["significant"] and v["diff"] > 0 for v in s["languages"].values())
    parts = [f"mean {_pct(m['base'])} → {_pct(m['other'])} ({_pct(m['diff'], True)} {_ci(m['ci95'])})",
             f"{sig} of {len(s['languages'])} languages significant ({up} up, {sig - up} down)"]
    for group in ("seen", "unseen"):
        g = s.get(group)
        if g:
            parts.append(f"{group} {_pct(g['diff'], True)} {_ci(g['ci95'])}")
    return "; ".join(parts)


def power_line(mean: dict[str, Any], alpha: float = ALPHA, power: float = POWER) -> str:
    """How small a mean change this design could detect: reads 'not significant' correctly."""
    if mean.get("mde80") is None or not np.isfinite(mean["mde80"]):
        return "power: not computed for this comparison"
    return (f"power: the smallest mean change this design detects at {100 * power:.0f}% power (two-sided α = {alpha}) "
            f"is ±{100 * mean['mde80']:.1f} points (from the bootstrap SD of the mean difference, "
            f"{100 * mean['sd']:.1f}); a true change smaller than that will often come out not significant")


def scheme_line(result: dict[str, Any]) -> str:
    """Which resampling the means' intervals used ('' for a compare.json written before it was recorded)."""
    r = result.get("resampling")
    return f"intervals of means over languages: {r['text']}" if r else ""


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def format_compare(result: dict[str, Any]) -> str:
    """The printed tables: per comparison and scoring mode, per language, then the prior shift."""
    out = [f"task {result['task']}; {LEGEND}"]
    if scheme_line(result):
        out.append(scheme_line(result))
    for c in result["comparisons"]:
        for mode in result["modes"]:
            out.append(f"\n{c['other']} vs {c['base']}, {_mode_title(mode)}: {_summary_line(c, mode)}")
            out.append(power_line(c["scores"][mode]["mean"], result.get("alpha", ALPHA), result.get("power", POWER)))
            out.append(_text_table(*_comparison_rows(c, mode)))
        out.append(f"seen languages: {', '.join(c['seen_langs']) if c['seen_langs'] else 'unknown'}"
                   f" ({c['seen_from']})")
        for mode in result["modes"]:
            out.append(f"\npredicted share, {c['base']} → {c['other']}, {_mode_title(mode)}:")
            out.append(_text_table(*_shift_rows(c, mode, result["labels"])))
    out += [f"note: {n}" for n in result["notes"]]
    return "\n".join(out)


def format_compare_md(result: dict[str, Any]) -> str:
    out = [f"# Paired comparison, task {result['task']}", "", LEGEND + ".", ""]
    if scheme_line(result):
        out += [_sentence(scheme_line(result)), ""]
    out += ["Runs:", ""] + [f"- **{r['name']}**: `{r['path']}`" + (f", adapter `{r['adapter']}`" if r["adapter"] else "")
                            for r in result["runs"]] + [""]
    for c in result["comparisons"]:
        out += [f"## {c['other']} vs {c['base']}", ""]
        out += [f"Seen languages: {', '.join(c['seen_langs']) if c['seen_langs'] else 'unknown'} ({c['seen_from']}).",
                ""]
        for mode in result["modes"]:
            out += [f"### {_mode_title(mode).capitalize()}", "", _summary_line(c, mode) + ".", "",
                    _sentence(power_line(c["scores"][mode]["mean"], result.get("alpha", ALPHA),
                                         result.get("power", POWER))), "", md_table(*_comparison_rows(c, mode)), ""]
        for mode in result["modes"]:
            out += [f"### Predicted share, {_mode_title(mode)}", "", md_table(*_shift_rows(c, mode, result["labels"])),
                    ""]
    if result["notes"]:
        out += ["## Notes", ""] + [f"- {n}" for n in result["notes"]] + [""]
    return "\n".join(out)


def write_compare(result: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """out_dir/compare.json and out_dir/compare.md, written atomically."""
    out_dir = Path(out_dir)
    paths = {"json": out_dir / COMPARE_JSON, "md": out_dir / COMPARE_MD}
    atomic_write_json(paths["json"], result)
    atomic_write_text(paths["md"], format_compare_md(result))
    return paths

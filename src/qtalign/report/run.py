"""The report stage's entry: ReportSettings in, the HTML + Markdown report written, its paths out."""

from __future__ import annotations

from pathlib import Path

from qtalign.errors import QtalignError
from qtalign.settings import Settings


class ReportSettings(Settings):
    """What `qtalign report` reads: a study folder (holds study.json), or scored run folders (qtalign eval or lm-eval
    output; the first is the base) with a folder for the report; the resamples of comparisons computed here."""

    study: str | None = None
    runs: list[str] | None = None  # run folders, instead of a study
    out: str | None = None  # where a report over runs goes (a study's goes to STUDY/report)
    names: list[str] | None = None  # short names of the runs (default: folder names)
    seen: list[str] | None = None  # seen languages of the runs' comparisons
    lang_map: str | None = None  # lm-eval tasks outside qtalign's tables mapped to languages
    n_boot: int = 2000  # bootstrap resamples for comparisons not already in the study


def run(s: ReportSettings) -> dict[str, Path]:
    """Write report.html, report.md and summary.json (report.build) for a study (into S/report) or for run folders
    (into s.out); returns their paths ({"html", "md", "summary", "figure:NAME"...})."""
    from qtalign.report.build import build_report, write_report
    from qtalign.report.runs import study_from_runs

    if (s.study is None) == (s.runs is None):
        raise QtalignError("give a study folder or run folders (not both)")
    if s.study is not None:
        return build_report(Path(s.study), n_boot=s.n_boot)
    if s.out is None:
        raise QtalignError("--out: give the folder for a report over run folders")
    study = study_from_runs(s.runs or [], n_boot=s.n_boot, names=s.names, seen=s.seen, lang_map=s.lang_map)
    return write_report(study, Path(s.out))

"""The report stage's entry: ReportSettings in, the study's HTML + Markdown report written, its paths out."""

from __future__ import annotations

from pathlib import Path

from qtalign.settings import Settings


class ReportSettings(Settings):
    """What `qtalign report` reads: a study folder (holds study.json) and the resamples of missing comparisons."""

    study: str
    n_boot: int = 2000  # bootstrap resamples for comparisons not already in the study


def run(s: ReportSettings) -> dict[str, Path]:
    """Write S/report/report.html, report.md and summary.json (report.build.build_report); returns their paths
    ({"html", "md", "summary", "figure:NAME"...})."""
    from qtalign.report.build import build_report

    return build_report(Path(s.study), n_boot=s.n_boot)

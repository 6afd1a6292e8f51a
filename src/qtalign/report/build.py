"""The study report: reads S/study.json and the run folders it names (never a model); writes HTML + Markdown."""

from __future__ import annotations

from pathlib import Path

from qtalign.report.accuracy import paper_tables, seen_unseen
from qtalign.report.analyses import alignment_vs_gain, analyses
from qtalign.report.controls import controls
from qtalign.report.findings import findings
from qtalign.report.groups import group_evals
from qtalign.report.headline import headline
from qtalign.report.metadata import metadata, notes
from qtalign.report.page import Builder
from qtalign.report.prior import prior_shift
from qtalign.report.render import render_html, render_md
from qtalign.report.study import Study
from qtalign.report.summary import summary
from qtalign.report.training import training
from qtalign.report.uncertainty import spread, uncertainty
from qtalign.store import atomic_write_json, atomic_write_text

REPORT_DIR = "report"


def build_report(S: Path, n_boot: int = 2000) -> dict[str, Path]:
    """Write S/report/report.html (self-contained) and S/report/report.md (+ figures/ beside them).

    Reads S/study.json and the eval/train/compare/lens/pca folders it names; computes any missing paired comparison
    from the stored predictions; never loads a model. Returns {"html": ..., "md": ..., "figure:NAME": png, ...}.
    """
    S = Path(S)
    return write_report(Study(S, n_boot=n_boot), S / REPORT_DIR)


def write_report(study: Study, out: Path) -> dict[str, Path]:
    """The report of a study read back (a study folder's, or report.runs' over run folders) written into out."""
    S = study.root
    out.mkdir(parents=True, exist_ok=True)
    page = Builder(study, out)
    groups = group_evals(study)
    headline(page, groups)
    findings(page)
    paper_tables(page, groups)
    seen_unseen(page, groups)
    prior_shift(page, groups)
    controls(page)
    spread(page)
    uncertainty(page, groups)
    training(page)
    analyses(page)
    alignment_vs_gain(page)
    metadata(page)
    notes(page)
    title = f"qtalign study report: {study.data.get('name', S.name)}"
    paths = {"html": out / "report.html", "md": out / "report.md", "summary": out / "summary.json"}
    atomic_write_json(paths["summary"], summary(page, groups))
    atomic_write_text(paths["html"], render_html(title, page.blocks))
    atomic_write_text(paths["md"], render_md(title, page.blocks, out))
    for p in paths.values():
        p.chmod(0o644)  # a page to share, not a private temp file
    return {**paths, **{f"figure:{k}": v for k, v in page.figures.items()}}

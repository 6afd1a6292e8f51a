"""The evidence entries: pack a study into an evidence file; check one by rebuilding its study and recomputing its report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtalign.errors import QtalignError
from qtalign.evidence.coverage import Coverage
from qtalign.settings import Progress, Settings, say


class PackSettings(Settings):
    """What `qtalign evidence pack` packs: a `qtalign run` study folder, or an existing evidence file (repacked in
    this format: digests, machine-free paths), into an evidence file *.json.xz (xz; *.json.gz: gzip)."""

    study: str | None = None
    from_evidence: str | None = None  # an evidence file to repack instead of a study folder (out may be the same)
    out: str


class CheckSettings(Settings):
    """What `qtalign evidence check` rechecks: an evidence file, rebuilt in out, and the claims the docs quote."""

    file: str
    out: str | None = None  # folder to rebuild the study in (None: runs/evidence/NAME, NAME from the file name)
    n_boot: int = 2000  # bootstrap resamples
    claims: str | None = None  # claims file (None: NAME.claims.json beside the file, when it exists)
    write_report: bool = False  # (re)write the report copy the claims file names (`report`) instead of comparing it


class CoverageSettings(Settings):
    """What `qtalign evidence coverage` reads: the repository root (README.md, docs/, docs/evidence/)."""

    root: str = "."


@dataclass
class PackResult:
    """A written evidence file: pack()'s summary (out, files, bytes, evals, missing_evals, absolute_paths)."""

    summary: dict[str, Any]

    def lines(self) -> list[str]:
        s = self.summary
        lines = [f"wrote {s['out']}: {s['evals']} evaluation(s), {s['files']} file(s), {s['bytes'] / 1024:.0f} kB"]
        if s["missing_evals"]:
            lines.append(f"note: {len(s['missing_evals'])} evaluation(s) not finished, left out: "
                         + ", ".join(s["missing_evals"][:5]))
        if s.get("absolute_paths"):
            lines.append(f"note: {len(s['absolute_paths'])} absolute path(s) outside the study folder and its data "
                         "root kept as given: " + ", ".join(s["absolute_paths"][:3]))
        return lines


@dataclass
class CheckResult:
    """A rechecked evidence file: the rebuilt study, its report's files and the claims' problems (none: all hold)."""

    root: Path
    paths: dict[str, Path]
    claims: Path | None = None  # the claims file checked (None: none)
    problems: list[str] = field(default_factory=list)
    copy: Path | None = None  # the report copy in the docs compared (or written), if the claims file names one
    account: list[str] = field(default_factory=list)  # what was done and found, one line each

    def lines(self) -> list[str]:
        """What `qtalign evidence check` prints: the rebuilt study and report, each mismatch, the claims' count and
        the report copy's verdict."""
        return list(self.account)


def run_pack(s: PackSettings, *, progress: Progress = True) -> PackResult:
    """Write the study's evidence file (evidence.pack.pack), or repack an evidence file (evidence.pack.repack); one
    progress line before the compression, which takes up to a minute for a study of tens of evaluations in xz."""
    from qtalign.evidence.pack import check_suffix, container, pack, repack

    out = Path(s.out)
    check_suffix(out)
    if (s.study is None) == (s.from_evidence is None):
        raise QtalignError("give a study folder or --from-evidence FILE (one of the two)")
    say(progress)(f"packing {s.study or s.from_evidence} into {out} ({container(out)}; up to a minute for a large "
                  "study)")
    return PackResult(pack(s.study, out) if s.study is not None else repack(str(s.from_evidence), out))


def run_check(s: CheckSettings, *, progress: Progress = True) -> CheckResult:
    """Rebuild the study from s.file, recompute its report (every comparison from the per-item rows) and check the
    claims; the result's lines() say what was found. No progress to show."""
    from qtalign.evidence.claims import check_claims_file, docs_root, parse_claims
    from qtalign.evidence.pack import evidence_name, unpack
    from qtalign.evidence.publish import COPY_BOOTSTRAP, compare_copy, write_copy
    from qtalign.report.run import ReportSettings
    from qtalign.report.run import run as report
    from qtalign.store import claim_out

    name = evidence_name(s.file)
    out = claim_out(s.out or Path("runs") / "evidence" / name)
    root = unpack(s.file, out)
    paths = report(ReportSettings(study=str(root), n_boot=s.n_boot), progress=progress).files
    result = CheckResult(root, paths)
    echo = result.account.append
    echo(f"rebuilt {root} from {s.file}; every comparison recomputed from the per-item rows")
    echo(f"report: {paths['html']}")
    echo(f"markdown: {paths['md']}")
    claims = Path(s.claims) if s.claims else Path(s.file).with_name(name + ".claims.json")
    if s.claims or claims.is_file():
        n, result.problems = check_claims_file(claims, paths["summary"])
        result.claims = claims
        for p in result.problems:
            echo(f"MISMATCH {p}")
        echo(f"claims: {n} checked, {len(result.problems)} problem(s) ({claims})")
        _, doc = parse_claims(claims)
        if isinstance(doc.get("report"), str):
            result.copy = docs_root(claims, doc) / doc["report"]
            if s.write_report:
                figures = [p for k, p in paths.items() if k.startswith("figure:") and p.suffix == ".png"]
                write_copy(paths["md"], figures, root, name, result.copy)
                echo(f"report copy: wrote {result.copy} and {len(figures)} figure(s)")
            elif s.n_boot != COPY_BOOTSTRAP:
                echo(f"report copy: not compared ({result.copy} was made with {COPY_BOOTSTRAP} resamples)")
            else:
                differ = compare_copy(result.copy, paths["md"].read_text(encoding="utf-8"), root, name)
                for p in differ:
                    echo(f"MISMATCH {p}")
                result.problems += differ
                echo(f"report copy: {result.copy} " + ("is the rebuilt report" if not differ else "differs"))
    return result


def run_coverage(s: CoverageSettings, *, progress: Progress = True) -> Coverage:
    """Account for every number-shaped quotation of the docs (evidence.coverage.check_coverage); no progress to
    show."""
    from qtalign.evidence.coverage import check_coverage

    root = Path(s.root)
    if not (root / "docs").is_dir():
        raise QtalignError(f"--root {root}: no docs/ folder (give the repository root)")
    return check_coverage(root)

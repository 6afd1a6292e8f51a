"""`qtalign evidence`: pack a study's per-item evidence into one small file; recheck every table from such a file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from qtalign.errors import QtalignError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "evidence", help="pack a study's per-item evidence; recompute its report from an evidence file (no model)",
        description="`pack STUDY --out FILE` keeps what every table and interval of a study's report is computed from "
                    "(per-item predictions and calibrated predictions, run records, training logs, lens/PCA "
                    "summaries; no weights, no data texts) in one gzip JSON file of a few hundred kB. "
                    "`check FILE` rebuilds the study folder from it and recomputes the report: every comparison "
                    "and interval is computed again from the per-item rows.")
    sub = p.add_subparsers(dest="evidence_command", required=True, metavar="ACTION")
    pk = sub.add_parser("pack", help="write a study folder's evidence file")
    pk.add_argument("study", metavar="STUDY", help="a `qtalign run` output folder (holds study.json)")
    pk.add_argument("--out", required=True, help="evidence file to write, e.g. docs/evidence/intask.json.gz")
    pk.set_defaults(func=run_pack)
    ck = sub.add_parser("check", help="recompute a study's report from its evidence file")
    ck.add_argument("file", metavar="FILE", help="an evidence file written by `qtalign evidence pack`")
    ck.add_argument("--out", default=None,
                    help="folder to rebuild the study in (default: runs/evidence/NAME, NAME from the file name)")
    ck.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default 2000)")
    ck.add_argument("--claims", default=None, metavar="JSON",
                    help="also check the numbers the docs quote (default: CLAIMS.json beside FILE, i.e. "
                         "NAME.claims.json, when it exists); exit status 1 when one no longer matches")
    ck.set_defaults(func=run_check)
    return p


def run_pack(args: argparse.Namespace) -> int:
    from qtalign.evidence import pack

    out = Path(args.out)
    if not out.name.endswith(".json.gz"):
        raise QtalignError(f"--out {out}: name the evidence file *.json.gz")
    summary = pack(args.study, out)
    print(f"wrote {summary['out']}: {summary['evals']} evaluation(s), {summary['files']} file(s), "
          f"{summary['bytes'] / 1024:.0f} kB")
    if summary["missing_evals"]:
        print(f"note: {len(summary['missing_evals'])} evaluation(s) not finished, left out: "
              + ", ".join(summary["missing_evals"][:5]))
    return 0


def run_check(args: argparse.Namespace) -> int:
    from qtalign.evidence import unpack
    from qtalign.report import build_report
    from qtalign.store import claim_out

    name = Path(args.file).name.removesuffix(".json.gz")
    out = claim_out(args.out or Path("runs") / "evidence" / name)
    root = unpack(args.file, out)
    paths = build_report(root, n_boot=args.bootstrap)
    print(f"rebuilt {root} from {args.file}; every comparison recomputed from the per-item rows")
    print(f"report: {paths['html']}")
    print(f"markdown: {paths['md']}")
    claims = Path(args.claims) if args.claims else Path(args.file).with_name(name + ".claims.json")
    if args.claims or claims.is_file():
        return _check_claims(claims, paths["summary"])
    return 0


def _check_claims(claims_path: Path, summary_path: Path) -> int:
    import json

    from qtalign.evidence import check_claims
    from qtalign.store import read_json_object

    doc = read_json_object(claims_path, strict=True)
    if doc is None or not isinstance(doc.get("claims"), list):
        raise QtalignError(f"{claims_path}: expected a JSON object with a `claims` list")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    docs_root = (claims_path.resolve().parent / doc.get("docs_root", ".")).resolve()  # an absolute docs_root wins
    problems = check_claims(summary, doc["claims"], docs_root)
    for p in problems:
        print(f"MISMATCH {p}")
    print(f"claims: {len(doc['claims'])} checked, {len(problems)} problem(s) ({claims_path})")
    return 1 if problems else 0

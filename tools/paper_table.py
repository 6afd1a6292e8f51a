"""Write qtalign's table of the paper's files (src/qtalign/data/paper_files.json) from the pinned commit's listing.

    python tools/paper_table.py LISTING.tsv [--local DIR] [--out src/qtalign/data/paper_files.json]

LISTING.tsv: a header line, then one line per file of the repository at the pinned commit, `<git blob id>\t<path>`
(e.g. from `git ls-tree -r <commit>`, columns 3 and 4). Every file of the data folders (data/ap_emotion, data/snli,
data/paws) becomes an entry by its real name, plus the three evaluation scripts `qtalign data fetch` parses; kind
and languages come from the name alone (qtalign.data.paper_names states the rule). --local: a folder in the
DEST layout (emotion/, snli/, paws/) whose copies pin sha256 and size, each only after its git blob id matches the
listing. repository, commit, base_url and demo_tables_sha256 are kept from the table being replaced (the listing
does not hold them); a listing named tree-<commit prefix>.tsv must belong to that commit.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from qtalign.data.fetch import FOLDERS, blob_id
from qtalign.data.paper_demonstrations import SCRIPTS
from qtalign.data.paper_names import file_kind, question_name
from qtalign.store import atomic_write_text, sha256_file

TABLE = ROOT / "src" / "qtalign" / "data" / "paper_files.json"
ABOUT = ("The paper's released files (Zhang et al. 2024, Shimao-Zhang/LLM-Multilingual-Learner) at a pinned commit, "
         "written by tools/paper_table.py from that commit's file listing: every file of its data folders by its "
         "real name, and the three evaluation scripts. blob: the file's git blob id in the listing; every download "
         "is checked against it. sha256/size: pinned where qtalign's maintainers hashed a copy whose blob id "
         "matched; null = sha256 recorded into DEST/paper_files.lock.json on first download and checked against "
         "that record afterwards. kind: test, train (a task's own training items), question (question-translation "
         "pairs) or script. sources/target (question files): the languages the name announces, null where the "
         "name does not say them in a form qtalign reads (qtalign.data.paper_names). demo_tables_sha256 pins what "
         "the scripts' literal tables determine (qtalign.data.paper_demonstrations.tables_digest).")


def read_listing(path: Path) -> dict[str, str]:
    """Repository path -> git blob id, in the listing's order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0].split("\t") != ["blob_sha1", "path"]:
        raise SystemExit(f"{path}: expected the header line 'blob_sha1<TAB>path'")
    out: dict[str, str] = {}
    for n, line in enumerate(lines[1:], 2):
        parts = line.split("\t")
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-f]{40}", parts[0]) or not parts[1]:
            raise SystemExit(f"{path}: line {n}: expected '<40 hex digits><TAB><path>'")
        out[parts[1]] = parts[0]
    return out


def entry(remote: str, path: str, kind: str, blob: str, local: Path | None) -> dict[str, Any]:
    """One row of the table; sha256 and size from a local copy whose blob id is the listing's."""
    sha256, size = None, None
    copy = local / path if local is not None else None
    if copy is not None and copy.is_file():
        if blob_id(copy) != blob:
            raise SystemExit(f"{copy}: git blob id {blob_id(copy)} differs from the listing's {blob} for {remote}")
        sha256, size = sha256_file(copy), copy.stat().st_size
    row: dict[str, Any] = {"path": path, "remote": remote, "kind": kind, "blob": blob, "sha256": sha256, "size": size}
    if kind == "question":
        q = question_name(path.rsplit("/", 1)[-1])
        assert q is not None  # file_kind said question
        row.update(sources=list(q.sources) or None, target=q.target)
    return row


def build(listing: dict[str, str], local: Path | None) -> list[dict[str, Any]]:
    """The table's files: the data folders' files (in FOLDERS order, each folder in listing order), then the scripts."""
    rows: list[dict[str, Any]] = []
    for folder, dest in FOLDERS.items():
        for remote, blob in listing.items():
            if not remote.startswith(folder):
                continue
            name = remote[len(folder):]
            kind = file_kind(name)
            if "/" in name or kind is None:
                raise SystemExit(f"{remote}: a file of a data folder whose kind its name does not say "
                                 "(expected *_test.json, *_train.json or *_question.json)")
            rows.append(entry(remote, dest + name, kind, blob, local))
    for remote in listing:
        if remote.startswith("data/") and not remote.startswith(tuple(FOLDERS)):
            raise SystemExit(f"{remote}: in no data folder qtalign knows ({', '.join(FOLDERS)})")
    for spec in SCRIPTS.values():
        remote = spec.script.removeprefix("scripts/")
        if remote not in listing:
            raise SystemExit(f"{remote}: the evaluation script is not in the listing")
        rows.append(entry(remote, spec.script, "script", listing[remote], local))
    return rows


def render(header: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The table as JSON: header keys one a line, then one file a line (diffs stay readable)."""
    lines = ["{"] + [f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}," for k, v in header.items()]
    lines.append(' "files": [')
    lines += [f"  {json.dumps(r, ensure_ascii=False)}" + ("," if i < len(rows) - 1 else "") for i, r in enumerate(rows)]
    lines += [" ]", "}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("listing", type=Path, help="the pinned commit's file listing (blob_sha1<TAB>path lines)")
    ap.add_argument("--local", type=Path, default=None, help="copies in the DEST layout that pin sha256 and size")
    ap.add_argument("--out", type=Path, default=TABLE, help="the table to replace (default: the packaged one)")
    args = ap.parse_args(argv)
    old = json.loads(args.out.read_text(encoding="utf-8"))
    header = {"about": ABOUT, **{k: old[k] for k in ("repository", "commit", "base_url", "demo_tables_sha256")}}
    m = re.fullmatch(r"tree-([0-9a-f]{7,40})\.tsv", args.listing.name)
    if m and not header["commit"].startswith(m.group(1)):
        raise SystemExit(f"{args.listing}: a listing of commit {m.group(1)}, but the table pins {header['commit']}")
    rows = build(read_listing(args.listing), args.local)
    atomic_write_text(args.out, render(header, rows))
    kinds = {k: sum(r["kind"] == k for r in rows) for k in ("test", "train", "question", "script")}
    print(f"{args.out}: {len(rows)} files (" + ", ".join(f"{n} {k}" for k, n in kinds.items()) + f"), "
          f"{sum(r['sha256'] is not None for r in rows)} with a pinned sha256")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A finished step's folder checked before reuse: against the files its marker recorded (size, sha256), or, for a
marker of an older qtalign that records none, for completeness by the folder's own readers."""

from __future__ import annotations

import json
import struct
import zipfile
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from qtalign.data.build_files import MANIFEST_SUFFIX, read_manifest
from qtalign.runs.analysis import RECORD as ANALYSIS_RECORD
from qtalign.runs.compare import COMPARE_JSON
from qtalign.runs.eval import PREDICTIONS, RESULTS, RUN, read_results
from qtalign.runs.study import NOT_OUTPUTS
from qtalign.runs.train import ADAPTER, TRAIN_RECORD, TRAIN_SUMMARY
from qtalign.store import sha256_file

# what a finished step of each kind leaves at least (names relative to its folder): checked for older markers only
REQUIRED: dict[str, tuple[str, ...]] = {
    "build": (),  # at least one FILE.jsonl with its manifest, holding the manifest's row count (_pairs_complete)
    "train": (TRAIN_RECORD, TRAIN_SUMMARY, f"{ADAPTER}/adapter_config.json"),
    "eval": (RUN, RESULTS, PREDICTIONS),
    "compare": (COMPARE_JSON,),
    "lens": (ANALYSIS_RECORD, "lens.npz", "lens_layers.csv"),
    "pca": (ANALYSIS_RECORD, "pca.npz", "pca_corr.csv"),
    "report": ("report.html", "report.md", "summary.json"),
}


def check_recorded(folder: Path, files: Any) -> list[str]:
    """Problems of the files a marker recorded (name -> {size, sha256}), one line each naming the file relative to
    folder: missing, truncated, size changed, or changed (same size, other sha256). Empty when every file is as
    recorded; files the step did not record (added later) are not looked at."""
    if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
        return ["the marker's file list is unreadable"]
    problems = []
    for name, rec in files.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name}: missing")
            continue
        size, want = path.stat().st_size, rec.get("size")
        if not isinstance(want, int):
            problems.append(f"{name}: no size recorded in the marker")
        elif size != want:
            how = "truncated" if size < want else "size changed"
            problems.append(f"{name}: {how} ({size:,} bytes; {want:,} when the step finished)")
        elif sha256_file(path) != rec.get("sha256"):
            problems.append(f"{name}: changed (same size, but not the sha256 recorded when the step finished)")
    return problems


def check_complete(folder: Path, kind: str) -> list[str]:
    """Problems of a step folder whose marker records no files (written by an older qtalign): the files a step of
    this kind leaves are there, every JSON, JSONL, npz and safetensors file reads whole, an eval's predictions hold
    the rows its results counted and a build's pairs the rows its manifest counted. Edits that keep a file readable
    cannot be seen this way: only recorded hashes show those."""
    problems = [f"{name}: missing" for name in REQUIRED.get(kind, ()) if not (folder / name).is_file()]
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in NOT_OUTPUTS):
        reader = READERS.get(path.suffix)
        why = reader(path) if reader is not None else None
        if why:
            problems.append(f"{path.relative_to(folder).as_posix()}: {why}")
    if not problems and kind in COUNTS:
        problems += COUNTS[kind](folder)
    return problems


# ---- whole-file readers: None when the file reads whole, else what is wrong ------------------------------------
def _json(path: Path) -> str | None:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return "not valid JSON (truncated or edited?)"
    return None


def _jsonl(path: Path) -> str | None:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        return "its last line is cut off (truncated?)"
    for n, line in enumerate(data.split(b"\n")[:-1], 1):
        try:
            if line.strip():
                json.loads(line)
        except ValueError:
            return f"line {n} is not valid JSON"
    return None


def _zip(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError):
        return "not a whole npz (zip) file (truncated?)"
    return f"member {bad} fails its CRC check" if bad else None


def _safetensors(path: Path) -> str | None:
    """A safetensors file is an 8-byte header length, a JSON header and the tensors' bytes up to the last offset."""
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n)) if 8 + n <= size else None
        ends = [int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"]
    except (struct.error, ValueError, AttributeError, KeyError, IndexError, TypeError):
        return "not a safetensors file (truncated?)"
    return None if 8 + n + max(ends, default=0) == size else "its tensors do not fill the file (truncated?)"


READERS: dict[str, Callable[[Path], str | None]] = {".json": _json, ".jsonl": _jsonl, ".npz": _zip,
                                                    ".safetensors": _safetensors}


# ---- row counts the folder's own records give ------------------------------------------------------------------
def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().split(b"\n") if line.strip()]


def _eval_counts(folder: Path) -> list[str]:
    """predictions.jsonl holds, per language, the n rows results.json counted."""
    results = read_results(folder) or {}
    if results.get("complete") is False:
        return [f"{RESULTS}: says the run is incomplete"]
    task = results.get("task")
    have = Counter(str(r.get("lang")) for r in _rows(folder / PREDICTIONS) if r.get("task") == task)
    return [f"{PREDICTIONS}: {have.get(lang, 0)} row(s) for {lang}, {entry.get('n')} counted in {RESULTS}"
            for lang, entry in (results.get("languages") or {}).items()
            if isinstance(entry, dict) and have.get(lang, 0) != entry.get("n")]


def _pairs_complete(folder: Path) -> list[str]:
    """Every pairs file with a manifest holds the manifest's total of rows; a build leaves at least one."""
    problems, found = [], 0
    for pairs in sorted(folder.glob("*.jsonl")):
        manifest = read_manifest(pairs)
        if manifest is None:
            continue
        found += 1
        total, rows = manifest.get("total"), len(_rows(pairs))
        if isinstance(total, int) and rows != total:
            problems.append(f"{pairs.name}: {rows} row(s), {total} counted in its manifest")
    return problems if found else [f"no pairs file (FILE.jsonl beside FILE{MANIFEST_SUFFIX})"]


COUNTS: Mapping[str, Callable[[Path], list[str]]] = {"eval": _eval_counts, "build": _pairs_complete}

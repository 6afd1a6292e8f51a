"""Per-item evidence of a study in one small compressed file, and the study folder (minus weights and texts) rebuilt from it."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path, PurePosixPath
from typing import Any

from qtalign.errors import QtalignError
from qtalign.runs.analysis import RECORD as ANALYSIS_RECORD
from qtalign.runs.build import LEGACY_MANIFEST, MANIFEST_SUFFIX
from qtalign.runs.eval import CONTENT_FREE, PREDICTIONS, RESULTS, RUN
from qtalign.runs.study import STUDY
from qtalign.runs.train import ADAPTER, TRAIN_LOG, TRAIN_RECORD, TRAIN_SUMMARY, VAL_LOG
from qtalign.store import atomic_write_bytes, read_json_object, read_jsonl_rows

FORMAT = "qtalign-evidence/1"
# the columns of a predictions row that the comparisons and the report read; texts are never in a row
PREDICTION_KEYS: tuple[str, ...] = ("task", "lang", "index", "gold", "gold_answer", "pred", "correct", "tie",
                                    "probs", "loglik", "pred_cal", "correct_cal", "prompt_sha", "paper_correct")
EVAL_FILES: tuple[str, ...] = (RESULTS, RUN, CONTENT_FREE)
TRAIN_FILES: tuple[str, ...] = (TRAIN_RECORD, TRAIN_SUMMARY, TRAIN_LOG, VAL_LOG)
ANALYSIS_FILES: tuple[str, ...] = (ANALYSIS_RECORD, "lens_layers.csv", "pca_corr.csv", "alignment.csv", "pca.npz")
PLACEHOLDER = "EVIDENCE.txt"
PLACEHOLDER_TEXT = ("Not kept in the evidence file: the adapter weights and the training pairs (they hold the data's "
                    "texts). The records beside this folder are the run's own.\n")
DIGITS = 6  # label probabilities are kept to this many decimals (calibrated predictions are stored, not recomputed)


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, DIGITS)
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    return value


def _slim_predictions(path: Path) -> str:
    """predictions.jsonl with only the columns comparisons read, probabilities rounded, in item order."""
    rows = [{k: _round(r[k]) for k in PREDICTION_KEYS if k in r} for r in read_jsonl_rows(path)]
    rows.sort(key=lambda r: (str(r.get("lang")), int(r.get("index", 0))))
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)  # key order kept: labels come from it


def _rel(root: Path, path: Path) -> str:
    return path.resolve().relative_to(root.resolve()).as_posix()


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _train_files(root: Path, folder: Path, files: dict[str, Any]) -> None:
    """A training run's records, and its build's manifest with an empty stand-in for the pairs file."""
    for name in TRAIN_FILES:
        if (folder / name).is_file():
            files[_rel(root, folder / name)] = _text(folder / name)
    files[_rel(root, folder / ADAPTER / PLACEHOLDER)] = PLACEHOLDER_TEXT
    settings = read_json_object(folder / TRAIN_RECORD) or {}
    pairs = Path(str(settings.get("data") or ""))
    if not pairs.is_absolute():
        pairs = folder / pairs
    if not pairs.is_file() or root.resolve() not in pairs.resolve().parents:
        return
    files[_rel(root, pairs)] = ""  # the pairs hold the data's texts: never packed
    for manifest in (pairs.with_name(pairs.stem + MANIFEST_SUFFIX), pairs.with_name(LEGACY_MANIFEST)):
        if manifest.is_file():
            files[_rel(root, manifest)] = _text(manifest)


def pack(study: str | Path, out: str | Path) -> dict[str, Any]:
    """Write the per-item evidence of the study folder `study` to `out` (gzip JSON); returns a summary."""
    root = Path(study)
    doc = read_json_object(root / STUDY, strict=True)
    if doc is None:
        raise QtalignError(f"{root / STUDY}: not found (is {root} a `qtalign run` output folder?)")
    files: dict[str, Any] = {STUDY: _text(root / STUDY)}
    missing: list[str] = []
    status = {str(st.get("id")): st.get("status") for st in doc.get("steps") or []}
    for e in doc.get("evals") or []:
        folder = root / str(e.get("run", ""))
        # finished: results written (an evaluation still running has predictions but no results) and, for a step
        # of the plan, marked done; a half-written predictions file would otherwise pass for a whole one
        if not ((folder / RESULTS).is_file() and status.get(str(e.get("id")), "done") in ("done", "reused")):
            missing.append(str(e.get("id")))
            continue
        files[_rel(root, folder / PREDICTIONS)] = _slim_predictions(folder / PREDICTIONS)
        for name in EVAL_FILES:
            if (folder / name).is_file():
                files[_rel(root, folder / name)] = _text(folder / name)
    for t in doc.get("trains") or []:
        folder = root / str(t.get("run", ""))
        if folder.is_dir():
            _train_files(root, folder, files)
    for a in doc.get("analyses") or []:
        folder = root / str(a.get("run", ""))
        for name in ANALYSIS_FILES:
            path = folder / name
            if path.is_file():
                files[_rel(root, path)] = ({"base64": base64.b64encode(path.read_bytes()).decode("ascii")}
                                           if path.suffix == ".npz" else _text(path))
    payload = {"format": FORMAT, "root": str(root.resolve()), "name": doc.get("name"), "missing_evals": missing,
               "files": dict(sorted(files.items()))}
    raw = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
    data = gzip.compress(raw, compresslevel=9, mtime=0)  # mtime 0: the same study packs to the same bytes
    atomic_write_bytes(Path(out), data)
    return {"out": str(out), "files": len(files), "bytes": len(data), "evals": len(doc.get("evals") or []),
            "missing_evals": missing}


def read_pack(path: str | Path) -> dict[str, Any]:
    """The evidence file's content, checked (format, file names that stay inside the folder)."""
    path = Path(path)
    try:
        payload = json.loads(gzip.decompress(path.read_bytes()).decode("utf-8"))
    except FileNotFoundError:
        raise QtalignError(f"{path}: no such evidence file") from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise QtalignError(f"{path}: not a qtalign evidence file ({e})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or not isinstance(payload.get("files"), dict):
        raise QtalignError(f"{path}: not a qtalign evidence file (expected format {FORMAT})")
    for name in payload["files"]:
        p = PurePosixPath(name)
        if p.is_absolute() or ".." in p.parts or not p.parts:
            raise QtalignError(f"{path}: file name {name!r} leaves the study folder")
    return payload


def _rewrite(text: str, old_root: str, new_root: str) -> str:
    """Absolute paths under the packed study's folder, moved to the unpacked one (JSON files keep their paths)."""
    if not old_root:
        return text
    return text.replace(json.dumps(old_root)[1:-1], json.dumps(new_root)[1:-1])


def unpack(path: str | Path, out: str | Path) -> Path:
    """Rebuild the study folder from an evidence file into `out` (absolute paths moved there); returns out."""
    payload = read_pack(path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    new_root = str(out.resolve())
    for name, content in payload["files"].items():
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, dict):
            atomic_write_bytes(target, base64.b64decode(content["base64"]))
        else:
            atomic_write_bytes(target, _rewrite(str(content), payload.get("root", ""), new_root).encode("utf-8"))
    return out

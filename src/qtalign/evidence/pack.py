"""Per-item evidence of a study in one small compressed file with a digest of each packed file, and the study folder
(minus weights and texts) rebuilt from it."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import lzma
from pathlib import Path, PurePosixPath
from typing import Any

from qtalign.data.build_files import LEGACY_MANIFEST, MANIFEST_SUFFIX
from qtalign.errors import QtalignError
from qtalign.evidence.paths import DATA_ROOT, MODEL_CACHE, PATHS_NOTE, Portable, absolute_paths, study_folders
from qtalign.runs.analysis import RECORD as ANALYSIS_RECORD
from qtalign.runs.eval import CONTENT_FREE, PREDICTIONS, RESULTS, RUN
from qtalign.runs.study import STUDY
from qtalign.runs.train import ADAPTER, TRAIN_LOG, TRAIN_RECORD, TRAIN_SUMMARY, VAL_LOG
from qtalign.store import atomic_write_bytes, read_json_object, read_jsonl_rows

FORMAT = "qtalign-evidence/2"  # /2: a sha256 of every packed file (`digests`); paths relative to the study folder
OLDER_FORMATS = ("qtalign-evidence/1",)  # no digests, absolute paths: `evidence pack --from-evidence` migrates them
# the columns of a predictions row that the comparisons and the report read; texts are never in a row
PREDICTION_KEYS: tuple[str, ...] = ("task", "lang", "index", "gold", "gold_answer", "pred", "correct", "tie",
                                    "probs", "loglik", "pred_cal", "correct_cal", "prompt_sha", "paper_correct")
EVAL_FILES: tuple[str, ...] = (RESULTS, RUN, CONTENT_FREE)
TRAIN_FILES: tuple[str, ...] = (TRAIN_RECORD, TRAIN_SUMMARY, TRAIN_LOG, VAL_LOG)
ANALYSIS_FILES: tuple[str, ...] = (ANALYSIS_RECORD, "lens_layers.csv", "pca_corr.csv", "alignment.csv", "pca.npz")
PLACEHOLDER = "EVIDENCE.txt"
PLACEHOLDER_TEXT = ("Not kept in the evidence file: the adapter weights and the training pairs (they hold the data's "
                    "texts). The records beside this folder are the run's own.\n")
# the evidence file's container, chosen by its name: xz (smallest; what the docs publish) or gzip (older files)
SUFFIXES: tuple[str, ...] = (".json.xz", ".json.gz")
XZ_MAGIC = b"\xfd7zXZ\x00"  # the first bytes of an xz file; anything else is read as gzip
DIGITS = 6  # label probabilities are kept to this many decimals (calibrated predictions are stored, not recomputed)


def evidence_name(path: str | Path) -> str:
    """The evidence file's name without its suffix (docs/evidence/intask.json.xz -> intask)."""
    name = Path(path).name
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def check_suffix(path: str | Path) -> None:
    """An evidence file to write is named *.json.xz or *.json.gz (its container follows the name)."""
    if not Path(path).name.endswith(SUFFIXES):
        raise QtalignError(f"--out {path}: name the evidence file *.json.xz (or *.json.gz for gzip)")


def container(path: str | Path) -> str:
    """The container an evidence file of this name is written in: "gzip" for *.json.gz, else "xz"."""
    return "gzip" if Path(path).name.endswith(".json.gz") else "xz"


def _compress(raw: bytes, out: Path) -> bytes:
    """raw in the container out's name asks for; either way the same content packs to the same bytes."""
    if container(out) == "gzip":
        return gzip.compress(raw, compresslevel=9, mtime=0)  # mtime 0: no time stamp in the bytes
    return lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)  # about 2.5x smaller than gzip on per-item rows


def _decompress(data: bytes) -> bytes:
    """An evidence file's JSON bytes, whichever container holds them (told by its first bytes, not its name)."""
    if data.startswith(XZ_MAGIC):
        return lzma.decompress(data)
    return gzip.decompress(data)


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


def _train_files(root: Path, folder: Path, files: dict[str, Any], where: Portable) -> None:
    """A training run's records, and its build's manifest with an empty stand-in for the pairs file."""
    for name in TRAIN_FILES:
        if (folder / name).is_file():
            files[_rel(root, folder / name)] = _text(folder / name)
    files[_rel(root, folder / ADAPTER / PLACEHOLDER)] = PLACEHOLDER_TEXT
    settings = read_json_object(folder / TRAIN_RECORD) or {}
    inside = where.inside(str(settings.get("data") or ""))  # the pairs, wherever the study was when it trained
    pairs = root / inside if inside else None
    if pairs is None or not pairs.is_file():
        return
    files[_rel(root, pairs)] = ""  # the pairs hold the data's texts: never packed
    for manifest in (pairs.with_name(pairs.stem + MANIFEST_SUFFIX), pairs.with_name(LEGACY_MANIFEST)):
        if manifest.is_file():
            files[_rel(root, manifest)] = _text(manifest)


def portable(study: dict[str, Any], root: str | None) -> Portable:
    """How the paths of a study's records are written in its evidence (evidence.paths): relative to the study folder
    (root: where it was, when known), the study's data root and qtalign's model cache named."""
    from qtalign.models import cache_root

    data_root = (study.get("config") or {}).get("data_root")
    return Portable(study_folders(study), root, {DATA_ROOT: str(data_root or ""), MODEL_CACHE: str(cache_root())})


def _machine_free(files: dict[str, Any], where: Portable) -> dict[str, Any]:
    """The packed files with the paths in their JSON and JSONL records rewritten (Portable.text)."""
    return {name: where.text(c) if isinstance(c, str) and name.endswith((".json", ".jsonl")) else c
            for name, c in files.items()}


def _digest(content: Any) -> str:
    """sha256 of a packed file's bytes (text as UTF-8; binary files from their base64)."""
    data = base64.b64decode(content["base64"]) if isinstance(content, dict) else str(content).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def _write(out: Path, name: Any, missing: list[str], files: dict[str, Any]) -> int:
    """The evidence file: format, name, what was left out, the files and each one's digest; returns its size."""
    files = dict(sorted(files.items()))
    payload = {"format": FORMAT, "name": name, "paths": PATHS_NOTE, "missing_evals": missing, "files": files,
               "digests": {k: _digest(v) for k, v in files.items()}}
    raw = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
    data = _compress(raw, out)
    atomic_write_bytes(out, data)
    return len(data)


def pack(study: str | Path, out: str | Path) -> dict[str, Any]:
    """Write the per-item evidence of the study folder `study` to `out` (JSON, xz or gzip by out's name); returns a
    summary."""
    root = Path(study)
    doc = read_json_object(root / STUDY, strict=True)
    if doc is None:
        raise QtalignError(f"{root / STUDY}: not found (is {root} a `qtalign run` output folder?)")
    where = portable(doc, str(root.resolve()))
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
            _train_files(root, folder, files, where)
    for a in doc.get("analyses") or []:
        folder = root / str(a.get("run", ""))
        for name in ANALYSIS_FILES:
            path = folder / name
            if path.is_file():
                files[_rel(root, path)] = ({"base64": base64.b64encode(path.read_bytes()).decode("ascii")}
                                           if path.suffix == ".npz" else _text(path))
    files = _machine_free(files, where)
    size = _write(Path(out), doc.get("name"), missing, files)
    return {"out": str(out), "files": len(files), "bytes": size, "evals": len(doc.get("evals") or []),
            "missing_evals": missing, "absolute_paths": absolute_paths(files)}


def repack(old: str | Path, out: str | Path) -> dict[str, Any]:
    """Rewrite an evidence file (this format or an older one) into `out` (may be the same file): the same files,
    their paths made machine-free as pack() writes them, and a digest of each. Returns pack()'s summary."""
    payload = _load(Path(old))
    if payload.get("format") not in (FORMAT, *OLDER_FORMATS):
        raise QtalignError(f"{old}: not a qtalign evidence file (format {payload.get('format')!r})")
    if payload.get("format") == FORMAT:
        _check_digests(Path(old), payload)  # a changed file is not blessed with a new digest
    files = payload["files"]
    study = json.loads(files.get(STUDY) or "{}")
    root = payload.get("root") if isinstance(payload.get("root"), str) else None
    files = _machine_free(files, portable(study, root))
    missing = list(payload.get("missing_evals") or [])
    size = _write(Path(out), payload.get("name"), missing, files)
    return {"out": str(out), "files": len(files), "bytes": size, "evals": len(study.get("evals") or []),
            "missing_evals": missing, "absolute_paths": absolute_paths(files)}


def _load(path: Path) -> dict[str, Any]:
    """An evidence file's JSON object (any format), or a QtalignError naming the file."""
    try:
        payload = json.loads(_decompress(path.read_bytes()).decode("utf-8"))
    except FileNotFoundError:
        raise QtalignError(f"{path}: no such evidence file") from None
    except (OSError, ValueError, UnicodeDecodeError, lzma.LZMAError) as e:
        raise QtalignError(f"{path}: not a qtalign evidence file ({e})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("files"), dict):
        raise QtalignError(f"{path}: not a qtalign evidence file (expected format {FORMAT})")
    return payload


def _check_digests(path: Path, payload: dict[str, Any]) -> None:
    """Every packed file has the digest evidence pack recorded for it; else one line naming the first that differs."""
    digests = payload.get("digests")
    if not isinstance(digests, dict):
        raise QtalignError(f"{path}: no digests of its files; it cannot be checked")
    bad = [f"{name}: changed after packing (its sha256 is not the one evidence pack recorded)"
           for name, content in payload["files"].items() if name in digests and _digest(content) != digests[name]]
    bad += [f"{name}: added after packing (evidence pack recorded no digest for it)"
            for name in payload["files"] if name not in digests]
    bad += [f"{name}: removed after packing" for name in digests if name not in payload["files"]]
    if bad:
        more = f" (and {len(bad) - 1} more file(s))" if len(bad) > 1 else ""
        raise QtalignError(f"{path}: {bad[0]}{more}; refused: repack it from its study folder")


def read_pack(path: str | Path) -> dict[str, Any]:
    """The evidence file's content, checked: its format, file names that stay inside the folder, and every file's
    digest (a file changed, added or removed after packing is refused, naming it)."""
    path = Path(path)
    payload = _load(path)
    if payload.get("format") in OLDER_FORMATS:
        raise QtalignError(f"{path}: written by an older qtalign (format {payload['format']}: no digests, absolute "
                           f"paths); migrate it with `qtalign evidence pack --from-evidence {path} --out {path}`")
    if payload.get("format") != FORMAT:
        raise QtalignError(f"{path}: not a qtalign evidence file (expected format {FORMAT})")
    for name in payload["files"]:
        p = PurePosixPath(name)
        if p.is_absolute() or ".." in p.parts or not p.parts:
            raise QtalignError(f"{path}: file name {name!r} leaves the study folder")
    _check_digests(path, payload)
    return payload


def unpack(path: str | Path, out: str | Path) -> Path:
    """Rebuild the study folder from an evidence file into `out`; returns out. Recorded paths stay as packed:
    relative to the study folder, where the rebuilt study's readers find them."""
    payload = read_pack(path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, content in payload["files"].items():
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, dict):
            atomic_write_bytes(target, base64.b64decode(content["base64"]))
        else:
            atomic_write_bytes(target, str(content).encode("utf-8"))
    return out

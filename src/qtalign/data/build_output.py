"""A build's files: the claim of its output file (the resume rule) and the pairs, Alpaca, dataset_info and manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qtalign.data.build import BuildReport
from qtalign.data.build_files import dataset_info_path, manifest_path, manifest_settings, read_dataset_info
from qtalign.data.pairs import pair_row
from qtalign.errors import QtalignError
from qtalign.store import (
    RESUME_HINT,
    atomic_write_json,
    atomic_write_text,
    claim_out_file,
    describe_changes,
    hold_folder,
    sha256_file,
    sha256_json,
)


def claim_build(out: str | Path, settings: dict[str, Any], overwrite: bool = False) -> Path:
    """The resume rule (store.open_run) for `data build`, checked before any reading or translating.

    Each build is described by its own manifest (build_files.manifest_path: FILE.manifest.json beside FILE.jsonl, or
    an older folder's manifest.json), so several builds share a folder. The same output and settings are rebuilt
    (identical pairs; a machine-translation cache resumes); other settings for the same output are refused, naming
    the flags, unless overwrite. The folder is held (store.hold_folder) while the build runs."""
    out = claim_out_file(out)
    if out.suffix != ".jsonl":
        raise QtalignError(f"--out {out}: must be a .jsonl file")
    hold_folder(out.parent)  # builds in one folder share dataset_info.json: one at a time
    manifest = manifest_path(out)
    if not manifest.is_file():
        return out
    try:
        old_settings = manifest_settings(manifest)
    except (ValueError, KeyError, TypeError):
        if overwrite:
            return out
        raise QtalignError(f"{manifest}: unreadable manifest of an earlier build; add --overwrite to replace it") from None
    if overwrite:
        return out
    changes = describe_changes(old_settings, settings)
    if changes:
        raise QtalignError(f"{out}: is a build made with other settings ({'; '.join(changes)}); "
                           f"{RESUME_HINT}")
    return out


def write_outputs(report: BuildReport, out: str | Path, settings: dict[str, Any]) -> dict[str, str]:
    """Write FILE.jsonl, FILE_alpaca.json, dataset_info.json (merged) and FILE.manifest.json beside it; return
    hashes."""
    out = Path(out)
    if out.suffix != ".jsonl":
        raise QtalignError(f"{out}: --out must be a .jsonl file")
    rows = [pair_row(p) for p in report.pairs]
    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    alpaca = out.with_name(out.stem + "_alpaca.json")
    atomic_write_json(alpaca, [{"instruction": p.input, "input": "", "output": p.output} for p in report.pairs])
    info_path = dataset_info_path(out)
    info = read_dataset_info(out)
    info[out.stem] = {"file_name": alpaca.name,
                      "columns": {"prompt": "instruction", "query": "input", "response": "output"}}
    if settings.get("template"):  # LLaMA-Factory ignores this key; its users pass the same name as --template
        info[out.stem]["template"] = settings["template"]
    atomic_write_json(info_path, info)
    hashes = {str(p): sha256_file(p) for p in (out, alpaca)}
    settings = {**settings, "control": report.control["kind"] if report.control else settings.get("control")}
    manifest: dict[str, Any] = {
        "kind": "question-translation pairs",
        "output": str(out),
        "settings": settings,
        "seed": settings.get("seed"),
        "sources": report.sources,
        "counts": report.counts,
        "available": report.available,
        "contaminated": report.contaminated,
        "total": len(report.pairs),
        "sha256": hashes,
        "pairs_sha256": sha256_json(rows),
        "length_profile": report.length_profile,
    }
    if report.control is not None:
        manifest["control"] = report.control
    if report.item_ranges is not None:
        manifest["item_ranges"] = report.item_ranges
    legacy = manifest_path(out)
    atomic_write_json(manifest_path(out, legacy=False), manifest)
    if legacy != manifest_path(out, legacy=False):
        legacy.unlink(missing_ok=True)  # an older qtalign's manifest.json of this same build
    report.files = hashes
    return hashes

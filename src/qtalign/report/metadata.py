"""Metadata (study, steps, runs, data hashes, versions, settings) and the notes gathered while building."""

from __future__ import annotations

import json
from pathlib import Path

from qtalign.report.page import Builder
from qtalign.report.render import Cell, Heading, Items, Pre, Table
from qtalign.runs.train import training_data


def training_pairs(folder: Path) -> tuple[str | None, str | None]:
    """A training run folder's pairs file and its sha256: folder/train_settings.json -> data -> that file's manifest
    (runs.train.training_data); (None, None) / (data, None) where the record stops."""
    found = training_data(folder)
    if found.data is None:
        return None, None
    return found.data, (found.manifest or {}).get("pairs_sha256") or None


def metadata(page: Builder) -> None:
    """Study name, version and folder; steps; evaluation runs; data hashes; versions; the validated config."""
    d = page.s.data
    page.blocks.append(Heading(2, "Metadata", "metadata"))
    steps = d.get("steps") or []
    total = sum(float(x.get("seconds") or 0) for x in steps)
    page.blocks.append(Items([f"study: {d.get('name', page.s.root.name)}",
                              f"qtalign version: {d.get('qtalign_version', 'unknown')}",
                              f"folder: {page.s.root}",
                              f"wall time of the steps run: {total:.0f} s over {len(steps)} step(s)"]))
    if steps:
        page.blocks.append(Heading(3, "Steps"))
        rows: list[list[Cell | str]] = [
            [Cell(str(x.get("id")), cls="label"), str(x.get("kind", "")), str(x.get("status", "")),
             f"{x['seconds']:.1f}" if isinstance(x.get("seconds"), (int, float)) else "–",
             Cell(str(x.get("hash", ""))[:12], cls="label"), Cell(str(x.get("out", "")), cls="label")]
            for x in steps]
        head = [Cell("step", cls="label"), "kind", "status", "seconds", Cell("hash", cls="label"),
                Cell("output", cls="label")]
        page.blocks.append(Table("steps-table", head, rows, caption="wall time per step (reused steps: 0 or –)"))
    rows = []
    data_rows: dict[str, str] = {}
    versions: dict[str, None] = {}
    for e in page.s.evals:
        r = page.s.run(e)
        res = (r.results if r else None) or {}
        model = res.get("model") or {}
        rows.append([Cell(e.id, cls="label"), Cell(str(model.get("model", e.model)), cls="label"),
                     Cell(str(model.get("adapter") or "—"), cls="label"),
                     Cell(str(model.get("adapter_sha256") or "—")[:16], cls="label"),
                     str(model.get("dtype", "–")), str(len(r.rows) if r else "–"),
                     "yes" if res.get("complete") else "no"])
        for f, h in (res.get("data_sha256") or {}).items():
            data_rows[f] = h
        if res.get("versions"):
            versions[", ".join(f"{k} {v}" for k, v in res["versions"].items())] = None
    if rows:
        page.blocks.append(Heading(3, "Evaluation runs"))
        head = [Cell("eval", cls="label"), Cell("model", cls="label"), Cell("adapter", cls="label"),
                Cell("adapter sha256", cls="label"), "dtype", "items", "complete"]
        page.blocks.append(Table("models-table", head, rows))
    for t in page.s.trains:
        data, pairs_sha = training_pairs(page.s.root / t.get("run", ""))
        if data and pairs_sha:
            data_rows[f"{data} (pairs of {t.get('id')})"] = pairs_sha
    if data_rows:
        page.blocks.append(Heading(3, "Data"))
        page.blocks.append(Table("data-table", [Cell("file", cls="label"), Cell("sha256", cls="label")],
                                 [[Cell(f, cls="label"), Cell(h, cls="label")] for f, h in data_rows.items()]))
    if versions:
        page.blocks.append(Heading(3, "Versions"))
        page.blocks.append(Items(list(versions)))
    if d.get("config") is not None:
        page.blocks.append(Heading(3, "Settings (validated study config)"))
        page.blocks.append(Pre(json.dumps(d["config"], indent=2, ensure_ascii=False, default=str)))


def notes(page: Builder) -> None:
    """Everything noted while building (runs left out, figures not drawn), once each."""
    if page.s.notes:
        page.blocks.append(Heading(2, "Notes", "notes"))
        page.blocks.append(Items(list(dict.fromkeys(page.s.notes))))

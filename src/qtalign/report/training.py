"""Training runs: their mixes, languages, steps and losses, with the loss curves."""

from __future__ import annotations

from qtalign.compare import training_languages
from qtalign.report.page import Builder
from qtalign.report.render import Cell, Heading, Table, Text
from qtalign.store import read_json_object, read_jsonl_rows


def training(page: Builder) -> None:
    """One row per training run (mix, languages, pairs, steps, validation loss, seconds) and the loss curves."""
    page.blocks.append(Heading(2, "Training", "training"))
    if not page.s.trains:
        page.blocks.append(Text("no training runs in this study", "note"))
        return
    rows: list[list[Cell | str]] = []
    curves = []
    for t in page.s.trains:
        folder = page.s.root / t.get("run", "")
        summary = read_json_object(folder / "train_summary.json") or {}
        langs, note = training_languages(str(folder), [page.s.root])
        name = str(t.get("mix") or t.get("id")) + (f" [{t['control']}]" if t.get("control") and
                                                   t["control"] not in str(t.get("mix")) else "") + \
            (f" (seed {t['train_seed']})" if t.get("train_seed") is not None else "")
        train_log, val_log = read_jsonl_rows(folder / "train_log.jsonl"), read_jsonl_rows(folder / "val_log.jsonl")
        if not train_log and not val_log:
            page.s.notes.append(f"train {t.get('id')}: no train_log.jsonl/val_log.jsonl in {folder}")
        else:
            curves.append((name, train_log, val_log))
        first, best = summary.get("first_val_loss"), summary.get("best_val_loss")
        rows.append([Cell(str(t.get("id")), cls="label"), Cell(name, cls="label"),
                     Cell(", ".join(langs) if langs else "unknown", cls="label", title=note),
                     str(summary.get("train_pairs", "–")), str(summary.get("steps", len(train_log) or "–")),
                     f"{first:.3f} → {best:.3f}" if isinstance(first, float) and isinstance(best, float) else
                     (f"{best:.3f}" if isinstance(best, float) else "–"),
                     f"{summary['seconds']:.0f}" if isinstance(summary.get("seconds"), (int, float)) else "–"])
    head = [Cell("id", cls="label"), Cell("mix", cls="label"), Cell("languages", cls="label"), "pairs", "steps",
            "val loss (first → best)", "seconds"]
    page.blocks.append(Table("training-table", head, rows))
    if curves:
        from qtalign.figures.results import loss_figure

        page.figure("loss", lambda stem: loss_figure(curves, stem),
                    "Training loss per optimizer step and validation loss of each training run.")

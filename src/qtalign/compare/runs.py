"""Eval run folders read back for comparison: rows by (language, item), labels, calibration modes, training mix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qtalign.data.controls import trained_languages
from qtalign.errors import QtalignError
from qtalign.runs.eval import PREDICTIONS, read_results, read_run_record
from qtalign.runs.lmeval import is_lmeval_folder, load_lmeval
from qtalign.runs.scored import RAW, Run
from qtalign.runs.train import anchor_folders, training_data
from qtalign.store import read_jsonl_rows

__all__ = ["RAW", "Run", "load_run", "training_languages"]


def training_languages(adapter: str, anchors: Sequence[Path] = ()) -> tuple[list[str] | None, str]:
    """Languages an adapter's training pairs contain (data.controls.trained_languages of the manifest's sources,
    target and control: a copy control's sources only, an English control English only) and where they were read.

    adapter: a `qtalign train` output folder T or T/adapter. Follows T/train_settings.json -> data -> that pairs
    file's manifest (runs.train.training_data). Returns (None, reason) when the record cannot be followed.
    """
    found = training_data(adapter, anchors, strict=True)
    if found.manifest is None:
        return None, found.problem
    where = found.manifest_path
    s = found.manifest.get("settings", {})
    sources, target = s.get("sources"), s.get("target")
    if not sources or not target:
        return None, f"{where}: no settings.sources/target"
    control = s.get("control")
    langs = trained_languages(sources, target, control)
    return langs, f"{where}" + (f" (control {control})" if control else "")


def load_run(path: str | Path, name: str | None = None, *, task: str | None = None,
             lang_map: str | Path | None = None) -> Run:
    """A scored run read back for comparison: a `qtalign eval` folder (predictions.jsonl, results.json if finished),
    or an lm-evaluation-harness output folder written with --log_samples (or its results_*.json file; runs.lmeval):
    task chooses its task group when it holds several, lang_map maps tasks outside qtalign's tables to languages."""
    path = Path(path)
    if is_lmeval_folder(path):
        return load_lmeval(path, name, group=task, lang_map=lang_map)
    return _load_eval(path, name)


def _load_eval(path: Path, name: str | None) -> Run:
    pred_path = path / PREDICTIONS
    if not pred_path.is_file():
        raise QtalignError(f"{path}: not a `qtalign eval` run folder (no predictions.jsonl) nor an lm-eval output "
                           f"folder (no results_*.json)")
    results = read_results(path, strict=True)
    rows_all = read_jsonl_rows(pred_path)
    tasks = list(dict.fromkeys(r.get("task") for r in rows_all))
    task = results.get("task") if results else (tasks[0] if len(tasks) == 1 else None)
    if task is None:
        raise QtalignError(f"{pred_path}: rows of several tasks ({', '.join(map(str, tasks))}) and no results.json")
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for r in rows_all:
        if r.get("task") == task:
            rows.setdefault((r["lang"], int(r["index"])), r)
    if not rows:
        raise QtalignError(f"{pred_path}: no rows for task {task!r}")
    langs = list(dict.fromkeys(r["lang"] for r in rows.values()))
    if results and results.get("languages"):
        order = [lang for lang in results["languages"] if lang in langs]
        langs = order + [lang for lang in langs if lang not in order]
    first = next(iter(rows.values()))
    scores = first.get("probs") or first.get("loglik") or {}
    labels = list(scores) or sorted({r["gold"] for r in rows.values()})
    items = {lang: sorted(i for (lg, i) in rows if lg == lang) for lang in langs}
    modes = None
    for r in rows.values():
        have = set(r.get("correct_cal") or {}) & set(r.get("pred_cal") or {})
        modes = have if modes is None else modes & have
    cal_order = [m for m in ("batch", "content-free") if m in (modes or set())]
    cal_order += sorted((modes or set()) - set(cal_order))
    model = (results or {}).get("model") or {}
    settings = (results or {}).get("settings") or {}
    run_record = read_run_record(path, strict=True) or {}
    adapter = model.get("adapter") or settings.get("adapter") or run_record.get("adapter")
    audit = (((results or {}).get("mean") or {}).get("resampling") or {}).get("parallel_audit")
    run = Run(name or path.name, path, task, langs, labels, rows, items, results, cal_order, adapter=adapter,
              model=model.get("model"), parallel_audit=audit)
    if results is not None and not results.get("complete", True):
        run.notes.append(f"{run.name}: results.json says the run is incomplete")
    if results is None:
        run.notes.append(f"{run.name}: no results.json (unfinished run?)")
    if adapter:
        run.train_langs, run.train_note = training_languages(str(adapter), anchor_folders(path))
    return run

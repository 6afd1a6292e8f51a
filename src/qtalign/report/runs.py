"""A report over scored run folders given directly (qtalign eval or lm-eval output), without a study: the first
run is the base, every other run is compared with it, per task (an lm-eval folder may hold several groups)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qtalign.compare import load_run
from qtalign.errors import QtalignError
from qtalign.report.study import Study
from qtalign.runs.lmeval import groups_in, is_lmeval_folder


def _names(runs: Sequence[Path], names: Sequence[str] | None) -> list[str]:
    if names is not None:
        if len(names) != len(runs) or len(set(names)) != len(names):
            raise QtalignError(f"--names: give {len(runs)} distinct names, one per run")
        return list(names)
    out = [r.name or str(r) for r in runs]
    return out if len(set(out)) == len(out) else [str(r) for r in runs]


def study_from_runs(runs: Sequence[str | Path], n_boot: int = 2000, names: Sequence[str] | None = None,
                    seen: Sequence[str] | None = None, lang_map: str | None = None) -> Study:
    """A Study over run folders: one eval entry per run and task (group), the first run as every task's base and
    the others as its arms, in one table per task; seen/lang_map go to the comparisons."""
    paths = [Path(r).resolve() for r in runs]
    if not paths:
        raise QtalignError("give a study folder, or one or more eval run folders")
    ids = _names(paths, names)
    evals: list[dict[str, Any]] = []
    model = labels = None
    for k, (path, name) in enumerate(zip(paths, ids)):
        if is_lmeval_folder(path):
            tasks: list[tuple[str, str | None]] = [(g, g) for g in groups_in(path, lang_map)]
            run = load_run(path, name, task=tasks[0][1], lang_map=lang_map) if model is None else None
            kind = "lm-eval"
        else:
            run = load_run(path, name)
            tasks = [(run.task, None)]
            kind = str(((run.results or {}).get("settings") or {}).get("labels", "en"))
        if model is None and run is not None:  # every run shares the base's table (model, labels): one per task
            model, labels = run.model or "?", kind
        for task, select in tasks:
            evals.append({"id": name if len(tasks) == 1 else f"{name}:{task}", "run": str(path), "model": model,
                          "mix": None if k == 0 else name, "task": task, "labels": labels, "select": select})
    data = {"name": ", ".join(ids), "evals": evals}
    return Study(paths[0].parent, n_boot=n_boot, data=data, seen=list(seen) if seen else None, lang_map=lang_map)

"""A study folder read back for the report: S/study.json and lazy access to the eval runs and comparisons it names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtalign.compare import RAW, Run, compare_runs, load_run
from qtalign.errors import QtalignError
from qtalign.runs.compare import COMPARE_JSON, read_compare
from qtalign.runs.study import STUDY, read_study


@dataclass(frozen=True)
class EvalEntry:
    """One evaluation named in study.json: its run folder and what it evaluated."""
    id: str
    run: Path
    model: str
    mix: str | None
    control: str | None
    train_seed: int | None
    demo_seed: int
    task: str
    labels: str
    select: str | None = None  # the task group to read from an lm-eval folder holding several

    @property
    def group(self) -> tuple[str, str, str, int]:
        """The key of the tables this eval belongs in: (model, task, labels, demo seed)."""
        return (self.model, self.task, self.labels, self.demo_seed)



class Study:
    """study.json and lazy access to the runs it names, with a list of notes on anything missing."""

    def __init__(self, root: Path, n_boot: int = 2000, data: dict[str, Any] | None = None,
                 seen: list[str] | None = None, lang_map: str | None = None) -> None:
        """root: the study folder (S/study.json is read unless data is given: report.runs builds it for run folders
        given directly); seen and lang_map go to every comparison computed here (compare_runs)."""
        self.root = root
        path = root / STUDY
        data = read_study(root) if data is None else data
        self.data = data
        self.n_boot = n_boot
        self.seen = seen
        self.lang_map = lang_map
        self.notes: list[str] = []
        self.evals = []
        for k, e in enumerate(data.get("evals") or []):
            try:
                self.evals.append(EvalEntry(
                    id=str(e["id"]), run=root / e["run"], model=str(e.get("model", "")), mix=e.get("mix"),
                    control=e.get("control"), train_seed=e.get("train_seed"), demo_seed=int(e.get("demo_seed") or 0),
                    task=str(e.get("task", "")), labels=str(e.get("labels", "en")), select=e.get("select")))
            except KeyError as err:
                raise QtalignError(f"{path}: evals[{k}] has no {err.args[0]!r}") from None
        self.by_id = {e.id: e for e in self.evals}
        self.trains: list[dict[str, Any]] = list(data.get("trains") or [])
        self.compares: list[dict[str, Any]] = list(data.get("compares") or [])
        self.analyses: list[dict[str, Any]] = list(data.get("analyses") or [])
        self._runs: dict[str, Run | None] = {}
        self._pairs: dict[tuple[str, str], dict[str, Any] | None] = {}

    def run(self, e: EvalEntry) -> Run | None:
        """The eval run read back once (None, and a note, when it cannot be read)."""
        if e.id not in self._runs:
            try:
                self._runs[e.id] = load_run(e.run, e.id, task=e.select, lang_map=self.lang_map)
            except QtalignError as err:
                self.notes.append(f"eval {e.id}: left out ({err})")
                self._runs[e.id] = None
        return self._runs[e.id]

    def pair(self, base: EvalEntry, other: EvalEntry) -> dict[str, Any] | None:
        """The comparison of other vs base: the runner's compare.json when there is one, else computed here."""
        key = (base.id, other.id)
        if key in self._pairs:
            return self._pairs[key]
        result = None
        for c in self.compares:
            if c.get("base") == base.id and c.get("other") == other.id and c.get("out"):
                path = self.root / c["out"] / COMPARE_JSON
                if path.is_file():
                    try:
                        result = _pick_comparison(read_compare(path), other.run)
                    except (ValueError, KeyError, IndexError, TypeError):
                        self.notes.append(f"{path}: unreadable; recomputed from the predictions")
                    if result is not None and "resampling" not in result["scores"][RAW]["mean"]:
                        self.notes.append(f"{path}: written before intervals recorded their resampling scheme; "
                                          f"recomputed from the predictions")
                        result = None
                break
        if result is None and self.run(base) is not None and self.run(other) is not None:
            try:
                result = compare_runs([base.run, other.run], names=[base.id, other.id], n_boot=self.n_boot,
                                      seen=self.seen, task=base.select, lang_map=self.lang_map)
                result = result["comparisons"][0]
            except QtalignError as err:
                self.notes.append(f"{other.id} vs {base.id}: not compared ({err})")
        self._pairs[key] = result
        return result


def _pick_comparison(data: dict[str, Any], other: Path) -> dict[str, Any]:
    """The comparison in a compare.json whose other run is the folder `other` (the only one if there is one)."""
    comparisons = data["comparisons"]
    if len(comparisons) == 1:
        return comparisons[0]
    paths = {r["name"]: Path(r["path"]) for r in data["runs"]}
    for same in (lambda p: p.resolve() == other.resolve(), lambda p: p.name == other.name):
        found = [c for c in comparisons if c["other"] in paths and same(paths[c["other"]])]
        if len(found) == 1:
            return found[0]
    raise KeyError(str(other))

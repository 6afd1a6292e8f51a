"""An lm-evaluation-harness output folder: its results_*.json and samples_<task>_*.jsonl files, and its version."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtalign.errors import QtalignError

# lm-eval versions whose output qtalign reads: the real output of each (its command line on a task exported by
# qtalign, two tiny models) is kept in tests/data/lmeval/<version>/ and read back by the tests; the extra pins the last.
# 0.4.9.2 and 0.4.8 do not start with transformers 5 (they import AutoModelForVision2Seq).
TESTED_VERSIONS: tuple[str, ...] = ("0.4.10", "0.4.11", "0.4.12", "0.4.13")
# lm-eval names a run's files by its start time: results_<date>.json (or <stem>_<date>.json for --output_path
# x.json) and samples_<task>_<date>.jsonl beside it
_DATE = r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:\.\d+)?"
_RESULTS = re.compile(rf"(?P<stem>.+)_(?P<date>{_DATE})\.json")
PREDICTIONS = "predictions.jsonl"  # a qtalign eval folder's file: such a folder is never read as an lm-eval one


@dataclass
class LmevalFiles:
    """One lm-eval run: its results file (parsed) and the samples file of each task."""

    results_path: Path
    results: dict[str, Any]
    samples: dict[str, Path]  # task -> samples_<task>_<date>.jsonl
    version: str

    @property
    def model(self) -> str | None:
        """The model as lm-eval names it (model_name, else the pretrained= model argument)."""
        name = self.results.get("model_name")
        if name:
            return str(name)
        args = (self.results.get("config") or {}).get("model_args")
        return str(args.get("pretrained")) if isinstance(args, dict) and args.get("pretrained") else None


def _results_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if _RESULTS.fullmatch(p.name) and p.is_file())


def is_lmeval_folder(path: Path) -> bool:
    """Whether path is an lm-eval results file, or a folder holding one (directly or in its model subfolders), and
    not a qtalign eval folder."""
    if path.is_file():
        return _RESULTS.fullmatch(path.name) is not None
    if not path.is_dir() or (path / PREDICTIONS).exists():
        return False
    return bool(_results_files(path)) or any(_results_files(d) for d in path.iterdir() if d.is_dir())


def find_results(path: Path) -> Path:
    """The results file of the one lm-eval run at path: the file itself, the only results_*.json in the folder, or
    the only one in its only model subfolder (lm_eval --output_path DIR writes DIR/<model>/results_<date>.json)."""
    if path.is_file():
        return path
    here = _results_files(path)
    if not here:
        subs = sorted(d for d in path.iterdir() if d.is_dir() and _results_files(d))
        if len(subs) > 1:
            raise QtalignError(f"{path}: holds lm-eval runs of several models ({', '.join(d.name for d in subs)}); "
                               f"give one of these folders")
        if not subs:
            raise QtalignError(f"{path}: no lm-eval results_*.json file")
        here = _results_files(subs[0])
    if len(here) > 1:
        names = ", ".join(p.name for p in here)
        raise QtalignError(f"{here[0].parent}: holds {len(here)} lm-eval runs ({names}); give the results file of "
                           f"the one to read")
    return here[0]


def read_files(path: Path) -> LmevalFiles:
    """The lm-eval run at path (a folder or a results file) with its samples files; one error line when there are
    no samples (run without --log_samples), a task has none, or the version is not one qtalign reads."""
    results_path = find_results(path)
    try:
        results = json.loads(results_path.read_text(encoding="utf-8"))
    except ValueError:
        raise QtalignError(f"{results_path}: not valid JSON") from None
    if not isinstance(results, dict) or not isinstance(results.get("configs"), dict):
        raise QtalignError(f"{results_path}: not an lm-eval results file (no 'configs')")
    version = results.get("lm_eval_version")
    if version not in TESTED_VERSIONS:
        what = f"lm-eval {version}" if version else "an lm-eval version that records none (lm_eval_version)"
        raise QtalignError(f"{results_path}: written by {what}; qtalign reads the output of lm-eval "
                           f"{', '.join(TESTED_VERSIONS)} (the versions it is tested with): rerun with one of them "
                           f"(pip install 'qtalign[lmeval]')")
    m = _RESULTS.fullmatch(results_path.name)
    assert m is not None
    date = m.group("date")
    samples: dict[str, Path] = {}
    for p in sorted(results_path.parent.glob(f"samples_*_{date}.jsonl")):
        samples[p.name[len("samples_"):-len(f"_{date}.jsonl")]] = p
    if not samples:
        raise QtalignError(f"{results_path.parent}: no samples_*_{date}.jsonl beside {results_path.name}: per-item "
                           f"results are needed; rerun lm_eval with --log_samples")
    return LmevalFiles(results_path, results, samples, str(version))

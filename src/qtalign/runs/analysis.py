"""A lens or pca run folder: its record (settings.json), its output names, and a run's name in figures."""

from __future__ import annotations

from pathlib import Path

from qtalign.runs.eval import RUN
from qtalign.runs.train import run_label
from qtalign.store import read_json_object

RECORD = "settings.json"  # the run record of lens and pca folders
LENS_OUTPUTS = ("parts", "lens.npz", "lens_layers.csv", "lens_filter.json", "lens.png", "lens.svg", "lens_compare.png",
                "lens_compare.svg")
PCA_OUTPUTS = ("parts", "pca.npz", "pca_corr.csv", "alignment.csv", *(f"{stem}{suffix}.{ext}" for stem in (
    "pca_scatter", "pca_corr") for suffix in ("", "_compare") for ext in ("png", "svg")))


def run_name(folder: Path) -> str:
    """A run's name in figures from its record (lens/pca settings.json or eval run.json): its --label, else the
    model's short name plus the adapter's training mix; the folder name when there is no record."""
    for record in (RECORD, RUN):
        try:
            s = read_json_object(folder / record)
        except OSError:
            continue
        if isinstance(s, dict):
            return run_label(s.get("model"), s.get("adapter"), s.get("label"))
    return folder.name

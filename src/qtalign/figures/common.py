"""What every figure shares: colour-blind-safe styles, reading a run's CSV, saving PNG + SVG."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib.pyplot as plt

from qtalign.errors import QtalignError

# Okabe & Ito's colour-blind-safe palette (blue, vermillion, bluish green, orange, sky blue, reddish purple, yellow,
# black); languages beyond eight reuse the colours with other marker shapes
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#56B4E9", "#CC79A7", "#F0E442", "#000000")
LANG_MARKERS = ("o", "s", "^", "D")
RUN_STYLES = ("-", "--", ":")
SERIES_COLOURS = plt.get_cmap("tab10").colors  # one colour per series of the study report figures


def lang_style(i: int) -> tuple[str, str]:
    """(colour, marker) of the i-th language: eight Okabe-Ito colours, then the next marker shape."""
    return OKABE_ITO[i % len(OKABE_ITO)], LANG_MARKERS[(i // len(OKABE_ITO)) % len(LANG_MARKERS)]


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a run folder's CSV file; a missing file is a QtalignError."""
    if not path.is_file():
        raise QtalignError(f"{path}: not found (is this a finished lens/pca run folder?)")
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def save_figure(fig: plt.Figure, stem: Path) -> list[Path]:
    """Save fig as stem.png and stem.svg (text kept as text) and close it; returns both paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    fig.savefig(paths[0], dpi=130, bbox_inches="tight")
    with plt.rc_context({"svg.fonttype": "none"}):  # text stays text: smaller, searchable SVG
        fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths

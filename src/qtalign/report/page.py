"""The report under construction: its blocks, its figures and the seed-aware numbers its sections share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from qtalign.errors import QtalignError
from qtalign.report.render import Block, Figure
from qtalign.report.seed_aware import SeedAware
from qtalign.report.study import Study


class Builder:
    """Assembles the report's blocks; figures are written under out/figures."""

    def __init__(self, study: Study, out: Path) -> None:
        self.s = study
        self.out = out
        self.fig_dir = out / "figures"
        self.blocks: list[Block] = []
        self.figures: dict[str, Path] = {}
        self.seeds = SeedAware(study)
        self.alignment: list[dict[str, Any]] = []  # alignment_vs_gain's correlations, for summary.json
        self.findings: list[dict[str, Any]] = []  # the findings table's rows and arms, for summary.json

    def figure(self, name: str, draw: Callable[[Path], Any], caption: str) -> None:
        """Call draw(stem) -> [png, svg]; on a missing input, note it instead of failing the whole report."""
        try:
            paths = draw(self.fig_dir / name)
        except QtalignError as err:
            self.s.notes.append(f"figure {name}: not drawn ({err})")
            return
        png = next(p for p in paths if p.suffix == ".png")
        self.figures[name] = png
        self.blocks.append(Figure(f"fig-{name}", png, caption))

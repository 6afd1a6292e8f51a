"""A scored run read back (a qtalign eval folder or an lm-evaluation-harness folder): rows by (language, item)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qtalign.metrics import Resampling, resampling_scheme

RAW = "raw"


@dataclass
class Run:
    """One scored run, read back: its rows by (lang, item index) and where it came from.

    Every row holds gold, pred, correct and per-label scores ("probs" or "loglik"); pred_cal / correct_cal per
    calibration mode; prompt_sha (first 16 hex characters of the prompt's sha256) where the source records it, and
    optionally item_sha (the item's own hash) and item (a name for messages). compare and report read only this.
    """

    name: str
    path: Path
    task: str
    langs: list[str]
    labels: list[str]
    rows: dict[tuple[str, int], dict[str, Any]]
    items: dict[str, list[int]]  # lang -> item indices, sorted
    results: dict[str, Any] | None  # a qtalign eval's results.json (None: unfinished, or another source)
    modes: list[str]  # calibration modes present on every row
    train_langs: list[str] | None = None  # languages of the adapter's training mix (None: no adapter / unknown)
    train_note: str = ""
    adapter: str | None = None
    notes: list[str] = field(default_factory=list)
    model: str | None = None  # the model evaluated, as its source names it
    parallel_audit: bool | None = None  # the source's own check that the languages' items are parallel (None: none)
    source: str = "qtalign eval"  # what wrote the folder, e.g. "lm-eval 0.4.13"

    def item_rows(self, lang: str) -> list[dict[str, Any]]:
        """lang's prediction rows, items in index order."""
        return [self.rows[lang, i] for i in self.items[lang]]

    def item_name(self, lang: str, i: int) -> str:
        """How messages name item i of lang (the source's own name where it has one, else the index)."""
        row = self.rows.get((lang, i)) or {}
        return str(row.get("item", i))

    def correct(self, lang: str, mode: str) -> np.ndarray:
        """[n] bool, items in index order."""
        rows = self.item_rows(lang)
        if mode == RAW:
            return np.array([bool(r["correct"]) for r in rows])
        return np.array([bool(r["correct_cal"][mode]) for r in rows])

    def resampling(self, langs: Sequence[str] | None = None) -> Resampling:
        """How a mean over langs (default: all) resamples items: joint when the languages share the same item
        indices and the source's parallel audit (where it has one) does not say otherwise."""
        return resampling_scheme({lang: self.items[lang] for lang in (self.langs if langs is None else langs)},
                                 self.parallel_audit)

    def preds(self, lang: str, mode: str) -> list[str]:
        """[n] predicted labels (raw or of a calibration mode), items in index order."""
        return [r["pred"] if mode == RAW else r["pred_cal"][mode] for r in self.item_rows(lang)]

"""Paired comparison of eval runs scored on the same items (no model): read, check, compare, write."""

from __future__ import annotations

from qtalign.compare.checks import check_same_items
from qtalign.compare.output import format_compare, format_compare_md, md_table, power_line, scheme_line, write_compare
from qtalign.compare.pairs import ALPHA, POWER, compare_pair, compare_runs
from qtalign.compare.runs import RAW, Run, load_run, training_languages

__all__ = [
    "ALPHA", "POWER", "RAW", "Run", "check_same_items", "compare_pair", "compare_runs", "format_compare",
    "format_compare_md", "load_run", "md_table", "power_line", "scheme_line", "training_languages", "write_compare",
]

"""Figures and reports drawn from saved results only (never a model)."""

from __future__ import annotations

from qtalign.report.build import build_report

__all__ = ["build_report"]

"""Paired significance: the exact McNemar test, Holm's correction over a family of tests, and significance marks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Holm-corrected p below each threshold earns one more star
MARKS: tuple[tuple[float, str], ...] = ((0.001, "***"), (0.01, "**"), (0.05, "*"))


def mark(p_holm: float | None) -> str:
    """Significance mark of a Holm-corrected p-value ('' when not significant at 0.05)."""
    if p_holm is None or not np.isfinite(p_holm):
        return ""
    for threshold, stars in MARKS:
        if p_holm < threshold:
            return stars
    return ""


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> tuple[dict[str, int], float]:
    """Paired 2x2 counts of correct answers and the exact (binomial) McNemar p-value (statsmodels).

    a, b: [n] bool, whether the base / the other run got each item right."""
    from statsmodels.stats.contingency_tables import mcnemar

    a, b = np.asarray(a, bool), np.asarray(b, bool)
    counts = {"both": int((a & b).sum()), "base_only": int((a & ~b).sum()), "other_only": int((~a & b).sum()),
              "neither": int((~a & ~b).sum())}
    table = [[counts["both"], counts["base_only"]], [counts["other_only"], counts["neither"]]]
    return counts, float(mcnemar(table, exact=True).pvalue)


def holm(pvalues: Sequence[float], alpha: float = 0.05) -> list[float]:
    """Holm-adjusted p-values (statsmodels multipletests; alpha only sets its reject flags, not returned)."""
    if not pvalues:
        return []
    from statsmodels.stats.multitest import multipletests

    return [float(p) for p in multipletests(list(pvalues), alpha=alpha, method="holm")[1]]

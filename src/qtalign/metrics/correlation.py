"""Correlation across languages: Pearson r with a percentile bootstrap interval, languages resampled."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Correlation:
    measure: str
    n: int  # languages
    r: float  # Pearson r across languages of (alignment change, accuracy change)
    lo: float  # 95% percentile bootstrap interval, languages resampled
    hi: float


def correlate(x: Sequence[float], y: Sequence[float], measure: str = "", n_boot: int = 2000, seed: int = 0
              ) -> Correlation:
    """Pearson r of x and y (one value per language) with a percentile bootstrap interval over languages; nan when
    fewer than 3 languages or no spread."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)  # [L], [L]
    n = len(a)
    if n < 3 or a.std() == 0 or b.std() == 0:
        return Correlation(measure, n, float("nan"), float("nan"), float("nan"))
    r = float(np.corrcoef(a, b)[0, 1])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))  # [n_boot, L]
    xa, yb = a[idx], b[idx]
    xa = xa - xa.mean(1, keepdims=True)
    yb = yb - yb.mean(1, keepdims=True)
    denom = np.sqrt((xa ** 2).sum(1) * (yb ** 2).sum(1))
    ok = denom > 0
    rs = (xa * yb).sum(1)[ok] / denom[ok]  # [<= n_boot]
    lo, hi = np.quantile(rs, [0.025, 0.975]) if len(rs) else (float("nan"), float("nan"))
    return Correlation(measure, n, r, float(lo), float(hi))

"""Every metric of the study in one package: intervals, label metrics, run summaries, significance, uncertainty."""

from __future__ import annotations

from qtalign.metrics.contrasts import (
    CONTRADICTED,
    NOT_SHOWN,
    REPRODUCED,
    Arm,
    ContrastInterval,
    MixedInterval,
    contrast_interval,
    contrast_verdict,
    restrict,
    verdict,
)
from qtalign.metrics.intervals import (
    INDEPENDENT,
    INDEPENDENT_UNKNOWN,
    JOINT,
    Interval,
    Resampling,
    boot_indices,
    bootstrap_accuracy,
    bootstrap_language_mean,
    bootstrap_mean,
    bootstrap_mean_accuracy,
    detectable_change,
    language_mean_replicates,
    resampling_scheme,
)
from qtalign.metrics.labels import label_shares, macro_f1, macro_f1_boot, macro_f1_counts, one_hot, predictions
from qtalign.metrics.significance import MARKS, holm, mark, mcnemar_exact
from qtalign.metrics.summaries import run_summaries, summarize, summarize_mean
from qtalign.metrics.uncertainty import (
    RunDiff,
    SeedAwareInterval,
    VarianceBreakdown,
    scope_text,
    seed_aware_interval,
    variance_breakdown,
)

__all__ = [
    "CONTRADICTED", "INDEPENDENT", "INDEPENDENT_UNKNOWN", "JOINT", "MARKS", "NOT_SHOWN", "REPRODUCED", "Arm",
    "ContrastInterval", "Interval", "MixedInterval", "Resampling", "RunDiff", "SeedAwareInterval",
    "VarianceBreakdown", "boot_indices", "bootstrap_accuracy", "bootstrap_language_mean", "bootstrap_mean",
    "bootstrap_mean_accuracy", "contrast_interval", "contrast_verdict", "detectable_change", "holm", "label_shares",
    "language_mean_replicates", "macro_f1", "macro_f1_boot", "macro_f1_counts", "mark", "mcnemar_exact", "one_hot",
    "predictions", "resampling_scheme", "restrict", "run_summaries", "scope_text", "seed_aware_interval", "summarize",
    "summarize_mean", "variance_breakdown", "verdict",
]

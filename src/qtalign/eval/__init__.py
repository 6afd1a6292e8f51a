"""The evaluation stage: settings, data and prompt preparation, scoring, results, and the run / recalibrate entries."""

from qtalign.eval.prepare import (
    Prepared,
    PromptSetup,
    format_prompt_lines,
    prepare,
    prompt_lines,
    prompt_setup,
    prompt_sha,
    warn_problems,
)
from qtalign.eval.recalibrate import CalibrateSettings, recalibrate
from qtalign.eval.results import aggregate, format_table, recalibrate_report, run_report
from qtalign.eval.run import EvalResult, run
from qtalign.eval.scorers import SCORINGS, FirstToken, LabelScoring, Loglik
from qtalign.eval.settings import IDENTITY_EXCLUDES, EvalSettings, identity_defaults
from qtalign.runs.eval import CONTENT_FREE, PARTS, PREDICTIONS, PROMPTS, RESULTS, RUN, gather_parts, read_content_free

__all__ = [
    "CONTENT_FREE",
    "IDENTITY_EXCLUDES",
    "PARTS",
    "PREDICTIONS",
    "PROMPTS",
    "RESULTS",
    "RUN",
    "SCORINGS",
    "CalibrateSettings",
    "EvalResult",
    "EvalSettings",
    "FirstToken",
    "LabelScoring",
    "Loglik",
    "Prepared",
    "PromptSetup",
    "aggregate",
    "format_prompt_lines",
    "format_table",
    "gather_parts",
    "identity_defaults",
    "prepare",
    "prompt_lines",
    "prompt_setup",
    "prompt_sha",
    "read_content_free",
    "recalibrate",
    "recalibrate_report",
    "run",
    "run_report",
    "warn_problems",
]

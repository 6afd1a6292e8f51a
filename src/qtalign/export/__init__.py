"""The export stage: qtalign's tasks, prompts and label words written for other evaluation tools (lm-eval)."""

from qtalign.export.lmeval import ExportResult, ExportSettings, run

__all__ = ["ExportResult", "ExportSettings", "run"]

"""Task registry: emotion, nli, paraphrase."""

from __future__ import annotations

from qtalign.tasks import emotion, nli, paraphrase
from qtalign.tasks.base import LangTable, Task, normalize_answer

TASKS: dict[str, Task] = {t.name: t for t in (emotion.TASK, nli.TASK, paraphrase.TASK)}


def get_task(name: str) -> Task:
    """The task called name, or a ValueError listing the known tasks."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}") from None


__all__ = ["TASKS", "LangTable", "Task", "get_task", "normalize_answer"]

"""The exception types whose messages are shown to users as-is (no traceback)."""

from __future__ import annotations

from collections.abc import Sequence

MAX_PROBLEMS = 20  # problems listed one per line; the rest are counted


class QtalignError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class QtalignProblems(QtalignError):
    """Several problems found at once (e.g. in a config), one line each: `qtalign: error: LINE` per problem, up to
    MAX_PROBLEMS, then one line counting the rest."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        shown = self.problems[:MAX_PROBLEMS]
        rest = len(self.problems) - len(shown)
        return shown + ([f"... and {rest} more problem(s) not shown"] if rest > 0 else [])


def raise_problems(problems: Sequence[str]) -> None:
    """Raise nothing for no problems, a QtalignError for one, QtalignProblems for several."""
    if len(problems) == 1:
        raise QtalignError(problems[0])
    if problems:
        raise QtalignProblems(problems)

"""The one exception type whose message is shown to users as-is (no traceback)."""

from __future__ import annotations


class QtalignError(Exception):
    """A problem with the user's input or environment, explained in one line."""

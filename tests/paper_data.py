"""Where the tests find the paper's released data: $QTALIGN_PAPER_DATA, the README's `data fetch paper --dest`
folder, or the project machine's shared copy; tests that need it skip with NEEDS_PAPER_DATA when none is there."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository
ENV = "QTALIGN_PAPER_DATA"
FETCHED = ROOT / "data" / "paper"  # `qtalign data fetch paper --dest data/paper`, as the README runs it
SHARED = ROOT.parent / "shared" / "data" / "paper"  # the project machine's copy, beside the checkout
NEEDS_PAPER_DATA = "needs the paper's data"  # the start of every skip reason for want of it (counted at the end)
HOW_TO_GET_IT = f"get it with `qtalign data fetch paper --dest data/paper`, or set {ENV} to a folder holding it"


def find_paper_data() -> Path | None:
    """The first of $QTALIGN_PAPER_DATA, data/paper and ../shared/data/paper that holds the paper's emotion/ test
    files (None: none does; a set variable is the only place looked)."""
    given = os.environ.get(ENV)
    candidates = [Path(given).expanduser()] if given else [FETCHED, SHARED]
    return next((p.resolve() for p in candidates if (p / "emotion").is_dir()), None)


def skip_reason() -> str:
    """Why a test that needs the data skipped: NEEDS_PAPER_DATA, where it was looked for, and how to get it."""
    given = os.environ.get(ENV)
    where = f"{ENV}={given}" if given else f"{FETCHED.relative_to(ROOT)} or {SHARED}"
    return f"{NEEDS_PAPER_DATA} (looked in {where}): {HOW_TO_GET_IT}"

"""Where the tests look for the paper's data (tests/paper_data.py), and the line a run ends with when tests skipped
for want of it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from paper_data import ENV, HOW_TO_GET_IT, NEEDS_PAPER_DATA, ROOT, find_paper_data, skip_reason


def test_the_variable_names_the_only_place_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    held = tmp_path / "mine"
    (held / "emotion").mkdir(parents=True)
    monkeypatch.setenv(ENV, str(held))
    assert find_paper_data() == held.resolve()
    monkeypatch.setenv(ENV, str(tmp_path / "empty"))
    assert find_paper_data() is None  # a set variable is not second-guessed
    reason = skip_reason()
    assert reason.startswith(NEEDS_PAPER_DATA) and f"{ENV}={tmp_path / 'empty'}" in reason and HOW_TO_GET_IT in reason


def test_a_run_ends_saying_how_many_tests_skipped_for_want_of_the_data(tmp_path: Path) -> None:
    """pytest with the data nowhere: the tests that need it skip, and the run ends with a line counting them and
    saying how to get it (two of these three tests of test_paper_table.py read the data)."""
    env = {**os.environ, ENV: str(tmp_path / "nowhere"), "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(ROOT / "tests" / "unit" / "test_paper_table.py"), "-k", "local or listing or kinds"],
                          check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    tail = done.stdout.strip().splitlines()[-2:]
    assert tail[0] == f"2 test(s) skipped: they need the paper's data; {HOW_TO_GET_IT}", tail
    assert tail[1].startswith("1 passed, 2 skipped"), tail

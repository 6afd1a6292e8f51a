"""Shared fixtures: tiny model folders of two architectures and two tokenizer styles; the paper data folder (and a
closing line counting the tests that skipped for want of it)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# the processes tests launch import hooks/sitecustomize.py at start-up (QTALIGN_SLOW_TEST slows eval's scoring)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent / "hooks"),
                                                         os.environ.get("PYTHONPATH")]))

from paper_data import HOW_TO_GET_IT, NEEDS_PAPER_DATA, find_paper_data, skip_reason
from tiny import save_tiny


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Llama architecture, byte-level BPE tokenizer."""
    return save_tiny(tmp_path_factory.mktemp("tiny-llama"), "llama", "bytelevel")


@pytest.fixture(scope="session")
def tiny_gemma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Gemma 3 architecture (sliding window, logit soft-capping), SentencePiece-style tokenizer with byte fallback."""
    return save_tiny(tmp_path_factory.mktemp("tiny-gemma"), "gemma3", "sentencepiece")


@pytest.fixture(params=["tiny_llama", "tiny_gemma"])
def tiny_model(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def paper_data() -> Path:
    """The paper's released data (tests/paper_data.py says where it is looked for); the test skips without it."""
    found = find_paper_data()
    if found is None:
        pytest.skip(skip_reason())
    return found


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line at the end: how many tests skipped for want of the paper's data, and how to get it."""
    skipped = terminalreporter.stats.get("skipped", [])
    n = sum(NEEDS_PAPER_DATA in str(getattr(r, "longrepr", "")) for r in skipped)
    if n:
        terminalreporter.write_line(f"{n} test(s) skipped: they need the paper's data; {HOW_TO_GET_IT}")

"""Shared fixtures: tiny model folders of two architectures and two tokenizer styles; the paper data folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# the processes tests launch import hooks/sitecustomize.py at start-up (QTALIGN_SLOW_TEST slows eval's scoring)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent / "hooks"),
                                                         os.environ.get("PYTHONPATH")]))

from tiny import save_tiny

PAPER_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "paper"


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
    if not PAPER_DATA.is_dir():
        pytest.skip(f"{PAPER_DATA} is missing")
    return PAPER_DATA

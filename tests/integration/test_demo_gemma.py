"""`qtalign demo` on the packaged Gemma: the whole loop as shipped (slow: ~10-15 minutes on 2 CPU cores)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qtalign.cli.main import main


@pytest.mark.slow
@pytest.mark.integration
def test_demo_as_shipped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert f"report: {out / 'report' / 'report.html'}" in text and "gain" in text
    doc = json.loads((out / "study.json").read_text())
    assert {s["status"] for s in doc["steps"]} == {"done"}
    assert json.loads((out / doc["evals"][0]["run"] / "results.json").read_text())["complete"]

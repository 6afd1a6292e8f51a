"""docs/architecture.md's library example (eval and compare without the command line) runs as written and gives what
`qtalign compare` gives for the same runs."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from pathlib import Path

import pytest

from qtalign.cli.main import main

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def example() -> str:
    """The Python block after the `<!-- library example -->` marker of docs/architecture.md."""
    m = re.search(r"<!-- library example -->\n```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert m, f"{DOC}: no library example"
    return m.group(1)


def test_the_library_example_runs_eval_and_compare(paper_data: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    code = example()
    assert len(code.splitlines()) <= 10
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "paper").symlink_to(paper_data)  # where `qtalign data fetch paper --dest data/paper` puts it
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(DOC), "exec"), {})  # noqa: S102 - the documented example, run as written
    for scoring in ("first-token", "loglik"):
        results = json.loads((tmp_path / "runs" / f"scoring-{scoring}" / "results.json").read_text(encoding="utf-8"))
        assert results["complete"] and set(results["languages"]) == {"en", "de"}
        assert results["settings"]["scoring"] == scoring and results["languages"]["de"]["n"] == 10
    compared = json.loads((tmp_path / "runs" / "scoring-compare" / "compare.json").read_text(encoding="utf-8"))
    assert [r["name"] for r in compared["runs"]] == ["first-token", "loglik"]
    # the command line on the same runs prints what the library call printed
    cli = io.StringIO()
    with contextlib.redirect_stdout(cli):
        assert main(["compare", "runs/scoring-first-token", "runs/scoring-loglik", "--names", "first-token,loglik",
                     "--out", "runs/scoring-compare"]) == 0
    assert cli.getvalue() == printed.getvalue()

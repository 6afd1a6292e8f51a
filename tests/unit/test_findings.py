"""The paper-findings table of the report (report.findings) on a synthetic study: contrasts paired through
demonstration sets, verdicts, each arm's change, the per-language figure and summary.json (no model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fakeruns import FINDINGS_LANGS, write_findings_study

from qtalign.compare import load_run
from qtalign.report import build_report


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    root = write_findings_study(tmp_path_factory.mktemp("findings") / "S")
    return root, build_report(root, n_boot=300)


def run_mean(root: Path, name: str, d: int, mode: str, langs: tuple[str, ...]) -> float:
    """Mean over langs of run minus base, directly from the prediction files."""
    run, base = load_run(root / "eval" / f"{name}-d{d}"), load_run(root / "eval" / f"base-d{d}")
    return float(np.mean([run.correct(x, mode).mean() - base.correct(x, mode).mean() for x in langs]))


def test_findings_table_numbers_and_verdicts(built: tuple[Path, dict[str, Path]]) -> None:
    root, paths = built
    summary = json.loads(paths["summary"].read_text(encoding="utf-8"))
    rows = {(r["finding"], r["mode"]): r for r in summary["findings"] if r["table"] == "findings"}
    assert set(rows) == {(f, m) for f in ("unseen", "leaders", "one-source") for m in ("raw", "batch")} | \
        {("model-sizes", None)}
    assert rows["model-sizes", None]["verdict"] == "not testable"
    unseen = ("fr", "th")  # no mix trains on them (en-en trains on English only, zh-en on zh and en)
    assert rows["unseen", "raw"]["langs"] == list(unseen) and rows["unseen", "raw"]["langs_set"] == "unseen"
    every = tuple(FINDINGS_LANGS)
    for mode in ("raw", "batch"):
        leaders = rows["leaders", mode]
        expected = np.mean([(run_mean(root, "zh-es-en", d, mode, every) + run_mean(root, "zh-de-en", d, mode, every))
                            / 2 - run_mean(root, "sw-hi-en", d, mode, every) for d in (0, 1, 2)])
        assert leaders["value"] == pytest.approx(expected)
        assert leaders["ci95"][0] < leaders["value"] < leaders["ci95"][1]
        assert leaders["verdict"] == "reproduced"  # a large lead at every set: both intervals exclude 0
        assert leaders["mixed"]["df"] == 2 and leaders["demo_seeds"] == [0, 1, 2]
        assert leaders["train_sd_added"] == {"raw": 0.015, "batch": 0.0135}[mode]
        assert leaders["mde80"] == pytest.approx(2.8 * max(leaders["sd"], leaders["mixed"]["se"]))
        one = rows["one-source", mode]
        assert one["direction"] == "similar" and one["verdict"] in ("not shown", "contradicted", "reproduced")
    md = paths["md"].read_text(encoding="utf-8")
    assert "## The paper's findings" in md and "Verdict rule" in md and "not testable on CPU" in md
    assert "68.35 → 76.13" in md and "mean(zh-es-en, zh-de-en) − sw-hi-en; all 8 languages" in md


def test_each_arm_and_the_figure(built: tuple[Path, dict[str, Path]]) -> None:
    root, paths = built
    summary = json.loads(paths["summary"].read_text(encoding="utf-8"))
    arms = {(r["arm"], r["mode"], r["langs_set"]): r for r in summary["findings"] if r["table"] == "arms"}
    assert {a for a, _, _ in arms} == {"zh-es-en", "zh-de-en", "sw-hi-en", "zh-en", "en-en"}
    r = arms["zh-en", "batch", "unseen"]
    assert r["value"] == pytest.approx(np.mean([run_mean(root, "zh-en", d, "batch", ("fr", "th")) for d in (0, 1, 2)]))
    assert "figure:findings-languages" in paths and paths["figure:findings-languages"].stat().st_size > 5000
    assert "trained on" in paths["md"].read_text(encoding="utf-8")


def test_a_study_without_findings_has_no_section(tmp_path: Path) -> None:
    from fakeruns import write_study

    paths = build_report(write_study(tmp_path / "S", n=20), n_boot=50)
    assert "The paper's findings" not in paths["md"].read_text(encoding="utf-8")
    assert json.loads(paths["summary"].read_text(encoding="utf-8"))["findings"] == []


def test_missing_arm_runs_are_noted(tmp_path: Path) -> None:
    root = write_findings_study(tmp_path / "S", n=20, demos=(0, 1))
    doc = json.loads((root / "study.json").read_text(encoding="utf-8"))
    doc["evals"] = [e for e in doc["evals"] if e["mix"] != "sw-hi-en"]
    (root / "study.json").write_text(json.dumps(doc), encoding="utf-8")
    paths = build_report(root, n_boot=50)
    md = paths["md"].read_text(encoding="utf-8")
    assert "finding leaders (raw): not computed (no finished raw runs of sw-hi-en)" in md

"""Evidence files: a study's per-item rows packed small, and every comparison recomputed from them equal to the study's."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
from fakeruns import write_study

from qtalign.cli.main import main
from qtalign.compare import compare_runs, load_run
from qtalign.errors import QtalignError
from qtalign.evidence import pack, read_pack, unpack


def _strip_paths(result: dict) -> dict:
    for r in result["runs"]:
        r.pop("path")
        r.pop("adapter")
    for c in result["comparisons"]:
        c.pop("seen_from")
    return result


def test_pack_unpack_recomputes_the_same_comparisons(tmp_path: Path) -> None:
    study = write_study(tmp_path / "study", n=30)
    out = tmp_path / "ev.json.gz"
    summary = pack(study, out)
    assert summary["evals"] == 4 and not summary["missing_evals"]
    assert out.stat().st_size < 200_000
    runs = ["eval/base", "eval/eval-zh_es-s1"]
    before = compare_runs([study / r for r in runs], names=["b", "o"], n_boot=300)
    moved = tmp_path / "moved"
    shutil.move(study, moved)  # the original folder is gone: nothing may be read from it
    rebuilt = unpack(out, tmp_path / "rebuilt")
    after = compare_runs([rebuilt / r for r in runs], names=["b", "o"], n_boot=300)
    assert _strip_paths(after) == _strip_paths(before)
    # the training languages (seen/unseen) are still found through the kept manifest
    run = load_run(rebuilt / "eval/eval-zh_es-s1")
    assert run.train_langs == ["zh", "es", "en"]
    # the training pairs (data texts) are never packed
    assert (rebuilt / "train/train-zh_es-s1/data/pairs.jsonl").read_text() == ""


def test_an_evaluation_still_running_is_left_out(tmp_path: Path) -> None:
    study = write_study(tmp_path / "study")
    running = study / "eval" / "eval-zh_es-s2"
    (running / "results.json").unlink()  # predictions part-way, no results yet: the step is still running
    summary = pack(study, tmp_path / "e.json.gz")
    assert summary["missing_evals"] == ["eval-zh_es-s2"]
    assert not any("eval-zh_es-s2/" in name for name in read_pack(tmp_path / "e.json.gz")["files"])
    doc = json.loads((study / "study.json").read_text())
    for st in doc["steps"]:
        if st["id"] == "eval-zh_es-s1":
            st["status"] = "pending"  # results on disk from an earlier run, but the plan's step is not done
    (study / "study.json").write_text(json.dumps(doc))
    assert set(pack(study, tmp_path / "f.json.gz")["missing_evals"]) == {"eval-zh_es-s1", "eval-zh_es-s2"}


def test_same_study_packs_to_the_same_bytes(tmp_path: Path) -> None:
    study = write_study(tmp_path / "study", n=10)
    pack(study, tmp_path / "a.json.gz")
    pack(study, tmp_path / "b.json.gz")
    assert (tmp_path / "a.json.gz").read_bytes() == (tmp_path / "b.json.gz").read_bytes()


def test_check_command_rebuilds_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = write_study(tmp_path / "study", n=20)
    assert main(["evidence", "pack", str(study), "--out", str(tmp_path / "s.json.gz")]) == 0
    assert main(["evidence", "check", str(tmp_path / "s.json.gz"), "--out", str(tmp_path / "re"),
                 "--bootstrap", "200"]) == 0
    out = capsys.readouterr().out
    assert "recomputed" in out
    md = (tmp_path / "re" / "report" / "report.md").read_text(encoding="utf-8")
    assert "zh_es" in md


def test_bad_evidence_files_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(QtalignError, match="not a qtalign evidence file"):
        read_pack(bad)
    escape = tmp_path / "escape.json.gz"
    escape.write_bytes(gzip.compress(json.dumps({"format": "qtalign-evidence/1", "root": "/x",
                                                 "files": {"../evil.txt": "x"}}).encode()))
    with pytest.raises(QtalignError, match="leaves the study folder"):
        read_pack(escape)
    assert main(["evidence", "check", str(tmp_path / "missing.json.gz"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such evidence file" in err[0]
    assert main(["evidence", "pack", str(tmp_path), "--out", str(tmp_path / "x.json.gz")]) == 2


def _packed_and_checked(tmp_path: Path) -> tuple[Path, dict]:
    """A synthetic study packed to docs/s.json.gz and checked once: (the evidence file, the rebuilt summary.json)."""
    study = write_study(tmp_path / "study", n=20)
    ev = tmp_path / "docs" / "s.json.gz"
    ev.parent.mkdir()
    pack(study, ev)
    assert main(["evidence", "check", str(ev), "--out", str(tmp_path / "re"), "--bootstrap", "200"]) == 0
    return ev, json.loads((tmp_path / "re" / "report" / "summary.json").read_text())


def test_claims_are_recomputed_and_found_in_the_docs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A doc's number is checked against the recomputed report; a changed number or doc fails with exit 1."""
    from qtalign.evidence import claim_text

    ev, summary = _packed_and_checked(tmp_path)
    arm = next(a for a in summary["arms"] if a["mode"] == "raw")
    text = claim_text(arm)
    (tmp_path / "docs" / "results.md").write_text(f"The raw change was {text} over 2 seeds.\n")
    claim = {"where": "arms", "match": {"mix": arm["mix"], "control": arm["control"], "mode": "raw"}, "text": text,
             "docs": {"results.md": 1}}
    (tmp_path / "docs" / "s.claims.json").write_text(json.dumps({"claims": [claim]}))
    capsys.readouterr()
    assert main(["evidence", "check", str(ev), "--out", str(tmp_path / "re"), "--bootstrap", "200"]) == 0
    assert "1 checked, 0 problem(s)" in capsys.readouterr().out
    (tmp_path / "docs" / "results.md").write_text("The raw change was +99.9 [+99.0, +99.9].\n")
    claim["text"] = "+99.9 [+99.0, +99.9]"
    (tmp_path / "docs" / "s.claims.json").write_text(json.dumps({"claims": [claim]}))
    assert main(["evidence", "check", str(ev), "--out", str(tmp_path / "re"), "--bootstrap", "200"]) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_share_claims_quote_the_predicted_share_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """summary.json's `shares` hold each label's predicted share (base → other) and its change with the compare
    interval; a claim on them is checked like any other."""
    from qtalign.evidence import claim_text

    ev, summary = _packed_and_checked(tmp_path)
    pair = next(p for p in summary["pairs"] if p["mode"] == "raw")
    shares = [s for s in summary["shares"] if s["other"] == pair["other"] and s["mode"] == "raw"]
    assert len(shares) == 2 and {s["label"] for s in shares} == {"positive", "negative"}
    assert abs(sum(s["diff"] for s in shares)) < 1e-9  # two labels: one's gain is the other's loss
    share = shares[0]
    assert share["ci95"][0] <= share["diff"] <= share["ci95"][1]
    assert abs(share["diff"] - (share["other_share"] - share["base_share"])) < 1e-9
    change, moved = claim_text(share), claim_text(share, "accuracy")
    assert " → " in moved and change.startswith(("+", "\u2212"))
    (tmp_path / "docs" / "results.md").write_text(f"The share moved {moved}: {change}.\n")
    match = {"other": share["other"], "mode": "raw", "label": share["label"]}
    claims = [{"where": "shares", "match": match, "text": change, "docs": {"results.md": 1}},
              {"where": "shares", "match": match, "stat": "accuracy", "text": moved, "docs": {"results.md": 1}}]
    (tmp_path / "docs" / "s.claims.json").write_text(json.dumps({"claims": claims}))
    capsys.readouterr()
    assert main(["evidence", "check", str(ev), "--out", str(tmp_path / "re"), "--bootstrap", "200"]) == 0
    assert "2 checked, 0 problem(s)" in capsys.readouterr().out


def test_report_copy_is_written_and_then_compared(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A claims file's `report`: `check --write-report` writes the rebuilt report there (figures too), a plain check
    compares it and fails on a changed line; per-language and training numbers are in summary.json."""
    ev, summary = _packed_and_checked(tmp_path)
    pair = next(p for p in summary["pairs"] if p["mode"] == "raw")
    assert set(pair["langs"]) and {"base_f1", "other_f1", "ci95_independent"} <= set(pair)
    assert summary["trains"] and all("best_val_loss" in t for t in summary["trains"])
    share = next(s for s in summary["shares"] if s["mode"] == "raw")
    assert 0 <= share["gold_share"] <= 1 and set(share["langs"]) == set(pair["langs"])
    (tmp_path / "docs" / "s.claims.json").write_text(json.dumps({"claims": [], "report": "results/s/report.md"}))
    check = ["evidence", "check", str(ev), "--out", str(tmp_path / "re")]
    assert main([*check, "--write-report"]) == 0
    copy = tmp_path / "docs" / "results" / "s" / "report.md"
    assert "runs/evidence/s" in copy.read_text() and str(tmp_path) not in copy.read_text()
    assert list((copy.parent / "figures").glob("*.png"))
    capsys.readouterr()
    assert main(check) == 0
    assert "is the rebuilt report" in capsys.readouterr().out
    lines = copy.read_text().splitlines()
    k = next(i for i, line in enumerate(lines) if "[" in line)
    lines[k] = lines[k].replace("[", "[9", 1)
    copy.write_text("\n".join(lines) + "\n")
    assert main(check) == 1
    assert f"{copy}:{k + 1}: the copy says" in capsys.readouterr().out

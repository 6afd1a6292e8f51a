"""Evidence files: a study's per-item rows packed small, and every comparison recomputed from them equal to the study's."""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from fakeruns import write_study

from qtalign.cli.main import main
from qtalign.compare import compare_runs, load_run
from qtalign.errors import QtalignError
from qtalign.evidence import FORMAT, pack, read_pack, unpack


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


def test_xz_and_gzip_hold_the_same_evidence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """*.json.xz (what the docs publish) and *.json.gz carry the same payload; xz is deterministic and smaller; the
    container is told by its bytes, a wrong name and a broken file are one-line errors."""
    study = write_study(tmp_path / "study", n=30)
    pack(study, tmp_path / "a.json.xz")
    pack(study, tmp_path / "b.json.xz")
    pack(study, tmp_path / "c.json.gz")
    assert (tmp_path / "a.json.xz").read_bytes() == (tmp_path / "b.json.xz").read_bytes()
    assert (tmp_path / "a.json.xz").read_bytes().startswith(b"\xfd7zXZ")
    assert (tmp_path / "a.json.xz").stat().st_size < (tmp_path / "c.json.gz").stat().st_size
    assert read_pack(tmp_path / "a.json.xz") == read_pack(tmp_path / "c.json.gz")
    (tmp_path / "renamed.json.gz").write_bytes((tmp_path / "a.json.xz").read_bytes())  # told by bytes, not name
    assert read_pack(tmp_path / "renamed.json.gz") == read_pack(tmp_path / "c.json.gz")
    assert main(["evidence", "pack", str(study), "--out", str(tmp_path / "x.json")]) == 2
    assert "*.json.xz" in capsys.readouterr().err
    broken = tmp_path / "broken.json.xz"
    broken.write_bytes((tmp_path / "a.json.xz").read_bytes()[:200])
    with pytest.raises(QtalignError, match="not a qtalign evidence file"):
        read_pack(broken)


def test_check_command_rebuilds_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = write_study(tmp_path / "study", n=20)
    assert main(["evidence", "pack", str(study), "--out", str(tmp_path / "s.json.gz")]) == 0
    assert "(gzip;" in capsys.readouterr().out  # a progress line names the container before compressing
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
    escape.write_bytes(gzip.compress(json.dumps({"format": FORMAT, "files": {"../evil.txt": "x"},
                                                 "digests": {"../evil.txt": "0" * 64}}).encode()))
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


def _rewrite_gz(path: Path, edit: Callable[[dict], None]) -> None:
    payload = json.loads(gzip.decompress(path.read_bytes()))
    edit(payload)
    path.write_bytes(gzip.compress(json.dumps(payload).encode()))


def test_a_row_changed_after_packing_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every packed file carries its sha256; a changed row, an added or a removed file is one error line naming the
    file, exit status 2, before anything is rebuilt."""
    study = write_study(tmp_path / "study", n=10)
    ev = tmp_path / "s.json.gz"
    pack(study, ev)
    payload = read_pack(ev)
    assert set(payload["digests"]) == set(payload["files"]) and "root" not in payload
    name = "eval/eval-zh_es-s1/predictions.jsonl"

    def flip(p: dict) -> None:  # one prediction changed, the row otherwise whole
        p["files"][name] = p["files"][name].replace('"correct": true', '"correct": false', 1)

    for edit, what in ((flip, f"{name}: changed after packing"),
                       (lambda p: p["files"].update({"eval/x.json": "{}"}), "eval/x.json: added after packing"),
                       (lambda p: p["files"].pop("eval/base/results.json"),
                        "eval/base/results.json: removed after packing")):
        bad = tmp_path / "bad.json.gz"
        shutil.copy(ev, bad)
        _rewrite_gz(bad, edit)
        capsys.readouterr()
        assert main(["evidence", "check", str(bad), "--out", str(tmp_path / "re")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{bad}: {what}" in err[0], err
        assert not (tmp_path / "re" / "study.json").exists()


def test_packed_records_hold_no_machine_folder(tmp_path: Path) -> None:
    """Paths into the study are written relative to its folder, so an evidence file names no folder of the machine it
    was packed on; the rebuilt study still follows them (training languages found)."""
    study = write_study(tmp_path / "study", n=10)
    ev = tmp_path / "s.json.gz"
    assert pack(study, ev)["absolute_paths"] == []
    payload = read_pack(ev)
    text = json.dumps(payload["files"])
    assert str(tmp_path) not in text and str(tmp_path.resolve()) not in text
    settings = json.loads(payload["files"]["train/train-zh_es-s1/train_settings.json"])
    assert settings["data"] == "train/train-zh_es-s1/data/pairs.jsonl"
    run = load_run(unpack(ev, tmp_path / "re") / "eval/eval-zh_es-s1")
    assert run.train_langs == ["zh", "es", "en"]
    # a path outside the study folder and its data root is kept as given, and pack says so
    record = study / "eval" / "base" / "results.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "data": "/elsewhere/emotion"}))
    assert pack(study, ev)["absolute_paths"] == ["/elsewhere/emotion"]


def test_older_evidence_files_are_migrated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file of the older format (no digests, the absolute root) is refused with the migration command; migrated in
    place it holds the same files, now machine-free and with digests, and rebuilds the same report."""
    study = write_study(tmp_path / "study", n=20)
    new = tmp_path / "new.json.gz"
    pack(study, new)
    # the older format packed the records as the study wrote them (absolute paths) and named the folder as `root`
    files = {name: (study / name).read_text(encoding="utf-8") if name.endswith(".json") else content
             for name, content in read_pack(new)["files"].items()}
    old = tmp_path / "old.json.gz"
    old.write_bytes(gzip.compress(json.dumps({"format": "qtalign-evidence/1", "root": str(study.resolve()),
                                              "name": "synthetic", "missing_evals": [], "files": files}).encode()))
    assert str(study.resolve()) in json.dumps(files)  # the older format kept absolute paths
    with pytest.raises(QtalignError, match="older qtalign.*--from-evidence"):
        read_pack(old)
    assert main(["evidence", "pack", "--from-evidence", str(old), "--out", str(old)]) == 0
    assert read_pack(old)["files"] == read_pack(new)["files"]
    assert old.read_bytes() == new.read_bytes()
    capsys.readouterr()
    assert main(["evidence", "pack", str(study), "--from-evidence", str(old), "--out", str(old)]) == 2
    assert "one of the two" in capsys.readouterr().err

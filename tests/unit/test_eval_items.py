"""`qtalign eval --items START:END`: only that part of each file is read (demonstrations and scored items alike)."""

from __future__ import annotations

import json
from pathlib import Path

from test_eval import write_paper_folder

from qtalign.cli.main import main


def _argv(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "--task", "emotion", "--data", str(data), "--model", str(model), "--langs", "en,de",
            "--device", "cpu", "--batch-size", "2", "--out", str(out), "--no-progress", *extra]


def _rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]


def test_items_range_restricts_scored_items_and_demonstrations(tiny_llama: Path, tmp_path: Path) -> None:
    data = write_paper_folder(tmp_path / "data", n=20)
    out = tmp_path / "run"
    assert main(_argv(tiny_llama, data, out, "--items", "6:16")) == 0
    rows = _rows(out)
    for lang in ("en", "de"):
        idx = sorted(r["index"] for r in rows if r["lang"] == lang)
        assert len(idx) == 10 - 2  # two demonstrations drawn from the range are not scored
        assert all(6 <= i < 16 for i in idx)
    demos = json.loads((out / "results.json").read_text())["settings"]
    assert demos["items"] == "6:16"
    # the demonstrations came from inside the range too: the scored items plus them fill it exactly
    full = tmp_path / "full"
    assert main(_argv(tiny_llama, data, full)) == 0
    assert {r["index"] for r in _rows(full)} - set(range(6, 16))  # without --items, items outside are scored


def test_items_and_limit_combine(tiny_llama: Path, tmp_path: Path) -> None:
    data = write_paper_folder(tmp_path / "data", n=20)
    out = tmp_path / "run"
    assert main(_argv(tiny_llama, data, out, "--items", "4:20", "--limit", "5")) == 0
    rows = _rows(out)
    assert len(rows) == 2 * 5 and all(4 <= r["index"] < 20 for r in rows)


def test_bad_item_ranges_give_one_line(tiny_llama: Path, tmp_path: Path, capsys) -> None:
    data = write_paper_folder(tmp_path / "data", n=20)
    for bad, says in (("10:5", "need 0 <= START < END"), ("50:60", "no items in range 50:60"), ("1-5", "--items 1-5")):
        code = main(_argv(tiny_llama, data, tmp_path / f"out{bad.replace(':', '_')}", "--items", bad))
        err = capsys.readouterr().err.strip()
        assert code == 2, bad
        assert err.startswith("qtalign: error: ") and "Traceback" not in err and "\n" not in err, err
        assert says in err, err

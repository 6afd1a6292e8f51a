"""Evaluation end to end on tiny models: outputs, resume after kill -9, and one-line errors for bad input."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from qtalign.cli.main import main
from qtalign.eval import EvalSettings, prepare
from qtalign.eval import run as run_eval

POS = ["I love it, great value", "Works perfectly and looks nice", "Best purchase this year", "Very happy with it"]
NEG = ["Broke after a day", "Terrible quality, do not buy", "It never arrived", "Waste of money"]


def write_paper_folder(folder: Path, langs=("en", "de"), n: int = 12) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for lang in langs:
        words = {"en": ("positive", "negative"), "de": ("positiv", "negativ")}[lang]
        items = []
        for i in range(n):
            good = i % 2 == 0
            text = (POS if good else NEG)[i % 4] + f" ({lang} #{i})"
            items.append({"input": text, "answer": words[0] if good else words[1]})
        (folder / f"emotion_{lang}{n}_test.json").write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    return folder


def settings(model: Path, data: Path, **kw: Any) -> EvalSettings:
    """Eval settings for the tiny model on the test folder (en, de), with kw on top."""
    return EvalSettings(**{"task": "emotion", "data": str(data), "model": str(model), "langs": ("en", "de"),
                           "device": "cpu", "batch_size": 3, "n_boot": 50, **kw})


def test_eval_writes_predictions_and_results(tiny_model: Path, tmp_path: Path) -> None:
    data = write_paper_folder(tmp_path / "data")
    res = run_eval(settings(tiny_model, data, out=str(tmp_path / "run")), progress=False).results
    rows = [json.loads(x) for x in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * (12 - 2)  # two demonstrations per language are not scored
    assert {r["lang"] for r in rows} == {"en", "de"}
    assert all(set(r["probs"]) == {"positive", "negative"} and all(0 <= v <= 1 for v in r["probs"].values())
               for r in rows)
    assert res["complete"] and res["languages"]["de"]["n"] == 10
    # prompt_sha: sha256 of the full prompt (prefix + item text), first 16 hex chars
    prep = prepare(settings(tiny_model, data))
    lp = prep.prompts["de"]
    by_index = {r["index"]: r for r in rows if r["lang"] == "de"}
    for i, it in enumerate(lp.items):
        assert by_index[it.index]["prompt_sha"] == hashlib.sha256(lp.prompt(i).encode()).hexdigest()[:16]
    assert len({r["prompt_sha"] for r in rows}) == len(rows)
    lo, hi = res["languages"]["en"]["ci95"]
    assert lo <= res["languages"]["en"]["accuracy"] <= hi
    on_disk = json.loads((tmp_path / "run" / "results.json").read_text())
    assert on_disk["mean"]["accuracy"] == pytest.approx(res["mean"]["accuracy"])


def test_loglik_and_label_modes_run(tiny_gemma: Path, tmp_path: Path) -> None:
    data = write_paper_folder(tmp_path / "data")
    for i, kw in enumerate([{"scoring": "loglik"}, {"labels": "native"}, {"labels": "ox,horse"}]):
        res = run_eval(settings(tiny_gemma, data, limit=4, out=str(tmp_path / f"run{i}"), **kw), progress=False).results
        assert res["languages"]["en"]["n"] == 4
    assert res["languages"]["de"]["label_words"] == ["ox", "horse"]


def test_batch_size_does_not_change_predictions(tiny_llama: Path, tmp_path: Path) -> None:
    data = write_paper_folder(tmp_path / "data")
    preds = []
    for bs in (1, 4):
        s = settings(tiny_llama, data, batch_size=bs)
        run_eval(s.model_copy(update={"out": str(tmp_path / f"bs{bs}")}), progress=False)
        rows = (tmp_path / f"bs{bs}" / "predictions.jsonl").read_text().splitlines()
        preds.append(sorted((r["lang"], r["index"], r["pred"]) for r in map(json.loads, rows)))
    assert preds[0] == preds[1]


def _cli(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "qtalign.cli.main", "eval", "--task", "emotion", "--data", str(data), "--model",
            str(model), "--langs", "en,de", "--device", "cpu", "--batch-size", "1", "--out", str(out),
            "--no-progress", *extra]


def test_resume_after_kill_9_gives_identical_results(tiny_llama: Path, tmp_path: Path) -> None:
    data = write_paper_folder(tmp_path / "data", n=200)
    env = {**os.environ, "QTALIGN_SLOW_TEST": "0.02"}
    ref = tmp_path / "ref"
    subprocess.run(_cli(tiny_llama, data, ref), check=True, env=env, capture_output=True)
    run = tmp_path / "run"
    proc = subprocess.Popen(_cli(tiny_llama, data, run), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    pred = run / "predictions.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not pred.exists() or pred.read_text().count("\n") < 30):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_partial = pred.read_text().count("\n")
    assert 0 < n_partial < 396, "the run was not interrupted part-way"
    with pred.open("a") as f:  # a torn row, as a kill in the middle of a write would leave
        f.write('{"task": "emotion", "lang": "de", "ind')
    subprocess.run(_cli(tiny_llama, data, run), check=True, env=env, capture_output=True)
    rows = [json.loads(x) for x in pred.read_text().splitlines()]
    keys = [(r["lang"], r["index"]) for r in rows]
    assert len(keys) == len(set(keys)) == 396  # nothing lost, nothing duplicated
    a = json.loads((ref / "results.json").read_text())
    b = json.loads((run / "results.json").read_text())
    assert a["languages"] == b["languages"] and a["mean"] == b["mean"]
    ref_rows = {(r["lang"], r["index"]): r for r in map(json.loads, (ref / "predictions.jsonl").read_text().splitlines())}
    assert all(ref_rows[(r["lang"], r["index"])] == r for r in rows)


def test_other_settings_in_same_folder_are_refused(tiny_llama: Path, tmp_path: Path, capsys) -> None:
    data = write_paper_folder(tmp_path / "data")
    out = tmp_path / "run"
    assert main(_cli(tiny_llama, data, out, "--limit", "2")[3:]) == 0
    assert main(_cli(tiny_llama, data, out, "--limit", "3")[3:]) == 2
    assert "other settings (--limit 2 -> 3)" in capsys.readouterr().err


def _bad(tmp_path: Path, tiny_llama: Path, capsys, data: Path, *extra: str, task: str = "emotion") -> str:
    argv = _cli(tiny_llama, data, tmp_path / "out", *extra)[3:]
    argv[argv.index("--task") + 1] = task
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("qtalign: error: ") and "Traceback" not in err
    return err


def test_bad_inputs_give_one_clear_line(tiny_llama: Path, tmp_path: Path, capsys) -> None:
    good = write_paper_folder(tmp_path / "good")
    assert "no such file or folder" in _bad(tmp_path, tiny_llama, capsys, tmp_path / "nope")
    assert "unknown task 'sentiment'" in _bad(tmp_path, tiny_llama, capsys, good, task="sentiment")
    assert "unknown language 'xx'" in _bad(tmp_path, tiny_llama, capsys, good, "--langs", "en,xx")

    broken = write_paper_folder(tmp_path / "broken")
    (broken / "emotion_de12_test.json").write_text('[{"input": "a", "answer": "positiv"},', encoding="utf-8")
    err = _bad(tmp_path, tiny_llama, capsys, broken)
    assert "emotion_de12_test.json: invalid JSON at line 1" in err

    missing = write_paper_folder(tmp_path / "missing")
    items = json.loads((missing / "emotion_de12_test.json").read_text())
    del items[3]["input"]
    items[5]["answer"] = "vielleicht"
    (missing / "emotion_de12_test.json").write_text(json.dumps(items), encoding="utf-8")
    err = _bad(tmp_path, tiny_llama, capsys, missing)
    assert "emotion_de12_test.json: item 3: missing field 'input'" in err
    assert "item 5: answer 'vielleicht' maps to no emotion label" in err

    empty = write_paper_folder(tmp_path / "empty")
    (empty / "emotion_de12_test.json").write_text("[]", encoding="utf-8")
    assert "no usable items for language 'de'" in _bad(tmp_path, tiny_llama, capsys, empty)

    only_en = write_paper_folder(tmp_path / "only_en", langs=("en",))
    assert "no test file for language 'de'" in _bad(tmp_path, tiny_llama, capsys, only_en)


def test_label_word_no_token_can_begin_is_an_error() -> None:
    from qtalign.errors import QtalignError
    from qtalign.scoring import label_token_sets

    class NoTokens:
        def begin_ids(self, word: str) -> list[int]:
            return []

    with pytest.raises(QtalignError, match="label word 'ox': no token of this tokenizer can begin it"):
        label_token_sets(NoTokens(), ["ox"])  # type: ignore[arg-type]


def test_prompts_too_long_for_the_context_are_reported(tiny_llama: Path, tmp_path: Path) -> None:
    from qtalign.models import load_tokenizer
    from qtalign.prompt_check import check_data
    from qtalign.tasks import get_task

    data = write_paper_folder(tmp_path / "data")
    report = check_data(get_task("emotion"), str(data), ["en"], load_tokenizer(tiny_llama), max_len=20)
    assert not report.ok and report.too_long
    assert "does not fit the model's context of 20" in str(report.too_long[0])
    assert not check_data(get_task("emotion"), str(data), ["en"], load_tokenizer(tiny_llama), max_len=2048).too_long


def test_data_warnings_are_capped_per_file(caplog) -> None:
    """Many warnings in one file (e.g. duplicates) are shown as the first three and a count, not one line each."""
    import logging

    from qtalign.data.readers import Problem
    from qtalign.eval import warn_problems

    problems = [Problem("a.jsonl", i, f"duplicate of item {i - 1}", "warning") for i in range(1, 8)]
    problems.append(Problem("b.jsonl", 4, "duplicate of item 2", "warning"))
    with caplog.at_level(logging.WARNING, logger="qtalign"):
        warn_problems(problems)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:3] == [f"warning: a.jsonl: item {i}: duplicate of item {i - 1}" for i in (1, 2, 3)]
    assert "warning: b.jsonl: item 4: duplicate of item 2" in lines
    assert "warning: a.jsonl: 4 more warning(s); `qtalign data check` lists them all" in lines
    assert len(lines) == 5

"""The real output of every lm-eval version qtalign names (tests/data/lmeval/<version>/: lm_eval's own command line,
run offline on `qtalign export lm-eval --task emotion --data demo --langs en,de,zh --limit 5` with two tiny random
Llama models, tests/tiny.py seeds 0 and 1), read back and compared: no lm-eval needed to run these tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qtalign.cli.main import main
from qtalign.compare import compare_runs, load_run
from qtalign.runs.lmeval import TESTED_VERSIONS

DATA = Path(__file__).resolve().parents[1] / "data" / "lmeval"
VERSIONS = sorted(p.name for p in DATA.iterdir() if p.is_dir())


def test_every_named_version_has_real_output_here() -> None:
    assert sorted(TESTED_VERSIONS) == VERSIONS


def samples(run: Path) -> dict[tuple[str, int], dict]:
    out = {}
    for path in run.glob("*/samples_qtalign_emotion_*.jsonl"):
        lang = path.name.split("_")[3]
        for s in map(json.loads, path.read_text(encoding="utf-8").splitlines()):
            out[lang, int(s["doc"]["index"])] = s
    return out


@pytest.mark.parametrize("version", VERSIONS)
def test_real_output_read_and_compared(version: str, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = DATA / version / "a", DATA / version / "b"
    run = load_run(a)
    assert run.source == f"lm-eval {version}" and run.task == "emotion" and run.langs == ["en", "zh", "de"]
    capsys.readouterr()
    assert main(["prompts", "--task", "emotion", "--data", "demo", "--langs", "en,de,zh", "--limit", "5"]) == 0
    prompts = {(r["lang"], r["index"]): r["prompt"] for r in map(json.loads, capsys.readouterr().out.splitlines())}
    sa, sb = samples(a), samples(b)
    assert set(sa) == set(prompts) == set(run.rows)
    for key, s in sa.items():
        assert {x["arg_0"] for x in s["arguments"].values()} == {prompts[key]}
        assert run.rows[key]["prompt_sha"] == s["prompt_hash"][:16]
    res = compare_runs([a, b], n_boot=200)
    for lang in ("en", "zh", "de"):
        keys = sorted(k for k in sa if k[0] == lang)
        ca, cb = np.array([bool(sa[k]["acc"]) for k in keys]), np.array([bool(sb[k]["acc"]) for k in keys])
        v = res["comparisons"][0]["scores"]["raw"]["languages"][lang]
        assert (v["base"], v["other"], v["base_only"], v["other_only"]) == (
            ca.mean(), cb.mean(), int((ca & ~cb).sum()), int((~ca & cb).sum()))

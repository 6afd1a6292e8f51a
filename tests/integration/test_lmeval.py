"""Against the real lm-evaluation-harness (the pinned `qtalign[lmeval]` extra), offline: lm-eval runs a task
exported by `qtalign export lm-eval` with tiny models and --log_samples; its prompts are qtalign's, qtalign eval
--scoring loglik predicts the same labels, and `qtalign compare` on two lm-eval runs gives exactly the McNemar
counts and accuracies computed from the samples files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tiny import save_tiny

from qtalign.cli.main import main
from qtalign.compare import compare_runs

pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install 'qtalign[lmeval]'; CI installs it)")

LANGS = ("en", "de", "zh")
OPTIONS = ["--task", "emotion", "--data", "demo", "--langs", ",".join(LANGS), "--limit", "40"]


def lm_eval(model: Path, tasks: Path, out: Path, home: Path) -> Path:
    """lm_eval's own command line on the exported group, offline, with --log_samples; returns out."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_HOME": str(home), "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={model},dtype=float32",
           "--include_path", str(tasks), "--tasks", "qtalign_emotion", "--device", "cpu", "--batch_size", "8",
           "--log_samples", "--output_path", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def samples(out: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """Every logged sample by (language, qtalign item index), straight from the samples files."""
    rows = {}
    for path in out.glob("*/samples_qtalign_emotion_*.jsonl"):
        lang = path.name.split("_")[3]
        for line in path.read_text(encoding="utf-8").splitlines():
            s = json.loads(line)
            rows[lang, int(s["doc"]["index"])] = s
    return rows


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_llama: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lmeval")
    tasks = root / "tasks"
    assert main(["export", "lm-eval", *OPTIONS, "--out", str(tasks)]) == 0
    other = save_tiny(root / "tiny-b", "llama", "bytelevel", seed=1)
    out = {"tasks": tasks, "a": lm_eval(tiny_llama, tasks, root / "lm-a", root / "hf"),
           "b": lm_eval(other, tasks, root / "lm-b", root / "hf"), "q": root / "q"}
    assert main(["eval", "--model", str(tiny_llama), *OPTIONS, "--scoring", "loglik", "--out", str(out["q"])]) == 0
    return out


def test_lmeval_scores_exactly_qtalign_prompts(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["prompts", *OPTIONS]) == 0
    expected = {(r["lang"], r["index"]): r["prompt"] for r in map(json.loads, capsys.readouterr().out.splitlines())}
    got = samples(runs["a"])
    assert set(got) == set(expected) and len(got) == 40 * len(LANGS)
    q = {(r["lang"], r["index"]): r for r in map(json.loads, (runs["q"] / "predictions.jsonl").read_text().splitlines())}
    for key, s in got.items():
        contexts = {a["arg_0"] for a in s["arguments"].values()}
        assert contexts == {expected[key]}  # byte for byte
        assert [a["arg_1"] for a in s["arguments"].values()] == ["positive", "negative"]
        assert s["prompt_hash"][:16] == q[key]["prompt_sha"]


def test_qtalign_loglik_predicts_what_lmeval_predicts(runs: dict[str, Path]) -> None:
    got = samples(runs["a"])
    q = {(r["lang"], r["index"]): r for r in map(json.loads, (runs["q"] / "predictions.jsonl").read_text().splitlines())}
    labels = ("positive", "negative")
    same = [labels[int(np.argmax([float(x[0]) for x in s["filtered_resps"]]))] == q[key]["pred"]
            for key, s in got.items()]
    assert np.mean(same) >= 0.99, f"{len(same) - sum(same)} of {len(same)} predictions differ"
    diffs = [abs(float(x[0]) - q[key]["loglik"][lb]) for key, s in got.items()
             for x, lb in zip(s["filtered_resps"], labels)]
    assert max(diffs) < 1e-3  # the same log-likelihoods, up to float rounding of batched forward passes


def test_compare_two_lmeval_runs_gives_the_counts_of_the_samples(runs: dict[str, Path], tmp_path: Path) -> None:
    a, b = samples(runs["a"]), samples(runs["b"])
    res = compare_runs([runs["a"], runs["b"]], n_boot=300)
    assert res["task"] == "emotion" and res["languages"] == ["en", "zh", "de"]  # the paper's order
    assert res["modes"] == ["raw", "batch"]
    assert res["runs"][0]["source"] == "lm-eval 0.4.13"
    for lang in LANGS:
        keys = sorted(k for k in a if k[0] == lang)
        ca = np.array([bool(a[k]["acc"]) for k in keys])
        cb = np.array([bool(b[k]["acc"]) for k in keys])
        v = res["comparisons"][0]["scores"]["raw"]["languages"][lang]
        assert v["n"] == len(keys) == 40
        assert (v["base"], v["other"]) == (ca.mean(), cb.mean())
        assert (v["both"], v["base_only"], v["other_only"], v["neither"]) == (
            int((ca & cb).sum()), int((ca & ~cb).sum()), int((~ca & cb).sum()), int((~ca & ~cb).sum()))
    assert res["resampling"]["scheme"] == "joint"  # the demo sample is parallel: items resampled jointly
    assert main(["compare", str(runs["a"]), str(runs["b"]), "--names", "a,b", "--bootstrap", "200",
                 "--out", str(tmp_path / "cmp")]) == 0
    assert json.loads((tmp_path / "cmp/compare.json").read_text())["comparisons"][0]["other"] == "b"


def test_compare_a_qtalign_run_with_an_lmeval_run_of_the_same_prompts(runs: dict[str, Path]) -> None:
    res = compare_runs([runs["q"], runs["a"]], names=["qtalign", "lm-eval"], n_boot=200)
    raw = res["comparisons"][0]["scores"]["raw"]
    assert sum(v["base_only"] + v["other_only"] for v in raw["languages"].values()) <= 1  # the same scoring


@pytest.mark.integration
def test_lmeval_scores_label_words_as_qtalign_loglik_on_gemma(paper_data: Path, tmp_path: Path) -> None:
    """On the packaged Gemma 3 270M: lm-eval's own pair encoding (prompt + word tokenized whole, split after the
    prompt's tokens) gives the label-word token ids qtalign's loglik scores, for 20 languages, English and native
    label words; and lm-eval's own loglikelihood equals `qtalign eval --scoring loglik` on a few items."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from qtalign.eval import EvalSettings, prepare
    from qtalign.eval import run as run_eval
    from qtalign.languages import PAPER_LANGS
    from qtalign.models import load_model
    from qtalign.scoring import continuation_ids

    lm = load_model(device="cpu")
    harness = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=4, device="cpu")
    checked = 0
    for labels in ("en", "native"):
        s = EvalSettings(task="emotion", data=str(paper_data / "emotion"), langs=PAPER_LANGS, limit=2, labels=labels)
        for lp in prepare(s).prompts.values():
            for i in range(len(lp.items)):
                for word in lp.label_words:
                    assert harness._encode_pair(lp.prompt(i), word)[1] == continuation_ids(lm.tokenizer, word)
                    checked += 1
    assert checked == 2 * 20 * 2 * 2
    s = EvalSettings(task="emotion", data=str(paper_data / "emotion"), langs=("en", "zh"), limit=2, device="cpu",
                     scoring="loglik", n_boot=100)
    run_eval(s, tmp_path / "q", progress=False)
    rows = [json.loads(x) for x in (tmp_path / "q/predictions.jsonl").read_text().splitlines()]
    prompt = {(lang, it.index): lp.prompt(k) for lang, lp in prepare(s).prompts.items()
              for k, it in enumerate(lp.items)}
    requests = [Instance("loglikelihood", {}, (prompt[r["lang"], r["index"]], word), 0)
                for r in rows for word in ("positive", "negative")]
    got = [ll for ll, _ in harness.loglikelihood(requests, disable_tqdm=True)]
    want = [r["loglik"][word] for r in rows for word in ("positive", "negative")]
    np.testing.assert_allclose(got, want, atol=2e-3)

"""qtalign compare: paired statistics checked against independent computations, refusals, seen/unseen, calibration."""

from __future__ import annotations

import json
from math import comb
from pathlib import Path

import numpy as np
import pytest
from fakeruns import write_eval_run, write_train_run

from qtalign.cli.main import main
from qtalign.compare import compare_runs, format_compare, write_compare
from qtalign.errors import QtalignError


def flags(n: int, true_at: set[int]) -> list[bool]:
    return [i in true_at for i in range(n)]


def exact_mcnemar(b: int, c: int) -> float:
    """Two-sided exact McNemar p from the binomial formula (independent of statsmodels)."""
    n, k = b + c, min(b, c)
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n)


def test_identical_runs_give_zero_difference_and_p_one(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    correct = {lang: list(rng.random(30) < 0.6) for lang in ("en", "zh", "sw")}
    a = write_eval_run(tmp_path / "a", correct)
    b = write_eval_run(tmp_path / "b", correct)
    res = compare_runs([a, b], n_boot=200)
    s = res["comparisons"][0]["scores"]["raw"]
    for v in s["languages"].values():
        assert v["diff"] == 0 and v["ci95"] == [0, 0]
        assert v["p"] == 1 and v["p_holm"] == 1 and not v["significant"] and v["mark"] == ""
        assert all(x["change"] == 0 for x in v["predicted_share"].values())
    assert s["mean"]["diff"] == 0 and s["mean"]["ci95"] == [0, 0]
    assert res["modes"] == ["raw"]  # no calibrated fields on these rows


def test_known_difference_matches_binomial_formula_and_normal_interval(tmp_path: Path) -> None:
    n = 80
    # en: base right on 0..39; other right on 0..34 and 40..59 -> b = 5 (base only), c = 20 (other only)
    base = {"en": flags(n, set(range(40))), "de": flags(n, set(range(50)))}
    other = {"en": flags(n, set(range(35)) | set(range(40, 60))), "de": flags(n, set(range(48)) | {60, 61, 62})}
    a, b = write_eval_run(tmp_path / "a", base), write_eval_run(tmp_path / "b", other)
    res = compare_runs([a, b], n_boot=4000, seed=1)
    en = res["comparisons"][0]["scores"]["raw"]["languages"]["en"]
    de = res["comparisons"][0]["scores"]["raw"]["languages"]["de"]
    assert (en["base_only"], en["other_only"]) == (5, 20)
    assert en["diff"] == pytest.approx((55 - 40) / n)
    assert en["p"] == pytest.approx(exact_mcnemar(5, 20), rel=1e-9)
    assert de["p"] == pytest.approx(exact_mcnemar(2, 3), rel=1e-9)
    # Holm over the two languages: smallest p times 2, the other max(previous, p) (both capped at 1)
    p_small, p_big = sorted([en["p"], de["p"]])
    assert en["p_holm"] == pytest.approx(min(1, 2 * p_small))
    assert de["p_holm"] == pytest.approx(min(1, max(2 * p_small, p_big)))
    assert en["significant"] and en["mark"] == "**" and not de["significant"]
    # paired bootstrap interval ~ the normal interval of the mean per-item difference
    d = np.array(other["en"], float) - np.array(base["en"], float)
    half = 1.96 * d.std(ddof=1) / np.sqrt(n)
    assert en["ci95"][0] == pytest.approx(d.mean() - half, abs=0.03)
    assert en["ci95"][1] == pytest.approx(d.mean() + half, abs=0.03)
    mean = res["comparisons"][0]["scores"]["raw"]["mean"]
    assert mean["diff"] == pytest.approx((en["diff"] + de["diff"]) / 2)
    # the languages share item indices: items are resampled jointly, so the mean's interval is the normal interval
    # of the per-item mean over languages
    d_de = np.array(other["de"], float) - np.array(base["de"], float)
    se = ((d + d_de) / 2).std(ddof=1) / np.sqrt(n)
    assert mean["ci95"][0] == pytest.approx(mean["diff"] - 1.96 * se, abs=0.01)
    assert mean["ci95"][1] == pytest.approx(mean["diff"] + 1.96 * se, abs=0.01)
    assert mean["resampling"]["scheme"] == "joint" and res["resampling"]["scheme"] == "joint"
    assert mean["mde80"] == pytest.approx(2.8 * mean["sd"], rel=0.01) and mean["sd"] == pytest.approx(se, rel=0.1)
    # predicted share: wrong items predict the other label; gold alternates positive/negative
    share = en["predicted_share"]["positive"]
    preds_a = ["positive" if (i % 2 == 0) == ok else "negative" for i, ok in enumerate(base["en"])]
    preds_b = ["positive" if (i % 2 == 0) == ok else "negative" for i, ok in enumerate(other["en"])]
    assert share["base"] == pytest.approx(preds_a.count("positive") / n)
    assert share["change"] == pytest.approx((preds_b.count("positive") - preds_a.count("positive")) / n)


@pytest.mark.parametrize("change, message", [
    ("missing", "en item 9 is in a but not in b"),
    ("prompt", "en item 3: the prompts differ"),
    ("gold", "item 0 has gold"),
    ("lang", "language 'de' is in a but not in b"),
    ("task", "task 'emotion' vs 'nli'"),
])
def test_mismatched_runs_are_refused_naming_the_difference(tmp_path: Path, change: str, message: str) -> None:
    correct = {"en": flags(10, {0, 1, 2}), "de": flags(10, {4})}
    a = write_eval_run(tmp_path / "a", correct)
    if change == "missing":
        b = write_eval_run(tmp_path / "b", {"en": flags(9, {0}), "de": flags(10, {4})})
    elif change == "prompt":
        b = write_eval_run(tmp_path / "b", correct, prompt=lambda lang, i: f"{lang} other prompt {i}" if i == 3
                           else f"{lang} prompt {i}")
    elif change == "lang":
        b = write_eval_run(tmp_path / "b", {"en": correct["en"]})
    elif change == "task":
        b = write_eval_run(tmp_path / "b", correct, task="nli")
    else:
        b = write_eval_run(tmp_path / "b", correct)
        rows = [json.loads(x) for x in (b / "predictions.jsonl").read_text().splitlines()]
        rows[0]["gold"] = "negative"
        (b / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(QtalignError, match=message.replace("(", r"\(")):
        compare_runs([a, b], n_boot=50)


def test_cli_refusal_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_eval_run(tmp_path / "a", {"en": flags(10, {0})})
    b = write_eval_run(tmp_path / "b", {"en": flags(10, {0})}, prompt=lambda lang, i: f"x{i}")
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("qtalign: error: cannot compare") and "\n" not in err and "en item 0" in err
    assert main(["compare", str(a), str(tmp_path / "nothing")]) == 2
    assert "no predictions.jsonl" in capsys.readouterr().err


def test_without_prompt_hashes_settings_are_checked(tmp_path: Path) -> None:
    correct = {"en": flags(10, {0, 1})}
    a = write_eval_run(tmp_path / "a", correct, with_sha=False)
    b = write_eval_run(tmp_path / "b", correct, with_sha=False)
    res = compare_runs([a, b], n_boot=50)
    assert any("no prompt_sha" in n for n in res["notes"])
    res_b = json.loads((b / "results.json").read_text())
    res_b["settings"]["shots"] = 4
    (b / "results.json").write_text(json.dumps(res_b))
    with pytest.raises(QtalignError, match="setting shots is 2 in a, 4 in b"):
        compare_runs([a, b], n_boot=50)


def test_seen_languages_come_from_the_adapters_training_record(tmp_path: Path) -> None:
    train = write_train_run(tmp_path / "train", ["zh", "es"], "en")
    rng = np.random.default_rng(3)
    langs = ("en", "zh", "es", "de", "sw")
    base = {lang: list(rng.random(40) < 0.5) for lang in langs}
    # tuned: +10 items right in seen languages, unchanged elsewhere
    tuned = {lang: [True] * 10 + v[10:] if lang in ("en", "zh", "es") else v for lang, v in base.items()}
    a = write_eval_run(tmp_path / "base", base)
    b = write_eval_run(tmp_path / "tuned", tuned, adapter=str(train / "adapter"))
    res = compare_runs([a, b], names=["base", "zh-es"], n_boot=300)
    c = res["comparisons"][0]
    assert c["seen_langs"] == ["zh", "es", "en"] and "manifest.json" in c["seen_from"]
    s = c["scores"]["raw"]
    assert s["languages"]["zh"]["seen"] and not s["languages"]["sw"]["seen"]
    assert s["unseen"]["diff"] == 0 and s["unseen"]["langs"] == ["de", "sw"]
    gains = [s["languages"][lang]["diff"] for lang in ("en", "zh", "es")]
    assert s["seen"]["diff"] == pytest.approx(np.mean(gains)) and s["seen"]["diff"] > 0
    # the adapter given as the train folder itself, relative to the run folder's parent, also works
    b2 = write_eval_run(tmp_path / "tuned2", tuned, adapter="train")
    assert compare_runs([a, b2], n_boot=50)["comparisons"][0]["seen_langs"] == ["zh", "es", "en"]
    # no record: groups are left out and the reason is given
    b3 = write_eval_run(tmp_path / "tuned3", tuned, adapter=str(tmp_path / "gone"))
    c3 = compare_runs([a, b3], n_boot=50)["comparisons"][0]
    assert c3["seen_langs"] is None and "not found" in c3["seen_from"] and "seen" not in c3["scores"]["raw"]
    # given explicitly
    c4 = compare_runs([a, b3], n_boot=50, seen=["sw"])["comparisons"][0]
    assert c4["scores"]["raw"]["seen"]["langs"] == ["sw"]


def test_calibrated_scores_are_compared_beside_raw(tmp_path: Path) -> None:
    n = 40
    raw_a, raw_b = {"en": flags(n, set(range(20)))}, {"en": flags(n, set(range(30)))}  # raw gain +25
    cal_a = {"batch": {"en": flags(n, set(range(30)))}, "content-free": {"en": flags(n, set(range(25)))}}
    cal_b = {"batch": {"en": flags(n, set(range(26)))}, "content-free": {"en": flags(n, set(range(25)))}}
    a = write_eval_run(tmp_path / "a", raw_a, cal=cal_a)
    b = write_eval_run(tmp_path / "b", raw_b, cal=cal_b)
    res = compare_runs([a, b], n_boot=100)
    assert res["modes"] == ["raw", "batch", "content-free"]
    s = res["comparisons"][0]["scores"]
    assert s["raw"]["languages"]["en"]["diff"] == pytest.approx(0.25)
    assert s["batch"]["languages"]["en"]["diff"] == pytest.approx(-0.1)
    assert (s["batch"]["languages"]["en"]["base_only"], s["batch"]["languages"]["en"]["other_only"]) == (4, 0)
    assert s["batch"]["languages"]["en"]["p"] == pytest.approx(exact_mcnemar(4, 0))
    assert s["content-free"]["languages"]["en"]["diff"] == 0
    assert res["runs"][1]["accuracy"]["batch"]["mean"]["accuracy"] == pytest.approx(26 / 40)
    # a run without calibration limits the comparison to raw
    c = write_eval_run(tmp_path / "c", raw_b)
    assert compare_runs([a, c], n_boot=50)["modes"] == ["raw"]
    text = format_compare(res)
    assert "calibrated (batch)" in text and "predicted share" in text


def test_three_runs_cli_writes_json_and_markdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(1)
    runs = [write_eval_run(tmp_path / name, {lang: list(rng.random(20) < 0.5) for lang in ("en", "ja")})
            for name in ("base", "mix", "ctl")]
    # same items: every run must share gold and prompts, which write_eval_run derives from the index
    out = tmp_path / "cmp"
    assert main(["compare", *map(str, runs), "--out", str(out), "--names", "B,M,C", "--bootstrap", "100"]) == 0
    printed = capsys.readouterr().out
    assert "M vs B, raw" in printed and "C vs B, raw" in printed
    data = json.loads((out / "compare.json").read_text())
    assert [c["other"] for c in data["comparisons"]] == ["M", "C"] and data["runs"][0]["name"] == "B"
    md = (out / "compare.md").read_text()
    assert "## M vs B" in md and "| lang |" in md
    assert write_compare(data, tmp_path / "again")["json"].is_file()
    assert main(["compare", str(runs[0]), str(runs[1]), "--names", "x"]) == 2


def test_real_eval_runs_tiny_model(tiny_llama: Path, tmp_path: Path) -> None:
    """Runs of `qtalign eval` on the same items compare cleanly; other label words change the prompts (same items,
    same gold) and are refused by prompt hash; another demonstration seed changes the items scored."""
    from test_eval import settings, write_paper_folder

    from qtalign.eval import run as run_eval

    data = write_paper_folder(tmp_path / "data")
    run_eval(settings(tiny_llama, data, out=str(tmp_path / "a")), progress=False)
    run_eval(settings(tiny_llama, data, batch_size=5, out=str(tmp_path / "b")), progress=False)
    res = compare_runs([tmp_path / "a", tmp_path / "b"], n_boot=100)
    assert all(v["p"] == 1 and v["diff"] == 0 for v in res["comparisons"][0]["scores"]["raw"]["languages"].values())
    assert res["notes"] == []  # prompts checked by hash
    run_eval(settings(tiny_llama, data, labels="good,bad", out=str(tmp_path / "c")), progress=False)
    with pytest.raises(QtalignError, match=r"en item \d+: the prompts differ \(prompt hash"):
        compare_runs([tmp_path / "a", tmp_path / "c"], n_boot=100)
    run_eval(settings(tiny_llama, data, seed=1, out=str(tmp_path / "d")), progress=False)
    with pytest.raises(QtalignError, match=r"en item \d+ is in a but not in d"):
        compare_runs([tmp_path / "a", tmp_path / "d"], n_boot=100)

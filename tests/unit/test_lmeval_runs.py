"""lm-eval output folders read as qtalign runs (no lm-eval needed: folders in lm-eval 0.4.13's layout): task tables,
pairing by doc_id, hash checks, parallel items, batch calibration, compare/report outputs and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fake_lmeval import write_lmeval_run
from test_compare import exact_mcnemar

from qtalign.cli.main import main
from qtalign.compare import compare_runs, load_run
from qtalign.errors import QtalignError
from qtalign.runs.lmeval import find_group

XNLI = ("de", "fr", "sw")


def items(rng: np.random.Generator, n: int, k: int, golds: list[int] | None = None) -> list[tuple[int, list[float]]]:
    golds = golds if golds is not None else [int(g) for g in rng.integers(0, k, n)]
    return [(g, [float(x) for x in rng.normal(-5, 1, k)]) for g in golds]


def xnli_run(folder: Path, seed: int, n: int = 40, langs: tuple[str, ...] = XNLI) -> Path:
    rng = np.random.default_rng(seed)
    golds = [int(g) for g in np.random.default_rng(99).integers(0, 3, n)]  # parallel: the same gold in every language
    return write_lmeval_run(folder, {f"xnli_{lang}": items(rng, n, 3, golds) for lang in langs})


def direct(folder: Path, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(acc per item as lm-eval logged it, log-likelihoods [n, k], gold [n]) read straight from the samples file."""
    path = next(folder.glob(f"*/samples_{task}_*.jsonl"))
    rows = sorted((json.loads(x) for x in path.read_text().splitlines()), key=lambda r: r["doc_id"])
    return (np.array([bool(r["acc"]) for r in rows]),
            np.array([[float(c[0]) for c in r["filtered_resps"]] for r in rows]),
            np.array([int(r["target"]) for r in rows]))


def test_task_tables_map_names_to_group_language_and_part() -> None:
    assert find_group("xnli_de")[0].name == "xnli" and find_group("xnli_de")[1] == "de"
    assert find_group("paws_fr")[:2][1] == "fr" and find_group("pawsx_fr")[0].name == "pawsx"
    assert find_group("belebele_deu_Latn")[1] == "de" and find_group("belebele_nob_Latn")[1] == "no"
    assert find_group("belebele_acm_Arab")[1] == "acm_Arab"  # no ISO 639-1 code: kept as lm-eval writes it
    g, lang, part = find_group("global_mmlu_full_de_abstract_algebra")
    assert (g.name, lang, part) == ("global_mmlu_full", "de", "abstract_algebra")
    g, lang, part = find_group("global_mmlu_de_stem")
    assert (g.name, lang, part) == ("global_mmlu", "de", "stem")
    assert find_group("xcopa_it")[0].labels == ("choice1", "choice2")
    assert find_group("xstorycloze_sw")[1] == "sw"
    g, lang, _ = find_group("qtalign_nli_de")
    assert (g.name, lang, g.labels, g.index_field) == ("nli", "de", ("entailment", "neutral", "contradiction"), "index")
    assert find_group("xnli_xx") is None and find_group("arc_easy") is None


def test_compare_two_lmeval_runs_equals_counts_from_the_samples(tmp_path: Path) -> None:
    a, b = xnli_run(tmp_path / "a", 1), xnli_run(tmp_path / "b", 2)
    res = compare_runs([a, b], n_boot=300)
    assert res["task"] == "xnli" and res["languages"] == list(XNLI)
    assert res["labels"] == ["entailment", "neutral", "contradiction"]
    assert res["modes"] == ["raw", "batch"]
    assert res["resampling"]["scheme"] == "joint"  # same doc_ids and the same gold everywhere: parallel
    raw = res["comparisons"][0]["scores"]["raw"]["languages"]
    cal = res["comparisons"][0]["scores"]["batch"]["languages"]
    for lang in XNLI:
        ca, lla, gold = direct(a, f"xnli_{lang}")
        cb, llb, _ = direct(b, f"xnli_{lang}")
        v = raw[lang]
        assert (v["base"], v["other"]) == (ca.mean(), cb.mean())
        assert (v["base_only"], v["other_only"]) == (int((ca & ~cb).sum()), int((~ca & cb).sum()))
        assert v["p"] == pytest.approx(exact_mcnemar(v["base_only"], v["other_only"]), rel=1e-9)
        for ll, key in ((lla, "base"), (llb, "other")):  # batch calibration, computed independently
            pred = (ll - ll.mean(0)).argmax(1)
            assert cal[lang][key] == pytest.approx((pred == gold).mean())


def test_qtalign_and_lmeval_runs_load_into_the_same_record(tmp_path: Path) -> None:
    run = load_run(xnli_run(tmp_path / "a", 1), "a")
    assert run.source == "lm-eval 0.4.13" and run.model == "org/tiny-model" and run.results is None
    row = run.rows["de", 3]
    assert set(row) >= {"gold", "pred", "correct", "loglik", "pred_cal", "correct_cal", "prompt_sha", "item_sha"}
    assert row["item"] == "xnli_de/3" and len(row["prompt_sha"]) == 16


def test_items_spread_over_several_tasks_per_language_are_offset_and_parallel(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    golds = {part: [int(x) for x in rng.integers(0, 4, 5)] for part in ("stem", "other")}
    tasks = {f"global_mmlu_{lang}_{part}": items(rng, 5, 4, golds[part]) for lang in ("de", "fr")
             for part in ("stem", "other")}
    run = load_run(write_lmeval_run(tmp_path / "m", tasks))
    assert run.task == "global_mmlu" and run.labels == ["A", "B", "C", "D"]
    assert run.items["de"] == [0, 1, 2, 3, 4, 1_000_000, 1_000_001, 1_000_002, 1_000_003, 1_000_004]
    assert run.rows["fr", 1_000_002]["item"] == "global_mmlu_fr_stem/2"
    assert run.resampling().scheme == "joint"


def test_not_parallel_when_the_gold_differs_across_languages(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    run = load_run(write_lmeval_run(tmp_path / "x", {f"xnli_{lang}": items(rng, 30, 3) for lang in ("de", "fr")}))
    assert run.parallel_audit is False and run.resampling().scheme == "independent"


def test_lang_map_for_tasks_outside_the_tables(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    folder = write_lmeval_run(tmp_path / "x", {"mytask_de": items(rng, 6, 2), "mytask_fr": items(rng, 6, 2)})
    with pytest.raises(QtalignError, match="mytask_de.*no task table.*--lang-map"):
        load_run(folder)
    (tmp_path / "flat.yaml").write_text("mytask_de: de\nmytask_fr: fr\n")
    run = load_run(folder, lang_map=tmp_path / "flat.yaml")
    assert (run.task, run.langs, run.labels) == ("flat", ["de", "fr"], ["A", "B"])
    (tmp_path / "named.json").write_text(json.dumps({"group": "mine", "labels": ["no", "yes"],
                                                     "tasks": {"mytask_de": "de", "mytask_fr": "fr"}}))
    run = load_run(folder, lang_map=tmp_path / "named.json")
    assert (run.task, run.labels) == ("mine", ["no", "yes"])
    (tmp_path / "bad.yaml").write_text("tasks: [1, 2]\n")
    with pytest.raises(QtalignError, match="--lang-map .*bad.yaml: tasks must map"):
        load_run(folder, lang_map=tmp_path / "bad.yaml")


def test_a_folder_with_several_groups_needs_task(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tasks = {"xnli_de": items(rng, 5, 3), "paws_de": items(rng, 5, 2)}
    a, b = write_lmeval_run(tmp_path / "a", tasks), write_lmeval_run(tmp_path / "b", tasks)
    with pytest.raises(QtalignError, match="several groups \\(pawsx, xnli\\); choose one with --task"):
        load_run(a)
    assert compare_runs([a, b], n_boot=50, task="pawsx")["labels"] == ["different", "same"]
    with pytest.raises(QtalignError, match="no tasks of group 'xcopa'"):
        load_run(a, task="xcopa")


def cli_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qtalign: error: "), err
    return err[0]


def test_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = xnli_run(tmp_path / "a", 1)
    nos = write_lmeval_run(tmp_path / "nosamples", {"xnli_de": [(0, [0.0, 1.0, 2.0])]}, with_samples=False)
    assert "rerun lm_eval with --log_samples" in cli_error(capsys, "compare", str(a), str(nos))
    old = xnli_run(tmp_path / "old", 1)
    res = next(old.glob("*/results_*.json"))
    res.write_text(res.read_text().replace('"0.4.13"', '"0.4.2"'))
    assert "lm-eval 0.4.2; qtalign reads the output of lm-eval 0.4.10, 0.4.11" in cli_error(capsys, "compare", str(a), str(old))
    fewer = xnli_run(tmp_path / "fewer", 2, n=39)
    assert "de item xnli_de/39 is in a but not in fewer" in cli_error(capsys, "compare", str(a), str(fewer))
    other = write_lmeval_run(tmp_path / "other", {f"xnli_{lang}": items(np.random.default_rng(2), 40, 3)
                                                  for lang in XNLI},
                             prompt=lambda t, i: f"{t} another prompt {i}")
    msg = cli_error(capsys, "compare", str(a), str(other))
    assert "the prompts differ" in msg or "the items differ" in msg or "has gold" in msg
    langs = xnli_run(tmp_path / "langs", 2, langs=("de", "fr"))
    assert "language 'sw' is in a but not in langs" in cli_error(capsys, "compare", str(a), str(langs))
    paws = write_lmeval_run(tmp_path / "paws", {"paws_de": items(np.random.default_rng(0), 40, 2)})
    assert "task 'xnli' vs 'pawsx'" in cli_error(capsys, "compare", str(a), str(paws))
    (a / "org__tiny-model" / "results_2026-12-08T00-00-00.000001.json").write_text("{}")
    assert "holds 2 lm-eval runs" in cli_error(capsys, "compare", str(a), str(langs))


def test_same_items_checked_by_prompt_and_doc_hash(tmp_path: Path) -> None:
    a, b = xnli_run(tmp_path / "a", 1), xnli_run(tmp_path / "b", 2)
    path = next(b.glob("*/samples_xnli_fr_*.jsonl"))
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    lines[7]["prompt_hash"] = "0" * 64
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(QtalignError, match="fr item xnli_fr/7: the prompts differ"):
        compare_runs([a, b], n_boot=50)
    lines[7]["prompt_hash"], lines[8]["doc_hash"] = json.loads(
        next(a.glob("*/samples_xnli_fr_*.jsonl")).read_text().splitlines()[7])["prompt_hash"], "1" * 64
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(QtalignError, match="fr item xnli_fr/8: the items differ"):
        compare_runs([a, b], n_boot=50)


def test_report_over_lmeval_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    golds = [int(x) for x in rng.integers(0, 2, 30)]
    for name in ("base", "tuned"):
        write_lmeval_run(tmp_path / name, {**{f"xnli_{lang}": items(rng, 30, 3, [g % 3 for g in golds])
                                              for lang in ("de", "sw")},
                                           **{f"paws_{lang}": items(rng, 30, 2, golds) for lang in ("de", "fr")}})
    out = tmp_path / "rep"
    assert main(["report", str(tmp_path / "base"), str(tmp_path / "tuned"), "--out", str(out), "--seen", "de",
                 "--bootstrap", "100"]) == 0
    md = (out / "report.md").read_text()
    for text in ("xnli · org/tiny-model", "pawsx · org/tiny-model", "tuned:xnli", "calibrated (batch)"):
        assert text in md, text
    assert (out / "report.html").is_file()
    assert json.loads((out / "summary.json").read_text())


def test_tasks_with_different_choice_counts_are_refused(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    folder = write_lmeval_run(tmp_path / "x", {"t_de": items(rng, 4, 2), "t_fr": items(rng, 4, 3)})
    (tmp_path / "m.yaml").write_text("t_de: de\nt_fr: fr\n")
    with pytest.raises(QtalignError, match="has 3 choices, other items 2"):
        load_run(folder, lang_map=tmp_path / "m.yaml")

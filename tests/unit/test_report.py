"""qtalign report on a synthetic study folder: sections, numbers, figures, robustness; and in headless chromium."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from fakeruns import STUDY_LANGS, write_study

from qtalign.cli.main import main
from qtalign.report import build_report

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
                 if p and Path(p).is_file()), None)


def write_lang_files(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for lang, words in {"en": ("positive", "negative"), "de": ("positiv", "negativ")}.items():
        items = [{"input": f"review {i} " + "word " * (i % 5), "answer": words[i % 2]} for i in range(10)]
        (folder / f"emotion_{lang}10_test.json").write_text(json.dumps(items), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def study(tiny_gemma: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic study with real lens and pca run folders made by the CLIs on the tiny Gemma."""
    root = tmp_path_factory.mktemp("study")
    data = write_lang_files(root / "lensdata")
    analyses = []
    for kind in ("lens", "pca"):
        for name, seed in (("base", 0), ("zh_es", 1)):
            out = root / kind / name
            argv = [kind, "--model", str(tiny_gemma), "--task", "emotion", "--data", str(data), "--langs", "en,de",
                    "--device", "cpu", "--batch-size", "4", "--seed", str(seed), "--out", str(out)]
            if kind == "lens":
                argv += ["--bootstrap", "50"]
            assert main(argv) == 0
            analyses.append({"id": f"{kind}-{name}", "kind": kind, "run": f"{kind}/{name}", "model": "tiny",
                             "mix": None if name == "base" else name, "train_seed": None if name == "base" else 1})
    return write_study(root, n=40, analyses=analyses)


@pytest.fixture(scope="module")
def report(study: Path) -> dict[str, Path]:
    return build_report(study, n_boot=200)


EXPECTED_FIGURES = {"gains-0", "prior-shift-0", "loss", "lens-tiny", "pca-tiny-scatter", "pca-tiny-corr",
                    "pca-tiny-alignment"}


def test_report_files_sections_and_figures(report: dict[str, Path]) -> None:
    html = report["html"].read_text(encoding="utf-8")
    md = report["md"].read_text(encoding="utf-8")
    assert {k.removeprefix("figure:") for k in report if k.startswith("figure:")} == EXPECTED_FIGURES
    # self-contained: every image is a data URI, no scripts, no external resources
    assert html.count('<img src="data:image/png;base64,') == len(EXPECTED_FIGURES)
    assert "<script" not in html and not re.search(r"""(src|href)=["'](?!data:|#)""", html)
    assert "http://" not in html and "https://" not in html
    for section in ("headline", "accuracy", "seen-unseen", "prior-shift", "controls", "seeds", "training",
                    "analyses", "metadata"):
        assert f'id="{section}"' in html
    assert html.count('class="report-table paper"') == 2  # raw and calibrated (batch)
    # Markdown twin: the same tables, figures as files beside it
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (report["md"].parent / link).is_file()
    assert len(re.findall(r"!\[", md)) == len(EXPECTED_FIGURES)
    assert "| model / mix | en | zh | de | ja | hi | sw | mean |" in md


def _md_row(md: str, header: str, first_cell: str) -> list[str]:
    """The cells of the first row starting with first_cell in the first table after the heading `header`."""
    part = md[md.index(header):]
    for line in part.splitlines():
        if line.startswith(f"| {first_cell} |"):
            return [c.strip() for c in line.strip("|").split("|")]
    raise AssertionError(f"no row {first_cell!r} after {header!r}")


def test_paper_table_numbers_match_the_comparison(study: Path, report: dict[str, Path]) -> None:
    md = report["md"].read_text(encoding="utf-8")
    cmp = json.loads((study / "compare/zh_es-s1-vs-base/compare.json").read_text())["comparisons"][0]
    for mode, title in (("raw", "— raw"), ("batch", "— calibrated (batch)")):
        row = _md_row(md, title, "zh_es (seed 1)")
        base = _md_row(md, title, "base")
        langs = ["en", "zh", "de", "ja", "hi", "sw"]  # high-resource first, then low-resource, paper order
        for k, lang in enumerate(langs, 1):
            v = cmp["scores"][mode]["languages"][lang]
            assert row[k].startswith(f"{100 * v['other']:.1f} ({100 * v['diff']:+.1f}{v['mark']})")
            assert base[k] == f"{100 * v['base']:.1f}"
        m = cmp["scores"][mode]["mean"]
        assert row[-1].startswith(f"{100 * m['other']:.1f} ({100 * m['diff']:+.1f} [")
    # rows: base, both seeds of the real mix, its control beside them
    rows = [line.split("|")[1].strip() for line in md[md.index("— raw"):].split("\n\n")[2].splitlines()[2:]]
    assert rows == ["base", "zh_es (seed 1)", "zh_es (seed 2)", "zh_es [shuffled]"]


def test_seen_unseen_controls_seeds_metadata(report: dict[str, Path]) -> None:
    md = report["md"].read_text(encoding="utf-8")
    seen = _md_row(md, "## Seen vs unseen", "emotion · tiny · labels en · demo seed 0")
    assert seen[3] == "zh, es, en" and seen[4].startswith("+")
    ctl = _md_row(md, "## Real mix vs its control", "zh_es (seed 1) − zh_es [shuffled]")
    assert ctl[1] == "raw" and len(ctl) == 2 + len(STUDY_LANGS) + 1
    spread = _md_row(md, "## Spread over seeds", "emotion · tiny")
    assert spread[3] == "1, 2" and "±" in spread[4]
    assert "| eval-zh_es-s1 | tiny | train/train-zh_es-s1 |" in md
    assert "| train-zh_es-s1 | train | done | 30.0 |" in md
    assert "wall time of the steps run: 128 s over 7 step(s)" in md


def test_controls_read_real_minus_control_whichever_way_the_runs_were_compared(tmp_path: Path) -> None:
    """The runner compares a control (other) with its real mix (base); the report's control table still reads real
    minus control (issue 28): the runner's numbers negated, the interval reversed, the accuracies control → real."""
    from qtalign.compare import compare_runs, write_compare

    root = write_study(tmp_path / "s", n=60, seed=5)
    write_compare(compare_runs([root / "eval/eval-zh_es-s1", root / "eval/eval-zh_es-shuffled-s1"],
                               names=["zh_es", "zh_es-shuffled"], n_boot=200), root / "compare/zh_es-vs-shuffled")
    doc = json.loads((root / "study.json").read_text(encoding="utf-8"))
    ctl = next(c for c in doc["compares"] if c["kind"] == "vs-control")
    ctl["base"], ctl["other"] = "eval-zh_es-s1", "eval-zh_es-shuffled-s1"  # as study/plan.py writes it
    (root / "study.json").write_text(json.dumps(doc), encoding="utf-8")
    md = build_report(root, n_boot=200)["md"].read_text(encoding="utf-8")
    row = _md_row(md, "## Real mix vs its control", "zh_es (seed 1) − zh_es [shuffled]")
    assert "control → real mix" in md and "zh_es [shuffled] − zh_es" not in md
    runner = json.loads((root / "compare/zh_es-vs-shuffled/compare.json").read_text())["comparisons"][0]["scores"]
    neg = lambda x: f"{0.0 - 100 * x:+.1f}"
    for i, lang in enumerate(["en", "zh", "de", "ja", "hi", "sw"]):  # high-resource first, then low-resource
        v = runner["raw"]["languages"][lang]
        assert row[2 + i] == f"{neg(v['diff'])}{v['mark']} ({100 * v['other']:.1f}→{100 * v['base']:.1f})"
    mean = runner["raw"]["mean"]
    assert row[-1] == f"{neg(mean['diff'])} [{neg(mean['ci95'][1])}, {neg(mean['ci95'][0])}]"


def test_significant_changes_are_marked(tmp_path: Path) -> None:
    root = write_study(tmp_path / "big", n=200, seed=3)
    paths = build_report(root, n_boot=200)
    html = paths["html"].read_text(encoding="utf-8")
    cmp = json.loads((root / "compare/zh_es-s1-vs-base/compare.json").read_text())["comparisons"][0]
    zh = cmp["scores"]["raw"]["languages"]["zh"]
    assert zh["significant"] and zh["mark"]
    assert f'<small class="up">{100 * zh["diff"]:+.1f}{zh["mark"]}</small>' in html


def test_missing_runs_and_bad_compare_are_noted_not_fatal(tmp_path: Path) -> None:
    root = write_study(tmp_path / "s", n=20)
    shutil.rmtree(root / "eval" / "eval-zh_es-s2")
    (root / "compare/zh_es-s1-vs-base/compare.json").write_text("{")
    paths = build_report(root, n_boot=50)
    md = paths["md"].read_text(encoding="utf-8")
    assert "eval eval-zh_es-s2: left out" in md and "unreadable; recomputed" in md
    assert "zh_es (seed 1)" in md and "zh_es (seed 2)" not in md.split("## Training")[0]


def test_cli_report_and_missing_study(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_study(tmp_path / "s", n=20)
    assert main(["report", str(root), "--bootstrap", "50"]) == 0
    assert "report.html" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("qtalign: error:") and "study.json: not found" in err and "\n" not in err


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (CI installs Debian's `chromium` in .ci/run)")
def test_report_in_headless_chromium(report: dict[str, Path], tmp_path: Path) -> None:
    """The page loads with no console errors and no network requests; every table and figure is there and decoded;
    a screenshot is not blank."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    messages: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                          "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: messages.append(f"{m.type}: {m.text}") if m.type in ("error", "warning")
                    else None)
            page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report["html"].resolve().as_uri(), wait_until="load")
            state = page.evaluate("""() => ({
                tables: document.querySelectorAll('table.paper').length,
                rows: [...document.querySelectorAll('table.paper')].map(t => t.tBodies[0].rows.length),
                figures: [...document.querySelectorAll('figure img')].map(i => ({
                    id: i.closest('figure').id, ok: i.complete && i.naturalWidth > 0,
                    w: i.getBoundingClientRect().width})),
                headings: [...document.querySelectorAll('h2')].map(h => h.id),
            })""")
            shot = tmp_path / "shot.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert messages == []
    assert all(u.startswith(("file:", "data:")) for u in requests), requests
    assert state["tables"] == 2 and state["rows"] == [4, 4]
    assert {f["id"].removeprefix("fig-") for f in state["figures"]} == EXPECTED_FIGURES
    assert all(f["ok"] and f["w"] > 100 for f in state["figures"]), state["figures"]
    assert {"accuracy", "controls", "analyses", "metadata"} <= set(state["headings"])
    img = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert img.shape[0] > 2000  # the full page, not one screen
    assert img.std() > 20 and (img < 200).mean() > 0.01  # text, tables and figures drawn, not a blank page


def test_runner_compare_json_with_several_runs_is_matched_by_path(tmp_path: Path) -> None:
    from qtalign.compare import compare_runs, write_compare

    root = write_study(tmp_path / "s", n=30)
    ev = root / "eval"
    multi = compare_runs([ev / "base", ev / "eval-zh_es-s2", ev / "eval-zh_es-s1"], n_boot=50)
    write_compare(multi, root / "compare/zh_es-s1-vs-base")
    md = build_report(root, n_boot=50)["md"].read_text(encoding="utf-8")
    s1 = multi["comparisons"][1]["scores"]["raw"]["languages"]["zh"]
    assert _md_row(md, "— raw", "zh_es (seed 1)")[2].startswith(f"{100 * s1['other']:.1f} ({100 * s1['diff']:+.1f}")
    assert "unreadable" not in md


def test_report_says_how_intervals_resample_and_adds_seeds(tmp_path: Path) -> None:
    """Intervals of means resample the parallel items jointly and say so; the real mix's two training seeds give a
    seed-aware interval and a variance breakdown; the one-seed control says what it leaves out; a power line."""
    from qtalign.compare import load_run
    from qtalign.metrics.uncertainty import seed_aware_interval

    root = write_study(tmp_path / "s", n=60)
    md = build_report(root, n_boot=300)["md"].read_text(encoding="utf-8")
    assert "items resampled jointly across 6 languages" in md.split("## Accuracy by language")[0]
    head = md.split("## Accuracy by language")[0]
    assert "zh_es vs base, over 2 training seeds x 1 demonstration set" in head
    assert "(demonstration variance not included)" in head
    assert "zh_es [shuffled] vs base, over 1 training seed x 1 demonstration set" in head
    assert "training-seed variance not included; demonstration variance not included" in head
    row = _md_row(md, "## Uncertainty", "emotion · tiny · labels en")
    assert row[1] == "zh_es" and row[2] == "raw" and row[3].startswith("over 2 training seeds x 1 demonstration set")
    # the same computation on the runs' arrays: (training seed, demonstration seed) -> [L, n] paired differences
    base = load_run(root / "eval/base")
    cells = {}
    for seed in (1, 2):
        run = load_run(root / f"eval/eval-zh_es-s{seed}")
        cells[seed, 0] = np.stack([run.correct(lang, "raw").astype(float) - base.correct(lang, "raw").astype(float)
                                   for lang in base.langs])
    iv = seed_aware_interval(cells, 300, 0)
    assert row[4] == f"{100 * iv.value:+.1f} [{100 * iv.lo:+.1f}, {100 * iv.hi:+.1f}]"
    power = _md_row(md, "### Power of each comparison", "emotion · tiny · labels en · demo seed 0")
    assert power[4] == "items resampled jointly across 6 languages" and power[5].startswith("±")


def test_compare_json_without_a_scheme_is_recomputed(tmp_path: Path) -> None:
    root = write_study(tmp_path / "s", n=20)
    path = root / "compare/zh_es-s1-vs-base/compare.json"
    doc = json.loads(path.read_text())
    for mode in doc["comparisons"][0]["scores"].values():
        del mode["mean"]["resampling"]
    path.write_text(json.dumps(doc))
    md = build_report(root, n_boot=50)["md"].read_text(encoding="utf-8")
    assert "written before intervals recorded their resampling scheme; recomputed" in md


def test_summary_json_and_real_minus_control(tmp_path: Path) -> None:
    """report/summary.json holds every comparison and seed-aware change as data; a real mix minus its control is
    computed seed by seed on the same items."""
    from qtalign.compare import load_run

    study = write_study(tmp_path / "s", n=30)
    paths = build_report(study, n_boot=200)
    summary = json.loads(paths["summary"].read_text(encoding="utf-8"))
    assert {a["mix"] for a in summary["arms"]} >= {"zh_es"}
    contrast = next(c for c in summary["contrasts"] if c["mode"] == "raw")
    assert contrast["real"] == "zh_es" and contrast["control_kind"] == "shuffled"
    real, ctl = load_run(study / "eval/eval-zh_es-s1"), load_run(study / "eval/eval-zh_es-shuffled-s1")
    expected = np.mean([real.correct(lang, "raw").mean() - ctl.correct(lang, "raw").mean() for lang in real.langs])
    assert abs(contrast["value"] - expected) < 1e-9
    assert contrast["ci95"][0] <= contrast["value"] <= contrast["ci95"][1]
    md = paths["md"].read_text(encoding="utf-8")
    assert "minus its control" in md

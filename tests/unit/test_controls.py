"""Control mixes: counts, languages and length profile kept; shuffled never aligned; no answers; one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qtalign.cli.main import main
from qtalign.data.build import BuildReport, build_pairs
from qtalign.data.build_output import write_outputs
from qtalign.data.contamination import assert_no_answers, label_words
from qtalign.data.controls import CONTROLS
from qtalign.data.lengths import content_chars
from qtalign.data.pairs import Pair, slot
from qtalign.errors import QtalignError
from qtalign.tasks import get_task

NLI = get_task("nli")
EMOTION = get_task("emotion")
SAMPLE = Path(__file__).parents[1] / "data" / "parallel_sample.jsonl"
DEMO_PARALLEL = Path(__file__).parents[2] / "src" / "qtalign" / "demo" / "parallel.jsonl"

# (en, zh, es) premise/hypothesis of 12 synthetic items; 0 and 1 share a premise, 2 and 3 the same English text
ITEMS = [
    (("A man in a red coat is waiting at a bus stop in the rain.", "A man is outside."),
     ("一个穿红外套的男人在雨中的公交车站等车。", "一个男人在外面。"),
     ("Un hombre con abrigo rojo espera en una parada de autobús bajo la lluvia.", "Un hombre está afuera.")),
    (("A man in a red coat is waiting at a bus stop in the rain.", "The man is asleep in bed."),
     ("一个穿红外套的男人在雨中的公交车站等车。", "这个男人在床上睡觉。"),
     ("Un hombre con abrigo rojo espera en una parada de autobús bajo la lluvia.", "El hombre duerme en la cama.")),
    (("Two children build a sandcastle on the beach.", "Kids are playing."),
     ("两个孩子在海滩上堆沙堡。", "孩子们在玩。"),
     ("Dos niños construyen un castillo de arena en la playa.", "Unos niños están jugando.")),
    (("Two children build a sandcastle on the beach.", "Kids are playing."),
     ("两个小孩在沙滩上堆沙子城堡。", "小孩们在玩耍。"),
     ("Dos niños hacen un castillo de arena en la playa.", "Los niños juegan.")),
    (("A woman slices vegetables in a busy restaurant kitchen.", "Someone is cooking."),
     ("一位女士在繁忙的餐厅厨房里切菜。", "有人在做饭。"),
     ("Una mujer corta verduras en la cocina de un restaurante concurrido.", "Alguien está cocinando.")),
    (("An old dog sleeps under a wooden table.", "A cat is running."),
     ("一只老狗睡在木桌下面。", "一只猫在跑。"),
     ("Un perro viejo duerme debajo de una mesa de madera.", "Un gato está corriendo.")),
    (("A cyclist rides up a steep mountain road at sunrise.", "A person is on a bike."),
     ("日出时一名骑车人沿着陡峭的山路骑行。", "一个人在骑自行车。"),
     ("Un ciclista sube por una carretera de montaña empinada al amanecer.", "Una persona va en bicicleta.")),
    (("A group of friends laughs around a campfire at night.", "People are sad."),
     ("一群朋友晚上围着篝火大笑。", "人们很伤心。"),
     ("Un grupo de amigos se ríe alrededor de una fogata por la noche.", "La gente está triste.")),
    (("A girl in a yellow dress reads a book on a park bench.", "A girl is reading."),
     ("一个穿黄裙子的女孩在公园长椅上看书。", "一个女孩在读书。"),
     ("Una niña con vestido amarillo lee un libro en un banco del parque.", "Una niña está leyendo.")),
    (("Workers repair a broken water pipe under the street.", "The street is being fixed."),
     ("工人们在修理街道下面一根破裂的水管。", "街道正在维修。"),
     ("Unos obreros reparan una tubería de agua rota bajo la calle.", "Están arreglando la calle.")),
    (("A musician plays the violin in a crowded subway station.", "There is music."),
     ("一位音乐家在拥挤的地铁站里拉小提琴。", "有音乐。"),
     ("Un músico toca el violín en una estación de metro llena de gente.", "Hay música.")),
    (("A boy throws a ball to his father in the garden.", "Two people play catch."),
     ("一个男孩在花园里把球扔给他的父亲。", "两个人在玩接球。"),
     ("Un niño le lanza una pelota a su padre en el jardín.", "Dos personas juegan a la pelota.")),
]
ANSWERS = ["entailment", "contradiction", "entailment", "entailment", "entailment", "contradiction", "entailment",
           "contradiction", "entailment", "entailment", "neutral", "entailment"]


def write_json(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def snli(tmp_path: Path) -> Path:
    d = tmp_path / "snli"
    for k, lang in enumerate(("en", "zh", "es")):
        write_json(d / f"snli_{lang}12_train.json",
                   [{"premise": it[k][0], "hypothesis": it[k][1], "answer": a} for it, a in zip(ITEMS, ANSWERS)])
    return d


def build(data: Path, control: str | None, **kw: object) -> BuildReport:
    parallel = SAMPLE if control == "parallel" else None
    return build_pairs(NLI, [data], ["zh", "es"], "en", per_lang=kw.pop("per_lang", 8), seed=kw.pop("seed", 5),
                       control=control, parallel=parallel, **kw)  # type: ignore[arg-type]


def assert_same_profile(real: BuildReport, ctrl: BuildReport, tol: float = 0.05) -> None:
    """Counts per source language and mean question/output lengths (target-equivalent characters) within tol."""
    assert ctrl.counts == real.counts and len(ctrl.pairs) == len(real.pairs)
    rp, cp = real.length_profile["real"], ctrl.length_profile["control"]
    assert ctrl.length_profile["real"] == rp  # the control measures the very real mix it stands for
    assert set(cp) == set(rp)
    for key in rp:
        assert cp[key]["n"] == rp[key]["n"]
        for side in ("input_eq", "output_eq"):
            r, c = rp[key][side]["mean"], cp[key][side]["mean"]
            assert abs(c / r - 1) <= tol, (key, side, r, c)
            assert abs(ctrl.length_profile["difference"][key][side]["mean"]) <= tol


def no_answer_anywhere(task_words: set[str], pairs: list[Pair]) -> None:
    for p in pairs:
        assert not any(f': "{w}"' in p.input + p.output for w in task_words)


@pytest.mark.parametrize("kind", list(CONTROLS))
def test_control_keeps_counts_languages_and_length(snli: Path, kind: str, tmp_path: Path) -> None:
    real = build(snli, None)
    ctrl = build(snli, kind)
    assert_same_profile(real, ctrl)
    assert [slot(p) for p in ctrl.pairs] == [p.source_lang for p in real.pairs]  # position by position
    expected = {"shuffled": lambda p: (p.source_lang, "en"), "copy": lambda p: (p.source_lang, p.source_lang),
                "english": lambda p: ("en", "en"), "parallel": lambda p: (p.source_lang, "en")}[kind]
    assert [(c.source_lang, c.target_lang) for c in ctrl.pairs] == [expected(p) for p in real.pairs]
    no_answer_anywhere(label_words(NLI), ctrl.pairs)
    assert_no_answers(NLI, ctrl.pairs, require_cue=kind != "parallel")
    assert all(c.input.endswith(f"Translate the input from {_name(c.source_lang)} to {_name(c.target_lang)}:\n")
               for c in ctrl.pairs)
    # the same manifest as a real mix, plus what the control is and was derived from
    write_outputs(real, tmp_path / "real" / "train.jsonl", {"seed": 5, "control": None})
    write_outputs(ctrl, tmp_path / kind / "train.jsonl", {"seed": 5, "control": kind})
    rm = json.loads((tmp_path / "real" / "train.manifest.json").read_text(encoding="utf-8"))
    cm = json.loads((tmp_path / kind / "train.manifest.json").read_text(encoding="utf-8"))
    assert cm["settings"]["control"] == kind and rm["settings"]["control"] is None
    assert cm["control"]["derived_from"]["pairs_sha256"] == rm["pairs_sha256"] and "control" not in rm
    assert cm["counts"] == rm["counts"] and cm["length_profile"]["real"] == rm["length_profile"]["real"]
    assert set(cm) == set(rm) | {"control"}
    rows = [json.loads(x) for x in (tmp_path / kind / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert all(r["stands_for"] in ("zh", "es") for r in rows)
    assert "stands_for" not in (tmp_path / "real" / "train.jsonl").read_text(encoding="utf-8")


def _name(code: str) -> str:
    return {"en": "English", "zh": "Chinese", "es": "Spanish"}[code]


def test_copy_and_english_contents(snli: Path) -> None:
    real = build(snli, None)
    copy, english = build(snli, "copy"), build(snli, "english")
    for r, c, e in zip(real.pairs, copy.pairs, english.pairs):
        question = r.input.split("\nTranslate the input")[0]
        assert c.output == question and c.input.startswith(question + "\n") and c.index == r.index
        assert e.output == r.output and e.input == r.output + "\nTranslate the input from English to English:\n"
    # raw characters differ by the language ratio; target-equivalent characters do not
    lp = copy.length_profile
    assert lp["control"]["zh"]["output"]["mean"] < 0.5 * lp["real"]["zh"]["output"]["mean"]
    assert 0.2 < lp["ratios"]["zh"] < 0.5 and lp["ratios"]["en"] == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_shuffled_never_pairs_an_item_with_its_own_translation(snli: Path, seed: int) -> None:
    real = build(snli, None, per_lang=None, seed=seed)
    ctrl = build(snli, "shuffled", per_lang=None, seed=seed)
    assert len(ctrl.pairs) == 24 and [c.input for c in ctrl.pairs] == [r.input for r in real.pairs]
    own = {(r.source_lang, r.index): r.output for r in real.pairs}
    for c in ctrl.pairs:
        mine = own[(c.source_lang, c.index)]
        assert c.output != mine and c.output_index != c.index
        # not an item with the same English text (2 vs 3) nor one sharing a premise (0 vs 1)
        assert not set(mine.split("\n")[:-1]) & set(c.output.split("\n")[:-1])
        assert c.output == own[(c.source_lang, c.output_index)]
    # the target sides are the same multiset per language (a permutation within each source language)
    for lang in ("zh", "es"):
        assert sorted(c.output for c in ctrl.pairs if c.source_lang == lang) == sorted(
            r.output for r in real.pairs if r.source_lang == lang)
    again = build(snli, "shuffled", per_lang=None, seed=seed)
    assert again.pairs == ctrl.pairs  # seeded


def test_shuffled_refuses_when_impossible(tmp_path: Path) -> None:
    d = tmp_path / "same"
    item = {"premise": "A dog runs.", "hypothesis": "An animal moves.", "answer": "entailment"}
    write_json(d / "snli_en3_train.json", [item] * 3)
    write_json(d / "snli_zh3_train.json", [{**item, "premise": f"一只狗在跑{i}。"} for i in range(3)])
    with pytest.raises(QtalignError, match="shuffled: source language 'zh'.*different item"):
        build_pairs(NLI, [d], ["zh"], "en", control="shuffled")


def test_parallel_control_uses_whole_sentences_once(snli: Path) -> None:
    ctrl = build(snli, "parallel")
    lines = [json.loads(x) for x in SAMPLE.read_text(encoding="utf-8").splitlines()]
    info = ctrl.control["parallel"]  # type: ignore[index]
    assert info["usable"] == {"es": 48, "zh": 48} and info["contaminated"] == {"es": 0, "zh": 0}
    for lang in ("zh", "es"):
        used = [n for p in ctrl.pairs if p.source_lang == lang for n in p.parallel_lines]
        assert len(used) == len(set(used)) == info["used"][lang]
    for p in ctrl.pairs:
        src = [lines[n - 1][p.source_lang] for n in p.parallel_lines]
        tgt = [lines[n - 1]["en"] for n in p.parallel_lines]
        assert p.input == ("" if p.source_lang == "zh" else " ").join(src) + \
            f"\nTranslate the input from {_name(p.source_lang)} to English:\n"
        assert p.output == " ".join(tgt) and p.index == p.parallel_lines[0]


def test_contamination_guard_applies_to_controls(snli: Path, tmp_path: Path) -> None:
    ev = tmp_path / "eval"
    # item 5 of the training data is an evaluation item; one parallel sentence is an evaluation premise
    write_json(ev / "snli_en1_test.json", [{"premise": ITEMS[5][0][0], "hypothesis": ITEMS[5][0][1],
                                            "answer": "contradiction"}])
    write_json(ev / "snli_de1_test.json", [{"premise": "Die Bibliothek öffnet um neun Uhr morgens.",
                                            "hypothesis": "x", "answer": "neutral"}])
    for kind in CONTROLS:
        ctrl = build(snli, kind, per_lang=None, exclude=ev)
        assert ctrl.counts == {"zh": 11, "es": 11} and ctrl.contaminated == {"zh": 1, "es": 1}
        assert all(p.index != 5 for p in ctrl.pairs if kind != "parallel")
        assert all(p.output_index != 5 for p in ctrl.pairs)
        if kind == "parallel":
            assert ctrl.control["parallel"]["contaminated"] == {"zh": 1, "es": 1}  # type: ignore[index]
            assert all(1 not in p.parallel_lines for p in ctrl.pairs)  # type: ignore[operator]


def test_parallel_file_with_an_answer_is_refused(snli: Path, tmp_path: Path) -> None:
    rows = [json.loads(x) for x in SAMPLE.read_text(encoding="utf-8").splitlines()]
    for r in rows:
        r["en"] = r["en"] + ' Answer: "neutral"'
    bad = write_jsonl(tmp_path / "answers.jsonl", rows)
    with pytest.raises(QtalignError, match="contains an answer"):
        build_pairs(NLI, [snli], ["zh"], "en", per_lang=4, control="parallel", parallel=bad)


def test_emotion_single_field_template(tmp_path: Path) -> None:
    d = tmp_path / "emo"
    en = ["The blender broke after two days and the seller never answered.", "Great little lamp, bright and cheap.",
          "Comfortable shoes, I wear them every day.", "The case cracked the first time I dropped it."] * 2
    zh = ["搅拌机两天就坏了，卖家一直不回复。", "很棒的小台灯，又亮又便宜。", "鞋子很舒服，我每天都穿。",
          "手机壳第一次掉地上就裂了。"] * 2
    en = [f"{t} ({i})" for i, t in enumerate(en)]
    zh = [f"{t}（{i}）" for i, t in enumerate(zh)]
    write_json(d / "emotion_en8_train.json", [{"input": t} for t in en])
    write_json(d / "emotion_zh8_train.json", [{"input": t} for t in zh])
    real = build_pairs(EMOTION, [d], ["zh"], "en", per_lang=None)
    assert content_chars(EMOTION, "en", real.pairs[0].output) == len(en[real.pairs[0].index])
    for kind in ("shuffled", "copy", "english"):
        assert_same_profile(real, build_pairs(EMOTION, [d], ["zh"], "en", per_lang=None, control=kind))


# ---- refusals: one line, exit 2 -------------------------------------------------------------------------------
def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(["data", "build", *args])
    err = capsys.readouterr().err.strip()
    return rc, err


@pytest.mark.parametrize("extra, message", [
    (["--control", "reversed"], "--control: unknown kind 'reversed'; choose one of shuffled, copy, english, parallel"),
    (["--control", "parallel"], "--control parallel needs --parallel FILE"),
    (["--parallel", str(SAMPLE)], "--parallel is only used with --control parallel"),
    (["--control", "copy", "--parallel", str(SAMPLE)], "--parallel is only used with --control parallel"),
    (["--control", "english", "--target", "de"], "--control english pairs the real mix's English side"),
    (["--control", "parallel", "--parallel", "/nonexistent/p.jsonl"], "--parallel file not found"),
])
def test_bad_control_flags(snli: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str],
                           message: str) -> None:
    rc, err = run_cli(["--task", "nli", "--data", str(snli), "--sources", "zh,es", "--out",
                       str(tmp_path / "o" / "x.jsonl"), *extra], capsys)
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("qtalign: error: ") and message in err
    assert not (tmp_path / "o").exists()


def test_bad_parallel_files(snli: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [json.loads(x) for x in SAMPLE.read_text(encoding="utf-8").splitlines()]
    cases = {
        "no_es.jsonl": ([{k: v for k, v in r.items() if k != "es"} for r in rows], "no text in language 'es'"),
        "few.jsonl": (rows[:3], "too few sentences for zh->en"),
        "short.jsonl": ([{"en": "Hi.", "zh": "嗨。", "es": "Hola."}] * 40, "too few sentences for zh->en"),
        "list.jsonl": ([["en", "Hello"]], "line 1: expected a JSON object"),
        "number.jsonl": ([{"en": 3, "zh": "三", "es": "tres"}], "line 1: language 'en': expected text"),
    }
    for name, (content, message) in cases.items():
        path = write_jsonl(tmp_path / name, content)
        rc, err = run_cli(["--task", "nli", "--data", str(snli), "--sources", "zh,es", "--per-lang", "8", "--out",
                           str(tmp_path / "o" / "x.jsonl"), "--control", "parallel", "--parallel", str(path)], capsys)
        assert rc == 2 and len(err.splitlines()) == 1 and message in err and str(path) in err, (name, err)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"en": "a"}\n{"en": \n', encoding="utf-8")
    rc, err = run_cli(["--task", "nli", "--data", str(snli), "--sources", "zh", "--out", str(tmp_path / "o" / "x.jsonl"),
                       "--control", "parallel", "--parallel", str(broken)], capsys)
    assert rc == 2 and "broken.jsonl: line 2: invalid JSON" in err
    assert not (tmp_path / "o").exists()


def test_cli_writes_control_manifest(snli: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ctl" / "train.jsonl"
    assert main(["data", "build", "--task", "nli", "--data", str(snli), "--sources", "zh,es", "--per-lang", "8", "--out",
                 str(out), "--control", "parallel", "--parallel", str(SAMPLE)]) == 0
    printed = capsys.readouterr().out
    assert "16 parallel control pairs" in printed and "length vs the real mix" in printed
    m = json.loads((out.parent / f"{out.stem}.manifest.json").read_text(encoding="utf-8"))
    assert m["settings"]["control"] == "parallel" and m["settings"]["parallel"] == str(SAMPLE)
    assert m["control"]["parallel"]["sha256"] and m["control"]["languages"] == {"zh->en": 8, "es->en": 8}
    assert m["length_profile"]["unit"].startswith("content characters")
    assert json.loads((out.parent / "train_alpaca.json").read_text(encoding="utf-8"))[0]["output"]


# ---- the paper's question files -------------------------------------------------------------------------------
def test_paper_question_files(paper_data: Path) -> None:
    snli_dir = paper_data / "snli"
    kw = {"per_lang": 300, "seed": 7, "exclude": snli_dir}
    real = build_pairs(NLI, [snli_dir], ["zh", "es"], "en", **kw)  # type: ignore[arg-type]
    assert real.counts == {"zh": 300, "es": 300}
    for kind in ("shuffled", "copy", "english"):
        ctrl = build_pairs(NLI, [snli_dir], ["zh", "es"], "en", control=kind, **kw)  # type: ignore[arg-type]
        assert_same_profile(real, ctrl)
        no_answer_anywhere(label_words(NLI), ctrl.pairs)
        if kind == "shuffled":
            assert all(c.output != r.output for c, r in zip(ctrl.pairs, real.pairs))
            # neighbours in length: each pair's target side is about as long as its own translation
            rel = [abs(len(c.output) / len(r.output) - 1) for c, r in zip(ctrl.pairs, real.pairs)]
            assert sum(rel) / len(rel) < 0.05
    # the test sample is far too small for 600 question pairs: one clear refusal
    with pytest.raises(QtalignError, match="too few sentences for zh->en"):
        build_pairs(NLI, [snli_dir], ["zh", "es"], "en", control="parallel", parallel=SAMPLE, **kw)  # type: ignore[arg-type]


def test_parallel_demo_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qtalign.data import parallel_control
    from qtalign.data.parallel_control import resolve_parallel

    assert DEMO_PARALLEL.is_file(), "the repository ships src/qtalign/demo/parallel.jsonl"
    assert resolve_parallel("demo").resolve() == DEMO_PARALLEL.resolve()
    monkeypatch.setattr(parallel_control, "files", lambda package: tmp_path)  # an installation without the file
    with pytest.raises(QtalignError, match="--parallel demo: this qtalign ships no demo parallel file"):
        resolve_parallel("demo")


def test_shipped_parallel_file(paper_data: Path) -> None:
    assert DEMO_PARALLEL.is_file(), "the repository ships src/qtalign/demo/parallel.jsonl"
    n = sum(1 for x in DEMO_PARALLEL.read_text(encoding="utf-8").splitlines() if x.strip())
    per_lang = max(4, n // 8)
    real = build_pairs(NLI, [paper_data / "snli"], ["zh", "es"], "en", per_lang=per_lang, seed=1)
    ctrl = build_pairs(NLI, [paper_data / "snli"], ["zh", "es"], "en", per_lang=per_lang, seed=1,
                       control="parallel", parallel="demo")
    assert ctrl.counts == real.counts
    assert max(abs(d[s]["mean"]) for d in ctrl.length_profile["difference"].values() for s in ("input_eq", "output_eq")) < 0.1

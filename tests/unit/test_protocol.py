"""The paper's protocol: byte-exact prompts from demos files, presets that never hide an explicit option, the paper's
gold-string scoring beside qtalign's, parallel gold and demonstration labels, 4-bit settings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from test_eval import write_paper_folder

from qtalign.cli.common_options import settings_from_args
from qtalign.cli.main import build_parser, main
from qtalign.data.demonstrations_file import load_demos_file
from qtalign.errors import QtalignError
from qtalign.eval import EvalSettings, prepare
from qtalign.models import describe_four_bit, four_bit_config, load_model, resolve_dtype
from qtalign.protocol import PAPER_PCA_LANGS, paper_correct, paper_token_ids
from qtalign.settings import Settings
from qtalign.tasks import get_task

# ---- synthetic data in the paper's layouts (tests must not depend on the shared folder) -----------------------
NLI_WORDS = {  # test-file label words: ja and bn write neutral / entailment as the released files do
    "en": ("entailment", "neutral", "contradiction"),
    "ja": ("含意", "中性", "矛盾"),
    "bn": ("ধারণ করে", "নিরপেক্ষ", "দ্বন্দ্ব"),
}
NLI_TABLE = {  # the scripts' tables
    "en": ("entailment", "neutral", "contradiction"),
    "ja": ("含意", "中立", "矛盾"),
    "bn": ("এনটেইলমেন্ট", "নিরপেক্ষ", "দ্বন্দ্ব"),
}
NLI_CUES = {"en": ("Premise: ", "Hypothesis: ", 'Answer: "'), "ja": ("前提: ", "仮説: ", '答え: "'),
            "bn": ("ভিত্তি: ", "হাইপোথিসিস: ", 'উত্তর: "')}


def write_nli_paper_folder(root: Path, n: int = 9) -> Path:
    """root/snli/snli_{lang}{n}_test.json (parallel, labels E,N,C,...) and root/demos/snli_demos.json."""
    labels = ("entailment", "neutral", "contradiction")
    (root / "snli").mkdir(parents=True)
    (root / "demos").mkdir()
    for lang, words in NLI_WORDS.items():
        items = [{"premise": f"A man plays guitar {i} {lang}", "hypothesis": f"He sings {i}", "answer": words[i % 3]}
                 for i in range(n)]
        (root / "snli" / f"snli_{lang}{n}_test.json").write_text(json.dumps(items, ensure_ascii=False), "utf-8")
    demos = {}
    for lang, (cp, ch, ca) in NLI_CUES.items():
        its = []
        for k, label in enumerate(labels):
            p, h = f"Premise {k} ({lang})", f"Hypothesis {k}"
            its.append({"premise": p, "hypothesis": h, "answer": label,
                        "lines": [cp + p, ch + h, ca + label + '"' + (" " * 3 if k == 0 else "")]})
        demos[lang] = {"prefix": "\n".join(x for it in its for x in it["lines"]), "items": its,
                       "query_cues": {"premise": cp, "hypothesis": ch, "answer": ca},
                       "label_words": {"enout": dict(zip(labels, labels)), "native": dict(zip(labels, NLI_TABLE[lang]))}}
    doc = {"task": "snli", "shots": 3, "item_fields": ["premise", "hypothesis", "answer"],
           "canonical_labels": list(labels), "demos": demos}
    (root / "demos" / "snli_demos.json").write_text(json.dumps(doc, ensure_ascii=False), "utf-8")
    return root / "snli"


def _prompt_lines(capsysbinary: pytest.CaptureFixture[bytes], argv: list[str]) -> bytes:
    assert main(argv) == 0
    return capsysbinary.readouterr().out


# ---- byte-exact prompts -----------------------------------------------------------------------------------------
def test_prompts_reproduce_the_papers_golden_prompts(paper_data: Path, capsysbinary) -> None:
    """All 120 lines of golden_prompts.jsonl (emotion and SNLI, 20 languages, items 0-2), byte for byte."""
    out = b""
    for task, folder in (("emotion", "emotion"), ("nli", "snli")):
        out += _prompt_lines(capsysbinary, ["prompts", "--protocol", "paper", "--task", task, "--data",
                                            str(paper_data / folder), "--limit", "3"])
    assert out == (paper_data / "demos" / "golden_prompts.jsonl").read_bytes()


def test_paws_prompts_are_assembled_from_its_demos_file(paper_data: Path, tmp_path: Path, capsysbinary) -> None:
    """PAWS (no test files in the shared folder): a tiny folder in the paper's layout, the paper's paws_demos.json."""
    raw = json.loads((paper_data / "demos" / "paws_demos.json").read_text("utf-8"))
    folder = tmp_path / "paws"
    folder.mkdir()
    for lang in raw["languages"]:
        items = [{"sentence1": f"{lang} one {i}.", "sentence2": f"{lang} two {i} .", "answer": ["same", "different"][i % 2]}
                 for i in range(4)]
        (folder / f"paws_{lang}4_test.json").write_text(json.dumps(items, ensure_ascii=False), "utf-8")
    argv = ["prompts", "--protocol", "paper", "--task", "paraphrase", "--data", str(folder), "--limit", "3"]
    assert main(argv) == 2  # no demos beside the data: one clear line
    assert "paws_demos.json" in capsysbinary.readouterr().err.decode()
    out = _prompt_lines(capsysbinary, [*argv, "--demos-file", str(paper_data / "demos" / "paws_demos.json")])
    rows = [json.loads(x) for x in out.decode("utf-8").splitlines()]
    assert len(rows) == 3 * len(raw["languages"])
    for r in rows:
        d = raw["demos"][r["lang"]]
        c = d["query_cues"]
        i = r["index"]
        expected = (d["prefix"] + "\n" + c["sentence1"] + f"{r['lang']} one {i}." + "\n" + c["sentence2"]
                    + f"{r['lang']} two {i} ." + "\n" + c["answer"])
        assert r["task"] == "paws" and r["prompt"] == expected


def test_demos_file_label_variants_are_the_papers(paper_data: Path) -> None:
    """Native and ox/horse label words rewrite only the answers: the scripts' own variant prefixes, byte for byte."""
    raw = json.loads((paper_data / "demos" / "emotion_demos.json").read_text("utf-8"))
    demos = load_demos_file(paper_data / "demos" / "emotion_demos.json", get_task("emotion"))
    for lang, ld in demos.langs.items():
        assert ld.render_prefix(ld.label_words["native"]) == raw["demos"][lang]["variants"]["native"]["prefix"]
        ox = ld.render_prefix({"positive": "ox", "negative": "horse"})
        assert ox == raw["demos"][lang]["variants"]["irrelative"]["prefix"]


def test_demos_file_items_are_not_scored_unless_kept(paper_data: Path) -> None:
    """The emotion demonstrations are test items 99 and 20: qtalign leaves them out, the paper protocol keeps them."""
    base = {"task": "emotion", "data": str(paper_data / "emotion"), "langs": ("de",), "demos_file": "auto"}
    lp = prepare(EvalSettings(**base)).prompts["de"]
    assert [d.index for d in lp.demos] == [99, 20] and len(lp.items) == 498
    assert not {20, 99} & {it.index for it in lp.items}
    kept = prepare(EvalSettings(**base, keep_demo_items=True)).prompts["de"]
    assert [it.index for it in kept.items] == list(range(500))
    with pytest.raises(QtalignError, match="has 2 demonstrations"):
        prepare(EvalSettings(**base, shots=4))


# ---- presets ------------------------------------------------------------------------------------------------------
def _resolved(*argv: str) -> Settings:
    """The settings `qtalign COMMAND ARGV` runs with (the options block resolves the presets itself)."""
    from qtalign.analysis.lens_run import LensSettings
    from qtalign.analysis.pca_run import PCASettings
    from qtalign.cli import eval as eval_command

    args = build_parser().parse_args(list(argv))
    if args.command == "eval":
        return eval_command.settings(args)
    cls = {"prompts": EvalSettings, "lens": LensSettings, "pca": PCASettings}[args.command]
    return settings_from_args(args, cls)


def test_preset_fills_only_options_the_user_did_not_give() -> None:
    common = ["--task", "emotion", "--data", "x", "--langs", "en"]
    a = _resolved("prompts", "--protocol", "paper", *common)
    assert (a.demos_file, a.keep_demo_items, a.paper_gold, a.label_tokens, a.labels) == ("auto", True, True, "paper", "en")
    b = _resolved("eval", "--protocol", "paper", *common, "--out", "o", "--labels", "native", "--no-keep-demo-items",
                  "--label-tokens", "qtalign", "--scoring", "loglik")
    assert (b.labels, b.keep_demo_items, b.label_tokens, b.scoring, b.demos_file) == ("native", False, "qtalign",
                                                                                       "loglik", "auto")
    c = _resolved("eval", *common, "--out", "o")
    assert (c.protocol, c.demos_file, c.keep_demo_items, c.paper_gold, c.label_tokens, c.scoring) == (
        "qtalign", None, False, False, "qtalign", "first-token")
    lens = _resolved("lens", "--protocol", "paper", *common, "--out", "o")
    assert (lens.labels, lens.entropy_unit, lens.drop_overlap) == ("native", "bits", True)
    pca = _resolved("pca", "--protocol", "paper", "--task", "emotion", "--data", "x", "--out", "o")
    assert (pca.langs, pca.labels, pca.pool) == (PAPER_PCA_LANGS, "native", "mean")
    assert _resolved("pca", "--protocol", "paper", *common, "--out", "o", "--langs", "en,zh").langs == ("en", "zh")


def test_a_library_call_resolves_what_the_command_line_resolves(tmp_path: Path) -> None:
    """The same inputs give the same settings: presets from the fields given, languages from the data."""
    data = write_paper_folder(tmp_path / "d", ("de", "en"))
    lib = EvalSettings(task="emotion", data=str(data), protocol="paper", out="o")
    cli = _resolved("eval", "--task", "emotion", "--data", str(data), "--protocol", "paper", "--out", "o")
    assert lib == cli and lib.langs == ("en", "de") and lib.demos_file == "auto" and lib.paper_gold
    assert EvalSettings(task="emotion", data=str(data), protocol="paper", labels="native").labels == "native"
    with pytest.raises(ValidationError):
        EvalSettings(task="emotion", data=str(data), protocol="nope")
    # training presets: the same table, whether from flags, a config file, a study recipe or a library call
    from qtalign.train import TrainSettings, settings_from

    assert (TrainSettings(protocol="paper").template, TrainSettings(protocol="paper", keep="best").keep) == (
        "auto", "best")
    assert settings_from(None, {"protocol": "paper", "max_len": 512}) == TrainSettings(protocol="paper", max_len=512)


# ---- gold: the paper's strings, parallel English labels ------------------------------------------------------------
def test_paper_gold_leaves_200_ja_and_bn_items_uncredited(paper_data: Path) -> None:
    """With every prediction right by meaning, the paper's string matching credits 400 of 600 in ja and bn."""
    for lang, expected in (("ja", 400), ("bn", 400), ("zh", 600), ("no", 600)):
        s = EvalSettings(task="nli", data=str(paper_data / "snli"), langs=(lang,), protocol="paper",
                         demos_file="auto", keep_demo_items=True, paper_gold=True, label_tokens="paper")
        lp = prepare(s).prompts[lang]
        assert len(lp.items) == 600
        assert sum(paper_correct(it.answer, it.label, lp.gold_table) for it in lp.items) == expected, lang


def test_norwegian_nli_demonstrations_carry_the_english_labels(paper_data: Path) -> None:
    """snli_no600_test.json swaps neutral and contradiction; its demonstrations now show the English labels."""
    en = json.loads(next((paper_data / "snli").glob("snli_en*_test.json")).read_text("utf-8"))
    no = json.loads(next((paper_data / "snli").glob("snli_no*_test.json")).read_text("utf-8"))
    to_label = {"entailment": "entailment", "nøytral": "neutral", "motsigelse": "contradiction"}
    for langs in (("no",), ("en", "no")):
        lp = prepare(EvalSettings(task="nli", data=str(paper_data / "snli"), langs=langs, limit=2)).prompts["no"]
        truth = [en[d.index]["answer"] for d in lp.demos]
        assert [d.label for d in lp.demos] == truth
        assert re.findall(r'Svar: "(\w+)"', lp.prefix) == truth  # what the model is shown
        assert any(to_label[no[d.index]["answer"]] != d.label for d in lp.demos)  # the file's own label was wrong


def test_gold_from_en_scores_against_the_parallel_english_labels(paper_data: Path, tmp_path: Path) -> None:
    en = json.loads(next((paper_data / "snli").glob("snli_en*_test.json")).read_text("utf-8"))
    s = EvalSettings(task="nli", data=str(paper_data / "snli"), langs=("no",), gold_from="en", limit=600)
    lp = prepare(s).prompts["no"]
    assert all(it.label == en[it.index]["answer"] for it in lp.items)
    # files that are not parallel are refused, saying what differs
    folder = tmp_path / "emo"
    folder.mkdir()
    for lang, n in (("en", 12), ("de", 10)):
        items = [{"input": f"text {i}", "answer": ["positive", "negative"][i % 2]} for i in range(n)]
        (folder / f"emotion_{lang}{n}_test.json").write_text(json.dumps(items), "utf-8")
    with pytest.raises(QtalignError, match=r"emotion_de10_test.json has 10 items, .*emotion_en12_test.json has 12"):
        prepare(EvalSettings(task="emotion", data=str(folder), langs=("de",), gold_from="en"))


def test_eval_paper_protocol_reports_paper_accuracy_beside_by_meaning(tiny_llama: Path, tmp_path: Path,
                                                                      capsysbinary) -> None:
    """ja/bn NLI with a tiny model: the items whose file word the scripts' table lacks are never paper-correct;
    elsewhere both scorings agree. --log-prompts writes exactly the lines of `qtalign prompts`."""
    data = write_nli_paper_folder(tmp_path / "paper")
    common = ["--protocol", "paper", "--task", "nli", "--data", str(data), "--langs", "en,ja,bn"]
    out = tmp_path / "run"
    assert main(["eval", *common, "--model", str(tiny_llama), "--device", "cpu", "--batch-size", "4",
                 "--out", str(out), "--no-progress", "--log-prompts"]) == 0
    printed = capsysbinary.readouterr().out.decode()
    assert "paper" in printed
    res = json.loads((out / "results.json").read_text("utf-8"))
    assert res["protocol"] == "paper" and res["settings"]["keep_demo_items"] is True
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text("utf-8").splitlines()]
    assert len(rows) == 27  # every item scored
    affected = {"ja": "neutral", "bn": "entailment"}
    for r in rows:
        if affected.get(r["lang"]) == r["gold"]:
            assert r["paper_correct"] is False
        else:
            assert r["paper_correct"] == r["correct"]
    for lang, v in res["languages"].items():
        mine = [r for r in rows if r["lang"] == lang]
        assert v["paper_accuracy"] == pytest.approx(sum(r["paper_correct"] for r in mine) / len(mine))
        assert v["paper_accuracy"] <= v["accuracy"]
        assert v["paper_ci95"][0] <= v["paper_accuracy"] <= v["paper_ci95"][1]
    assert "paper_accuracy" in res["mean"]
    logged = (out / "prompts.jsonl").read_bytes()
    assert logged == _prompt_lines(capsysbinary, ["prompts", *common])
    assert json.loads(logged.splitlines()[0])["task"] == "snli"


@pytest.mark.parametrize("protocol", ["paper", None])
def test_a_library_eval_records_what_the_command_line_records(tiny_llama: Path, tmp_path: Path, protocol: str | None,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`qtalign eval [--protocol paper]` and qtalign.eval.run(EvalSettings([protocol="paper"])) with the same inputs,
    no languages given (both: those of the data): the same run record, settings and results, and the same lines."""
    from qtalign.eval import run as run_eval

    data = write_nli_paper_folder(tmp_path / "paper")
    flags = ["--protocol", protocol] if protocol else []
    assert main(["eval", *flags, "--task", "nli", "--data", str(data), "--model", str(tiny_llama),
                 "--device", "cpu", "--out", str(tmp_path / "cli"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    given = {"protocol": protocol} if protocol else {}
    lib = run_eval(EvalSettings(task="nli", data=str(data), model=str(tiny_llama), device="cpu",
                                out=str(tmp_path / "lib"), **given), progress=False)
    assert "\n".join(lib.lines()).replace(str(tmp_path / "lib"), str(tmp_path / "cli")) + "\n" == printed
    record = lambda name: json.loads((tmp_path / name / "run.json").read_text("utf-8"))
    assert record("cli") == record("lib") and record("lib")["langs"] == ["en", "ja", "bn"]
    cli = json.loads((tmp_path / "cli" / "results.json").read_text("utf-8"))
    assert {k: v for k, v in cli.items() if k != "versions"} == {k: v for k, v in lib.results.items() if k != "versions"}
    assert (cli["settings"]["demos_file"] == "auto" and cli["settings"]["paper_gold"]) == (protocol == "paper")


# ---- token sets and precision ---------------------------------------------------------------------------------------
def test_paper_token_ids_follow_the_scripts() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1]))
    from tiny import build_tokenizer

    tok = build_tokenizer("sentencepiece")
    vocab = tok.get_vocab()
    ids = paper_token_ids(tok, "positive", "gemma3_text")
    surfaces = {t for t, i in vocab.items() if i in ids}
    assert surfaces and all("positive".startswith(t.removeprefix("▁")) for t in surfaces)
    assert vocab["<0x70>"] not in ids  # the byte token only for a non-ASCII first character
    assert vocab["<0xE7>"] in paper_token_ids(tok, "积极", "gemma3_text")  # 积 = E7 A7 AF
    qwen = paper_token_ids(tok, "积极", "qwen2")  # Qwen: also the first token of each prefix's encoding
    assert set(paper_token_ids(tok, "积极", "gemma3_text")) <= set(qwen)
    assert tok("积", add_special_tokens=False)["input_ids"][0] in qwen


def test_four_bit_is_nf4_with_float16_compute_by_default() -> None:
    cfg = four_bit_config()
    assert describe_four_bit(cfg) == {"load_in_4bit": True, "quant_type": "nf4", "compute_dtype": "float16",
                                      "double_quant": False}
    assert resolve_dtype(None, torch.device("cuda"), load_in_4bit=True) == torch.float16
    assert resolve_dtype("bfloat16", torch.device("cuda"), load_in_4bit=True) == torch.bfloat16
    assert resolve_dtype(None, torch.device("cuda")) == torch.bfloat16
    with pytest.raises(QtalignError, match="CUDA"):
        load_model("unused", device="cpu", load_in_4bit=True)

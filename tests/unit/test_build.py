"""Question-translation data: paper format, no answers, mix counts, seed determinism, contamination, MT path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qtalign.cli.main import main
from qtalign.data.build import build_pairs
from qtalign.data.contamination import assert_no_answers
from qtalign.data.pairs import Pair, make_pair
from qtalign.data.sources import read_question_file
from qtalign.errors import QtalignError
from qtalign.tasks import get_task

NLI = get_task("nli")
EN = [("A man plays a guitar.", "A man makes music."), ("Two dogs run.", "Animals sleep."),
      ("A child reads.", "A kid has a book."), ("A woman cooks.", "Someone is in a kitchen.")]
ZH = [("一个男人弹吉他。", "一个男人在演奏音乐。"), ("两只狗在跑。", "动物在睡觉。"),
      ("一个孩子在读书。", "一个孩子有一本书。"), ("一个女人在做饭。", "有人在厨房里。")]
ANS = ["entailment", "contradiction", "entailment", "neutral"]


def write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path


def folder(tmp: Path) -> Path:
    d = tmp / "snli"
    write(d / "snli_en4_train.json", [{"premise": p, "hypothesis": h, "answer": a} for (p, h), a in zip(EN, ANS)])
    write(d / "snli_zh4_train.json", [{"premise": p, "hypothesis": h, "answer": a} for (p, h), a in zip(ZH, ANS)])
    return d


def test_pair_format_matches_paper(paper_data: Path) -> None:
    ref = json.loads((paper_data / "snli" / "snli_zh10k_train_question.json").read_text(encoding="utf-8"))[0]
    q = ref["input"].split("\n")
    zh = (q[0].removeprefix("前提: "), q[1].removeprefix("假设: "))
    a = ref["answer"].split("\n")
    en = (a[0].removeprefix("Premise: "), a[1].removeprefix("Hypothesis: "))
    pair = make_pair(NLI, "zh", "en", zh, en, 0)
    assert pair.input == ref["input"] and pair.output == ref["answer"]


def test_parallel_files_mix_and_determinism(tmp_path: Path) -> None:
    d = folder(tmp_path)
    r1 = build_pairs(NLI, [d], ["zh"], "en", per_lang=3, seed=1)
    r2 = build_pairs(NLI, [d], ["zh"], "en", per_lang=3, seed=1)
    assert r1.pairs == r2.pairs and r1.counts == {"zh": 3}
    p = r1.pairs[0]
    assert p.input.endswith("\n答案: \"\nTranslate the input from Chinese to English:\n")
    assert p.output.startswith("Premise: ") and p.output.endswith('Answer: "')
    for pair in r1.pairs:
        assert not any(f'"{w}"' in pair.input + pair.output for w in ANS)
    # any target language: en => zh
    r3 = build_pairs(NLI, [d], ["en"], "zh", per_lang=10)
    assert r3.counts == {"en": 4} and r3.pairs[0].input.endswith("Translate the input from English to Chinese:\n")


def test_done_when_mix_from_question_files(paper_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "qt" / "train.jsonl"
    rc = main(["data", "build", "--task", "nli", "--data", str(paper_data / "snli"), "--sources", "zh,es", "--target", "en",
               "--per-lang", "50", "--out", str(out), "--seed", "3"])
    assert rc == 0
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 100 and {r["source_lang"] for r in rows} == {"zh", "es"}
    assert sum(r["source_lang"] == "zh" for r in rows) == 50
    assert set(rows[0]) == {"input", "output", "source_lang", "target_lang", "task", "index"}
    assert [r["source_lang"] for r in rows[:10]] != sorted(r["source_lang"] for r in rows[:10]) or True
    alpaca = json.loads((out.parent / "train_alpaca.json").read_text(encoding="utf-8"))
    assert alpaca[0] == {"instruction": rows[0]["input"], "input": "", "output": rows[0]["output"]}
    info = json.loads((out.parent / "dataset_info.json").read_text())
    assert info["train"]["file_name"] == "train_alpaca.json"
    manifest = json.loads((out.parent / "train.manifest.json").read_text())
    assert manifest["counts"] == {"zh": 50, "es": 50} and manifest["seed"] == 3 and len(manifest["sha256"]) == 2
    labels = {w for e in NLI.table.values() for w in e.labels.values()} | set(NLI.labels)
    for r in rows:
        assert not any(f': "{w}"' in r["input"] + r["output"] for w in labels)


def test_read_question_file_directly(paper_data: Path) -> None:
    pairs = read_question_file(NLI, paper_data / "snli" / "snli_es10k_train_question.json")
    assert len(pairs) == 10000 and pairs[0].source_lang == "es" and pairs[0].target_lang == "en"


def test_contamination_refused(tmp_path: Path) -> None:
    d = folder(tmp_path)
    ev = tmp_path / "eval"
    write(ev / "snli_de2_test.json", [{"premise": "x", "hypothesis": "y", "answer": "neutral"}])
    write(ev / "snli_en2_test.json", [{"premise": EN[1][0], "hypothesis": EN[1][1], "answer": "contradiction"}])
    r = build_pairs(NLI, [d], ["zh"], "en", per_lang=10, exclude=ev)
    assert r.contaminated == {"zh": 1} and r.counts == {"zh": 3}
    assert all(p.index != 1 for p in r.pairs)
    r = build_pairs(NLI, [d], ["zh"], "en", per_lang=10, exclude=ev, allow_contamination=True)
    assert r.contaminated == {"zh": 1} and r.counts == {"zh": 4}


def test_refusals(tmp_path: Path) -> None:
    d = folder(tmp_path)
    t = write(tmp_path / "snli_zh4_test.json", [])
    with pytest.raises(QtalignError, match="test split"):
        build_pairs(NLI, [t], ["zh"], "en")
    with pytest.raises(QtalignError, match="'de': no data"):
        build_pairs(NLI, [d], ["de"], "en")
    bad = Pair('Premise: a\nAnswer: "\nTranslate the input from German to English:\n',
               'Premise: a\nAnswer: "neutral"', "de", "en", "nli", 0)
    with pytest.raises(QtalignError, match="answer"):
        assert_no_answers(NLI, [bad])
    empty = write(tmp_path / "q" / "snli_zh1_train_question.json",
                  [{"input": '\nTranslate the input from Chinese to English:\n', "answer": "x"}])
    with pytest.raises(QtalignError, match="item 0: empty"):
        build_pairs(NLI, [empty], ["zh"], "en")
    broken = tmp_path / "b" / "snli_zh1_train.json"
    broken.parent.mkdir()
    broken.write_text("[{")
    with pytest.raises(QtalignError, match="snli_zh1_train.json"):
        build_pairs(NLI, [broken, d / "snli_en4_train.json"], ["zh"], "en")
    assert main(["data", "build", "--task", "nli", "--data", str(d), "--sources", "sw", "--out",
                 str(tmp_path / "o.jsonl")]) == 2


def tiny_seq2seq(folder: Path) -> Path:
    import sys

    from transformers import T5Config, T5ForConditionalGeneration

    sys.path.insert(0, str(Path(__file__).parents[1]))
    from tiny import build_tokenizer

    tok = build_tokenizer("sentencepiece")
    tok.post_processor = None
    cfg = T5Config(vocab_size=len(tok), d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2,
                   decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    import torch

    torch.manual_seed(0)
    model = T5ForConditionalGeneration(cfg)
    assert sum(p.numel() for p in model.parameters()) < 200_000
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_machine_translation_path_resumes(tmp_path: Path) -> None:
    from qtalign.translate import Translator

    d = tmp_path / "en_only"
    write(d / "snli_en4_train.json", [{"premise": p, "hypothesis": h, "answer": a} for (p, h), a in zip(EN, ANS)])
    mt_dir = tiny_seq2seq(tmp_path / "mt")
    cache = tmp_path / "cache.jsonl"
    tr = Translator(str(mt_dir), cache=cache, device="cpu", batch_size=3, max_new_tokens=6)
    calls: list[int] = []
    orig = tr._generate
    tr._generate = lambda texts, s, t: (calls.append(len(texts)), [f"x{len(x)}" for x in orig(texts, s, t)])[1]
    r = build_pairs(NLI, [d], ["de"], "en", per_lang=3, translate=tr, translator_name="tiny")
    assert r.counts == {"de": 3} and sum(calls) == 6  # 3 items x 2 fields
    assert r.pairs[0].input.startswith("Prämisse: ") and "from German to English" in r.pairs[0].input
    assert len(cache.read_text().splitlines()) == 6
    # a rerun (new translator, same cache) translates nothing again; more items translate only the new ones
    tr2 = Translator(str(mt_dir), cache=cache, device="cpu", batch_size=3, max_new_tokens=6)
    calls2: list[int] = []
    tr2._generate = lambda texts, s, t: (calls2.append(len(texts)), ["y"] * len(texts))[1]
    r2 = build_pairs(NLI, [d], ["de"], "en", per_lang=3, translate=tr2, translator_name="tiny")
    assert calls2 == [] and [p.input for p in r2.pairs] == [p.input for p in r.pairs]
    r3 = build_pairs(NLI, [d], ["de"], "en", per_lang=4, translate=tr2, translator_name="tiny")
    assert sum(calls2) == 2 and r3.counts == {"de": 4}

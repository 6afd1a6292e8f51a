"""Training templates: byte-exact renderings (LLaMA-Factory 0.6.x), loss mask on answer + end token, auto, presets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tiny import build_model, build_tokenizer

from qtalign.errors import QtalignError
from qtalign.templates import TEMPLATES, auto_template, encode_pairs, render, resolve_template
from qtalign.train import IGNORE, TrainSettings, settings_from
from qtalign.train import encode_pairs as train_encode
from qtalign.train import run as train

QUERY = '前提: 男人\n答案: "\nTranslate the input from Chinese to English:\n'
ANSWER = 'Premise: A man.\nAnswer: "'

# the special tokens each family's tokenizer carries (names as in the real tokenizers)
FAMILIES: dict[str, dict[str, Any]] = {
    "plain": {},
    "qwen": {"additional_special_tokens": ["<|im_start|>", "<|im_end|>"], "eos_token": "<|endoftext|>"},
    "mistral": {"bos_token": "<s>", "eos_token": "</s>"},
    "llama3": {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>",
               "additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]},
    "gemma": {"additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"]},
}

EXPECTED: dict[str, tuple[str, str, str]] = {  # template -> (tokenizer family, prompt, answer + end)
    "default": ("plain", f"Human: {QUERY}\nAssistant: ", ANSWER + "<eos>"),
    "qwen": ("qwen", ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                      f"<|im_start|>user\n{QUERY}<|im_end|>\n<|im_start|>assistant\n"), ANSWER + "<|im_end|>"),
    "mistral": ("mistral", f"<s>[INST] {QUERY} [/INST]", ANSWER + "</s>"),
    "llama3": ("llama3", ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant."
                          f"<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n{QUERY}<|eot_id|>"
                          "<|start_header_id|>assistant<|end_header_id|>\n\n"), ANSWER + "<|eot_id|>"),
    "gemma": ("gemma", f"<bos><start_of_turn>user\n{QUERY}<end_of_turn>\n<start_of_turn>model\n", ANSWER + "<eos>"),
    "empty": ("plain", f"<bos>{QUERY}", ANSWER + "<eos>"),
}


def family_tokenizer(family: str) -> Any:
    tok = build_tokenizer("bytelevel")
    if FAMILIES[family]:
        tok.add_special_tokens(FAMILIES[family])
    return tok


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_rendering_byte_exact(name: str) -> None:
    family, prompt, answer = EXPECTED[name]
    tok = family_tokenizer(family)
    assert render(TEMPLATES[name], tok, QUERY, ANSWER) == (prompt, answer)
    [(p_ids, a_ids)] = encode_pairs(TEMPLATES[name], tok, [(QUERY, ANSWER)])
    # the ids spell exactly the rendered text (byte-level tokenizer: decoding is lossless)
    assert tok.decode(p_ids, skip_special_tokens=False) == prompt
    assert tok.decode(a_ids, skip_special_tokens=False) == answer
    # template text is encoded without added special tokens: BOS appears only where the template puts it
    bos = tok.bos_token_id
    assert p_ids.count(bos) == (1 if name in ("mistral", "llama3", "gemma", "empty") else 0)
    # the answer is encoded on its own and closed by exactly one end token
    assert a_ids[:-1] == tok(ANSWER, add_special_tokens=False)["input_ids"]


def test_end_tokens_are_single_tokens() -> None:
    qwen = family_tokenizer("qwen")
    [(_, a_ids)] = encode_pairs(TEMPLATES["qwen"], qwen, [(QUERY, ANSWER)])
    assert a_ids[-1] == qwen.convert_tokens_to_ids("<|im_end|>") != qwen.eos_token_id
    mistral = family_tokenizer("mistral")
    [(p_ids, a_ids)] = encode_pairs(TEMPLATES["mistral"], mistral, [(QUERY, ANSWER)])
    assert p_ids[0] == mistral.convert_tokens_to_ids("<s>") and a_ids[-1] == mistral.convert_tokens_to_ids("</s>")


def test_batch_encoding_equals_one_by_one() -> None:
    tok = family_tokenizer("qwen")
    pairs = [(QUERY, ANSWER), ("x y z", "Answer"), ("一个女人在做饭。\n", 'Hypothesis: "')]
    batch = encode_pairs(TEMPLATES["qwen"], tok, pairs)
    assert batch == [encode_pairs(TEMPLATES["qwen"], tok, [p])[0] for p in pairs]


def test_labels_only_on_answer_and_end_token() -> None:
    tok = family_tokenizer("qwen")
    [ex] = train_encode(tok, [(QUERY, ANSWER)], 512, False, "data", TEMPLATES["qwen"])
    prompt, _ = render(TEMPLATES["qwen"], tok, QUERY, ANSWER)
    n_prompt = len(encode_pairs(TEMPLATES["qwen"], tok, [(QUERY, ANSWER)])[0][0])
    assert ex.labels[:n_prompt] == [IGNORE] * n_prompt
    kept = [t for t in ex.labels if t != IGNORE]
    assert tok.decode(kept, skip_special_tokens=False) == ANSWER + "<|im_end|>"
    assert prompt.endswith("<|im_start|>assistant\n")


def test_empty_equals_the_old_plain_format(tiny_gemma: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_gemma))
    pairs = [(QUERY, ANSWER), ("x y z", "Answer")]
    new = train_encode(tok, pairs, 512, False, "data")
    p_ids = tok([p for p, _ in pairs], add_special_tokens=True)["input_ids"]
    o_ids = tok([o for _, o in pairs], add_special_tokens=False)["input_ids"]
    for ex, p, o in zip(new, p_ids, o_ids):
        assert ex.ids == list(p) + list(o) + [tok.eos_token_id]
        assert ex.labels == [IGNORE] * len(p) + list(o) + [tok.eos_token_id]


@pytest.mark.parametrize(("model_type", "family", "expected"), [
    ("qwen2", "qwen", "qwen"), ("mistral", "mistral", "mistral"), ("gemma3_text", "gemma", "gemma"),
    ("gemma", "gemma", "gemma"), ("llama", "llama3", "llama3"), ("llama", "plain", "default"),
    ("gpt2", "plain", "default"), (None, "plain", "default"),
])
def test_auto_picks_by_family(model_type: str | None, family: str, expected: str) -> None:
    tok = family_tokenizer(family)
    assert auto_template(model_type, tok) == expected
    assert resolve_template("auto", model_type, tok).name == expected


def test_missing_tokens_are_one_line_errors() -> None:
    plain = family_tokenizer("plain")
    with pytest.raises(QtalignError, match=r"template 'qwen' needs the token '<\|im_start\|>'"):
        resolve_template("qwen", "llama", plain, "tiny")
    with pytest.raises(QtalignError, match="--template: unknown template 'chatml'"):
        resolve_template("chatml", "llama", plain)


def test_protocol_paper_preset_and_explicit_flags_win(tmp_path: Path) -> None:
    s = settings_from(None, {"protocol": "paper", "data": "d", "out": "o"})
    assert (s.template, s.max_len, s.eval_every, s.keep) == ("auto", 2048, 50, "last")
    s = settings_from(None, {"protocol": "paper", "template": "default", "keep": "best"})
    assert (s.template, s.keep, s.max_len) == ("default", "best", 2048)
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"protocol": "paper", "max_len": 300}))
    assert settings_from(str(cfg), {"template": None}).max_len == 300
    assert settings_from(None, {}).template == "empty" and settings_from(None, {}).keep == "best"
    with pytest.raises(QtalignError, match="unknown template"):
        settings_from(None, {"template": "chatml"})


@pytest.fixture(scope="module")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama-architecture model whose tokenizer carries Qwen's ChatML tokens."""
    folder = tmp_path_factory.mktemp("tiny-qwen")
    tok = family_tokenizer("qwen")
    model = build_model("llama", len(tok))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_training_with_qwen_masks_all_but_answer_and_im_end(tiny_qwen: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoTokenizer

    import qtalign.train.passes as tr

    rows = [{"input": QUERY.replace("男人", f"男人 {i}"), "output": ANSWER.replace("man", f"man {i}")} for i in range(6)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    seen: list[Any] = []
    real = tr.output_loss

    def spy(peft_model: Any, ids: Any, mask: Any, labels: Any) -> Any:
        seen.append((ids.clone(), labels.clone()))
        return real(peft_model, ids, mask, labels)

    monkeypatch.setattr(tr, "output_loss", spy)
    s = TrainSettings(model=str(tiny_qwen), data=str(data), out=str(tmp_path / "run"), batch_size=2, grad_accum=1,
                      epochs=1, val_ratio=0.2, device="cpu", template="qwen", max_steps=2)
    train(s, progress=False)
    tok = AutoTokenizer.from_pretrained(str(tiny_qwen))
    answers = {r["output"] + "<|im_end|>" for r in rows}
    assert seen
    for ids, labels in seen:
        for row_ids, row_labels in zip(ids.tolist(), labels.tolist()):
            kept = [t for t in row_labels if t != IGNORE]
            assert tok.decode(kept, skip_special_tokens=False) in answers
            start = row_labels.index(kept[0])
            text_before = tok.decode(row_ids[:start], skip_special_tokens=False)
            assert text_before.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")
            assert text_before.endswith("<|im_end|>\n<|im_start|>assistant\n")
    record = json.loads((tmp_path / "run" / "adapter" / "qtalign_train.json").read_text(encoding="utf-8"))
    assert record["template"] == "qwen" and record["template_info"]["end_token"] == "<|im_end|>"
    assert record["first_pair_rendered"]["answer_with_end"].endswith("<|im_end|>")
    settings = json.loads((tmp_path / "run" / "train_settings.json").read_text(encoding="utf-8"))
    assert settings["template"] == "qwen"


def test_auto_is_resolved_and_recorded(tiny_qwen: Path, tmp_path: Path) -> None:
    rows = [{"input": f"q {i}\nTranslate the input from Chinese to English:\n", "output": f"a {i}"} for i in range(4)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    s = settings_from(None, {"model": str(tiny_qwen), "data": str(data), "out": str(tmp_path / "run"),
                             "protocol": "paper", "max_steps": 1, "batch_size": 2, "grad_accum": 1, "device": "cpu"})
    train(s, progress=False)
    record = json.loads((tmp_path / "run" / "adapter" / "qtalign_train.json").read_text(encoding="utf-8"))
    # tiny_qwen has Llama's model_type and no Llama 3 tokens: auto falls back to LLaMA-Factory's `default`
    assert record["template"] == "default" and record["protocol"] == "paper" and record["keep"] == "last"
    assert json.loads((tmp_path / "run" / "train_settings.json").read_text())["template"] == "default"


def test_cli_template_errors_exit_2(tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from qtalign.cli.main import main

    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"input": "q", "output": "a"}) + "\n")
    rc = main(["train", "--model", str(tiny_llama), "--data", str(data), "--out", str(tmp_path / "o"),
               "--template", "qwen", "--device", "cpu"])
    assert rc == 2 and "needs the token '<|im_start|>'" in capsys.readouterr().err
    rc = main(["train", "--model", str(tiny_llama), "--data", str(data), "--out", str(tmp_path / "o"),
               "--template", "nope"])
    assert rc == 2 and "unknown template 'nope'" in capsys.readouterr().err


def test_data_build_names_the_template(tmp_path: Path) -> None:
    from qtalign.cli.main import main

    d = tmp_path / "snli"
    d.mkdir()
    en = [{"premise": "A man plays.", "hypothesis": "Music.", "answer": "neutral"}]
    zh = [{"premise": "一个男人在玩。", "hypothesis": "音乐。", "answer": "neutral"}]
    (d / "snli_en1_train.json").write_text(json.dumps(en), encoding="utf-8")
    (d / "snli_zh1_train.json").write_text(json.dumps(zh, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "qt" / "train.jsonl"
    assert main(["data", "build", "--task", "nli", "--data", str(d), "--sources", "zh", "--out", str(out),
                 "--template", "qwen"]) == 0
    info = json.loads((out.parent / "dataset_info.json").read_text())
    assert info["train"]["template"] == "qwen" and info["train"]["file_name"] == "train_alpaca.json"
    assert json.loads((out.parent / "train.manifest.json").read_text())["settings"]["template"] == "qwen"
    assert main(["data", "build", "--task", "nli", "--data", str(d), "--sources", "zh", "--out", str(out),
                 "--template", "auto"]) == 2

"""Protocols as data: named presets of existing options (qtalign's defaults, the paper's code), and the paper's
label-token sets and gold-string matching."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qtalign.errors import QtalignError

# The languages of the paper's PCA figures (Zhang et al. 2024, section 5).
PAPER_PCA_LANGS = ("en", "de", "fr", "hi", "th", "sw", "ms")

# qtalign's own value of every prompt option a protocol may set (the fields' defaults in qtalign.options, eval and
# the analyses): what a run record made before an option existed held.
DEFAULTS: dict[str, Any] = {
    "langs": None,  # the languages present in the data (qtalign.data.readers.data_langs)
    "labels": "en",
    "scoring": "first-token",
    "demos_file": None,
    "keep_demo_items": False,
    "paper_gold": False,
    "label_tokens": "qtalign",
    "entropy_unit": "nats",
    "drop_overlap": False,
    "pool": "mean",
}

_PAPER_EVAL: dict[str, Any] = {
    "demos_file": "auto",  # the paper's fixed demonstrations, order and prompt assembly, found beside the data
    "labels": "en",  # the "enout" scripts: English label words in every language
    "scoring": "first-token",
    "keep_demo_items": True,  # the scripts score every test item, demonstration items included
    "paper_gold": True,  # report the scripts' exact gold-string matching beside qtalign's by-meaning accuracy
    "label_tokens": "paper",  # the scripts' token sets for a label word
}

# protocol -> command -> setting -> value. A command's settings take the presets of this table that they have, for
# every setting the caller did not give (qtalign.options.given_or_preset).
PROTOCOLS: dict[str, dict[str, dict[str, Any]]] = {
    "qtalign": {},
    "paper": {
        "eval": _PAPER_EVAL,
        "prompts": _PAPER_EVAL,
        "lens": {  # zsm_emotion_2shot.py: native-label demonstrations, every test item, overlap filter, bits
            "demos_file": "auto", "labels": "native", "keep_demo_items": True, "label_tokens": "paper",
            "drop_overlap": True, "entropy_unit": "bits",
        },
        "pca": {  # knowledge_finding.ipynb: native-label prompts, every test item, mean over all tokens
            "demos_file": "auto", "labels": "native", "keep_demo_items": True, "langs": PAPER_PCA_LANGS,
            "pool": "mean",
        },
        # the released recipe (LLaMA-Factory, README of Shimao-Zhang/LLM-Multilingual-Learner): the model family's
        # template, cutoff_len 2048, eval_steps 50, and the last step's adapter (save_steps 150000 > total steps, so
        # the HF Trainer never recorded a best checkpoint for load_best_model_at_end to restore)
        "train": {"template": "auto", "max_len": 2048, "eval_every": 50, "keep": "last"},
    },
}


def presets(protocol: str | None, command: str) -> dict[str, Any]:
    """The settings protocol presets for command ({} for qtalign's own protocol, None, or a name not in PROTOCOLS:
    the settings' validation names an unknown protocol)."""
    return dict(PROTOCOLS.get(protocol or "qtalign", {}).get(command, {}))


# ---- the paper's label-token sets ----------------------------------------------------------------------------
def paper_token_ids(tokenizer: Any, word: str, model_type: str | None) -> list[int]:
    """The token ids the paper's scripts sum for a label word (their process_tokens): every prefix of the word
    found verbatim in the vocabulary, with or without SentencePiece's "▁"; the <0xNN> byte token of the first
    byte when the first character is not ASCII; and, for Qwen models only, the first token the tokenizer gives for
    each prefix (the scripts test the model name for "Qwen")."""
    vocab = tokenizer.get_vocab()
    prefixes = [word[:i] for i in range(1, len(word) + 1)]
    ids = {vocab[t] for p in prefixes for t in ("▁" + p, p) if t in vocab}
    if word and not word[0].isascii():
        byte_tok = f"<0x{word[0].encode('utf-8')[0]:02X}>"
        if byte_tok in vocab:
            ids.add(vocab[byte_tok])
    if (model_type or "").lower().startswith("qwen"):
        for p in prefixes:
            enc = tokenizer(p, add_special_tokens=False)["input_ids"]  # Qwen adds none; the same ids
            if enc:
                ids.add(int(enc[0]))
    return sorted(ids)


def paper_label_token_sets(tokenizer: Any, words: Sequence[str], model_type: str | None,
                           allow_empty: bool = False) -> list[list[int]]:
    """paper_token_ids for each label word. A word with no token is a QtalignError (the scripts would sum nothing
    and never pick it) unless allow_empty (the lens, which drops such items as the paper's script does)."""
    sets = [paper_token_ids(tokenizer, w, model_type) for w in words]
    for w, s in zip(words, sets):
        if not s and not allow_empty:
            raise QtalignError(f"label word {w!r}: none of its prefixes is a token of this tokenizer "
                               f"(--label-tokens paper); use --label-tokens qtalign")
    return sets


def paper_correct(answer: str | None, pred: str, gold_table: Mapping[str, str]) -> bool:
    """The paper's scoring of one item: correct when the test file's answer string equals, exactly, the script's
    table word for the predicted label (no normalization; so a file word the table lacks is never correct)."""
    return answer is not None and answer == gold_table.get(pred)

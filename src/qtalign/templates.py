"""Training templates as data: LLaMA-Factory's single-turn renderings (llmtuner 0.6.x) and qtalign's plain format."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from qtalign.errors import QtalignError

log = logging.getLogger(__name__)

CONTENT = "{{content}}"  # where the query (or the system text) goes in a slot, as in LLaMA-Factory


@dataclass(frozen=True)
class Special:
    """A token named by its role in the tokenizer (its BOS or EOS token), not by its text."""

    role: Literal["bos", "eos"]


BOS, EOS = Special("bos"), Special("eos")
Slot = str | Special


@dataclass(frozen=True)
class Template:
    """How one (query, answer) pair becomes tokens: prompt slots (loss off), answer + end token (loss on).

    Each text slot is encoded on its own with add_special_tokens=False (LLaMA-Factory's way); BOS/EOS slots are
    the tokenizer's ids. The answer is encoded on its own and followed by the end token.
    """

    name: str
    user: tuple[Slot, ...]  # slots holding the query ({{content}})
    system: tuple[Slot, ...] = ()  # slots holding the system text ({{content}}), used when it is set or forced
    default_system: str = ""
    force_system: bool = False
    end: str | None = None  # the answer's end token by text (LLaMA-Factory's replace_eos); None = the tokenizer's EOS
    requires: tuple[str, ...] = ()  # marker tokens the tokenizer must know as single tokens
    tokenizer_specials: bool = False  # encode the query with the tokenizer's own special tokens (qtalign's `empty`)
    llamafactory: str = ""  # the LLaMA-Factory definition it mirrors (name and version)
    summary: str = ""


# LLaMA-Factory's definitions as of llmtuner 0.6.0-0.6.2 (March-April 2024; the paper trained with src/train_bash.py of
# that series); llama3 first appeared in 0.6.3 (2024-04-21), and 0.6.3 also changed mistral's user slot to " [INST] ...".
TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template("empty", user=(CONTENT,), tokenizer_specials=True,
                 llamafactory="(none: qtalign's plain format; LLaMA-Factory 0.6.3's `empty` adds neither BOS nor EOS)",
                 summary="the tokenizer's own special tokens (usually BOS) + query; answer + EOS"),
        Template("default", user=("Human: " + CONTENT + "\nAssistant: ",), system=(CONTENT + "\n",),
                 llamafactory="default (llmtuner 0.6.0-0.6.2)",
                 summary="Human: {query}\\nAssistant: {answer}<EOS>"),
        Template("qwen", user=("<|im_start|>user\n" + CONTENT + "<|im_end|>\n<|im_start|>assistant\n",),
                 system=("<|im_start|>system\n" + CONTENT + "<|im_end|>\n",), default_system="You are a helpful assistant.",
                 end="<|im_end|>", requires=("<|im_start|>", "<|im_end|>"),
                 llamafactory="qwen (llmtuner 0.6.0-0.6.2; EOS replaced by <|im_end|>)",
                 summary="ChatML with system 'You are a helpful assistant.'; answer + <|im_end|>"),
        Template("mistral", user=("[INST] " + CONTENT + " [/INST]",), system=(BOS, CONTENT), force_system=True,
                 llamafactory="mistral (llmtuner 0.6.0-0.6.2; 0.6.3 prepends a space to [INST])",
                 summary="<BOS>[INST] {query} [/INST]{answer}<EOS>"),
        Template("llama3",
                 user=("<|start_header_id|>user<|end_header_id|>\n\n" + CONTENT
                       + "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",),
                 system=(BOS, "<|start_header_id|>system<|end_header_id|>\n\n" + CONTENT + "<|eot_id|>"),
                 default_system="You are a helpful assistant.", end="<|eot_id|>",
                 requires=("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
                 llamafactory="llama3 (llmtuner 0.6.3, its first version; EOS replaced by <|eot_id|>)",
                 summary="Llama 3 headers with system 'You are a helpful assistant.'; answer + <|eot_id|>"),
        Template("gemma", user=("<start_of_turn>user\n" + CONTENT + "<end_of_turn>\n<start_of_turn>model\n",),
                 system=(BOS, CONTENT), force_system=True, requires=("<start_of_turn>", "<end_of_turn>"),
                 llamafactory="gemma (llmtuner 0.6.0-0.6.2; efficient_eos: EOS appended after the answer)",
                 summary="<BOS><start_of_turn>user\\n{query}<end_of_turn>\\n<start_of_turn>model\\n{answer}<EOS>"),
    )
}
DEFAULT_TEMPLATE = "empty"
TEMPLATE_CHOICES: tuple[str, ...] = ("auto", *TEMPLATES)

# `auto`: the first rule whose model_type prefix matches (and whose tokens the tokenizer has) names the template;
# base models of other families get LLaMA-Factory's `default`, as the paper did for base models.
AUTO_RULES: tuple[tuple[tuple[str, ...], tuple[str, ...], str], ...] = (
    (("qwen",), (), "qwen"),  # Qwen1.5 reports model_type "qwen2"
    (("mistral", "mixtral"), (), "mistral"),
    (("gemma",), (), "gemma"),
    (("llama",), ("<|start_header_id|>", "<|eot_id|>"), "llama3"),
)
AUTO_FALLBACK = "default"


def get_template(name: str) -> Template:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise QtalignError(f"--template: unknown template {name!r} (choose from {', '.join(TEMPLATE_CHOICES)})") from None


def auto_template(model_type: str | None, tokenizer: Any) -> str:
    """The template `auto` picks for a model family (config.model_type) and its tokenizer's special tokens."""
    vocab = tokenizer.get_vocab()
    kind = (model_type or "").lower()
    for prefixes, tokens, name in AUTO_RULES:
        if kind.startswith(prefixes) and all(t in vocab for t in tokens):
            return name
    return AUTO_FALLBACK


def resolve_template(name: str, model_type: str | None, tokenizer: Any, model_name: str = "the model") -> Template:
    """The template named (or picked by `auto`), checked against the tokenizer."""
    if name == "auto":
        picked = auto_template(model_type, tokenizer)
        log.info("template auto -> %s (model_type %s)", picked, model_type)
        name = picked
    template = get_template(name)
    check_tokenizer(template, tokenizer, model_name)
    return template


def _prompt_slots(t: Template, query: str) -> list[Slot]:
    slots: list[Slot] = []
    if t.default_system or t.force_system:
        slots += [s.replace(CONTENT, t.default_system) if isinstance(s, str) else s for s in t.system]
    slots += [s.replace(CONTENT, query) if isinstance(s, str) else s for s in t.user]
    return [s for s in slots if not (isinstance(s, str) and s == "")]


def check_tokenizer(t: Template, tokenizer: Any, model_name: str = "the model") -> None:
    """A QtalignError when the tokenizer lacks a token the template needs (its BOS, end token or markers)."""
    vocab = tokenizer.get_vocab()
    hint = "choose another --template (default or empty work with any tokenizer that has an EOS token)"
    if BOS in _prompt_slots(t, "") and tokenizer.bos_token_id is None:
        raise QtalignError(f"template {t.name!r} starts with a BOS token, but the tokenizer of {model_name} has none; "
                           + hint)
    if t.end is None and tokenizer.eos_token_id is None:
        raise QtalignError(f"template {t.name!r} ends the answer with EOS, but the tokenizer of {model_name} has none")
    for token in (*t.requires, *([t.end] if t.end else [])):
        if token not in vocab:
            raise QtalignError(f"template {t.name!r} needs the token {token!r}, which the tokenizer of {model_name} "
                               f"lacks; {hint}")


def _special_id(tokenizer: Any, s: Special) -> int:
    return tokenizer.bos_token_id if s.role == "bos" else tokenizer.eos_token_id


def end_token_id(t: Template, tokenizer: Any) -> int:
    return tokenizer.convert_tokens_to_ids(t.end) if t.end else tokenizer.eos_token_id


def encode_pairs(t: Template, tokenizer: Any, pairs: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, answer ids + end token id) per (query, answer) pair; text slots are batch-encoded per position."""
    if not pairs:
        return []
    n = len(pairs)
    prompts: list[list[int]] = [[] for _ in range(n)]
    per_pair = [_prompt_slots(t, q) for q, _ in pairs]
    width = len(per_pair[0])
    if any(len(p) != width for p in per_pair):  # an empty query dropped a slot: encode pair by pair
        for i, slots in enumerate(per_pair):
            for s in slots:
                prompts[i] += _encode_slot(t, tokenizer, [s])[0]
    else:
        for k in range(width):
            column = [p[k] for p in per_pair]
            for i, ids in enumerate(_encode_slot(t, tokenizer, column)):
                prompts[i] += ids
    answers = tokenizer([a for _, a in pairs], add_special_tokens=False)["input_ids"]
    end = end_token_id(t, tokenizer)
    return [(p, list(a) + [end]) for p, a in zip(prompts, answers)]


def _encode_slot(t: Template, tokenizer: Any, column: list[Slot]) -> list[list[int]]:
    first = column[0]
    if isinstance(first, Special):
        return [[_special_id(tokenizer, first)] for _ in column]
    texts = [str(s) for s in column]
    if all(x == texts[0] for x in texts):  # a constant slot (system text, markers): encode once
        ids = tokenizer([texts[0]], add_special_tokens=t.tokenizer_specials)["input_ids"][0]
        return [list(ids) for _ in texts]
    return [list(x) for x in tokenizer(texts, add_special_tokens=t.tokenizer_specials)["input_ids"]]


def render(t: Template, tokenizer: Any, query: str, answer: str) -> tuple[str, str]:
    """(prompt text, answer text) as the model sees them, special tokens written out (for docs, tests, records)."""
    if t.tokenizer_specials:
        ids = tokenizer([query], add_special_tokens=True)["input_ids"][0]
        prompt = tokenizer.decode(ids, skip_special_tokens=False)
    else:
        prompt = "".join(s if isinstance(s, str) else tokenizer.convert_ids_to_tokens(_special_id(tokenizer, s))
                         for s in _prompt_slots(t, query))
    end = t.end or tokenizer.convert_ids_to_tokens(tokenizer.eos_token_id)
    return prompt, answer + end


def describe(t: Template, tokenizer: Any | None = None) -> dict[str, Any]:
    """A JSON-able record of a template (written beside an adapter)."""
    out: dict[str, Any] = {"template": t.name, "llamafactory": t.llamafactory, "summary": t.summary,
                           "loss_on": "answer tokens + the end token", "default_system": t.default_system or None}
    if tokenizer is not None:
        out["end_token"] = t.end or tokenizer.convert_ids_to_tokens(tokenizer.eos_token_id)
        prompt, answer = render(t, tokenizer, "{query}", "{answer}")
        out["rendering"] = prompt + answer
    return out

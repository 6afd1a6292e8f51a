"""Machine translation with a local seq2seq model (NLLB, Marian, T5...): batched, cached in JSONL, resumable."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import torch

from qtalign.errors import QtalignError
from qtalign.store import JsonlWriter, read_jsonl_rows

log = logging.getLogger(__name__)

# ISO 639-1 -> FLORES-200 codes used by NLLB tokenizers
FLORES = {
    "en": "eng_Latn", "zh": "zho_Hans", "de": "deu_Latn", "fr": "fra_Latn", "es": "spa_Latn", "it": "ita_Latn",
    "nl": "nld_Latn", "ja": "jpn_Jpan", "ru": "rus_Cyrl", "sv": "swe_Latn", "sl": "slv_Latn", "pl": "pol_Latn",
    "bg": "bul_Cyrl", "no": "nob_Latn", "ms": "zsm_Latn", "is": "isl_Latn", "hi": "hin_Deva", "th": "tha_Thai",
    "sw": "swh_Latn", "bn": "ben_Beng",
}


class Translator:
    """A seq2seq model translating lists of texts; results are cached per (model, from, to, text) in a JSONL file."""

    def __init__(self, model: str, cache: str | Path | None = None, device: str = "auto", batch_size: int = 16,
                 max_new_tokens: int = 256, num_beams: int = 1, trust_remote_code: bool = False,
                 progress: bool = True) -> None:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        from qtalign.models import resolve_device

        self.name = model
        self.device = resolve_device(device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
            self.model = AutoModelForSeq2SeqLM.from_pretrained(model, use_safetensors=True,
                                                               trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as e:
            raise QtalignError(f"{model}: cannot load a seq2seq translation model ({str(e).splitlines()[0]})") from None
        self.model.to(self.device).eval()
        self.batch_size = batch_size
        self.progress = progress  # a bar per language pair translated
        self.max_new_tokens = max_new_tokens
        self.num_beams = num_beams
        self.cache_path = Path(cache) if cache is not None else None
        self.cache: dict[str, str] = {}
        if self.cache_path is not None:
            for row in read_jsonl_rows(self.cache_path):
                self.cache[row["key"]] = row["translation"]

    def key(self, text: str, src: str, tgt: str) -> str:
        return hashlib.sha256(f"{self.name}\0{src}\0{tgt}\0{text}".encode()).hexdigest()[:32]

    def _lang_kwargs(self, src: str, tgt: str) -> dict[str, Any]:
        """NLLB-style tokenizers: set the source code and force the target code as the first generated token."""
        tok = self.tokenizer
        if hasattr(tok, "src_lang") and FLORES.get(src) and FLORES.get(tgt):
            code = FLORES[tgt]
            tid = tok.convert_tokens_to_ids(code)
            if tid is not None and tid != tok.unk_token_id:
                tok.src_lang = FLORES[src]
                return {"forced_bos_token_id": tid}
        return {}

    @torch.inference_mode()
    def _generate(self, texts: list[str], src: str, tgt: str) -> list[str]:
        extra = self._lang_kwargs(src, tgt)
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=512)
        enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, num_beams=self.num_beams,
                                  do_sample=False, **extra)  # [B, T']
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]

    def __call__(self, texts: list[str], src: str, tgt: str) -> list[str]:
        """Translate texts from src to tgt (language codes); cached texts are not translated again."""
        from tqdm import tqdm

        keys = [self.key(t, src, tgt) for t in texts]
        todo: list[str] = []
        seen: set[str] = set()
        for t, k in zip(texts, keys):
            if k not in self.cache and k not in seen:
                todo.append(t)
                seen.add(k)
        if todo:
            writer = JsonlWriter(self.cache_path) if self.cache_path is not None else None
            try:
                bar = tqdm(total=len(todo), desc=f"translate {src}->{tgt}", unit="text", disable=not self.progress)
                # longest first: less padding per batch
                order = sorted(range(len(todo)), key=lambda i: -len(todo[i]))
                for start in range(0, len(order), self.batch_size):
                    batch = [todo[i] for i in order[start : start + self.batch_size]]
                    outs = self._generate(batch, src, tgt)
                    rows = []
                    for text, tr in zip(batch, outs):
                        k = self.key(text, src, tgt)
                        self.cache[k] = tr
                        rows.append({"key": k, "model": self.name, "src": src, "tgt": tgt, "text": text,
                                     "translation": tr})
                    if writer is not None:
                        writer.write_many(rows)
                    bar.update(len(batch))
                bar.close()
            finally:
                if writer is not None:
                    writer.close()
        return [self.cache[k] for k in keys]

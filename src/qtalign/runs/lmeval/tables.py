"""lm-evaluation-harness task groups as data: which task names belong to a group, their language, their choices."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from qtalign.tasks import TASKS

# FLORES-200 codes of belebele's tasks -> the language code qtalign uses (ISO 639-1 where the language has one, its
# main script only; "no" for Norwegian Bokmål as in the paper's files). Codes not listed are kept as they are.
FLORES_TO_LANG: dict[str, str] = {
    "afr_Latn": "af", "als_Latn": "sq", "amh_Ethi": "am", "arb_Arab": "ar", "asm_Beng": "as", "azj_Latn": "az",
    "bam_Latn": "bm", "ben_Beng": "bn", "bod_Tibt": "bo", "bul_Cyrl": "bg", "cat_Latn": "ca", "ces_Latn": "cs",
    "dan_Latn": "da", "deu_Latn": "de", "ell_Grek": "el", "eng_Latn": "en", "est_Latn": "et", "eus_Latn": "eu",
    "fin_Latn": "fi", "fra_Latn": "fr", "grn_Latn": "gn", "guj_Gujr": "gu", "hat_Latn": "ht", "hau_Latn": "ha",
    "heb_Hebr": "he", "hin_Deva": "hi", "hrv_Latn": "hr", "hun_Latn": "hu", "hye_Armn": "hy", "ibo_Latn": "ig",
    "ind_Latn": "id", "isl_Latn": "is", "ita_Latn": "it", "jav_Latn": "jv", "jpn_Jpan": "ja", "kan_Knda": "kn",
    "kat_Geor": "ka", "kaz_Cyrl": "kk", "khk_Cyrl": "mn", "khm_Khmr": "km", "kin_Latn": "rw", "kir_Cyrl": "ky",
    "kor_Hang": "ko", "lao_Laoo": "lo", "lin_Latn": "ln", "lit_Latn": "lt", "lug_Latn": "lg", "lvs_Latn": "lv",
    "mal_Mlym": "ml", "mar_Deva": "mr", "mkd_Cyrl": "mk", "mlt_Latn": "mt", "mri_Latn": "mi", "mya_Mymr": "my",
    "nld_Latn": "nl", "nob_Latn": "no", "npi_Deva": "ne", "nya_Latn": "ny", "ory_Orya": "or", "pan_Guru": "pa",
    "pbt_Arab": "ps", "pes_Arab": "fa", "plt_Latn": "mg", "pol_Latn": "pl", "por_Latn": "pt", "ron_Latn": "ro",
    "rus_Cyrl": "ru", "sin_Sinh": "si", "slk_Latn": "sk", "slv_Latn": "sl", "sna_Latn": "sn", "snd_Arab": "sd",
    "som_Latn": "so", "sot_Latn": "st", "spa_Latn": "es", "srp_Cyrl": "sr", "ssw_Latn": "ss", "sun_Latn": "su",
    "swe_Latn": "sv", "swh_Latn": "sw", "tam_Taml": "ta", "tel_Telu": "te", "tgk_Cyrl": "tg", "tgl_Latn": "tl",
    "tha_Thai": "th", "tir_Ethi": "ti", "tsn_Latn": "tn", "tso_Latn": "ts", "tur_Latn": "tr", "ukr_Cyrl": "uk",
    "urd_Arab": "ur", "uzn_Latn": "uz", "vie_Latn": "vi", "wol_Latn": "wo", "xho_Latn": "xh", "yor_Latn": "yo",
    "zho_Hans": "zh", "zsm_Latn": "ms", "zul_Latn": "zu",
}


@dataclass(frozen=True)
class Group:
    """A family of per-language lm-eval tasks that are translations of one item set.

    pattern: a task name matches it with a named group `code` (the language as the task name writes it) and, where
    a language's items are split over several tasks (global_mmlu's subjects), `part`. codes: code -> language,
    for the codes lm-eval has (others are refused unless lang_codes_open). labels: what each choice position means.
    index_field: the doc field holding the item's index (qtalign's exports), else lm-eval's doc_id.
    """

    name: str  # qtalign's name of the group: the task of the comparison
    pattern: str
    labels: tuple[str, ...]
    codes: Mapping[str, str] = field(default_factory=dict)
    open_codes: bool = False  # any code matching the pattern is a language (FLORES codes not in the table stay as-is)
    index_field: str | None = None

    def match(self, task: str) -> tuple[str, str] | None:
        """(language, part) of a task name of this group, or None ('' when the language has one task)."""
        m = re.fullmatch(self.pattern, task)
        if m is None:
            return None
        code = m.group("code")
        lang = self.codes.get(code) or (code if self.open_codes else None)
        if lang is None:
            return None
        return lang, (m.groupdict().get("part") or "")


def _same(*codes: str) -> dict[str, str]:
    return {c: c for c in codes}


_MMLU_LITE = _same("ar", "bn", "de", "en", "es", "fr", "hi", "id", "it", "ja", "ko", "pt", "sw", "yo", "zh")
_MMLU_FULL = _same("am", "ar", "bn", "cs", "de", "el", "en", "es", "fa", "fil", "fr", "ha", "he", "hi", "id", "ig",
                   "it", "ja", "ko", "ky", "lt", "mg", "ms", "ne", "nl", "ny", "pl", "pt", "ro", "ru", "si", "sn",
                   "so", "sr", "sv", "sw", "te", "tr", "uk", "vi", "yo", "zh")

# The groups of lm-eval 0.4.13 (lm_eval/tasks/...): task names, languages and choice order as its YAMLs define them.
GROUPS: tuple[Group, ...] = (
    # choices: premise + ", right? Yes/Also/No, " + hypothesis
    Group("xnli", r"xnli_(?P<code>[a-z]{2})", ("entailment", "neutral", "contradiction"),
          _same("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")),
    # choices: sentence1 + ", right? No/Yes, " + sentence2; label 1 = paraphrase
    Group("pawsx", r"pawsx?_(?P<code>[a-z]{2})", ("different", "same"),
          _same("de", "en", "es", "fr", "ja", "ko", "zh")),
    Group("xcopa", r"xcopa_(?P<code>[a-z]{2})", ("choice1", "choice2"),
          _same("et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh")),
    Group("xstorycloze", r"xstorycloze_(?P<code>[a-z]{2})", ("ending1", "ending2"),
          _same("ar", "en", "es", "eu", "hi", "id", "my", "ru", "sw", "te", "zh")),
    Group("belebele", r"belebele_(?P<code>[a-z]{3}_[A-Z][a-z]{3})", ("A", "B", "C", "D"), FLORES_TO_LANG,
          open_codes=True),
    Group("global_mmlu_full", r"global_mmlu_full_(?P<code>[a-z]{2,3})_(?P<part>[a-z_]+)", ("A", "B", "C", "D"),
          _MMLU_FULL),
    Group("global_mmlu", r"global_mmlu_(?P<code>[a-z]{2,3})_(?P<part>[a-z_]+)", ("A", "B", "C", "D"), _MMLU_LITE),
    # qtalign's own tasks as `qtalign export lm-eval` writes them: the comparison's task is qtalign's task name, and
    # items keep qtalign's indices, so an lm-eval run pairs with a `qtalign eval` run of the same prompts
    *(Group(t.name, rf"qtalign_{t.name}_(?P<code>[a-z]{{2}})", t.labels, open_codes=True, index_field="index")
      for t in TASKS.values()),
)


def find_group(task: str) -> tuple[Group, str, str] | None:
    """(group, language, part) of an lm-eval task name in the tables, or None."""
    for g in GROUPS:
        hit = g.match(task)
        if hit is not None:
            return g, *hit
    return None

"""Paraphrase identification on PAWS (same/different), 4-shot."""

from __future__ import annotations

from qtalign.tasks.base import LangTable, Task

_LABELS = ("same", "different")

# Field names and cues are the paper's; it has no native label words for PAWS (its files answer "same"/"different"
# in every language), so these are common translations.
_TABLE = {
    "en": LangTable(("Sentence 1", "Sentence 2"), "Answer", {"same": "same", "different": "different"}),
    "zh": LangTable(("句子 1", "句子 2"), "答案", {"same": "相同", "different": "不同"}, {"same": ("一样",)}),
    "de": LangTable(
        ("Satz 1", "Satz 2"),
        "Antwort",
        {"same": "gleich", "different": "verschieden"},
        {"same": ("dasselbe",), "different": ("unterschiedlich", "anders")},
    ),
    "fr": LangTable(
        ("Phrase 1", "Phrase 2"),
        "Répondre",
        {"same": "même", "different": "différent"},
        {"same": ("identique", "pareil"), "different": ("différente",)},
    ),
    "es": LangTable(
        ("Sentencia 1", "Sentencia 2"),
        "Respuesta",
        {"same": "mismo", "different": "diferente"},
        {"same": ("igual", "misma"), "different": ("distinto", "distinta")},
    ),
    "it": LangTable(
        ("Frase 1", "Frase 2"),
        "Risposta",
        {"same": "stesso", "different": "diverso"},
        {"same": ("stessa", "uguale"), "different": ("diversa",)},
    ),
    "nl": LangTable(
        ("Zin 1", "Zin 2"),
        "Antwoord",
        {"same": "hetzelfde", "different": "verschillend"},
        {"same": ("gelijk",), "different": ("anders",)},
    ),
    "ja": LangTable(("文 1", "文 2"), "答え", {"same": "同じ", "different": "異なる"}, {"different": ("違う",)}),
    "ru": LangTable(
        ("Приговор 1", "Приговор 2"),
        "Ответить",
        {"same": "одинаковые", "different": "разные"},
        {"same": ("то же самое", "одинаково"), "different": ("различные",)},
    ),
    "sv": LangTable(("Mening 1", "Mening 2"), "Svar", {"same": "samma", "different": "olika"}),
    "sl": LangTable(
        ("Stavek 1", "Stavek 2"),
        "Odgovori",
        {"same": "enako", "different": "različno"},
        {"same": ("isto",)},
    ),
    "pl": LangTable(
        ("Zdanie 1", "Zdanie 2"),
        "Odpowiedź",
        {"same": "to samo", "different": "różne"},
        {"same": ("takie samo",), "different": ("inne",)},
    ),
    "bg": LangTable(
        ("Изречение 1", "Изречение 2"),
        "Отговор",
        {"same": "същото", "different": "различно"},
        {"same": ("еднакво",), "different": ("различни",)},
    ),
    "no": LangTable(
        ("Setning 1", "Setning 2"),
        "Svar",
        {"same": "samme", "different": "forskjellig"},
        {"different": ("ulik", "annerledes")},
    ),
    "ms": LangTable(
        ("Ayat 1", "Ayat 2"),
        "Jawab",
        {"same": "sama", "different": "berbeza"},
        {"different": ("berlainan",)},
    ),
    "is": LangTable(
        ("Setning 1", "Setning 2"),
        "Svaraðu",
        {"same": "sama", "different": "mismunandi"},
        {"same": ("eins",), "different": ("ólík",)},
    ),
    "hi": LangTable(("वाक्य 1", "वाक्य 2"), "उत्तर", {"same": "समान", "different": "भिन्न"}, {"different": ("अलग",)}),
    "th": LangTable(
        ("ประโยค 1", "ประโยค 2"),
        "คำตอบ",
        {"same": "เหมือนกัน", "different": "แตกต่างกัน"},
        {"same": ("เหมือน",), "different": ("แตกต่าง", "ต่างกัน")},
    ),
    "sw": LangTable(("Sentensi 1", "Sentensi 2"), "Jibu", {"same": "sawa", "different": "tofauti"}),
    "bn": LangTable(("বাক্য 1", "বাক্য 2"), "উত্তর", {"same": "একই", "different": "ভিন্ন"}, {"different": ("আলাদা",)}),
}

TASK = Task(
    name="paraphrase",
    input_fields=("sentence1", "sentence2"),
    labels=_LABELS,
    shots=4,
    table=_TABLE,
    file_stem="paws",
    aliases={"yes": "same", "no": "different"},  # paws_en10k_train.json answers
)

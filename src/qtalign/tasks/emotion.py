"""Sentiment of Amazon product reviews (positive/negative), 2-shot; the review is written without a field name."""

from __future__ import annotations

from qtalign.tasks.base import LangTable, Task

_LABELS = ("positive", "negative")

# Cues and label words are the paper's; variants are other common words for the same label.
_TABLE = {
    "en": LangTable(("",), "Emotion", {"positive": "positive", "negative": "negative"}),
    "zh": LangTable(
        ("",),
        "情感",
        {"positive": "积极", "negative": "消极"},
        {"positive": ("正面", "正向"), "negative": ("负面", "负向")},
    ),
    "de": LangTable(("",), "Emotion", {"positive": "positiv", "negative": "negativ"}),
    "fr": LangTable(
        ("",),
        "Émotion",
        {"positive": "positif", "negative": "négatif"},
        {"negative": ("négative",)},
    ),
    "es": LangTable(
        ("",),
        "Emoción",
        {"positive": "positivo", "negative": "negativo"},
        {"positive": ("positiva",), "negative": ("negativa",)},
    ),
    "it": LangTable(
        ("",),
        "Emozione",
        {"positive": "positivo", "negative": "negativo"},
        {"positive": ("positiva",), "negative": ("negativa",)},
    ),
    "nl": LangTable(("",), "Emotie", {"positive": "positief", "negative": "negatief"}),
    "ja": LangTable(
        ("",),
        "感情",
        {"positive": "ポジティブ", "negative": "ネガティブ"},
        {"positive": ("肯定的",), "negative": ("否定的",)},
    ),
    "ru": LangTable(
        ("",),
        "Эмоция",
        {"positive": "позитивный", "negative": "отрицательный"},
        {"positive": ("положительный",), "negative": ("негативный",)},
    ),
    "sv": LangTable(
        ("",),
        "Känsla",
        {"positive": "positiv", "negative": "negativ"},
        {"positive": ("positivt",), "negative": ("negativt",)},
    ),
    "sl": LangTable(
        ("",),
        "Čustvo",
        {"positive": "pozitivno", "negative": "negativno"},
        {"positive": ("pozitiven",), "negative": ("negativen",)},
    ),
    "pl": LangTable(
        ("",),
        "Emocja",
        {"positive": "pozytywny", "negative": "negatywny"},
        {"positive": ("pozytywna", "pozytywne"), "negative": ("negatywna", "negatywne")},
    ),
    "bg": LangTable(
        ("",),
        "Емоция",
        {"positive": "положителен", "negative": "отрицателен"},
        {"positive": ("позитивен",), "negative": ("негативен",)},
    ),
    "no": LangTable(
        ("",),
        "Følelse",
        {"positive": "positivt", "negative": "negativ"},
        {"positive": ("positiv",), "negative": ("negativt",)},
    ),
    "ms": LangTable(("",), "Emosi", {"positive": "positif", "negative": "negatif"}),
    "is": LangTable(
        ("",),
        "Tilfinning",
        {"positive": "jákvæð", "negative": "neikvæð"},
        {"positive": ("jákvætt", "jákvæður"), "negative": ("neikvætt", "neikvæður")},
    ),
    "hi": LangTable(("",), "भावना", {"positive": "सकारात्मक", "negative": "नकारात्मक"}),
    "th": LangTable(
        ("",),
        "อารมณ์",
        {"positive": "เชิงบวก", "negative": "เชิงลบ"},
        {"positive": ("บวก",), "negative": ("ลบ",)},
    ),
    "sw": LangTable(("",), "Hisia", {"positive": "chanya", "negative": "hasi"}),
    "bn": LangTable(
        ("",),
        "আবেগ",
        {"positive": "ইতিবাচক", "negative": "নেতিবাচক"},
        {"positive": ("ধনাত্মক", "সদর্থক"), "negative": ("ঋণাত্মক", "নঞর্থক")},
    ),
}

TASK = Task(
    name="emotion",
    input_fields=("input",),
    labels=_LABELS,
    shots=2,
    table=_TABLE,
    file_stem="emotion",
)

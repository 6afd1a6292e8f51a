"""The 20 languages of the paper as a data table: code, English name, script, resource level."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Language:
    code: str
    name: str  # English name, as used in "Translate the input from <name> to <name>:"
    script: str
    high_resource: bool


_TABLE: tuple[tuple[str, str, str, bool], ...] = (
    ("en", "English", "Latin", True),
    ("zh", "Chinese", "Han", True),
    ("de", "German", "Latin", True),
    ("fr", "French", "Latin", True),
    ("es", "Spanish", "Latin", True),
    ("it", "Italian", "Latin", True),
    ("nl", "Dutch", "Latin", True),
    ("ja", "Japanese", "Japanese", True),
    ("ru", "Russian", "Cyrillic", True),
    ("sv", "Swedish", "Latin", True),
    ("sl", "Slovenian", "Latin", False),
    ("pl", "Polish", "Latin", False),
    ("bg", "Bulgarian", "Cyrillic", False),
    ("no", "Norwegian", "Latin", False),
    ("ms", "Malay", "Latin", False),
    ("is", "Icelandic", "Latin", False),
    ("hi", "Hindi", "Devanagari", False),
    ("th", "Thai", "Thai", False),
    ("sw", "Swahili", "Latin", False),
    ("bn", "Bengali", "Bengali", False),
)

LANGUAGES: dict[str, Language] = {row[0]: Language(*row) for row in _TABLE}
PAPER_LANGS: tuple[str, ...] = tuple(LANGUAGES)


def language(code: str) -> Language:
    """The language with this code, or a ValueError naming the known codes."""
    try:
        return LANGUAGES[code]
    except KeyError:
        raise ValueError(f"unknown language {code!r}; known: {', '.join(PAPER_LANGS)}") from None

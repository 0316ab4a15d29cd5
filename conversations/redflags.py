"""The red-flag check run on every free-text answer.

It errs towards caution: a false alarm costs the patient one button press, a missed emergency
costs far more. Patterns live beside each language's catalog (`locales/<locale>/redflags.txt`,
one regular expression per line). Every language's patterns are checked, because people mix
languages when frightened; but a language's patterns run only on text written in its script
(Cyrillic patterns cannot match a Latin sentence), which keeps the check cheap.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache

from conversations.i18n import LOCALES_DIR


def pattern_lines(locale: str) -> list[str]:
    path = LOCALES_DIR / locale / "redflags.txt"
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def scripts_of(text: str) -> frozenset[str]:
    """The writing systems of the letters in a text ("LATIN", "CYRILLIC", "CJK", "HANGUL" …)."""
    found = set()
    for char in text:
        if char.isalpha():
            name = unicodedata.name(char, "")
            found.add(name.split(" ")[0] if name else "OTHER")
    return frozenset(found)


_SYNTAX = re.compile(r"\\[A-Za-z]|\(\?[<!=:P]*")


@dataclass(frozen=True)
class _Language:
    pattern: re.Pattern[str]
    scripts: frozenset[str]


@cache
def _languages() -> tuple[_Language, ...]:
    languages = []
    for path in sorted(LOCALES_DIR.glob("*/redflags.txt")):
        lines = pattern_lines(path.parent.name)
        if lines:
            pattern = re.compile("|".join(f"(?:{p})" for p in lines), re.IGNORECASE)
            # The letters the patterns look for, not those of the syntax (\w, \b, (?<!…)).
            letters = _SYNTAX.sub("", "".join(lines))
            languages.append(_Language(pattern, scripts_of(letters)))
    return tuple(languages)


def is_red_flag(text: str) -> bool:
    """True when the text describes something that needs emergency care now."""
    written_in = scripts_of(text)
    return any(
        language.pattern.search(text) for language in _languages() if language.scripts & written_in
    )

"""The red-flag check run on every free-text answer.

It errs towards caution: a false alarm costs the patient one button press, a missed emergency
costs far more. Patterns live beside each language's catalog (`locales/<locale>/redflags.txt`,
one regular expression per line), and every language's patterns are checked on every text,
because people mix languages when frightened.
"""

from __future__ import annotations

import re
from functools import cache

from conversations.i18n import LOCALES_DIR


def pattern_lines(locale: str) -> list[str]:
    path = LOCALES_DIR / locale / "redflags.txt"
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@cache
def _pattern() -> re.Pattern[str]:
    found = sorted(p.parent.name for p in LOCALES_DIR.glob("*/redflags.txt"))
    patterns = [line for locale in found for line in pattern_lines(locale)]
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


def is_red_flag(text: str) -> bool:
    """True when the text describes something that needs emergency care now."""
    return bool(_pattern().search(text))

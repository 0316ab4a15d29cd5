"""Reading who the patient is from typed answers: a passport name, a birth date or an age,
a phone number or an e-mail address. Pure functions, so the steps stay short."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from conversations.timeline import parse_entry

MAX_NAME_LENGTH = 100
MAX_PLACE_LENGTH = 120
OLDEST_AGE = 120

# Besides letters, a passport name holds spaces, hyphens, apostrophes and dots ("O'Neil Jr.").
_NAME_PUNCTUATION = frozenset(" -'’.,")
_AGE = re.compile(r"^\D{0,12}?(\d{1,3})(?!\d)\D{0,20}$")
# 12.03.1958, as much of Europe writes a date: the timeline reads it with slashes.
_DOTTED = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}$")
_PHONE = re.compile(r"^\+?[\d\s\-().]{6,24}$")


def latin_name(text: str) -> str | None:
    """The name as on a passport's machine-readable line: Latin letters only, or None."""
    name = " ".join(text.split())[:MAX_NAME_LENGTH]
    letters = [char for char in name if char not in _NAME_PUNCTUATION]
    if len(letters) < 2 or not all(_is_latin_letter(char) for char in letters):
        return None
    return name


def _is_latin_letter(char: str) -> bool:
    return unicodedata.category(char).startswith("L") and "LATIN" in unicodedata.name(char, "")


def chinese_name(text: str) -> str | None:
    """A name in Chinese characters (a middle dot allowed, as in transliterated names)."""
    name = "".join(text.split())[:30]
    characters = [char for char in name if char not in "·•・"]
    if not characters or not all("CJK" in unicodedata.name(char, "") for char in characters):
        return None
    return name


@dataclass(frozen=True)
class Birth:
    """Exactly one is set: the date, the year, or the age in years."""

    birth_date: date | None = None
    year: int | None = None
    age: int | None = None


def parse_birth(text: str, today: date) -> Birth | None:
    """A date of birth in the ways the timeline reads dates ("1958-03-12", "12 March 1958",
    "1958年3月12日"), a year alone, or an age ("67", "67 years", "67岁")."""
    cleaned = _DOTTED.sub(r"\1/\2/\3", " ".join(text.split()))
    # The timeline wants words after the date; a birth date stands alone, so give it some.
    entry = parse_entry(f"{cleaned} ·")
    if entry is not None and entry.what == "·":
        year, month, day = (int(part) for part in entry.sort_key.split("-"))
        if not 1900 <= year <= today.year:
            return None
        if month and day:
            try:
                born = date(year, month, day)
            except ValueError:
                return None
            return Birth(birth_date=born) if born <= today else None
        return Birth(year=year)
    match = _AGE.match(cleaned)
    if match is not None:
        age = int(match.group(1))
        return Birth(age=age) if 0 <= age <= OLDEST_AGE else None
    return None


def contact(text: str) -> str | None:
    """A phone number (6 to 15 digits, as people write them) or an e-mail address."""
    value = text.strip()
    if _EMAIL.match(value):
        return value[:MAX_PLACE_LENGTH]
    digits = sum(char.isdigit() for char in value)
    if _PHONE.match(value) and 6 <= digits <= 15:
        return " ".join(value.split())
    return None


def place(text: str) -> str:
    return " ".join(text.split())[:MAX_PLACE_LENGTH]

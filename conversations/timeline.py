"""Parse timeline entries: "March 2024: biopsy", "2023-05-12 CT scan", "2022年6月 确诊".

Dates may be approximate; what matters is a clear order. Each entry gets a sort key
YYYY-MM-DD where unknown parts are 00, so entries sort by what is known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MONTHS = {
    name: index
    for index, names in enumerate(
        (
            # English, German, French, Spanish, Russian (nominative and genitive).
            ("jan", "january", "januar", "janvier", "enero", "январь", "января"),
            ("feb", "february", "februar", "février", "fevrier", "febrero", "февраль", "февраля"),
            ("mar", "march", "märz", "maerz", "mars", "marzo", "март", "марта"),
            ("apr", "april", "avril", "abril", "апрель", "апреля"),
            ("may", "mai", "mayo", "май", "мая"),
            ("jun", "june", "juni", "juin", "junio", "июнь", "июня"),
            ("jul", "july", "juli", "juillet", "julio", "июль", "июля"),
            ("aug", "august", "août", "aout", "agosto", "август", "августа"),
            (
                "sep",
                "sept",
                "september",
                "septembre",
                "septiembre",
                "setiembre",
                "сентябрь",
                "сентября",
            ),
            ("oct", "october", "oktober", "octobre", "octubre", "октябрь", "октября"),
            ("nov", "november", "novembre", "noviembre", "ноябрь", "ноября"),
            (
                "dec",
                "december",
                "dezember",
                "décembre",
                "decembre",
                "diciembre",
                "декабрь",
                "декабря",
            ),
        ),
        start=1,
    )
    for name in names
}
_MONTH_NAMES = "|".join(sorted(MONTHS, key=len, reverse=True))
_APPROX_WORDS = (
    r"about|around|approx\.?|approximately|circa|ca\.?|early|mid|late|~|约|約|大约|大約|大概"
    r"|etwa|ungefähr|vers|environ|hacia|aproximadamente|alrededor de|около|примерно|"
    r"приблизительно|약|حوالي|تقريبًا|تقريبا"
)
_APPROX = rf"(?P<approx>(?:{_APPROX_WORDS})\s*)?"
_SEP = r"\s*(?:[:：\-–—,，.]\s*|\s+)"

_PATTERNS = [
    # 2023-05-12, 2023/5/12, 2023.05.12, 2023-05, 2023
    re.compile(
        _APPROX
        + r"(?P<year>(?:19|20)\d\d)(?:[-/.](?P<month>\d{1,2})(?:[-/.](?P<day>\d{1,2}))?)?"
        + r"(?!\d)"
        + _SEP
        + r"(?P<what>.+)$",
        re.IGNORECASE | re.DOTALL,
    ),
    # 2022年6月3日, 2022年6月, 2022年 (Chinese, Japanese), 2022년 6월 3일 (Korean)
    re.compile(
        _APPROX
        + r"(?P<year>(?:19|20)\d\d)\s*[年년]"
        + r"\s*(?:(?P<month>\d{1,2})\s*[月월]\s*(?:(?P<day>\d{1,2})\s*[日号일])?)?"
        + r"(?P<approx_after>\s*(?:[左右前後后初底中旬]+|頃|ごろ|경))?"
        + r"\s*[:：,，]?\s*(?P<what>.+)$",
        re.DOTALL,
    ),
    # 12 May 2023, May 2023, May 12 2023
    re.compile(
        _APPROX
        + r"(?:(?P<day>\d{1,2})\.?\s+(?:de\s+)?)?(?P<monthname>"
        + _MONTH_NAMES
        + r")\.?\s+(?:(?P<day2>\d{1,2}),?\s+)?(?:de\s+)?(?P<year>(?:19|20)\d\d)"
        + r"(?:\s*(?:г\.|года))?"
        + _SEP
        + r"(?P<what>.+)$",
        re.IGNORECASE | re.DOTALL,
    ),
    # 12/05/2023 or 05/2023 (day first, as most of the world writes it)
    re.compile(
        _APPROX
        + r"(?:(?P<day>\d{1,2})/)?(?P<month>\d{1,2})/(?P<year>(?:19|20)\d\d)"
        + _SEP
        + r"(?P<what>.+)$",
        re.IGNORECASE | re.DOTALL,
    ),
]

MAX_ENTRY_LENGTH = 1000


@dataclass(frozen=True)
class ParsedEntry:
    when: str
    sort_key: str
    approximate: bool
    what: str


def _number(value: str | None, upper: int) -> int:
    if not value:
        return 0
    number = int(value)
    return number if 1 <= number <= upper else 0


def parse_entry(line: str) -> ParsedEntry | None:
    """One line -> an entry, or None when it does not start with a recognisable date."""
    text = line.strip()
    for pattern in _PATTERNS:
        match = pattern.match(text)
        if not match:
            continue
        groups = match.groupdict()
        what = (groups.get("what") or "").strip()
        if not what:
            return None
        year = int(groups["year"])
        if groups.get("monthname"):
            month = MONTHS[groups["monthname"].lower()]
        else:
            month = _number(groups.get("month"), 12)
        day = _number(groups.get("day") or groups.get("day2"), 31) if month else 0
        when = text[: match.start("what")].strip(" :：-–—,，")
        approximate = bool(groups.get("approx") or groups.get("approx_after"))
        return ParsedEntry(
            when=when,
            sort_key=f"{year:04d}-{month:02d}-{day:02d}",
            approximate=approximate,
            what=what[:MAX_ENTRY_LENGTH],
        )
    return None


def parse_lines(text: str) -> tuple[list[ParsedEntry], list[str]]:
    """Split pasted text into entries; also return the lines that had no date."""
    entries: list[ParsedEntry] = []
    undated: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        entry = parse_entry(line)
        if entry is None:
            undated.append(line.strip())
        else:
            entries.append(entry)
    return entries, undated

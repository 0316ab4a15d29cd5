"""The red-flag check run on every free-text answer.

It errs towards caution: a false alarm costs the patient one button press, a missed emergency
costs far more. Patterns live beside each language's catalog (`locales/<locale>/redflags.txt`,
one regular expression per line). Every language's patterns are checked, because people mix
languages when frightened; but a language's patterns run only on text written in its script
(Cyrillic patterns cannot match a Latin sentence), which keeps the check cheap.

A match is history, not an emergency, when the language's context words
(`locales/<locale>/redflag_context.txt`) say so: a negation cue shortly before it in the same
clause ("no chest pain", "没有胸痛"), a cue right after it ("stroke ruled out"), or a clause that
tells of a past event that is over ("a small stroke in 2019, fully recovered") and nothing
current ("now", "again", "still"). A pattern may name the words the cue must precede with a
group `(?P<at>…)` ("on chemo, no fever": the cue comes before "fever", not before "chemo").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache

from conversations.i18n import LOCALES_DIR
from conversations.timeline import parse_entry

# Sentence ends: always a clause boundary. A full stop between digits is a decimal ("38.5").
_HARD = re.compile(r"[!?;。！？；؟؛\n…]|(?<!\d)\.|\.(?!\d)")
_COMMA = re.compile(r"[,，،]")
# Words allowed between a negation cue and the symptom ("no history of chest pain").
_WORDS_BETWEEN = 4
# The same for scripts without spaces, in characters ("没有出现过胸痛").
_CHARS_BETWEEN = 10
_UNSPACED = frozenset({"CJK", "HIRAGANA", "KATAKANA"})
_SECTIONS = ("negation", "after", "break", "joiner", "past", "resolved", "current")
# "[include]" names languages whose context words also apply: Han characters are shared, so a
# Chinese sentence can match Japanese or Traditional Chinese patterns.
_INCLUDE = "include"


def pattern_lines(locale: str) -> list[str]:
    path = LOCALES_DIR / locale / "redflags.txt"
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def context_sections(locale: str) -> dict[str, list[str]]:
    """The context words of a language: "[negation]", "[past]" … each followed by patterns."""
    path = LOCALES_DIR / locale / "redflag_context.txt"
    sections: dict[str, list[str]] = {name: [] for name in (*_SECTIONS, _INCLUDE)}
    if not path.exists():
        return sections
    current: list[str] | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections[line[1:-1]]
        elif current is not None:
            current.append(line)
    for other in sections.pop(_INCLUDE):
        for name, lines in context_sections(other).items():
            sections[name] += lines
    return sections


def scripts_of(text: str) -> frozenset[str]:
    """The writing systems of the letters in a text ("LATIN", "CYRILLIC", "CJK", "HANGUL" …)."""
    found = set()
    for char in text:
        if char.isalpha():
            name = unicodedata.name(char, "")
            found.add(name.split(" ")[0] if name else "OTHER")
    return frozenset(found)


_SYNTAX = re.compile(r"\\[A-Za-z]|\(\?[<!=:P]*(<\w+>)?")


def _either(lines: list[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(f"(?:{p})" for p in lines), re.IGNORECASE) if lines else None


@dataclass(frozen=True)
class _Language:
    locale: str
    # Every pattern at once: most texts match none, and one search says so.
    pattern: re.Pattern[str]
    lines: tuple[str, ...]
    scripts: frozenset[str]
    context: dict[str, re.Pattern[str] | None]

    @property
    def unspaced(self) -> bool:
        return bool(self.scripts) and self.scripts <= _UNSPACED


@cache
def _languages() -> tuple[_Language, ...]:
    languages = []
    for path in sorted(LOCALES_DIR.glob("*/redflags.txt")):
        locale = path.parent.name
        lines = pattern_lines(locale)
        if lines:
            # Each line alone may name its group "at"; together the names would clash.
            combined = _either([re.sub(r"\(\?P<at>", "(?:", p) for p in lines])
            assert combined is not None
            # The letters the patterns look for, not those of the syntax (\w, \b, (?<!…)).
            letters = _SYNTAX.sub("", "".join(lines))
            context = {name: _either(found) for name, found in context_sections(locale).items()}
            scripts = scripts_of(letters)
            languages.append(_Language(locale, combined, tuple(lines), scripts, context))
    return tuple(_borrowing(language, languages) for language in languages)


def _borrowing(language: _Language, languages: list[_Language]) -> _Language:
    """A language without context words of its own uses those of every language written in
    the same script: a Spanish "nunca ha tenido convulsiones" also matches French patterns."""
    if any(language.context.values()):
        return language
    sections: dict[str, list[str]] = {name: [] for name in _SECTIONS}
    for other in languages:
        if other.scripts & language.scripts and any(other.context.values()):
            for name, found in context_sections(other.locale).items():
                sections[name] += found
    context = {name: _either(found) for name, found in sections.items()}
    return _Language(language.locale, language.pattern, language.lines, language.scripts, context)


@cache
def _one_by_one(lines: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    """Each line alone, compiled the first time a text matches the language at all."""
    return tuple(re.compile(line, re.IGNORECASE) for line in lines)


def _clause_start(language: _Language, text: str, at: int) -> int:
    start = 0
    for found in _HARD.finditer(text, 0, at):
        start = found.end()
    breaks = language.context["break"]
    if breaks is not None:
        for found in breaks.finditer(text, start, at):
            start = found.start() if found.start() > start else start
    return start


def _clause_end(language: _Language, text: str, end: int) -> int:
    stops = [m.start() for m in [_HARD.search(text, end)] if m]
    breaks = language.context["break"]
    if breaks is not None:
        stops += [m.start() for m in [breaks.search(text, end)] if m]
    return min(stops, default=len(text))


def _negated(language: _Language, text: str, at: int, end: int) -> bool:
    after = language.context["after"]
    # Patterns often stop at a word's stem ("температур"): the cue follows the whole word.
    while end < len(text) and text[end].isalnum() and not language.unspaced:
        end += 1
    stop = _HARD.search(text, end)
    if after is not None and after.match(text, end, stop.start() if stop else len(text)):
        return True
    cues = language.context["negation"]
    if cues is None:
        return False
    clause = text[_clause_start(language, text, at) : at]
    segments = _COMMA.split(clause)
    scope = segments[-1]
    joiner = language.context["joiner"]
    # "no fever, cough or chest pain": a list closed by "or" carries the cue across its commas.
    listed = len(segments) > 1 and joiner is not None and bool(joiner.search(scope))
    if listed:
        scope = clause
    found = list(cues.finditer(scope))
    if not found:
        return False
    # The cue nearest the symptom is the one that could negate it.
    between = scope[found[-1].end() :]
    if listed:
        return len(between) <= 80
    if language.unspaced:
        return len(between.strip()) <= _CHARS_BETWEEN
    return len(between.split()) <= _WORDS_BETWEEN


def _over(language: _Language, text: str, at: int, end: int) -> bool:
    past, resolved, current = (language.context[k] for k in ("past", "resolved", "current"))
    if past is None or resolved is None:
        return False
    clause = text[_clause_start(language, text, at) : _clause_end(language, text, end)]
    # Anything current in the whole sentence ("…, and now she has one again") keeps the alarm.
    begin = max((m.end() for m in _HARD.finditer(text, 0, at)), default=0)
    stop = _HARD.search(text, end)
    if current is not None and current.search(text, begin, stop.start() if stop else len(text)):
        return False
    return bool(past.search(clause) and resolved.search(clause))


def _raises(language: _Language, text: str) -> bool:
    if not language.pattern.search(text):
        return False
    for line in _one_by_one(language.lines):
        position = 0
        while (found := line.search(text, position)) is not None:
            at = found.start("at") if "at" in line.groupindex and found.group("at") else None
            start = found.start() if at is None else at
            if not _negated(language, text, start, found.end()) and not _over(
                language, text, start, found.end()
            ):
                return True
            # A later, overlapping match may be a current symptom.
            position = found.start() + 1
    return False


def is_red_flag(text: str, *, every_script: bool = False) -> bool:
    """True when the text describes something that needs emergency care now.

    `every_script` runs every language's patterns whatever the text's letters (only to show
    that choosing by script loses nothing)."""
    written_in = scripts_of(text)
    return any(
        _raises(language, text)
        for language in _languages()
        if every_script or language.scripts & written_in
    )


# A dated timeline event that ended this long before today is history, told as history.
RECENT_DAYS = 3


def _latest_day(sort_key: str) -> date | None:
    """The last day a timeline sort key ("2024-03-00") can mean."""
    year, month, day = (int(part) for part in sort_key.split("-"))
    if day:
        return date(year, month, day)
    if month:
        return date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
    return date(year, 12, 31)


def is_timeline_red_flag(text: str, today: date) -> bool:
    """The check for lines of the timeline: an event dated days or years before today is the
    story so far, not an emergency now, unless the line also tells of something current."""
    for line in text.splitlines():
        entry = parse_entry(line)
        if entry is not None:
            try:
                latest = _latest_day(entry.sort_key)
            except ValueError:
                latest = None
            past = latest is not None and latest <= today - timedelta(days=RECENT_DAYS)
            if past and not _tells_of_now(line):
                continue
        if is_red_flag(line):
            return True
    return False


def _tells_of_now(text: str) -> bool:
    written_in = scripts_of(text)
    for language in _languages():
        current = language.context["current"]
        if language.scripts & written_in and current is not None and current.search(text):
            return True
    return False

"""Translations: gettext catalogs under `locales/`, managed with Babel.

Catalogs are read from the `.po` files and compiled in memory on first use, so a catalog edit
never needs a separate build step and a stale `.mo` can never be served. Fuzzy entries are not
used (Babel leaves them out when compiling), so an unreviewed translation falls back to English.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date
from functools import cache
from pathlib import Path

from babel import Locale, UnknownLocaleError, negotiate_locale
from babel.dates import format_date
from babel.lists import format_list
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
SOURCE_LOCALE = "en"
SUPPORTED_LOCALES: tuple[str, ...] = (
    "en",
    "zh_Hans",
    "zh_Hant",
    "ru",
    "ar",
    "es",
    "fr",
    "de",
    "ja",
    "ko",
    "vi",
    "id",
    "kk",
    "mn",
)
DOMAIN = "messages"


TRADITIONAL_CHINESE_REGIONS = frozenset({"TW", "HK", "MO"})


@cache
def translations(locale: str) -> NullTranslations:
    po_path = LOCALES_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not po_path.exists():
        return NullTranslations()
    with po_path.open("rb") as po_file:
        catalog = read_po(po_file, locale=locale)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


# Unicode isolates: embedded text keeps its own direction inside a right-to-left sentence.
FIRST_STRONG_ISOLATE = "\u2068"
POP_DIRECTIONAL_ISOLATE = "\u2069"


class Translator:
    """The texts of one locale. `t("...")` translates; named placeholders are filled after.

    In a right-to-left language every filled-in value (a case reference, a file name, a
    number, the patient's own words) is wrapped in directional isolates, so Latin text and
    digits inside an Arabic sentence read in the right order."""

    def __init__(self, locale: str) -> None:
        self.locale = locale if locale in SUPPORTED_LOCALES else SOURCE_LOCALE
        self._catalog = translations(self.locale)
        self._babel = Locale.parse(self.locale)
        self.rtl = self._babel.text_direction == "rtl"

    def __call__(self, message: str, **values: object) -> str:
        text = self._catalog.gettext(message)
        return text.format(**self._isolated(values)) if values else text

    def plural(self, singular: str, plural: str, count: int, **values: object) -> str:
        text = self._catalog.ngettext(singular, plural, count)
        return text.format(**self._isolated({"count": count, **values}))

    def isolate(self, text: str) -> str:
        """Text from elsewhere (the patient's words, a reference) placed in our sentence."""
        return f"{FIRST_STRONG_ISOLATE}{text}{POP_DIRECTIONAL_ISOLATE}" if self.rtl else text

    def date(self, value: date) -> str:
        return format_date(value, format="long", locale=self._babel)

    def join(self, items: Sequence[str]) -> str:
        """A list as the language writes one ("a, b and c"; "a、b和c")."""
        return format_list(list(items), locale=self._babel) if items else ""

    def _isolated(self, values: dict[str, object]) -> dict[str, object]:
        if not self.rtl:
            return values
        return {key: self.isolate(str(value)) for key, value in values.items()}


@cache
def translator(locale: str) -> Translator:
    return Translator(locale)


def negotiate(hint: str | None) -> str | None:
    """Map a platform language hint ("zh-CN", "en-GB", "zh-hans") to a supported locale."""
    if not hint:
        return None
    normalized = hint.replace("-", "_").split(".")[0]
    try:
        parsed = Locale.parse(normalized)
    except (ValueError, UnknownLocaleError):
        return None
    if parsed.language == "zh":
        # Script decides, then region: Taiwan, Hong Kong and Macau write Traditional.
        traditional = parsed.script == "Hant" or (
            parsed.script is None and parsed.territory in TRADITIONAL_CHINESE_REGIONS
        )
        wanted = "zh_Hant" if traditional else "zh_Hans"
        return wanted if wanted in SUPPORTED_LOCALES else "zh_Hans"
    candidates = [str(parsed), parsed.language]
    return negotiate_locale(candidates, list(SUPPORTED_LOCALES))


def language_name(locale: str) -> str:
    """The language's own name for itself, for the language picker."""
    return Locale.parse(locale).get_display_name(locale) or locale


# Coordinators are bilingual staff: what they read comes in English, then Chinese.
COORDINATOR_LOCALES = ("en", "zh_Hans")


def bilingual(message: str, **values: object) -> str:
    return "\n".join(translator(locale)(message, **values) for locale in COORDINATOR_LOCALES)

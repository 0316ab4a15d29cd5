"""Translations: gettext catalogs under `locales/`, managed with Babel.

Catalogs are read from the `.po` files and compiled in memory on first use, so a catalog edit
never needs a separate build step and a stale `.mo` can never be served. Fuzzy entries are not
used (Babel leaves them out when compiling), so an unreviewed translation falls back to English.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from babel import Locale, UnknownLocaleError, negotiate_locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
SOURCE_LOCALE = "en"
SUPPORTED_LOCALES: tuple[str, ...] = ("en", "zh_Hans")
DOMAIN = "messages"


def N_(message: str) -> str:
    """Mark a string for extraction where it is declared; it is translated when rendered."""
    return message


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


class Translator:
    """The texts of one locale. `t("...")` translates; named placeholders are filled after."""

    def __init__(self, locale: str) -> None:
        self.locale = locale if locale in SUPPORTED_LOCALES else SOURCE_LOCALE
        self._catalog = translations(self.locale)

    def __call__(self, message: str, **values: object) -> str:
        text = self._catalog.gettext(message)
        return text.format(**values) if values else text

    def plural(self, singular: str, plural: str, count: int, **values: object) -> str:
        text = self._catalog.ngettext(singular, plural, count)
        return text.format(count=count, **values)


@cache
def translator(locale: str) -> Translator:
    return Translator(locale)


def negotiate(hint: str | None) -> str | None:
    """Map a platform language hint ("zh-CN", "en-GB", "zh-hans") to a supported locale."""
    if not hint:
        return None
    normalized = hint.replace("-", "_")
    try:
        parsed = Locale.parse(normalized)
    except (ValueError, UnknownLocaleError):
        return None
    if parsed.language == "zh":
        # Traditional-script regions are not supported yet; Simplified is the closer reading.
        return "zh_Hans"
    candidates = [str(parsed), parsed.language]
    return negotiate_locale(candidates, list(SUPPORTED_LOCALES))


def language_name(locale: str) -> str:
    """The language's own name for itself, for the language picker."""
    return Locale.parse(locale).get_display_name(locale) or locale

"""Every user-facing text is in every catalog, translated, with the same placeholders."""

from __future__ import annotations

import json
import re
import shutil
from io import BytesIO
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from conversations.catalogs import apply_pending
from conversations.i18n import LOCALES_DIR, SUPPORTED_LOCALES, translator

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers", "conversations", "records", "storage")
KEYWORDS = {"N_": None, "t": None, "plural": (1, 2), "bilingual": None}
PLACEHOLDER = re.compile(r"\{(\w*)\}")


def load(locale: str) -> Catalog:
    path = LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po"
    return read_po(BytesIO(path.read_bytes()), locale=locale)


def source_messages() -> set[str]:
    found: set[str] = set()
    for package in PACKAGES:
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / package, method_map=[("**.py", "python")], keywords=KEYWORDS
        ):
            found.add(message[0] if isinstance(message, tuple) else message)
    return found


def strings(message: Message) -> list[str]:
    """The translation's forms; a missing one reads as "" (untranslated)."""
    value = message.string
    return list(value) if isinstance(value, tuple | list) else [value or ""]


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_every_message_in_the_code_is_in_the_catalog(locale: str) -> None:
    catalog_ids = {m.id if isinstance(m.id, str) else m.id[0] for m in load(locale) if m.id}
    missing = source_messages() - catalog_ids
    assert not missing, f"run `make i18n`; missing from {locale}: {sorted(missing)[:5]}"


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_every_message_is_translated_and_none_is_fuzzy(locale: str) -> None:
    catalog = load(locale)
    untranslated = [m.id for m in catalog if m.id and not all(strings(m))]
    fuzzy = [m.id for m in catalog if m.id and m.fuzzy]
    assert not untranslated, untranslated[:5]
    assert not fuzzy, fuzzy[:5]


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_translations_keep_the_placeholders_of_their_source(locale: str) -> None:
    for message in load(locale):
        if not message.id:
            continue
        source = message.id if isinstance(message.id, str) else message.id[-1]
        expected = sorted(PLACEHOLDER.findall(source))
        for translation in strings(message):
            assert sorted(PLACEHOLDER.findall(translation)) == expected, (locale, source)


def test_chinese_is_served_and_english_is_the_source() -> None:
    assert translator("zh_Hans")("Continue") != "Continue"
    assert translator("en")("Continue") == "Continue"
    assert translator("xx")("Continue") == "Continue"


def test_a_branchs_pending_translations_go_back_into_catalogs_that_clashed(tmp_path: Path) -> None:
    """After a merge whose catalogs clashed, `make i18n` leaves a branch's new messages
    untranslated; its pending file puts the translations back, and nothing else changes."""
    locales = tmp_path / "locales"
    shutil.copytree(LOCALES_DIR, locales, ignore=shutil.ignore_patterns("*.mo", "pending"))
    message = "Yes, send me a copy"
    russian = locales / "ru" / "LC_MESSAGES" / "messages.po"
    before = russian.read_text(encoding="utf-8")
    pending = tmp_path / "branch.json"
    entry = {"id": message, "plural": None, "translations": {"ru": "Да, пришлите копию (ветка)"}}
    pending.write_text(json.dumps({"messages": [entry]}), encoding="utf-8")
    assert apply_pending(pending, locales) == 1
    with russian.open("rb") as po_file:
        catalog = read_po(po_file, locale="ru")
    assert catalog[message].string == "Да, пришлите копию (ветка)"
    after = russian.read_text(encoding="utf-8")
    changed = [line for line in after.splitlines() if line not in before.splitlines()]
    assert changed == ['msgstr "Да, пришлите копию (ветка)"']

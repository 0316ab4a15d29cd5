"""Catalog upkeep: English is the source language, so its catalog translates each message to
itself; that keeps "every catalog complete" a simple, uniform check.

Work done on a branch may carry its new messages' translations in a pending file
(locales/pending/NAME.json: {"messages": [{"id", "plural", "translations": {locale: text or
plural forms}}]}); after a merge in which the catalogs clashed, `make i18n` brings every new
message into every catalog and `apply-pending` puts the branch's translations back."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po


def fill_source(path: Path) -> int:
    with path.open("rb") as po_file:
        catalog = read_po(po_file, locale="en")
    filled = 0
    for message in catalog:
        if not message.id:
            continue
        if isinstance(message.id, tuple | list):
            message.string = tuple(message.id)
        else:
            message.string = message.id
        message.flags.discard("fuzzy")
        filled += 1
    with path.open("wb") as po_file:
        write_po(po_file, catalog, sort_output=True, width=100)
    return filled


def apply_pending(pending: Path, locales: Path) -> int:
    """Write the translations of a pending file into the catalogs that hold its messages;
    returns the translations written. A message a catalog does not hold is left out."""
    entries = json.loads(pending.read_text(encoding="utf-8"))["messages"]
    written = 0
    for folder in sorted(p for p in locales.iterdir() if (p / "LC_MESSAGES").is_dir()):
        path = folder / "LC_MESSAGES" / "messages.po"
        with path.open("rb") as po_file:
            catalog = read_po(po_file, locale=folder.name)
        for entry in entries:
            text = entry["translations"].get(folder.name)
            message = catalog.get(entry["id"])
            if text is None or message is None:
                continue
            message.string = tuple(text) if isinstance(text, list) else text
            message.flags.discard("fuzzy")
            written += 1
        with path.open("wb") as po_file:
            # As `pybabel update` writes them, so only the translations change.
            write_po(po_file, catalog, sort_output=True, ignore_obsolete=True)
    return written


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "fill-source":
        print(f"{fill_source(Path(sys.argv[2]))} English messages filled")
    elif len(sys.argv) == 4 and sys.argv[1] == "apply-pending":
        print(f"{apply_pending(Path(sys.argv[2]), Path(sys.argv[3]))} translations written")
    else:
        sys.exit(
            "usage: python -m conversations.catalogs fill-source PATH\n"
            "       python -m conversations.catalogs apply-pending PENDING.json LOCALES_DIR"
        )

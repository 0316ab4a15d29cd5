"""Catalog upkeep: English is the source language, so its catalog translates each message to
itself; that keeps "every catalog complete" a simple, uniform check."""

from __future__ import annotations

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


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "fill-source":
        sys.exit("usage: python -m conversations.catalogs fill-source PATH")
    print(f"{fill_source(Path(sys.argv[2]))} English messages filled")

"""Files the console channel showed by writing them out (a preview, an opinion, a patient's
copy): the person at the terminal opens them from here. They are the patient's own copies,
so they are private to the owner, and an erasure removes them (handlers/privacy/erasure.py)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from storage.private import private_dir, write_private

# Copies are named by the start of their content's sha256, then the name they were given.
PREFIX_CHARS = 12


class DeliveredCopies:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def save(self, sha256: str, name: str, data: bytes) -> Path:
        private_dir(self.folder)
        path = self.folder / f"{sha256[:PREFIX_CHARS]}-{Path(name).name or 'picture.png'}"
        write_private(path, data)
        return path

    def remove(self, hashes: Iterable[str]) -> int:
        """Every copy of these contents; returns how many went."""
        removed = 0
        for sha256 in hashes:
            for path in self.folder.glob(f"{sha256[:PREFIX_CHARS]}-*"):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

"""Content-addressed file store: files are streamed in, named by their sha256."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK_SIZE = 1024 * 1024
MAX_FILE_BYTES = 4 * 1024**3


class FileTooLarge(ValueError):
    pass


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._incoming = root / "incoming"

    def path_of(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, source: BinaryIO, max_bytes: int = MAX_FILE_BYTES) -> StoredFile:
        """Stream `source` into the store; never holds the whole file in memory."""
        self._incoming.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        handle, temp_name = tempfile.mkstemp(dir=self._incoming)
        try:
            with os.fdopen(handle, "wb") as out:
                while chunk := source.read(CHUNK_SIZE):
                    size += len(chunk)
                    if size > max_bytes:
                        raise FileTooLarge(f"larger than {max_bytes} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            stored = StoredFile(digest.hexdigest(), size)
            target = self.path_of(stored.sha256)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp_name, target)
            return stored
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise

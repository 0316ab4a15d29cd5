"""Content-addressed, encrypted file store.

Files are streamed in, named by the sha256 of their content (so a file sent twice is stored
once and recognised), and written encrypted: AES-256-GCM over 1 MiB chunks, each chunk with
its own nonce (a random per-file prefix and the chunk's index) and the last chunk marked in its
associated data, so a reordered, altered or truncated file fails to decrypt instead of reading
as something else. Chunks also make the file seekable without decrypting it all: pydicom and
zipfile both seek.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import io
import logging
import os
import secrets
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
MAX_FILE_BYTES = 16 * 1024**3
MAGIC = b"HZE1"
KEY_ID_BYTES = 4
PREFIX_BYTES = 8
HEADER_BYTES = len(MAGIC) + KEY_ID_BYTES + PREFIX_BYTES
TAG_BYTES = 16
KEY_FILE_NAME = "file-encryption.key"


class FileTooLarge(ValueError):
    pass


class CorruptFile(OSError):
    """A stored file failed authentication: altered, truncated or written with another key."""


class BadEncryptionKey(ValueError):
    """FILE_ENCRYPTION_KEY (or the key file) is not a 32-byte key."""


def out_of_space(error: BaseException | None) -> bool:
    """The disk (or the user's quota on it) is full: not the file's fault, and it passes once
    space is freed. A library may wrap the OSError in its own error: its causes are read too."""
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int
    # False when the store already held this content (the same file sent again).
    created: bool = True


def load_key(configured: str | None, data_dir: Path, file_name: str = KEY_FILE_NAME) -> bytes:
    """The key from the setting, or the one generated on first start into the data folder,
    readable by the owner only."""
    if configured:
        return decode_key(configured)
    path = data_dir / file_name
    data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _create_key_file(path)
    key = path.read_bytes()
    if len(key) != 32:
        raise BadEncryptionKey(f"{path} is not a 32-byte key")
    if path.stat().st_mode & 0o077:
        log.warning("the file encryption key is readable by other users: chmod 600 it")
    return key


def _create_key_file(path: Path) -> None:
    """Written whole to a private temporary file, then linked into place: processes starting
    at once never read a half-written key, and the first link wins."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".key-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(secrets.token_bytes(32))
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


def decode_key(text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise BadEncryptionKey("FILE_ENCRYPTION_KEY must be 32 bytes in base64 (44 characters)")
    return key


def key_id(key: bytes) -> bytes:
    """Names the key a file was written with (in its header), so older keys still read
    during a rotation; it reveals nothing of the key."""
    return hashlib.sha256(b"huizhen key id" + key).digest()[:KEY_ID_BYTES]


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + index.to_bytes(4, "big")


def _aad(header: bytes, last: bool) -> bytes:
    return header + (b"\x01" if last else b"\x00")


class FileStore:
    """`key` writes (and reads); `old_keys` only read, while files move to the new key."""

    def __init__(self, root: Path, key: bytes, old_keys: Sequence[bytes] = ()) -> None:
        self.root = root
        self._key_id = key_id(key)
        self._aead = AESGCM(key)
        self._readers = {key_id(k): AESGCM(k) for k in (*old_keys, key)}
        self._incoming = root / "incoming"

    def path_of(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).exists()

    def put(
        self,
        source: BinaryIO,
        max_bytes: int = MAX_FILE_BYTES,
        durable: bool = True,
        replace: bool = False,
    ) -> StoredFile:
        """Stream `source` into the store, encrypting as it goes; never holds the whole file
        (at most two chunks) in memory. `durable=False` skips the per-file flush to disk for
        many small files written together; the caller then calls `flush_to_disk` once."""
        self._incoming.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        header = MAGIC + self._key_id + secrets.token_bytes(PREFIX_BYTES)
        prefix = header[-PREFIX_BYTES:]
        handle, temp_name = tempfile.mkstemp(dir=self._incoming)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(header)
                index = 0
                chunk = _read_full(source, CHUNK_SIZE)
                while True:
                    # Read one ahead: the last chunk is marked, so truncation is detected.
                    following = _read_full(source, CHUNK_SIZE) if len(chunk) == CHUNK_SIZE else b""
                    size += len(chunk)
                    if size > max_bytes:
                        raise FileTooLarge(f"larger than {max_bytes} bytes")
                    digest.update(chunk)
                    last = not following
                    out.write(self._aead.encrypt(_nonce(prefix, index), chunk, _aad(header, last)))
                    if last:
                        break
                    chunk, index = following, index + 1
                out.flush()
                if durable:
                    os.fsync(out.fileno())
            sha256 = digest.hexdigest()
            target = self.path_of(sha256)
            if target.exists() and not replace:
                Path(temp_name).unlink()
                return StoredFile(sha256, size, created=False)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp_name, target)
            return StoredFile(sha256, size)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise

    def open(self, sha256: str) -> BinaryIO:
        """The plaintext as a seekable, buffered stream; raises CorruptFile on tampering."""
        raw = _DecryptingReader(self.path_of(sha256).open("rb"), self._readers)
        return io.BufferedReader(raw, buffer_size=64 * 1024)

    def stored(self) -> Iterator[str]:
        """Every file in the store, by its sha256."""
        for path in self.root.glob("??/??/*"):
            if path.is_file() and len(path.name) == 64:
                yield path.name

    def needs_new_key(self, sha256: str) -> bool:
        with self.path_of(sha256).open("rb") as stored:
            header = stored.read(HEADER_BYTES)
        return header[len(MAGIC) : len(MAGIC) + KEY_ID_BYTES] != self._key_id

    def reencrypt(self, sha256: str) -> None:
        """Write the file again under the current key, replacing the old one atomically."""
        self._incoming.mkdir(parents=True, exist_ok=True)
        with self.open(sha256) as plain:
            stored = self.put(plain, durable=True, replace=True)
        if stored.sha256 != sha256:
            raise CorruptFile("a stored file did not read back as itself")

    @staticmethod
    def flush_to_disk() -> None:
        """One flush for a batch written with durable=False (an unpacked archive)."""
        os.sync()

    def delete(self, sha256: str) -> None:
        self.path_of(sha256).unlink(missing_ok=True)


def _read_full(source: BinaryIO, size: int) -> bytes:
    """Up to `size` bytes: streams (sockets, zip members) may return less per read."""
    parts: list[bytes] = []
    wanted = size
    while wanted > 0:
        part = source.read(wanted)
        if not part:
            break
        parts.append(part)
        wanted -= len(part)
    return b"".join(parts)


class _DecryptingReader(io.RawIOBase):
    """Random access over an encrypted file, one decrypted chunk cached."""

    def __init__(self, encrypted: BinaryIO, readers: dict[bytes, AESGCM]) -> None:
        self._file = encrypted
        self._header = encrypted.read(HEADER_BYTES)
        if len(self._header) != HEADER_BYTES or not self._header.startswith(MAGIC):
            encrypted.close()
            raise CorruptFile("not a Huizhen encrypted file")
        aead = readers.get(self._header[len(MAGIC) : len(MAGIC) + KEY_ID_BYTES])
        if aead is None:
            encrypted.close()
            raise CorruptFile("written with a key this store does not have")
        self._aead = aead
        self._prefix = self._header[-PREFIX_BYTES:]
        body = os.fstat(encrypted.fileno()).st_size - HEADER_BYTES
        stride = CHUNK_SIZE + TAG_BYTES
        self._chunks = max(1, -(-body // stride))
        self._size = body - self._chunks * TAG_BYTES
        if self._size < 0:
            encrypted.close()
            raise CorruptFile("truncated")
        self._position = 0
        self._cached_index = -1
        self._cached = b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def _chunk(self, index: int) -> bytes:
        if index != self._cached_index:
            stride = CHUNK_SIZE + TAG_BYTES
            self._file.seek(HEADER_BYTES + index * stride)
            sealed = self._file.read(stride)
            last = index == self._chunks - 1
            try:
                self._cached = self._aead.decrypt(
                    _nonce(self._prefix, index), sealed, _aad(self._header, last)
                )
            except InvalidTag:
                raise CorruptFile("a stored file failed its integrity check") from None
            self._cached_index = index
        return self._cached

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._position >= self._size:
            return 0
        index, within = divmod(self._position, CHUNK_SIZE)
        chunk = self._chunk(index)
        count = min(len(buffer), len(chunk) - within)
        buffer[:count] = chunk[within : within + count]
        self._position += count
        return count

    def close(self) -> None:
        self._file.close()
        super().close()

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
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.private import private_dir

log = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
MAX_FILE_BYTES = 16 * 1024**3
MAGIC = b"HZE1"
KEY_ID_BYTES = 4
PREFIX_BYTES = 8
HEADER_BYTES = len(MAGIC) + KEY_ID_BYTES + PREFIX_BYTES
TAG_BYTES = 16
KEY_FILE_NAME = "file-encryption.key"
NONCE_BYTES = 12
# A sealed record: the key id and nonce before the ciphertext, the tag after it.
SEAL_OVERHEAD = KEY_ID_BYTES + NONCE_BYTES + TAG_BYTES


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
    private_dir(data_dir)
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


class Sealer:
    """AES-256-GCM records under the store's keys, for data written piece by piece outside
    the store (the upload page's spool): each record carries the id of its key and a random
    nonce, and is bound to `context` (where it belongs), so a record moved elsewhere, altered
    or cut short fails to open."""

    def __init__(self, key: bytes, old_keys: Sequence[bytes] = ()) -> None:
        self.key_id = key_id(key)
        self.aead = AESGCM(key)
        self.readers = {key_id(k): AESGCM(k) for k in (*old_keys, key)}

    def seal(self, plain: bytes, context: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return self.key_id + nonce + self.aead.encrypt(nonce, plain, self.key_id + context)

    def unseal(self, sealed: bytes, context: bytes) -> bytes:
        if len(sealed) < SEAL_OVERHEAD:
            raise CorruptFile("truncated")
        found, nonce = sealed[:KEY_ID_BYTES], sealed[KEY_ID_BYTES : KEY_ID_BYTES + NONCE_BYTES]
        aead = self.readers.get(found)
        if aead is None:
            raise CorruptFile("written with a key this store does not have")
        try:
            return aead.decrypt(nonce, sealed[KEY_ID_BYTES + NONCE_BYTES :], found + context)
        except InvalidTag:
            raise CorruptFile("a sealed record failed its integrity check") from None


class FileStore:
    """`key` writes (and reads); `old_keys` only read, while files move to the new key."""

    def __init__(self, root: Path, key: bytes, old_keys: Sequence[bytes] = ()) -> None:
        self.root = root
        self.sealer = Sealer(key, old_keys)
        self._key_id = self.sealer.key_id
        self._aead = self.sealer.aead
        self._readers = self.sealer.readers
        self._incoming = root / "incoming"

    def path_of(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).exists()

    @contextlib.contextmanager
    def writer(
        self, max_bytes: int = MAX_FILE_BYTES, durable: bool = True, replace: bool = False
    ) -> Iterator[StoreWriter]:
        """A stream to write a new file into, encrypted as it goes (a zip being made, say):
        on leaving the block the file takes its place and `stored` says what it is; on an
        error nothing of it is kept."""
        private_dir(self._incoming)
        header = MAGIC + self._key_id + secrets.token_bytes(PREFIX_BYTES)
        handle, temp_name = tempfile.mkstemp(dir=self._incoming)
        try:
            with os.fdopen(handle, "wb") as out:
                writer = StoreWriter(out, self._aead, header, max_bytes)
                yield writer
                writer.finish()
                out.flush()
                if durable:
                    os.fsync(out.fileno())
            sha256 = writer.digest.hexdigest()
            target = self.path_of(sha256)
            if target.exists() and not replace:
                Path(temp_name).unlink()
                writer.stored = StoredFile(sha256, writer.size, created=False)
                return
            private_dir(target.parent)
            os.replace(temp_name, target)
            writer.stored = StoredFile(sha256, writer.size)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise

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
        with self.writer(max_bytes, durable, replace) as out:
            while chunk := _read_full(source, CHUNK_SIZE):
                out.write(chunk)
        return out.stored

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

    def remove_unfinished(self, older_than: timedelta) -> int:
        """Files a write left half-done in the incoming folder (a process killed mid-file, the
        checking worker stopped): encrypted, but of no use. Only those not written to for
        `older_than`, so a write under way is left alone. Returns how many went."""
        if not self._incoming.exists():
            return 0
        cutoff = time.time() - older_than.total_seconds()
        removed = 0
        for path in self._incoming.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed


class StoreWriter:
    """Seals 1 MiB chunks as they fill; the last one, marked, when the writing is done."""

    def __init__(self, out: BinaryIO, aead: AESGCM, header: bytes, max_bytes: int) -> None:
        self._out = out
        self._aead = aead
        self._header = header
        self._prefix = header[-PREFIX_BYTES:]
        self._max_bytes = max_bytes
        self._buffer = bytearray()
        self._index = 0
        self.size = 0
        self.digest = hashlib.sha256()
        self.stored = StoredFile("", 0)
        out.write(header)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        count = len(data)
        self.size += count
        if self.size > self._max_bytes:
            raise FileTooLarge(f"larger than {self._max_bytes} bytes")
        self.digest.update(data)
        self._buffer += data
        # A full chunk is sealed only once more follows: the last one is marked as such.
        while len(self._buffer) > CHUNK_SIZE:
            self._seal(bytes(self._buffer[:CHUNK_SIZE]), last=False)
            del self._buffer[:CHUNK_SIZE]
        return count

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        """Nothing to do: chunks are written as they fill (zipfile calls this)."""

    def finish(self) -> None:
        self._seal(bytes(self._buffer), last=True)
        self._buffer.clear()

    def _seal(self, chunk: bytes, last: bool) -> None:
        nonce = _nonce(self._prefix, self._index)
        self._out.write(self._aead.encrypt(nonce, chunk, _aad(self._header, last)))
        self._index += 1


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

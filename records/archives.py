"""Unpacking zip and tar uploads member by member, with hard limits.

The caller stores each member as it arrives and, when ArchiveRejected is raised part-way
(from the iterator or from a member's read), deletes what it stored: nothing is kept
half-way. Each member must be read (or abandoned) before asking for the next one; the
previous member's stream is closed when the iterator moves on.

Memory stays bounded whatever the archive: members are streamed, never read whole, and every
decompressor is asked for bounded output (tarfile's own "r|*" mode and zipfile's bzip2/lzma
readers are not, which is why neither is used).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, BinaryIO, Protocol

from records.classify import FileKind, compression_of

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


@dataclass(frozen=True)
class ArchiveLimits:
    max_total_bytes: int = 8 * 1024**3  # sum of uncompressed member sizes actually read
    max_member_bytes: int = 4 * 1024**3
    max_entries: int = 20_000
    max_ratio: float = 200.0  # total uncompressed / archive size on disk
    max_depth: int = 3  # nesting: an archive inside an archive counts 1
    # Below this much uncompressed data the ratio is not enforced: a bomb has to be big to
    # hurt, while a small, very regular file (a blank-ish scan, a segmentation) compresses
    # far better than 200:1.
    ratio_grace_bytes: int = 64 * 1024**2


class ArchiveProblem(StrEnum):
    TOO_MANY_ENTRIES = "too_many_entries"
    TOO_LARGE = "too_large"
    RATIO = "ratio"  # a zip bomb
    UNSAFE_PATH = "unsafe_path"  # absolute, "..", drive letter, control characters
    LINK = "link"  # symbolic or hard link
    SPECIAL = "special"  # device, fifo, socket, or a member type we do not know
    TOO_DEEP = "too_deep"
    ENCRYPTED = "encrypted"
    CORRUPT = "corrupt"  # bad CRC, truncated, not an archive, unsupported compression


class ArchiveRejected(Exception):
    def __init__(self, problem: ArchiveProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


@dataclass(frozen=True)
class Member:
    path: str  # normalised relative POSIX path inside the archive, e.g. "CD/DICOM/IM0001"
    size: int  # declared size (zip) or tarinfo.size


def safe_member_path(raw: str) -> str | None:
    """`raw` as a relative POSIX path, or None when it could point outside the archive.

    Backslashes count as separators: Windows tools write them, and extractors honour them.
    """
    if any(char < " " or char == "\x7f" for char in raw):
        return None
    path = raw.replace("\\", "/")
    if path.startswith("/") or (len(path) >= 2 and path[1] == ":" and path[0].isalpha()):
        return None
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def open_archive(
    source: BinaryIO,
    kind: FileKind,
    archive_size: int,
    limits: ArchiveLimits = ArchiveLimits(),  # frozen: sharing the default is safe
    depth: int = 0,
) -> Iterator[tuple[Member, BinaryIO]]:
    """The regular-file members of a zip (`source` seekable) or tar (any readable `source`).

    Raises ArchiveRejected at once for depth and, for zip, anything the central directory
    shows; later problems are raised from the iterator or from a member's read.
    """
    if depth > limits.max_depth:
        raise ArchiveRejected(ArchiveProblem.TOO_DEEP)
    budget = _Budget(limits, archive_size)
    if kind is FileKind.ZIP:
        return _zip_members(_open_zip(source, budget), budget)
    if kind is FileKind.TAR:
        return _tar_members(_open_tar(source), budget)
    raise ValueError(f"not an archive kind: {kind}")


class _Budget:
    """Running totals against the limits; raises the moment one is passed.

    Declared sizes are checked before a member is handed out, and the bytes really produced
    are counted again as they are read: declared sizes can lie.
    """

    def __init__(self, limits: ArchiveLimits, archive_size: int) -> None:
        self.limits = limits
        self.archive_size = max(archive_size, 1)
        self.entries = 0
        self.declared = 0
        self.produced = 0

    def count_entry(self) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise ArchiveRejected(ArchiveProblem.TOO_MANY_ENTRIES)

    def declare(self, size: int) -> None:
        self.check_member(size)
        self.declared += size
        self._check_total(self.declared)

    def spend(self, size: int) -> None:
        self.produced += size
        self._check_total(self.produced)

    def check_member(self, size: int) -> None:
        if size > self.limits.max_member_bytes:
            raise ArchiveRejected(ArchiveProblem.TOO_LARGE)

    def _check_total(self, total: int) -> None:
        if total > self.limits.max_total_bytes:
            raise ArchiveRejected(ArchiveProblem.TOO_LARGE)
        if (
            total > self.limits.ratio_grace_bytes
            and total > self.limits.max_ratio * self.archive_size
        ):
            raise ArchiveRejected(ArchiveProblem.RATIO)


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...
    def close(self) -> None: ...


class _CountedMember(io.RawIOBase):
    """A member's bytes, counted as they are really produced."""

    def __init__(self, inner: _Readable, budget: _Budget) -> None:
        self._inner = inner
        self._budget = budget
        self._produced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._inner.read(len(view))
        except _READ_ERRORS as error:
            raise ArchiveRejected(ArchiveProblem.CORRUPT) from error
        self._produced += len(data)
        self._budget.check_member(self._produced)
        self._budget.spend(len(data))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()


def _counted(inner: _Readable, budget: _Budget) -> BinaryIO:
    return io.BufferedReader(_CountedMember(inner, budget), buffer_size=64 * 1024)


# zipfile raises BadZipFile for a bad CRC; zlib.error, EOFError and OSError come from damaged
# or truncated compressed data; tarfile.ReadError from a truncated tar; OverflowError from a
# zip64 header offset too large to seek to.
_READ_ERRORS = (
    zipfile.BadZipFile,
    tarfile.TarError,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    struct.error,
    NotImplementedError,
    OverflowError,
)


# --- zip -------------------------------------------------------------------------------------

_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
_MAX_DIRECTORY_BYTES_PER_ENTRY = 2048


def _open_zip(source: BinaryIO, budget: _Budget) -> zipfile.ZipFile:
    """The zip, after its central directory has passed every check that needs no data."""
    _check_end_record(source, budget.limits)
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, *_READ_ERRORS) as error:
        raise ArchiveRejected(ArchiveProblem.CORRUPT) from error
    for info in archive.infolist():
        budget.count_entry()
        _check_zip_entry(info)
        budget.declare(info.file_size)
    return archive


def _check_end_record(source: BinaryIO, limits: ArchiveLimits) -> None:
    """Refuse too many entries before zipfile builds an object for each of them."""
    counts = _end_record_counts(source)
    if counts is None:
        return  # zipfile finds no end record either and says so
    entries, directory_size = counts
    if entries > limits.max_entries:
        raise ArchiveRejected(ArchiveProblem.TOO_MANY_ENTRIES)
    if directory_size > 65536 + entries * _MAX_DIRECTORY_BYTES_PER_ENTRY:
        raise ArchiveRejected(ArchiveProblem.CORRUPT)


def _end_record_counts(source: BinaryIO) -> tuple[int, int] | None:
    """(entries, central directory size) from the end of central directory record."""
    try:
        size = source.seek(0, io.SEEK_END)
        tail_start = max(0, size - (22 + 65535))
        source.seek(tail_start)
        tail = source.read()
    except OSError as error:
        raise ArchiveRejected(ArchiveProblem.CORRUPT) from error
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        return None
    entries, directory_size = struct.unpack_from("<HI", tail, at + 10)
    if entries != 0xFFFF and directory_size != 0xFFFFFFFF:
        return entries, directory_size
    # Zip64: the real figures are in the zip64 end record just before its locator.
    record = at - 20 - 56
    if (
        record < 0
        or tail[at - 20 : at - 16] != b"PK\x06\x07"
        or tail[record : record + 4] != (b"PK\x06\x06")
    ):
        return None
    entries64, directory64 = struct.unpack_from("<QQ", tail, record + 32)
    return int(entries64), int(directory64)


def _check_zip_entry(info: zipfile.ZipInfo) -> None:
    # orig_filename keeps what zipfile cuts at a NUL byte.
    if safe_member_path(info.orig_filename) is None and not (
        _is_zip_directory(info) and _is_archive_root(info.orig_filename)
    ):
        raise ArchiveRejected(ArchiveProblem.UNSAFE_PATH)
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise ArchiveRejected(ArchiveProblem.LINK)
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        raise ArchiveRejected(ArchiveProblem.SPECIAL)
    # Bit 0: encrypted; bit 6: strong encryption; method 99: WinZip AES.
    if info.flag_bits & 0x41 or info.compress_type == 99:
        raise ArchiveRejected(ArchiveProblem.ENCRYPTED)
    if info.compress_type not in _ZIP_METHODS and not _is_zip_directory(info):
        # zipfile's bzip2 and lzma readers decompress without an output bound: a few KB of
        # bzip2 can expand to gigabytes in one call.
        raise ArchiveRejected(ArchiveProblem.CORRUPT)


def _is_zip_directory(info: zipfile.ZipInfo) -> bool:
    # Not info.is_dir(): it reads the name's last character, and a name can be empty (zipfile
    # also cuts it at a NUL byte), which raised IndexError instead of a refusal.
    return info.filename.endswith("/") or stat.S_ISDIR(info.external_attr >> 16)


def _zip_members(archive: zipfile.ZipFile, budget: _Budget) -> Iterator[tuple[Member, BinaryIO]]:
    with archive:
        for info in archive.infolist():
            if _is_zip_directory(info):
                continue
            path = safe_member_path(info.orig_filename)
            assert path is not None  # checked by _open_zip
            try:
                inner = archive.open(info)
            except (RuntimeError, *_READ_ERRORS) as error:
                raise ArchiveRejected(ArchiveProblem.CORRUPT) from error
            with _counted(inner, budget) as stream:
                yield Member(path=path, size=info.file_size), stream


# --- tar -------------------------------------------------------------------------------------

# pax and GNU long-name headers are read whole into memory by tarfile; real ones are a few
# hundred bytes.
_MAX_METADATA_HEADER_BYTES = 64 * 1024
_METADATA_TYPES = frozenset(
    {
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
    }
)


class _BoundedTarInfo(tarfile.TarInfo):
    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> _BoundedTarInfo:
        info = super().frombuf(buf, encoding, errors)
        if info.size < 0:  # base-256 sizes can be negative; tarfile would then step back
            raise ArchiveRejected(ArchiveProblem.CORRUPT)
        if info.type in _METADATA_TYPES and info.size > _MAX_METADATA_HEADER_BYTES:
            raise ArchiveRejected(ArchiveProblem.CORRUPT)
        return info


def _open_tar(source: BinaryIO) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=_decompressed(source), mode="r|", tarinfo=_BoundedTarInfo)
    except (RecursionError, *_READ_ERRORS) as error:
        raise ArchiveRejected(ArchiveProblem.CORRUPT) from error


def _decompressed(source: BinaryIO) -> io.BufferedIOBase:
    """`source` as plain tar bytes; the readers used here bound each decompression step."""
    magic = b""
    while len(magic) < 10 and (more := source.read(10 - len(magic))):  # pipes read short
        magic += more
    stream = io.BufferedReader(_Prefixed(magic, source))
    compression = compression_of(magic)
    if compression == "gzip":
        return gzip.GzipFile(fileobj=stream, mode="rb")
    if compression == "bz2":
        return bz2.BZ2File(stream, mode="rb")
    if compression == "xz":
        return lzma.LZMAFile(stream, mode="rb")
    return stream


class _Prefixed(io.RawIOBase):
    """`prefix` followed by the rest of `rest`: lets a one-way stream be peeked at."""

    def __init__(self, prefix: bytes, rest: BinaryIO) -> None:
        self._prefix = prefix
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        if self._prefix:
            size = min(len(view), len(self._prefix))
            view[:size] = self._prefix[:size]
            self._prefix = self._prefix[size:]
            return size
        data = self._rest.read(len(view))
        view[: len(data)] = data
        return len(data)


def _tar_members(archive: tarfile.TarFile, budget: _Budget) -> Iterator[tuple[Member, BinaryIO]]:
    with archive:
        while (info := _next_tar_entry(archive)) is not None:
            budget.count_entry()
            path = _check_tar_entry(info)
            if info.isdir():
                continue
            budget.declare(info.size)
            inner = archive.extractfile(info)
            assert inner is not None  # a regular file always has a stream
            with _counted(inner, budget) as stream:
                yield Member(path=path, size=info.size), stream


def _next_tar_entry(archive: tarfile.TarFile) -> tarfile.TarInfo | None:
    try:
        return archive.next()
    except (RecursionError, *_READ_ERRORS) as error:  # a chain of pax headers recurses
        raise ArchiveRejected(ArchiveProblem.CORRUPT) from error


def _check_tar_entry(info: tarfile.TarInfo) -> str:
    if info.issym() or info.islnk():
        raise ArchiveRejected(ArchiveProblem.LINK)
    if not (info.isreg() or info.isdir()):
        raise ArchiveRejected(ArchiveProblem.SPECIAL)
    path = safe_member_path(info.name)
    if path is None and not (info.isdir() and _is_archive_root(info.name)):
        raise ArchiveRejected(ArchiveProblem.UNSAFE_PATH)
    return path or ""


def _is_archive_root(raw: str) -> bool:
    """The archive's own top folder, "." or "./", which `tar -C folder -cf x.tar .` writes."""
    return not raw.startswith(("/", "\\")) and all(
        part in ("", ".") for part in raw.replace("\\", "/").split("/")
    )

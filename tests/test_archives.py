"""Unpacking zip and tar uploads with hard limits, on real archives written here."""

from __future__ import annotations

import bz2
import gzip
import io
import random
import struct
import tarfile
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from hypothesis import given
from hypothesis import strategies as st

from records.archives import (
    ArchiveLimits,
    ArchiveProblem,
    ArchiveRejected,
    Member,
    open_archive,
    safe_member_path,
)
from records.classify import FileKind

MiB = 1024**2
DEFAULT_LIMITS = ArchiveLimits()


def unpack(
    path: Path, kind: FileKind, limits: ArchiveLimits = DEFAULT_LIMITS, depth: int = 0
) -> dict[str, bytes]:
    """Every member as the caller would take it: streamed in chunks, one after another."""
    found: dict[str, bytes] = {}
    with path.open("rb") as source:
        for member, stream in open_archive(source, kind, path.stat().st_size, limits, depth):
            found[member.path] = read_in_chunks(stream)
    return found


def read_in_chunks(stream: BinaryIO) -> bytes:
    chunks = []
    while chunk := stream.read(64 * 1024):
        chunks.append(chunk)
    return b"".join(chunks)


def rejection(path: Path, kind: FileKind, limits: ArchiveLimits = DEFAULT_LIMITS) -> str:
    with pytest.raises(ArchiveRejected) as caught:
        unpack(path, kind, limits)
    return caught.value.problem


def write_zip(path: Path, entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return path


TarEntries = list[tarfile.TarInfo | tuple[str, bytes]]


def write_tar(path: Path, entries: TarEntries, mode: Any) -> Path:  # Any: tarfile's overloads
    with tarfile.open(path, mode) as archive:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                archive.addfile(entry)
            else:
                info = tarfile.TarInfo(entry[0])
                info.size = len(entry[1])
                archive.addfile(info, io.BytesIO(entry[1]))
    return path


def tar_entry(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


SERIES = {
    "CD/DICOMDIR": b"dicomdir",
    "CD/DICOM/ST1/SE1/IM0001": b"\x00" * 3000 + b"first",
    "CD/DICOM/ST1/SE1/IM0002": bytes(range(256)) * 20,
    "report.pdf": b"%PDF-1.7 a letter",
}


# --- what comes out of a good archive --------------------------------------------------------


def test_a_zip_with_nested_folders_comes_out_whole(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "cd.zip", {"CD/": b"", "CD/DICOM/": b"", **SERIES})
    assert unpack(path, FileKind.ZIP) == SERIES


def test_members_report_normalised_paths_and_sizes(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "cd.zip", {"./CD//DICOM/IM0001": b"abc", "CD\\IM0002": b"de"})
    with path.open("rb") as source:
        members = [member for member, _ in open_archive(source, FileKind.ZIP, 100)]
    assert members == [Member("CD/DICOM/IM0001", 3), Member("CD/IM0002", 2)]


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_tars_plain_and_compressed_come_out_whole(tmp_path: Path, mode: str) -> None:
    entries: TarEntries = [
        tar_entry(".", tarfile.DIRTYPE),  # what `tar -C folder -cf x.tar .` writes first
        tar_entry("./CD", tarfile.DIRTYPE),
        *((f"./{name}", data) for name, data in SERIES.items()),
    ]
    path = write_tar(tmp_path / "cd.tar", entries, mode)
    assert unpack(path, FileKind.TAR) == SERIES


class OneWay(io.RawIOBase):
    """A stream that can only be read forward, like an upload still arriving."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._data.readinto(buffer)


def test_a_tar_gz_streams_from_a_one_way_source(tmp_path: Path) -> None:
    data = write_tar(tmp_path / "cd.tgz", list(SERIES.items()), "w:gz").read_bytes()
    source = io.BufferedReader(OneWay(data))
    found = {m.path: read_in_chunks(s) for m, s in open_archive(source, FileKind.TAR, len(data))}
    assert found == SERIES


def test_a_member_is_closed_when_the_next_one_is_asked_for(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "cd.zip", SERIES)
    with path.open("rb") as source:
        members = open_archive(source, FileKind.ZIP, path.stat().st_size)
        _, first = next(members)
        next(members)
        assert first.closed


def test_highly_compressible_small_files_are_not_taken_for_bombs(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "seg.zip", {"SEG0001": bytes(4 * MiB)})
    assert unpack(path, FileKind.ZIP) == {"SEG0001": bytes(4 * MiB)}


# --- bombs and sizes -------------------------------------------------------------------------


def test_a_zip_bomb_is_refused_from_its_directory_without_inflating(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open("zeros.dcm", "w", force_zip64=True) as member,
    ):
        chunk = bytes(MiB)
        for _ in range(128):  # 128 MiB of zeros, about 130 KB on disk
            member.write(chunk)
    started = time.monotonic()
    with path.open("rb") as source, pytest.raises(ArchiveRejected) as caught:
        open_archive(source, FileKind.ZIP, path.stat().st_size)
    assert caught.value.problem is ArchiveProblem.RATIO
    assert time.monotonic() - started < 0.5


def test_a_tar_gz_bomb_is_refused_at_its_header(tmp_path: Path) -> None:
    header = tarfile.TarInfo("zeros.dcm")
    header.size = 1024**3  # the data itself need not be there: the header is enough
    path = tmp_path / "bomb.tgz"
    path.write_bytes(gzip.compress(header.tobuf() + bytes(MiB)))
    assert rejection(path, FileKind.TAR) is ArchiveProblem.RATIO


def test_a_tar_bz2_bomb_does_not_fill_memory(tmp_path: Path) -> None:
    # A 1 MiB member followed by 32 MiB of zeros: about 120 bytes of bzip2. tarfile's own
    # "r|bz2" inflates each read buffer of it in one call (a 96 MiB peak here).
    member = tarfile.TarInfo("IM0001")
    member.size = MiB
    path = tmp_path / "bomb.tbz"
    path.write_bytes(bz2.compress(member.tobuf() + bytes(32 * MiB)))
    tracemalloc.start()
    try:
        assert unpack(path, FileKind.TAR) == {"IM0001": bytes(MiB)}
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * MiB


def test_a_huge_pax_header_is_refused_before_it_is_read(tmp_path: Path) -> None:
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type = tarfile.XHDTYPE
    pax.size = 1024**3
    path = tmp_path / "pax.tgz"
    path.write_bytes(gzip.compress(pax.tobuf(format=tarfile.USTAR_FORMAT) + bytes(10240)))
    with path.open("rb") as source, pytest.raises(ArchiveRejected) as caught:
        open_archive(source, FileKind.TAR, path.stat().st_size)
    assert caught.value.problem is ArchiveProblem.CORRUPT


def test_a_tar_header_with_a_negative_size(tmp_path: Path) -> None:
    header = bytearray(tarfile.TarInfo("IM0001").tobuf(format=tarfile.GNU_FORMAT))
    header[124:136] = b"\xff" * 12  # base-256 for -1
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\x00 " % sum(header)
    path = tmp_path / "negative.tar"
    path.write_bytes(bytes(header) + bytes(1024))
    assert rejection(path, FileKind.TAR) is ArchiveProblem.CORRUPT


def patch_sizes(data: bytes, uncompressed: int) -> bytes:
    """The zip with its single entry's uncompressed size rewritten, in both headers."""
    patched = bytearray(data)
    local = patched.find(b"PK\x03\x04")
    central = patched.find(b"PK\x01\x02")
    struct.pack_into("<I", patched, local + 22, uncompressed)
    struct.pack_into("<I", patched, central + 24, uncompressed)
    return bytes(patched)


def test_a_declared_size_that_lies_cannot_let_more_through(tmp_path: Path) -> None:
    real = write_zip(tmp_path / "real.zip", {"IM0001": bytes(8 * MiB)}).read_bytes()
    path = tmp_path / "liar.zip"
    path.write_bytes(patch_sizes(real, 1000))  # says 1000 bytes; holds 8 MiB
    limits = ArchiveLimits(max_member_bytes=4096)
    received = 0
    with path.open("rb") as source, pytest.raises(ArchiveRejected) as caught:
        for _, stream in open_archive(source, FileKind.ZIP, path.stat().st_size, limits):
            while chunk := stream.read(1024):
                received += len(chunk)
    assert caught.value.problem in (ArchiveProblem.CORRUPT, ArchiveProblem.TOO_LARGE)
    assert received <= 4096


@pytest.mark.parametrize("kind", [FileKind.ZIP, FileKind.TAR])
def test_a_member_over_the_size_limit(tmp_path: Path, kind: FileKind) -> None:
    path = (
        write_zip(tmp_path / "a.zip", SERIES)
        if kind is FileKind.ZIP
        else write_tar(tmp_path / "a.tar", list(SERIES.items()), "w")
    )
    assert rejection(path, kind, ArchiveLimits(max_member_bytes=4000)) is ArchiveProblem.TOO_LARGE
    assert rejection(path, kind, ArchiveLimits(max_total_bytes=8000)) is ArchiveProblem.TOO_LARGE


@pytest.mark.parametrize("kind", [FileKind.ZIP, FileKind.TAR])
def test_too_many_entries(tmp_path: Path, kind: FileKind) -> None:
    entries = {f"IM{i:04d}": b"x" for i in range(4)}
    path = (
        write_zip(tmp_path / "a.zip", entries)
        if kind is FileKind.ZIP
        else write_tar(tmp_path / "a.tar", list(entries.items()), "w")
    )
    assert len(unpack(path, kind, ArchiveLimits(max_entries=4))) == 4
    limits = ArchiveLimits(max_entries=3)
    assert rejection(path, kind, limits) is ArchiveProblem.TOO_MANY_ENTRIES


def test_an_archive_nested_too_deep_is_refused_at_once(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "a.zip", SERIES)
    assert unpack(path, FileKind.ZIP, depth=3) == SERIES
    with path.open("rb") as source, pytest.raises(ArchiveRejected) as caught:
        open_archive(source, FileKind.ZIP, path.stat().st_size, depth=4)
    assert caught.value.problem is ArchiveProblem.TOO_DEEP


# --- paths, links, devices -------------------------------------------------------------------

UNSAFE_NAMES = ["../evil", "/etc/passwd", "CD/../../evil", "..\\..\\evil", "C:\\Windows\\evil"]


@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_unsafe_paths_in_a_zip(tmp_path: Path, name: str) -> None:
    path = write_zip(tmp_path / "a.zip", {"IM0001": b"x", name: b"owned"})
    assert rejection(path, FileKind.ZIP) is ArchiveProblem.UNSAFE_PATH


@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_unsafe_paths_in_a_tar(tmp_path: Path, name: str) -> None:
    path = write_tar(tmp_path / "a.tgz", [("IM0001", b"x"), (name, b"owned")], "w:gz")
    assert rejection(path, FileKind.TAR) is ArchiveProblem.UNSAFE_PATH


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_links_in_a_tar(tmp_path: Path, kind: bytes) -> None:
    entries: TarEntries = [("IM0001", b"x"), tar_entry("passwd", kind, "/etc/passwd")]
    path = write_tar(tmp_path / "a.tar", entries, "w")
    assert rejection(path, FileKind.TAR) is ArchiveProblem.LINK


def test_a_symlink_in_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("IM0001", b"x")
        link = zipfile.ZipInfo("passwd")
        link.create_system = 3
        link.external_attr = 0o120777 << 16
        archive.writestr(link, "/etc/passwd")
    assert rejection(path, FileKind.ZIP) is ArchiveProblem.LINK


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_devices_and_fifos_in_a_tar(tmp_path: Path, kind: bytes) -> None:
    path = write_tar(tmp_path / "a.tar", [("IM0001", b"x"), tar_entry("dev", kind)], "w")
    assert rejection(path, FileKind.TAR) is ArchiveProblem.SPECIAL


# --- encrypted, damaged, not archives --------------------------------------------------------


def test_an_encrypted_zip(tmp_path: Path) -> None:
    data = bytearray(write_zip(tmp_path / "plain.zip", {"IM0001": b"secret"}).read_bytes())
    data[data.find(b"PK\x03\x04") + 6] |= 0x01  # the "encrypted" flag, in both headers
    data[data.find(b"PK\x01\x02") + 8] |= 0x01
    path = tmp_path / "locked.zip"
    path.write_bytes(bytes(data))
    assert rejection(path, FileKind.ZIP) is ArchiveProblem.ENCRYPTED


def test_a_zip_member_compressed_with_bzip2_is_refused(tmp_path: Path) -> None:
    # zipfile inflates bzip2 without an output bound; see test_a_tar_bz2_bomb_...
    path = write_zip(tmp_path / "a.zip", {"IM0001": b"x" * 100}, zipfile.ZIP_BZIP2)
    assert rejection(path, FileKind.ZIP) is ArchiveProblem.CORRUPT


def test_a_truncated_zip(tmp_path: Path) -> None:
    data = write_zip(tmp_path / "a.zip", SERIES).read_bytes()
    path = tmp_path / "cut.zip"
    path.write_bytes(data[: len(data) // 2])
    assert rejection(path, FileKind.ZIP) is ArchiveProblem.CORRUPT


def test_a_zip_with_a_bad_crc_fails_while_the_member_is_read(tmp_path: Path) -> None:
    data = bytearray(write_zip(tmp_path / "a.zip", {"IM0001": b"pixels" * 1000}).read_bytes())
    central = data.find(b"PK\x01\x02")
    data[central + 16] ^= 0xFF  # CRC in the central directory
    data[data.find(b"PK\x03\x04") + 14] ^= 0xFF  # and in the local header
    path = tmp_path / "crc.zip"
    path.write_bytes(bytes(data))
    with path.open("rb") as source:
        members = open_archive(source, FileKind.ZIP, len(data))
        _, stream = next(members)  # the directory looks fine
        with pytest.raises(ArchiveRejected) as caught:
            read_in_chunks(stream)
    assert caught.value.problem is ArchiveProblem.CORRUPT


def test_a_truncated_tar_gz(tmp_path: Path) -> None:
    data = write_tar(tmp_path / "a.tgz", [("IM0001", random.Random(1).randbytes(50_000))], "w:gz")
    path = tmp_path / "cut.tgz"
    path.write_bytes(data.read_bytes()[:20_000])
    assert rejection(path, FileKind.TAR) is ArchiveProblem.CORRUPT


@pytest.mark.parametrize("kind", [FileKind.ZIP, FileKind.TAR])
@pytest.mark.parametrize(
    "content",
    [
        b"",
        random.Random(2).randbytes(20_000),
        b"\x1f\x8b" + random.Random(3).randbytes(5000),
        zlib.compress(b"not a tar"),
    ],
)
def test_empty_and_random_files_are_corrupt(tmp_path: Path, kind: FileKind, content: bytes) -> None:
    path = tmp_path / "upload"
    path.write_bytes(content)
    assert rejection(path, kind) is ArchiveProblem.CORRUPT


# --- member paths ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("CD/DICOM/IM0001", "CD/DICOM/IM0001"),
        ("./CD//DICOM/./IM0001", "CD/DICOM/IM0001"),
        ("CD\\DICOM\\IM0001", "CD/DICOM/IM0001"),
        ("CD/", "CD"),
        ("...", "..."),
        ("病历/报告.pdf", "病历/报告.pdf"),
        ("../evil", None),
        ("CD/../../evil", None),
        ("/etc/passwd", None),
        ("\\\\server\\share", None),
        ("C:\\Windows", None),
        ("c:evil", None),
        ("evil.dcm\x00.txt", None),
        ("", None),
        ("./", None),
    ],
)
def test_safe_member_path(raw: str, expected: str | None) -> None:
    assert safe_member_path(raw) == expected


PATH_PIECES = ["a", "é", ".", "..", "/", "\\", ":", "\x00", "C", " "]


@given(st.lists(st.sampled_from(PATH_PIECES), max_size=12).map("".join))
def test_safe_member_paths_stay_inside_the_archive(raw: str) -> None:
    path = safe_member_path(raw)
    if path is not None:
        assert path and not path.startswith("/")
        assert ".." not in path.split("/")
        assert "\\" not in path and "\x00" not in path
        assert safe_member_path(path) == path


@given(st.text())
def test_safe_member_path_takes_any_text(raw: str) -> None:
    path = safe_member_path(raw)
    assert path is None or (path and not path.startswith("/") and ".." not in path.split("/"))

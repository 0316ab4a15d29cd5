"""What kind of file an upload is, from real files: pydicom's test data, Pillow images, zips
and tars written here."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import random
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRBigEndian

from records.classify import SNIFF_BYTES, FileKind, sniff, sniff_stream
from records.dicom import read_instance


def pydicom_bytes(name: str) -> bytes:
    path = get_testdata_file(name)
    assert isinstance(path, str)
    return Path(path).read_bytes()


def without_file_meta(name: str, *, implicit_vr: bool, little_endian: bool = True) -> bytes:
    """A dataset written with no preamble, no "DICM" and no file meta group."""
    dataset = pydicom.dcmread(io.BytesIO(pydicom_bytes(name)))
    del dataset.file_meta
    dataset.preamble = None
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset, implicit_vr=implicit_vr, little_endian=little_endian)
    return buffer.getvalue()


def group_length_end(data: bytes) -> int:
    """Where the file meta group ends, in bytes that start with it: (0002,0000) says so."""
    assert data[:8] == b"\x02\x00\x00\x00UL\x04\x00"
    return 12 + int.from_bytes(data[8:12], "little")


# --- DICOM -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm"])
def test_dicom_files_are_dicom_whatever_their_name(name: str) -> None:
    data = pydicom_bytes(name)
    for file_name in ("IMG0001", "scan.dcm", "photo.jpg", ""):
        assert sniff_stream(io.BytesIO(data), file_name) is FileKind.DICOM


def test_a_dicomdir_is_known_by_content_and_by_name() -> None:
    data = pydicom_bytes("DICOMDIR")
    assert sniff(data, "DICOMDIR") is FileKind.DICOMDIR
    assert sniff(data, "index.bin") is FileKind.DICOMDIR
    assert sniff(pydicom_bytes("CT_small.dcm"), "CD/DICOMDIR") is FileKind.DICOMDIR


@pytest.mark.parametrize("implicit_vr", [True, False])
@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_dicom_without_preamble_or_file_meta(name: str, implicit_vr: bool) -> None:
    data = without_file_meta(name, implicit_vr=implicit_vr)
    assert data[:2] == b"\x08\x00" and b"DICM" not in data[:132]
    assert sniff(data) is FileKind.DICOM
    assert sniff(data, "IM0001") is FileKind.DICOM


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_big_endian_dicom_without_preamble_or_file_meta(name: str) -> None:
    data = without_file_meta(name, implicit_vr=False, little_endian=False)
    assert data[:2] == b"\x00\x08" and b"DICM" not in data[:132]
    assert sniff(data) is FileKind.DICOM
    assert sniff(data, "IM0001") is FileKind.DICOM
    assert read_instance(io.BytesIO(data)).transfer_syntax == ExplicitVRBigEndian


def test_dicom_with_its_first_132_bytes_cut_off() -> None:
    data = pydicom_bytes("CT_small.dcm")[132:]  # starts with the file meta group
    assert sniff(data) is FileKind.DICOM
    assert sniff(data[group_length_end(data) :]) is FileKind.DICOM  # and without it
    dicomdir = pydicom_bytes("DICOMDIR")[132:]
    assert sniff(dicomdir, "x") is FileKind.DICOMDIR


@pytest.mark.parametrize("magic", [b"MZ", b"\x7fELF", b"\xcf\xfa\xed\xfe", b"#!"])
def test_dicom_with_an_executable_preamble_is_executable(magic: bytes) -> None:
    data = bytearray(pydicom_bytes("CT_small.dcm"))
    data[: len(magic)] = magic  # CVE-2019-11687: a PE/DICOM polyglot
    assert sniff(bytes(data), "IM0001.dcm") is FileKind.EXECUTABLE


def test_dicom_with_a_tiff_preamble_stays_dicom() -> None:
    # DICOM/TIFF dual-personality files are legitimate (whole-slide imaging).
    data = bytearray(pydicom_bytes("CT_small.dcm"))
    data[:4] = b"II*\x00"
    assert sniff(bytes(data)) is FileKind.DICOM


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([b"", b"\x02\x00", b"\x08\x00", b"\x08\x00\x05\x00CS", b"\x02\x00\x01\x00"]),
    st.integers(min_value=0, max_value=SNIFF_BYTES),
    st.randoms(use_true_random=False),
)
def test_random_bytes_are_not_dicom_even_when_named_so(
    prefix: bytes, size: int, rng: random.Random
) -> None:
    data = prefix + rng.randbytes(size)
    assert sniff(data, "x.dcm") not in (FileKind.DICOM, FileKind.DICOMDIR)


def test_random_bytes_named_dcm_are_unknown() -> None:
    data = random.Random(4).randbytes(SNIFF_BYTES)
    assert sniff(data, "x.dcm") is FileKind.UNKNOWN


@given(st.binary(max_size=2048), st.text(max_size=20))
def test_sniff_takes_any_bytes(head: bytes, name: str) -> None:
    assert sniff(head, name) in set(FileKind)


# --- other kinds -----------------------------------------------------------------------------


def test_empty_file() -> None:
    assert sniff(b"", "scan.dcm") is FileKind.EMPTY
    assert sniff_stream(io.BytesIO(b"")) is FileKind.EMPTY


def test_pdf() -> None:
    assert sniff(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "report") is FileKind.PDF
    assert sniff(b"\r\n%PDF-1.4\n", "") is FileKind.PDF


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"])
def test_images_made_by_pillow(image_format: str) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(buffer, format=image_format)
    assert sniff(buffer.getvalue(), "IMG_0001.dcm") is FileKind.IMAGE


def test_heic_photo_but_not_mp4_video() -> None:
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    assert sniff(heic, "IMG_4512.HEIC") is FileKind.IMAGE
    mp4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + bytes(64)
    assert sniff(mp4, "clip.mp4") is FileKind.UNKNOWN


def zip_bytes(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_word_documents() -> None:
    docx = zip_bytes(
        {
            "[Content_Types].xml": b"<Types/>",
            "_rels/.rels": b"<Relationships/>",
            "word/document.xml": b"<w:document/>",
        }
    )
    assert sniff(docx, "letter.zip") is FileKind.WORD
    word_first = zip_bytes({"word/document.xml": b"<w:document/>"})
    assert sniff(word_first) is FileKind.WORD
    odt = zip_bytes(
        {"mimetype": b"application/vnd.oasis.opendocument.text", "content.xml": b"<x/>"},
        zipfile.ZIP_STORED,
    )
    assert sniff(odt, "letter") is FileKind.WORD
    ole2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
    assert sniff(ole2, "letter.doc") is FileKind.WORD
    assert sniff(b"{\\rtf1\\ansi Discharge letter}", "") is FileKind.WORD


def test_an_ordinary_zip_is_a_zip_even_when_named_docx() -> None:
    data = zip_bytes({"CD/DICOMDIR": b"x", "CD/DICOM/IM0001": b"y"})
    assert sniff(data, "letter.docx") is FileKind.ZIP


def tar_bytes(mode: Any) -> bytes:  # Any: tarfile.open's overloads want literal modes
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        data = pydicom_bytes("CT_small.dcm")
        info = tarfile.TarInfo("series/IM0001")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz", "w|gz"])
def test_tar_archives_by_content(mode: str) -> None:
    assert sniff(tar_bytes(mode), "upload.bin") is FileKind.TAR


def test_pre_posix_tar_without_magic() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo("notes.txt")
        info.size = 5
        archive.addfile(info, io.BytesIO(b"hello"))
    block = bytearray(buffer.getvalue()[:512])
    block[257:265] = bytes(8)  # no "ustar" magic: a v7 header, checksum still right
    block[148:156] = b"%06o\x00 " % (sum(block[:148]) + 256 + sum(block[156:]))
    assert sniff(bytes(block) + bytes(1024)) is FileKind.TAR


def test_compressed_files_that_are_not_tars() -> None:
    assert sniff(gzip.compress(pydicom_bytes("CT_small.dcm")), "x.tar.gz") is FileKind.UNKNOWN
    assert sniff(lzma.compress(b"plain words " * 100), "x.tar.xz") is FileKind.UNKNOWN
    assert sniff(bz2.compress(b"short"), "x.tar.bz2") is FileKind.UNKNOWN


@pytest.mark.parametrize(
    "head",
    [
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(48),
        b"\x7fELF\x02\x01\x01\x00" + bytes(56),
        b"\xcf\xfa\xed\xfe\x07\x00\x00\x01" + bytes(24),
        b"#!/bin/sh\nrm -rf ~\n",
    ],
)
def test_executables(head: bytes) -> None:
    assert sniff(head, "report.pdf") is FileKind.EXECUTABLE


def test_text() -> None:
    assert sniff("2023-05-01 活检：腺癌\n".encode(), "") is FileKind.TEXT
    assert sniff(b"\xef\xbb\xbfBOM first\r\n") is FileKind.TEXT
    assert sniff(b"MZ Smith, discharge summary\n") is FileKind.TEXT
    # The sniffed head can end in the middle of a character.
    long_text = ("病历" * SNIFF_BYTES).encode()
    assert sniff_stream(io.BytesIO(long_text)) is FileKind.TEXT
    assert sniff(b"text\x00with a NUL") is FileKind.UNKNOWN


# --- sniff_stream ----------------------------------------------------------------------------


def test_sniff_stream_puts_a_seekable_stream_back() -> None:
    stream = io.BytesIO(b"junk" + pydicom_bytes("CT_small.dcm"))
    stream.seek(4)
    assert sniff_stream(stream) is FileKind.DICOM
    assert stream.tell() == 4


class Trickle(io.RawIOBase):
    """A one-way stream that hands over at most 100 bytes per read, like a slow pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        size = min(100, len(buffer), len(self._data))
        buffer[:size] = self._data[:size]
        self._data = self._data[size:]
        return size


def test_sniff_stream_reads_a_one_way_stream_to_the_sniff_size() -> None:
    data = pydicom_bytes("DICOMDIR")
    stream = Trickle(data)
    assert sniff_stream(stream, "x") is FileKind.DICOMDIR  # type: ignore[arg-type]
    assert len(stream.read()) == len(data) - SNIFF_BYTES

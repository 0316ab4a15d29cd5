"""DICOM inspection: what an uploaded file is, which study and series it belongs to, and what
a coordinator should know about the set (old, someone else's, incomplete, nothing viewable).

Only headers are read, never pixels, and only the handful of elements listed in `_TAGS`:
pydicom seeks over everything else, which is what makes inspecting a 500-slice series fast.
Values are decoded here from the raw bytes rather than through pydicom's converters, which
validate and warn with the value in the message (a patient's name would reach the logs).

Nothing here produces text for people: problems and flags are codes for the conversation
layer, and nothing here logs file names or header values.
"""

from __future__ import annotations

import io
import math
import os
import stat
import struct
import unicodedata
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from itertools import combinations, pairwise, permutations
from typing import TYPE_CHECKING, BinaryIO, NamedTuple, cast

# pydicom takes a few tenths of a second to import: it loads at the first file read (each
# function imports what it uses), so the bot starts without it.
if TYPE_CHECKING:
    from pydicom.dataset import Dataset

# The transfer syntaxes read here (pydicom.uid's constants, as plain strings).
ImplicitVRLittleEndian = "1.2.840.10008.1.2"
ExplicitVRLittleEndian = "1.2.840.10008.1.2.1"
DeflatedExplicitVRLittleEndian = "1.2.840.10008.1.2.1.99"
ExplicitVRBigEndian = "1.2.840.10008.1.2.2"

# --- what is read -----------------------------------------------------------------------------

TRANSFER_SYNTAX = 0x00020010
SOP_INSTANCE_UID = 0x00080018
STUDY_DATE = 0x00080020
SERIES_DATE = 0x00080021
ACQUISITION_DATE = 0x00080022
MODALITY = 0x00080060
INSTITUTION = 0x00080080
STUDY_DESCRIPTION = 0x00081030
SERIES_DESCRIPTION = 0x0008103E
PATIENT_NAME = 0x00100010
PATIENT_BIRTH_DATE = 0x00100030
BODY_PART = 0x00180015
STUDY_UID = 0x0020000D
SERIES_UID = 0x0020000E
INSTANCE_NUMBER = 0x00200013
IMAGE_POSITION = 0x00200032
IMAGE_ORIENTATION = 0x00200037
IMAGES_IN_ACQUISITION = 0x00201002
NUMBER_OF_FRAMES = 0x00280008
ROWS = 0x00280010
COLUMNS = 0x00280011
DIRECTORY_RECORDS = 0x00041220
RECORD_IN_USE = 0x00041410
RECORD_TYPE = 0x00041430
REFERENCED_FILE_ID = 0x00041500

_TAGS = [
    SOP_INSTANCE_UID,
    STUDY_DATE,
    SERIES_DATE,
    ACQUISITION_DATE,
    MODALITY,
    INSTITUTION,
    STUDY_DESCRIPTION,
    SERIES_DESCRIPTION,
    PATIENT_NAME,
    PATIENT_BIRTH_DATE,
    BODY_PART,
    STUDY_UID,
    SERIES_UID,
    INSTANCE_NUMBER,
    IMAGE_POSITION,
    IMAGE_ORIENTATION,
    IMAGES_IN_ACQUISITION,
    NUMBER_OF_FRAMES,
    ROWS,
    COLUMNS,
]
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
_PIXEL_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN"}
# Read into memory first; a header longer than this is read from the stream itself.
HEAD_BYTES = 64 * 1024
# A deflated file's header is looked for in this much of its inflated start.
INFLATED_HEADER_BYTES = 4 * 1024 * 1024
_INFLATE_CHUNK = 64 * 1024
# Larger values are not plausible for any element in _TAGS: pydicom skips instead of reading.
_DEFER_BYTES = 64 * 1024

# Objects that may carry Rows/Columns but are not pictures a specialist looks at.
NON_IMAGE_MODALITIES = frozenset(
    {"SR", "PR", "KO", "DOC", "REG", "RTSTRUCT", "RTPLAN", "RTRECORD", "FID", "ECG", "AU"}
)

# The start of a 128-byte preamble that makes the file also an executable (PE/ELF/Mach-O or a
# script): a DICOM/executable polyglot, CVE-2019-11687.
EXECUTABLE_MAGICS = (
    b"MZ",
    b"\x7fELF",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
    b"#!",
)
_KNOWN_VRS = frozenset(
    b"AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL "
    b"UN UR US UT UV".split()
)
# UIDs are read as written: anonymisers write hex, letters or more than 64 characters, and
# pydicom and dcm2niix read such files all the same. Only absurd lengths are refused.
_MAX_UID_CHARS = 256


class DicomProblem(StrEnum):
    NOT_DICOM = "not_dicom"
    TRUNCATED = "truncated"
    TOO_DEEP = "too_deep"
    EXECUTABLE_PREAMBLE = "executable_preamble"
    UNREADABLE = "unreadable"


class DicomUnreadable(Exception):
    def __init__(self, problem: DicomProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


@dataclass(frozen=True)
class DicomInstance:
    study_uid: str
    series_uid: str
    sop_uid: str
    modality: str
    body_part: str
    study_description: str
    series_description: str
    study_date: date | None  # StudyDate, else SeriesDate, else AcquisitionDate
    institution: str
    patient_name: str  # as written, "" when anonymised; never log it
    patient_birth_date: date | None
    transfer_syntax: str  # UID
    instance_number: int | None
    images_in_acquisition: int | None
    rows: int | None
    columns: int | None
    frames: int
    is_image: bool  # pixel data present and not a report/presentation state/key object
    # ImagePositionPatient (x, y, z in mm) and ImageOrientationPatient (row, column cosines):
    # where a slice lies, to tell a gap in a stack from a numbering that skips.
    position: tuple[float, ...] | None = None
    orientation: tuple[float, ...] | None = None


# --- one instance -----------------------------------------------------------------------------


def read_instance(stream: BinaryIO) -> DicomInstance:
    """Inspect the DICOM file in `stream` (positioned at its start); never reads the pixels.

    Raises DicomUnreadable whatever goes wrong, including hostile files (a sequence nested
    thousands deep, an executable preamble, random bytes) and a stream that fails (a stored
    file failing its integrity check)."""
    with _stream_failures():
        return _read_instance(stream)


@contextmanager
def _stream_failures() -> Iterator[None]:
    try:
        yield
    except (OSError, ValueError) as error:
        raise DicomUnreadable(DicomProblem.UNREADABLE) from error


def _read_instance(stream: BinaryIO) -> DicomInstance:
    head = _read_up_to(stream, HEAD_BYTES)
    has_preamble = head[128:132] == b"DICM"
    if has_preamble and head.startswith(EXECUTABLE_MAGICS):
        raise DicomUnreadable(DicomProblem.EXECUTABLE_PREAMBLE)
    if not has_preamble and not _starts_like_dataset(head):
        raise DicomUnreadable(DicomProblem.NOT_DICOM)
    # Parsing from memory is faster than from a file (pydicom seeks and tells per element),
    # and the header nearly always fits: read the stream itself only when it does not.
    whole = len(head) < HEAD_BYTES
    try:
        header = _header(io.BytesIO(head), complete=whole)
    except _PrefixTooShort:
        stream.seek(0)
        header = _header(stream, complete=True)
    size = len(head) if whole else _stream_size(stream)
    if size is not None and (header.parsed_to > size or (header.pixels_end or 0) > size):
        raise DicomUnreadable(DicomProblem.TRUNCATED)
    return _instance(header.dataset, header.transfer_syntax, header.at_pixels, has_preamble)


class _PrefixTooShort(Exception):
    """The header goes on past the bytes read ahead."""


class _Header(NamedTuple):
    dataset: Dataset
    transfer_syntax: str
    parsed_to: int  # past the end of the data when pydicom skipped an element cut short
    at_pixels: bool
    pixels_end: int | None  # where the pixel data element says it ends, when it says


def _header(source: BinaryIO, *, complete: bool) -> _Header:
    try:
        parsed = _parse(source, _TAGS)
    except DicomUnreadable as error:
        if not complete and error.problem == DicomProblem.TRUNCATED:
            raise _PrefixTooShort from None
        raise
    if parsed.inflated:
        # pydicom inflated the rest of the file into a buffer of its own: nothing to check.
        return _Header(parsed.dataset, parsed.transfer_syntax, 0, True, None)
    parsed_to = source.tell()
    at_pixels, pixels_end = _pixel_element(source, parsed.dataset)
    if not complete and (not at_pixels or parsed_to > HEAD_BYTES):
        raise _PrefixTooShort
    return _Header(parsed.dataset, parsed.transfer_syntax, parsed_to, at_pixels, pixels_end)


def _read_up_to(stream: BinaryIO, limit: int) -> bytes:
    """Up to `limit` bytes: zip members and sockets may return less per read."""
    parts: list[bytes] = []
    wanted = limit
    while wanted > 0 and (part := stream.read(wanted)):
        parts.append(part)
        wanted -= len(part)
    return b"".join(parts)


class _Parsed(NamedTuple):
    dataset: Dataset
    transfer_syntax: str
    inflated: bool  # a deflated body, which pydicom inflates into a buffer of its own


def _parse(stream: BinaryIO, tags: list[int]) -> _Parsed:
    """The elements in `tags` (pydicom skips the others), up to the pixel data."""
    try:
        return _read_elements(_clamped(stream), tags)
    except RecursionError:
        raise DicomUnreadable(DicomProblem.TOO_DEEP) from None
    except EOFError:
        raise DicomUnreadable(DicomProblem.TRUNCATED) from None
    except Exception as error:
        # pydicom reports a header cut short as struct/OS errors at the end of the data.
        size = _stream_size(stream)
        try:
            at_end = size is not None and stream.tell() >= size
        except Exception:
            at_end = False
        problem = DicomProblem.TRUNCATED if at_end else DicomProblem.UNREADABLE
        raise DicomUnreadable(problem) from error


# pydicom reads an element by asking for its declared length (inside sequence items even
# when it skips long values elsewhere), and a buffered file allocates what a read asks for
# before reading: a damaged length made a 2 KB file allocate 500 MB, and could ask for 4 GB.
_CLAMP_READS_OVER = 64 * 1024


class _ClampedReads:
    """`stream` for pydicom, whose reads never ask for more than the stream still holds."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self._stream = stream
        self._size = size
        self.seek = stream.seek
        self.tell = stream.tell

    def read(self, size: int = -1) -> bytes:
        if size > _CLAMP_READS_OVER:
            size = max(0, min(size, self._size - self._stream.tell()))
        return self._stream.read(size)


def _clamped(stream: BinaryIO) -> BinaryIO:
    if isinstance(stream, io.BytesIO):
        return stream  # reading from memory allocates only what is there
    size = _stream_size(stream)
    return stream if size is None else cast(BinaryIO, _ClampedReads(stream, size))


def _read_elements(stream: BinaryIO, tags: list[int]) -> _Parsed:
    """pydicom's element reader (`read_dataset`), as `dcmread` calls it, without what dcmread
    builds around it (a FileDataset, a validated FileMetaDataset, a command set), which costs
    more than the reading itself: this halves the time per file. Private syntaxes and command
    sets still go through dcmread; deflated bodies are inflated here, with a limit."""
    from pydicom import dcmread
    from pydicom.filereader import read_dataset

    stream.seek(0)
    stream.seek(132 if stream.read(132)[128:132] == b"DICM" else 0)
    meta = read_dataset(stream, False, True, stop_when=_beyond_file_meta)
    declared = _Values(meta).uid(TRANSFER_SYNTAX)
    if declared == DeflatedExplicitVRLittleEndian:
        body, _ = _inflate(stream, INFLATED_HEADER_BYTES)
        return _Parsed(_body_dataset(body, tags, header_only=True), declared, True)
    encoding = _encoding(declared, stream)
    if encoding is None:
        stream.seek(0)
        whole: Dataset = dcmread(
            stream,
            force=True,
            stop_before_pixels=True,
            specific_tags=tags,
            defer_size=_DEFER_BYTES,
        )
        return _Parsed(whole, declared or _syntax_of(whole), False)
    implicit, little = encoding
    dataset = read_dataset(
        stream,
        implicit,
        little,
        stop_when=_at_pixel_data,
        defer_size=_DEFER_BYTES,
        specific_tags=tags,
    )
    return _Parsed(dataset, declared or _syntax_of(dataset), False)


def read_deflated(stream: BinaryIO, *, limit: int) -> Dataset:
    """The whole dataset of a Deflated Explicit VR Little Endian file, pixels included, read
    from its start; DicomUnreadable when it inflates to more than `limit` bytes. (pydicom
    inflates without a limit, and a few kilobytes can inflate to gigabytes.)"""
    from pydicom.filereader import read_dataset

    with _stream_failures():
        stream.seek(0)
        stream.seek(132 if stream.read(132)[128:132] == b"DICM" else 0)
        read_dataset(stream, False, True, stop_when=_beyond_file_meta)
        body, complete = _inflate(stream, limit)
        if not complete:
            raise DicomUnreadable(DicomProblem.UNREADABLE)
        return _body_dataset(body, None, header_only=False)


def _inflate(stream: BinaryIO, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` inflated bytes from `stream`, and whether that is all there is."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    while len(out) < limit and not inflater.eof:
        chunk = inflater.unconsumed_tail or stream.read(_INFLATE_CHUNK)
        if not chunk:
            break
        out += inflater.decompress(chunk, limit - len(out))
    complete = inflater.eof or not (inflater.unconsumed_tail or stream.read(1))
    return bytes(out), complete


def _body_dataset(body: bytes, tags: list[int] | None, *, header_only: bool) -> Dataset:
    from pydicom.filereader import read_dataset

    return read_dataset(
        io.BytesIO(body),
        False,
        True,
        stop_when=_at_pixel_data if header_only else None,
        defer_size=_DEFER_BYTES if header_only else None,
        specific_tags=tags,
    )


def _beyond_file_meta(tag: int, vr: str | None, length: int) -> bool:
    return tag >> 16 != 0x0002


def _at_pixel_data(tag: int, vr: str | None, length: int) -> bool:
    return tag in _PIXEL_TAGS


def _encoding(declared: str, stream: BinaryIO) -> tuple[bool, bool] | None:
    """(implicit VR, little endian) of the dataset after the file meta, as dcmread decides
    it; None where dcmread itself must read the file."""
    position = stream.tell()
    first = stream.read(6)
    stream.seek(position)
    if first[:2] == b"\x00\x00" and len(first) == 6:
        return None  # a command set (group 0000) before the dataset
    if declared == ImplicitVRLittleEndian:
        return True, True
    if declared == ExplicitVRLittleEndian:
        return False, True
    if declared == ExplicitVRBigEndian:
        return False, False
    if declared:
        from pydicom.uid import PrivateTransferSyntaxes

        if declared in PrivateTransferSyntaxes:
            return None
    if declared:
        return False, True  # every compressed syntax is explicit VR little endian
    # No file meta: guess from the first element, as pydicom does (a big endian group 0008
    # reads as 0x0800 in little endian).
    if len(first) == 6 and first[4:6] in _KNOWN_VRS:
        return False, struct.unpack_from("<H", first)[0] < 0x0400
    return True, True


def _instance(
    dataset: Dataset, transfer_syntax: str, at_pixels: bool, has_preamble: bool
) -> DicomInstance:
    values = _Values(dataset)
    sop_uid = values.uid(SOP_INSTANCE_UID)
    study_uid = values.uid(STUDY_UID)
    series_uid = values.uid(SERIES_UID)
    # pydicom parses whatever it is given: without these UIDs it was not DICOM to begin with,
    # unless it starts with "DICM" and its headers read: then it is a scan whatever its UIDs
    # look like (an anonymiser may have blanked or mangled them).
    readable = has_preamble and any(values.raw(tag) for tag in _TAGS)
    if not sop_uid and not (study_uid and series_uid) and not readable:
        raise DicomUnreadable(DicomProblem.NOT_DICOM)
    modality = values.text(MODALITY).upper()
    rows, columns = values.us(ROWS), values.us(COLUMNS)
    pictured = bool(rows and columns and modality not in NON_IMAGE_MODALITIES)
    if pictured and not at_pixels:
        # Image objects must carry pixel data: the file stops between header and pixels.
        raise DicomUnreadable(DicomProblem.TRUNCATED)
    return DicomInstance(
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=sop_uid,
        modality=modality,
        body_part=values.text(BODY_PART).upper(),
        study_description=values.text(STUDY_DESCRIPTION),
        series_description=values.text(SERIES_DESCRIPTION),
        study_date=(
            values.date(STUDY_DATE) or values.date(SERIES_DATE) or values.date(ACQUISITION_DATE)
        ),
        institution=values.text(INSTITUTION),
        patient_name=values.text(PATIENT_NAME),
        patient_birth_date=values.date(PATIENT_BIRTH_DATE),
        transfer_syntax=transfer_syntax,
        instance_number=values.integer(INSTANCE_NUMBER),
        images_in_acquisition=values.integer(IMAGES_IN_ACQUISITION),
        rows=rows,
        columns=columns,
        frames=max(1, values.integer(NUMBER_OF_FRAMES) or 1),
        is_image=pictured,
        position=values.numbers(IMAGE_POSITION, 3),
        orientation=values.numbers(IMAGE_ORIENTATION, 6),
    )


def _starts_like_dataset(head: bytes) -> bool:
    """Without preamble and "DICM", a DICOM file starts with a group 0002 or 0008 element.
    Checked before parsing because pydicom parses whatever bytes it is given."""
    if len(head) < 8:
        return False
    group_le, group_be = struct.unpack_from("<H", head)[0], struct.unpack_from(">H", head)[0]
    explicit_vr = head[4:6] in _KNOWN_VRS
    if group_le in (0x0002, 0x0008):
        implicit_length = struct.unpack_from("<I", head, 4)[0]
        return explicit_vr or implicit_length < 1024
    return group_be in (0x0002, 0x0008) and explicit_vr


def _stream_size(stream: BinaryIO) -> int | None:
    """The stream's size when it is cheap to know; None otherwise."""
    if isinstance(stream, zipfile.ZipExtFile):
        # Seeking a member means decompressing up to there; the zip's CRC guards truncation.
        return None
    try:
        info = os.fstat(stream.fileno())
        if stat.S_ISREG(info.st_mode):
            return info.st_size
    except (OSError, AttributeError, ValueError):
        pass
    try:
        if not stream.seekable():
            return None
        position = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(position)
        return end
    except (OSError, AttributeError, ValueError):
        return None


def _pixel_element(stream: BinaryIO, dataset: Dataset) -> tuple[bool, int | None]:
    """Whether pydicom stopped at pixel data, and where that element says it ends (None for
    encapsulated pixel data, whose length is undefined)."""
    implicit, little = dataset.original_encoding
    order = "<" if little is not False else ">"
    start = stream.tell()
    header = stream.read(12)
    if len(header) < 8:
        return False, None
    group, element = struct.unpack_from(f"{order}HH", header)
    if (group << 16 | element) not in _PIXEL_TAGS:
        return False, None
    # Some writers switch to implicit VR inside an explicit VR file; pydicom copes, so must we.
    if not implicit and header[4:6] in _PIXEL_VRS and len(header) == 12:
        length, value_start = struct.unpack_from(f"{order}I", header, 8)[0], start + 12
    else:
        length, value_start = struct.unpack_from(f"{order}I", header, 4)[0], start + 8
    return True, None if length == 0xFFFFFFFF else value_start + length


def _syntax_of(dataset: Dataset) -> str:
    """The transfer syntax a file without file meta was written in, from how it read."""
    meta = getattr(dataset, "file_meta", None)
    declared = _Values(meta).uid(TRANSFER_SYNTAX) if meta is not None else ""
    if declared:
        return declared
    implicit, little = dataset.original_encoding
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian


class _Values:
    """Decodes raw element bytes of the few elements we read, without pydicom's converters."""

    def __init__(self, dataset: Dataset) -> None:
        from pydicom.dataelem import DataElement, RawDataElement

        # Raw elements hold the bytes as read; deferred ones (too long to be real) hold None.
        self._raw = {
            int(tag): element.value
            for tag, element in dataset.items()
            if isinstance(element, RawDataElement | DataElement)
            and isinstance(element.value, bytes)
        }
        encodings = dataset.original_character_set
        self._encodings = [encodings] if isinstance(encodings, str) else list(encodings)
        little = dataset.original_encoding[1]
        self._us = struct.Struct("<H" if little is not False else ">H")

    def raw(self, tag: int) -> bytes | None:
        return self._raw.get(tag)

    def text(self, tag: int) -> str:
        value = self.raw(tag)
        if not value:
            return ""
        from pydicom.charset import decode_bytes

        try:
            decoded = decode_bytes(value, self._encodings, set())
        except (LookupError, ValueError):
            decoded = value.decode("latin-1")
        # Multi-valued: the first value; trailing padding is spaces or NULs.
        return decoded.split("\\", 1)[0].strip(" \x00")

    def uid(self, tag: int) -> str:
        value = self.raw(tag)
        if not value:
            return ""
        text = value.split(b"\\", 1)[0].strip(b" \x00").decode("ascii", "replace")
        return text if len(text) <= _MAX_UID_CHARS and text.isprintable() else ""

    def numbers(self, tag: int, count: int) -> tuple[float, ...] | None:
        """A DS value of exactly `count` finite numbers, or None."""
        value = self.raw(tag)
        if not value:
            return None
        try:
            parsed = tuple(float(part.strip(b" \x00")) for part in value.split(b"\\"))
        except ValueError:
            return None
        if len(parsed) != count or not all(math.isfinite(number) for number in parsed):
            return None
        return parsed

    def integer(self, tag: int) -> int | None:
        value = self.raw(tag)
        if not value:
            return None
        try:
            return int(value.split(b"\\", 1)[0].strip(b" \x00"))
        except ValueError:
            return None

    def us(self, tag: int) -> int | None:
        value = self.raw(tag)
        if not value or len(value) < 2:
            return None
        return int(self._us.unpack_from(value)[0])

    def date(self, tag: int) -> date | None:
        return parse_da(self.raw(tag))


def parse_da(value: bytes | None) -> date | None:
    """A DICOM DA value (YYYYMMDD, or the old YYYY.MM.DD); None when absent or invalid."""
    if not value:
        return None
    digits = value.split(b"\\", 1)[0].strip(b" \x00").replace(b".", b"")
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None


# --- DICOMDIR ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DicomDirIndex:
    # Relative POSIX paths of referenced files that stay inside the DICOMDIR's folder.
    referenced: tuple[str, ...]
    unsafe_references: int  # pointing outside (absolute, "..") and ignored
    studies: int
    series: int


def read_dicomdir(stream: BinaryIO) -> DicomDirIndex:
    """List what a DICOMDIR references, without opening any of it (pydicom's FileSet would)."""
    with _stream_failures():
        return _read_dicomdir(stream)


def _read_dicomdir(stream: BinaryIO) -> DicomDirIndex:
    from pydicom.dataset import Dataset

    head = stream.read(132)
    if head[128:132] == b"DICM" and head.startswith(EXECUTABLE_MAGICS):
        raise DicomUnreadable(DicomProblem.EXECUTABLE_PREAMBLE)
    if head[128:132] != b"DICM" and not _starts_like_dataset(head):
        raise DicomUnreadable(DicomProblem.NOT_DICOM)
    stream.seek(0)
    dataset = _parse(stream, [DIRECTORY_RECORDS]).dataset
    if DIRECTORY_RECORDS not in dataset:
        raise DicomUnreadable(DicomProblem.UNREADABLE)
    try:
        # A sequence of defined length is only parsed here, on first access.
        records: list[Dataset] = list(dataset[DIRECTORY_RECORDS].value)
    except RecursionError:
        raise DicomUnreadable(DicomProblem.TOO_DEEP) from None
    except Exception as error:
        raise DicomUnreadable(DicomProblem.UNREADABLE) from error
    if not all(isinstance(record, Dataset) for record in records):
        # Damaged into another VR than SQ, the value reads as text or bytes, not records.
        raise DicomUnreadable(DicomProblem.UNREADABLE)
    referenced: dict[str, None] = {}  # ordered, without duplicates
    unsafe = studies = series = 0
    for record in records:
        values = _Values(record)
        if values.us(RECORD_IN_USE) == 0:
            continue  # an inactive (deleted) record
        kind = values.text(RECORD_TYPE).upper()
        studies += kind == "STUDY"
        series += kind == "SERIES"
        raw_id = values.raw(REFERENCED_FILE_ID)
        if raw_id is None:
            continue
        path = safe_referenced_path(raw_id.decode("latin-1"))
        if path is None:
            unsafe += 1
        else:
            referenced[path] = None
    return DicomDirIndex(tuple(referenced), unsafe, studies, series)


def safe_referenced_path(file_id: str) -> str | None:
    """A ReferencedFileID ("DICOM\\IM0001", components joined by backslash) as a relative
    POSIX path, or None when it could leave the DICOMDIR's folder or is malformed."""
    components = [part.strip(" \x00") for part in file_id.split("\\")]
    for part in components:
        if part in ("", ".", "..") or any(mark in part for mark in "/:\x00"):
            return None
    return "/".join(components)


# --- studies and series -----------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesSummary:
    series_uid: str
    modality: str
    description: str
    body_part: str
    instances: int
    # From where the slices lie when every image says; else from the instance numbers used
    # (from the smallest, in their step) and ImagesInAcquisition.
    expected: int | None
    missing: int  # >= 0
    images: int  # instances with viewable pixels


@dataclass(frozen=True)
class StudySummary:
    study_uid: str
    study_date: date | None
    description: str
    modalities: tuple[str, ...]
    body_parts: tuple[str, ...]
    institution: str
    patient_name: str
    patient_birth_date: date | None
    transfer_syntaxes: tuple[str, ...]
    series: tuple[SeriesSummary, ...]

    @property
    def instances(self) -> int:
        return sum(series.instances for series in self.series)

    @property
    def images(self) -> int:
        return sum(series.images for series in self.series)


def summarize(instances: Iterable[DicomInstance]) -> list[StudySummary]:
    """Group instances into studies (newest first) and series; an instance sent twice (same
    SOP Instance UID) counts once."""
    seen: set[str] = set()
    studies: dict[str, dict[str, list[DicomInstance]]] = {}
    for instance in instances:
        if instance.sop_uid:
            if instance.sop_uid in seen:
                continue
            seen.add(instance.sop_uid)
        studies.setdefault(instance.study_uid, {}).setdefault(instance.series_uid, []).append(
            instance
        )
    summaries = [_study(uid, series) for uid, series in studies.items()]
    summaries.sort(key=lambda s: (s.study_date or date.min, s.study_uid), reverse=True)
    return summaries


def _study(study_uid: str, by_series: dict[str, list[DicomInstance]]) -> StudySummary:
    members = [instance for group in by_series.values() for instance in group]
    dates = [i.study_date for i in members if i.study_date]
    births = [i.patient_birth_date for i in members if i.patient_birth_date]
    series = sorted(
        (_series(uid, group) for uid, group in by_series.items()),
        key=lambda s: (s.modality, s.description, s.series_uid),
    )
    return StudySummary(
        study_uid=study_uid,
        study_date=min(dates) if dates else None,
        description=_first(i.study_description for i in members),
        modalities=_distinct(i.modality for i in members),
        body_parts=_distinct(i.body_part for i in members),
        institution=_first(i.institution for i in members),
        patient_name=_first(i.patient_name for i in members),
        patient_birth_date=min(births) if births else None,
        transfer_syntaxes=_distinct(i.transfer_syntax for i in members),
        series=tuple(series),
    )


def _series(series_uid: str, members: list[DicomInstance]) -> SeriesSummary:
    declared = [i.images_in_acquisition for i in members if i.images_in_acquisition]
    stack = _stack_gaps([i for i in members if i.is_image])
    expected: int | None
    if stack is not None:
        # Where the slices lie is the surest sign: a complete stack is never flagged, however
        # its instances are numbered (Philips numbers 16..1280 over 680 files).
        expected, missing = stack
    else:
        numbered = _numbering_gaps(
            [i.instance_number for i in members if i.instance_number is not None]
        )
        expected, missing = numbered if numbered is not None else (None, 0)
        if declared:
            expected = max(declared)
            missing = max(missing, expected - len(members))
    return SeriesSummary(
        series_uid=series_uid,
        modality=_first(i.modality for i in members),
        description=_first(i.series_description for i in members),
        body_part=_first(i.body_part for i in members),
        instances=len(members),
        expected=expected,
        missing=max(0, missing),
        images=sum(i.is_image for i in members),
    )


def _numbering_gaps(numbers: list[int]) -> tuple[int, int] | None:
    """(expected, missing) from the instance numbers actually used: contiguous from the
    smallest, in the step the series counts in (some scanners count in twos or tens)."""
    used = sorted(set(numbers))
    if not used:
        return None
    step = 0
    for before, after in pairwise(used):
        step = math.gcd(step, after - before)
    expected = (used[-1] - used[0]) // step + 1 if step else 1
    return expected, expected - len(used)


# Positions closer than this (mm) are the same place: writers round differently.
_SAME_PLACE_MM = 0.01
# A step this much longer than the usual spacing leaves room for a slice.
_GAP_RATIO = 1.5


def _stack_gaps(images: list[DicomInstance]) -> tuple[int, int] | None:
    """(expected, missing) from where the slices lie along the stack's normal, when every
    image has a position and all share one orientation; None otherwise (a localizer, or a
    writer that leaves them out). Each place should hold as many images as the fullest one
    (echoes, phases), and the places should follow each other at the usual spacing."""
    orientations = {i.orientation for i in images}
    if len(images) < 3 or len(orientations) != 1 or any(i.position is None for i in images):
        return None
    (orientation,) = orientations
    if orientation is None:
        return None
    row, column = orientation[:3], orientation[3:]
    normal = (
        row[1] * column[2] - row[2] * column[1],
        row[2] * column[0] - row[0] * column[2],
        row[0] * column[1] - row[1] * column[0],
    )
    if math.hypot(*normal) < 0.5:
        return None  # not a real orientation
    depth = Counter(
        round(sum(p * n for p, n in zip(i.position or (), normal, strict=True)) / _SAME_PLACE_MM)
        for i in images
    )
    places = sorted(depth)
    if len(places) < 2:
        return None
    steps = [after - before for before, after in pairwise(places)]
    spacing = sorted(steps)[len(steps) // 2]  # the median: the usual spacing
    empty_places = sum(round(step / spacing) - 1 for step in steps if step > _GAP_RATIO * spacing)
    # As many images at each place as at most places (echoes, phases); a place holding more
    # (a slice taken again) is not a gap.
    per_place = Counter(depth.values()).most_common(1)[0][0]
    short_places = sum(per_place - count for count in depth.values() if count < per_place)
    expected_places = len(places) + empty_places
    return expected_places * per_place, empty_places * per_place + short_places


def _first(values: Iterable[str]) -> str:
    return next((value for value in values if value), "")


def _distinct(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({value for value in values if value}))


# --- flags ------------------------------------------------------------------------------------


class FlagCode(StrEnum):
    STALE = "stale"
    PATIENT_MISMATCH = "patient_mismatch"
    MISSING_INSTANCES = "missing_instances"
    NOTHING_USABLE = "nothing_usable"
    MIXED_PATIENTS = "mixed_patients"


@dataclass(frozen=True)
class DicomFlag:
    code: FlagCode
    study_uid: str = ""
    series_uid: str = ""
    age_days: int | None = None
    missing: int | None = None


def flags(
    studies: Sequence[StudySummary],
    *,
    today: date,
    stale_after_days: int | None,
    case_patient_name: str = "",
    case_birth_date: date | None = None,
) -> list[DicomFlag]:
    """What a coordinator should look at; `stale_after_days` None means age does not matter
    for this area of medicine."""
    found: list[DicomFlag] = []
    for study in studies:
        if stale_after_days is not None and study.study_date is not None:
            age = (today - study.study_date).days
            if age > stale_after_days:
                found.append(DicomFlag(FlagCode.STALE, study.study_uid, age_days=age))
        if not _same_patient(
            study.patient_name, study.patient_birth_date, case_patient_name, case_birth_date
        ):
            found.append(DicomFlag(FlagCode.PATIENT_MISMATCH, study.study_uid))
        for series in study.series:
            if series.missing > 0:
                found.append(
                    DicomFlag(
                        FlagCode.MISSING_INSTANCES,
                        study.study_uid,
                        series.series_uid,
                        missing=series.missing,
                    )
                )
    named = [study for study in studies if _name_tokens(study.patient_name)]
    patients = [(study.patient_name, study.patient_birth_date) for study in named]
    if any(not _same_patient(*a, *b) for a, b in combinations(patients, 2)):
        found.append(DicomFlag(FlagCode.MIXED_PATIENTS))
    if not any(study.images for study in studies):
        found.append(DicomFlag(FlagCode.NOTHING_USABLE))
    return found


def _same_patient(name_a: str, birth_a: date | None, name_b: str, birth_b: date | None) -> bool:
    """Unknown parts (anonymised name, missing birth date) never count as a difference."""
    if birth_a is not None and birth_b is not None and birth_a != birth_b:
        return False
    return names_match(name_a, name_b)


def names_match(first: str, second: str) -> bool:
    """Lenient person-name comparison: case, accents, punctuation, the DICOM ^ separators and
    word order do not matter ("DOE^JOHN" matches "John Doe"); a middle name or title on one
    side only is tolerated when at least two words agree. An empty (anonymised) name matches
    anything. DICOM alphabetic/ideographic/phonetic groups ("=") are compared one by one."""
    groups_a = [tokens for tokens in map(_name_tokens, first.split("=")) if tokens]
    groups_b = [tokens for tokens in map(_name_tokens, second.split("=")) if tokens]
    if not groups_a or not groups_b:
        return True
    return any(_tokens_match(a, b) for a in groups_a for b in groups_b)


def _tokens_match(a: Counter[str], b: Counter[str]) -> bool:
    if a == b:
        return True
    smaller, larger = (a, b) if a.total() <= b.total() else (b, a)
    if smaller.total() >= 2:
        return not (smaller - larger)
    # One word against several: names written without separators ("山田太郎", "山田^太郎").
    word = next(iter(smaller))
    parts = list(larger.elements())
    return len(parts) <= 4 and any(word == "".join(order) for order in permutations(parts))


def _name_tokens(name: str) -> Counter[str]:
    # Turkish dotless ı upper-cases to I: DICOM writers upper-case, people type lower case.
    decomposed = unicodedata.normalize("NFKD", name.casefold().replace("ı", "i"))
    kept = (ch for ch in decomposed if not unicodedata.combining(ch) and ch not in "'’`")
    return Counter("".join(ch if ch.isalnum() else " " for ch in kept).split())

"""What kind of file an upload is, decided from its first bytes.

The file name is a hint only: random bytes called `x.dcm` are UNKNOWN, and a DICOM instance
called `IMG0001` is DICOM. Nothing here reads more than SNIFF_BYTES, so sniffing costs the same
for a 2 KB note and a 2 GB CT series.
"""

from __future__ import annotations

import bz2
import codecs
import lzma
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import BinaryIO


class FileKind(StrEnum):
    DICOM = "dicom"
    DICOMDIR = "dicomdir"
    ZIP = "zip"
    TAR = "tar"  # plain or gzip/bzip2/xz compressed, recognised by content
    PDF = "pdf"
    IMAGE = "image"  # JPEG, PNG, HEIC/HEIF/AVIF, GIF, BMP, TIFF, WEBP
    WORD = "word"  # office documents: .docx (any OOXML), .doc (OLE2), .rtf, .odt
    TEXT = "text"  # UTF-8 text
    EMPTY = "empty"
    # PE, ELF, Mach-O, "#!" scripts, and DICOM whose preamble is one of those: a PE/DICOM
    # polyglot runs on Windows and still opens in a viewer (CVE-2019-11687).
    EXECUTABLE = "executable"
    UNKNOWN = "unknown"


SNIFF_BYTES = 8192

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
_DICOM_EXTENSIONS = (".dcm", ".dicom", ".dic", ".ima")


def sniff(head: bytes, name: str = "") -> FileKind:
    """The kind of a file whose first SNIFF_BYTES (or all, if shorter) are `head`."""
    head = head[:SNIFF_BYTES]
    base = re.split(r"[/\\]", name)[-1]
    if not head:
        return FileKind.EMPTY
    if head[128:132] == b"DICM":
        return _dicom_with_preamble(head, base)
    for test, kind in _SIGNATURES:
        if test(head):
            return kind
    meta_walk = _walk_dicom(head, hinted=base.lower().endswith(_DICOM_EXTENSIONS))
    if meta_walk is not None:
        return _dicom_or_dicomdir(meta_walk.sop_class, base)
    if _is_text(head):
        return FileKind.TEXT
    return FileKind.UNKNOWN


def sniff_stream(stream: BinaryIO, name: str = "") -> FileKind:
    """Sniff from the stream's current position; a seekable stream is put back where it was."""
    start = stream.tell() if stream.seekable() else None
    chunks: list[bytes] = []
    wanted = SNIFF_BYTES
    while wanted > 0:  # a pipe or socket may hand over fewer bytes than asked for
        chunk = stream.read(wanted)
        if not chunk:
            break
        chunks.append(chunk)
        wanted -= len(chunk)
    if start is not None:
        stream.seek(start)
    return sniff(b"".join(chunks), name)


# Programs by name: a disc's viewer (VIEWER.EXE and its DLLs), autorun files, installers,
# scripts and macOS app bundles. Inside an archive these are left out, whatever the bytes.
PROGRAM_SUFFIXES = frozenset(
    [
        ".exe",
        ".dll",
        ".bat",
        ".cmd",
        ".com",
        ".msi",
        ".msp",
        ".scr",
        ".pif",
        ".cpl",
        ".sys",
        ".ocx",
        ".lnk",
        ".hta",
        ".vbs",
        ".vbe",
        ".js",
        ".jse",
        ".wsf",
        ".wsh",
        ".ps1",
        ".psm1",
        ".sh",
        ".bash",
        ".command",
        ".jar",
        ".apk",
        ".dmg",
        ".pkg",
        ".deb",
        ".rpm",
        ".elf",
        ".so",
        ".dylib",
    ]
)
PROGRAM_NAMES = frozenset({"autorun.inf", "desktop.ini"})


def is_program_name(path: str) -> bool:
    """Whether a member's path names a program or autorun file (or lies inside a .app)."""
    parts = [part.lower() for part in re.split(r"[/\\]", path) if part]
    if not parts:
        return False
    base = parts[-1]
    if base in PROGRAM_NAMES or any(part.endswith(".app") for part in parts[:-1]):
        return True
    return "." in base and base[base.rindex(".") :] in PROGRAM_SUFFIXES


def compression_of(head: bytes) -> str | None:
    """The compression ("gzip", "bz2" or "xz") of the stream that `head` starts, if any."""
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] in (b"1AY&SY", b"\x17rE8P\x90"):
        return "bz2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    return None


# --- DICOM -----------------------------------------------------------------------------------


def _dicom_with_preamble(head: bytes, base: str) -> FileKind:
    if _is_executable_start(head[:128]):
        return FileKind.EXECUTABLE
    walk = _walk_explicit(head, 132)
    return _dicom_or_dicomdir(walk.sop_class, base)


def _dicom_or_dicomdir(sop_class: str | None, base: str) -> FileKind:
    if sop_class == DICOMDIR_SOP_CLASS or base.upper() == "DICOMDIR":
        return FileKind.DICOMDIR
    return FileKind.DICOM


@dataclass(frozen=True)
class _Walk:
    elements: int  # consecutive well-formed elements with ascending tags
    sop_class: str | None  # Media Storage SOP Class UID (0002,0002), when seen


# Every VR of PS3.5 6.2; the ones in _LONG_VRS have two reserved bytes and a 4-byte length.
_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL "
    b"UN UR US UT UV".split()
)
_LONG_VRS = frozenset(b"OB OD OF OL OV OW SQ SV UC UN UR UT UV".split())
_UNDEFINED_LENGTH = 0xFFFFFFFF
# Item and sequence delimiter, little then big endian.
_ITEM_TAGS = (b"\xfe\xff\x00\xe0", b"\xfe\xff\xdd\xe0", b"\xff\xfe\xe0\x00", b"\xff\xfe\xe0\xdd")
_MAX_IMPLICIT_LENGTH = 1 << 30


def _walk_dicom(head: bytes, *, hinted: bool) -> _Walk | None:
    """A DICOM stream without preamble: it starts with a group 0x0002 or 0x0008 element.

    Random bytes pass one element check now and then, so several consecutive well-formed
    elements with ascending tags are required (one fewer when the name says DICOM).
    """
    needed = 2 if hinted else 3
    group = int.from_bytes(head[:2], "little")
    if group not in (0x0002, 0x0008):
        # Explicit VR Big Endian without file meta (old ACR-NEMA-era writers): group 0008
        # written high byte first.
        if int.from_bytes(head[:2], "big") == 0x0008:
            big = _walk_explicit(head, 0, order=">")
            return big if big.elements >= needed else None
        return None
    explicit = _walk_explicit(head, 0)
    if explicit.elements >= needed:
        return explicit
    if group == 0x0008 and _count_implicit(head) >= needed:  # file meta is always explicit
        return _Walk(elements=needed, sop_class=None)
    return None


def _walk_explicit(head: bytes, offset: int, order: str = "<") -> _Walk:
    count, sop_class = 0, None
    for tag, value in _explicit_elements(head, offset, order):
        count += 1
        if tag == (0x0002, 0x0002) and value is not None:
            sop_class = value.rstrip(b"\x00 ").decode("ascii", "replace")
    return _Walk(elements=count, sop_class=sop_class)


def _explicit_elements(
    head: bytes, offset: int, order: str = "<"
) -> Iterator[tuple[tuple[int, int], bytes | None]]:
    """(tag, value) of well-formed explicit-VR elements in byte `order` ("<" little, ">"
    big endian); value is None when it runs past `head` or has undefined length, which also
    ends the walk."""
    previous = (-1, -1)
    while offset + 8 <= len(head):
        group, element = struct.unpack_from(f"{order}HH", head, offset)
        vr = head[offset + 4 : offset + 6]
        if vr not in _VRS or (group, element) <= previous:
            return
        if vr in _LONG_VRS:
            if head[offset + 6 : offset + 8] != b"\x00\x00" or offset + 12 > len(head):
                return
            (length,) = struct.unpack_from(f"{order}I", head, offset + 8)
            start = offset + 12
        else:
            (length,) = struct.unpack_from(f"{order}H", head, offset + 6)
            start = offset + 8
        if length == _UNDEFINED_LENGTH:
            if head[start : start + 4] in _ITEM_TAGS:
                yield (group, element), None
            return
        if start + length > len(head):
            yield (group, element), None
            return
        yield (group, element), head[start : start + length]
        previous, offset = (group, element), start + length


def _count_implicit(head: bytes) -> int:
    """Consecutive plausible implicit-VR little-endian elements from the start of `head`."""
    count, offset, previous = 0, 0, (-1, -1)
    while offset + 8 <= len(head):
        group, element, length = struct.unpack_from("<HHI", head, offset)
        if (group, element) <= previous or group > 0x7FE0:
            break
        if length == _UNDEFINED_LENGTH:
            return count + 1 if head[offset + 8 : offset + 12] in _ITEM_TAGS else count
        if length % 2 or length > _MAX_IMPLICIT_LENGTH:  # DICOM values have even length
            break
        count += 1
        previous, offset = (group, element), offset + 8 + length
    return count


# --- signatures at offset 0 ------------------------------------------------------------------


def _is_executable_start(data: bytes) -> bool:
    return data[:2] in (b"MZ", b"#!") or data[:4] in _NATIVE_MAGIC


_NATIVE_MAGIC = (
    b"\x7fELF",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",  # Mach-O universal binary
)


def _is_executable(head: bytes) -> bool:
    # "MZ" alone is two letters; a note that starts with "MZ" is still text.
    if head[:2] == b"MZ":
        return not _is_text(head)
    return _is_executable_start(head)


def _is_pdf(head: bytes) -> bool:
    # Readers accept the header anywhere in the first 1024 bytes, after text junk; a binary
    # prefix (a DICOM-encapsulated PDF without preamble) is something else.
    start = head.find(b"%PDF-", 0, 1024)
    return start >= 0 and b"\x00" not in head[:start]


_HEIF_BRANDS = frozenset(b"heic heix hevc hevx heim heis hevm hevs mif1 msf1 avif avis".split())
_BMP_HEADER_SIZES = (12, 40, 52, 56, 64, 108, 124)


def _is_image(head: bytes) -> bool:
    if head[:3] == b"\xff\xd8\xff" or head[:8] == b"\x89PNG\r\n\x1a\n":
        return True
    if head[:6] in (b"GIF87a", b"GIF89a") or head[:4] in (b"II*\x00", b"MM\x00*"):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    if head[:2] == b"BM" and len(head) >= 18:
        return int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES
    if head[4:8] == b"ftyp" and len(head) >= 12:  # ISO media: HEIF/AVIF, but not MP4 video
        box_end = min(int.from_bytes(head[:4], "big"), len(head))
        brands = [head[8:12]] + [head[i : i + 4] for i in range(16, box_end - 3, 4)]
        return any(brand in _HEIF_BRANDS for brand in brands)
    return False


def _is_zip(head: bytes) -> bool:
    return head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")


_ODT_MIMETYPE = b"application/vnd.oasis.opendocument.text"


def _is_zipped_document(head: bytes) -> bool:
    """A .docx (or other OOXML) or .odt, seen from the local file headers within `head`."""
    if head[:4] != b"PK\x03\x04":
        return False
    if head[30:38] == b"mimetype" and head[38:].startswith(_ODT_MIMETYPE):
        return True
    offset = 0
    while head[offset : offset + 4] == b"PK\x03\x04" and offset + 30 <= len(head):
        flags, size, name_length, extra_length = struct.unpack_from("<H10xI4xHH", head, offset + 6)
        name = head[offset + 30 : offset + 30 + name_length]
        if name == b"[Content_Types].xml" or name.startswith(b"word/"):
            return True
        if flags & 0x08 and size == 0:  # size is in a data descriptor after the data
            return False
        offset += 30 + name_length + extra_length + size
    return False


def _is_legacy_document(head: bytes) -> bool:
    return head[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" or head[:5] == b"{\\rtf"


def _is_tar(head: bytes) -> bool:
    compression = compression_of(head)
    if compression is None:
        return _is_tar_header(head)
    first_block, complete = _decompress_start(head, compression)
    if len(first_block) >= 512:
        return _is_tar_header(first_block)
    # bzip2 gives nothing before a whole block (up to 900 KB) is in: let the unpacker decide.
    return compression == "bz2" and not complete


def _decompress_start(head: bytes, compression: str) -> tuple[bytes, bool]:
    """The first 512 decompressed bytes, and whether the stream ended before them."""
    try:
        if compression == "gzip":
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            return inflater.decompress(head, 512), inflater.eof
        decompressor = bz2.BZ2Decompressor() if compression == "bz2" else lzma.LZMADecompressor()
        return decompressor.decompress(head, max_length=512), decompressor.eof
    except (zlib.error, OSError, EOFError, lzma.LZMAError):
        return b"", True


def _is_tar_header(block: bytes) -> bool:
    if len(block) < 512 or not block[:100].strip(b"\x00"):
        return False
    if block[257:262] == b"ustar":
        return True
    # Pre-POSIX (v7) archives have no magic; their header checksum is all there is.
    field = block[148:156].replace(b"\x00", b" ").strip()
    if not field or not field.isdigit() or b"8" in field or b"9" in field:
        return False
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:512])
    signed = unsigned - 2 * sum(b for b in block[:148] + block[156:512] if b > 127)
    return int(field, 8) in (unsigned, signed)


_SIGNATURES = (
    (_is_executable, FileKind.EXECUTABLE),
    (_is_pdf, FileKind.PDF),
    (_is_image, FileKind.IMAGE),
    (_is_zipped_document, FileKind.WORD),
    (_is_zip, FileKind.ZIP),
    (_is_legacy_document, FileKind.WORD),
    (_is_tar, FileKind.TAR),
)


# --- text ------------------------------------------------------------------------------------

_TEXT_CONTROLS = frozenset("\t\n\r\f\v\x1b")


def _is_text(head: bytes) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        # Not final: `head` may end in the middle of a multi-byte character.
        text = decoder.decode(head, final=len(head) < SNIFF_BYTES)
    except UnicodeDecodeError:
        return False
    return all(char >= " " or char in _TEXT_CONTROLS for char in text)

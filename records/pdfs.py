"""What a PDF's structure says before anyone opens it: locked by a password, or carrying
JavaScript (which a reader runs on opening: /JS, /JavaScript, an /OpenAction that runs it).

Read as data, never rendered. pypdf decides whether a password is needed to read the file:
a PDF encrypted with an empty user password (only printing or copying restricted, as many
hospital systems write them) opens in every reader and is not locked for us either.
JavaScript is looked for in the raw bytes and inside compressed object streams, where
modern writers keep dictionaries; a name may be spelled with #xx escapes ("/J#53").
"""

from __future__ import annotations

import logging
import re
import zlib
from dataclasses import dataclass
from typing import BinaryIO

# Beyond this the rest of a file is not scanned for JavaScript (reports are far smaller).
MAX_SCAN_BYTES = 64 * 1024 * 1024
_CHUNK = 1024 * 1024
_OVERLAP = 64  # a name cut at a chunk boundary is seen whole in the next chunk
MAX_INFLATED_BYTES = 16 * 1024 * 1024  # per object stream: a bound against deflate bombs

_NAME = re.compile(rb"/((?:[A-Za-z]|#[0-9A-Fa-f]{2}){2,12})")
_SCRIPT_NAMES = frozenset({b"JS", b"JavaScript"})
_OBJECT_STREAM = re.compile(rb"/Type\s*/ObjStm[^>]*?(?:>>)?\s*stream\r?\n", re.DOTALL)

# pypdf logs warnings about damaged files with details from them.
logging.getLogger("pypdf").setLevel(logging.ERROR)


@dataclass(frozen=True)
class PdfFindings:
    locked: bool  # a password is needed to read it
    javascript: bool


def inspect_pdf(stream: BinaryIO) -> PdfFindings:
    """Findings for the PDF in `stream` (read from its start); a PDF too damaged for pypdf
    to parse is not called locked (readers often repair it)."""
    stream.seek(0)
    javascript = _has_javascript(stream)
    stream.seek(0)
    return PdfFindings(locked=_locked(stream), javascript=javascript)


def _locked(stream: BinaryIO) -> bool:
    from pypdf import PasswordType, PdfReader  # loaded at the first PDF, not at start

    try:
        reader = PdfReader(stream, strict=False)
        if not reader.is_encrypted:
            return False
        return reader.decrypt("") == PasswordType.NOT_DECRYPTED
    except Exception:  # whatever a damaged or hostile file makes the parser raise
        return _declares_encryption(stream)


def _declares_encryption(stream: BinaryIO) -> bool:
    """The trailer (or cross-reference stream) names an /Encrypt dictionary."""
    stream.seek(0)
    data = stream.read(MAX_SCAN_BYTES)
    return re.search(rb"/Encrypt\s*(?:\d+\s+\d+\s+R|<<)", data) is not None


def _has_javascript(stream: BinaryIO) -> bool:
    tail = b""
    read = 0
    while read < MAX_SCAN_BYTES and (chunk := stream.read(_CHUNK)):
        read += len(chunk)
        window = tail + chunk
        if _names_script(window) or any(
            _names_script(body) for body in _object_streams(window, stream)
        ):
            return True
        tail = window[-_OVERLAP:]
    return False


def _names_script(data: bytes) -> bool:
    for match in _NAME.finditer(data):
        name = match.group(1)
        if b"#" in name:
            name = re.sub(rb"#([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), name)
        if name in _SCRIPT_NAMES:
            return True
    return False


def _object_streams(window: bytes, stream: BinaryIO) -> list[bytes]:
    """The inflated start of each compressed object stream that begins in `window`."""
    bodies = []
    for match in _OBJECT_STREAM.finditer(window):
        data = window[match.end() :]
        if len(data) < _CHUNK:  # the stream goes on past the window: read a little more
            position = stream.tell()
            data += stream.read(_CHUNK)
            stream.seek(position)
        inflater = zlib.decompressobj()
        try:
            bodies.append(inflater.decompress(data, MAX_INFLATED_BYTES))
        except zlib.error:
            continue
    return bodies

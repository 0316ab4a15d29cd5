"""What the CLI writes to a coordinator's terminal: patients' words shown, never obeyed.

A file name, a diagnosis, a question or a note can hold terminal escape sequences (ESC ] 0 ;
title BEL sets the window title; others move the cursor, rewrite lines or, in some terminals,
write files) and bidi overrides that make text read backwards. Every such character is written
as a visible escape (`\\x1b`, `\\u202e`) instead; newlines stay, since the layout is made of
them. Applied once, to the streams the CLI writes to, so no output path can forget it."""

from __future__ import annotations

import contextlib
import io
import re
import sys
from collections.abc import Iterator
from typing import TextIO

# C0 controls but the newline, DEL and the C1 controls; the bidi embeddings, overrides and
# isolates and the marks; line and paragraph separators; lone surrogates (not printable).
_HIDDEN = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
    "\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def visible(text: str) -> str:
    """`text` with every control and bidi-override character written out as an escape."""
    return _HIDDEN.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class VisibleStream(io.TextIOBase):
    """A text stream that writes through `visible`."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(visible(text))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def writable(self) -> bool:
        return True


@contextlib.contextmanager
def visible_output() -> Iterator[None]:
    """Standard output and error, for as long as this lasts, show control characters."""
    out, err = sys.stdout, sys.stderr
    sys.stdout = VisibleStream(out)
    sys.stderr = VisibleStream(err)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = out, err

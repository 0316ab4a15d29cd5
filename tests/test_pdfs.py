"""PDFs whose structure asks for care: locked by a password, or carrying JavaScript."""

from __future__ import annotations

import io
import zlib

from records.pdfs import inspect_pdf
from tests.support.records import pdf


def test_an_ordinary_pdf_is_neither_locked_nor_scripted() -> None:
    found = inspect_pdf(io.BytesIO(pdf()))
    assert not found.locked and not found.javascript


def test_a_pdf_that_needs_a_password_is_locked() -> None:
    assert inspect_pdf(io.BytesIO(pdf(user_password="geheim"))).locked


def test_a_pdf_restricted_only_by_an_owner_password_opens_and_is_not_locked() -> None:
    # Printing or copying restricted, but every reader opens it without asking.
    assert not inspect_pdf(io.BytesIO(pdf(user_password="", owner_password="x"))).locked


def test_javascript_is_found_in_the_document_and_in_its_open_action() -> None:
    assert inspect_pdf(io.BytesIO(pdf(js="app.alert('hi');"))).javascript
    open_action = (
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R /OpenAction 3 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
        b"3 0 obj << /S /Java#53cript /J#53 (app.alert\\(1\\)) >> endobj\n"
        b"trailer << /Root 1 0 R >>\n"
        b"%%EOF\n"
    )
    assert inspect_pdf(io.BytesIO(open_action)).javascript


def test_javascript_hidden_in_a_compressed_object_stream_is_found() -> None:
    body = zlib.compress(b"5 0 << /S /JavaScript /JS (app.alert\\(1\\)) >>")
    data = (
        b"%PDF-1.5\n4 0 obj << /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode /Length "
        + str(len(body)).encode()
        + b" >>\nstream\n"
        + body
        + b"\nendstream endobj\n%%EOF\n"
    )
    assert b"JavaScript" not in data
    assert inspect_pdf(io.BytesIO(data)).javascript

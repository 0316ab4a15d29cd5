"""Files of the shapes the records tests share: PDFs with a password or JavaScript, and DICOM
instances in a syntax no installed decoder reads."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pydicom
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG2MPML
from pypdf import PdfWriter
from pypdf.generic import DictionaryObject, NameObject, TextStringObject

from tests.dicom_factory import uid, write_instance


def pdf(*, user_password: str | None = None, owner_password: str = "", js: str = "") -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    if js:  # run when the document opens
        writer.root_object[NameObject("/OpenAction")] = DictionaryObject(
            {NameObject("/S"): NameObject("/JavaScript"), NameObject("/JS"): TextStringObject(js)}
        )
    if user_password is not None:
        writer.encrypt(user_password, owner_password or "owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def slice_file(path: Path, **options: Any) -> Path:
    return write_instance(
        path, study_uid=uid("s"), series_uid=uid("r"), sop_uid=uid(path.name), **options
    )


def mpeg2_video(path: Path) -> Path:
    """An instance in MPEG-2 (a video syntax no installed decoder reads)."""
    dataset = pydicom.dcmread(slice_file(path))
    dataset.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(100)])
    dataset["PixelData"].VR = "OB"
    dataset.file_meta.TransferSyntaxUID = MPEG2MPML
    dataset.save_as(path, enforce_file_format=True)
    return path

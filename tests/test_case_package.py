"""The case package: one zip with the summary, case.json, the document index, the study table,
the previews and the original files, decrypted and byte-for-byte the ones the patient sent,
under names that are safe to unpack anywhere."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from bot.app import App
from handlers.documents.case_package import SCHEMA, package_names, safe_parts, write_package
from storage.documents import DocumentRow
from tests.support.cases import NOW, SubmittedCase, document, submit_oncology_case
from tests.support.console import Chat


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def awkward_documents(app: App, submitted: SubmittedCase) -> list[DocumentRow]:
    """Files whose names try to leave the folder, or clash: stored for real, then recorded."""
    rows = []
    for number, (item, name, path) in enumerate(
        (
            ("", "../../etc/passwd", ""),
            ("labs", "blood.pdf", "/home/patient/blood.pdf"),
            ("labs", "Blood.pdf", "C:\\Users\\p\\..\\blood.pdf"),
            ("labs", "blood.pdf", ""),
            ("labs", "BLOOD.PDF", ""),
            ("labs", "=HYPERLINK(1).pdf", ""),
        ),
        start=1,
    ):
        stored = app.pipeline.files.put(io.BytesIO(f"lab result {number}".encode()))
        rows.append(
            DocumentRow(
                file_id=f"awkward-{number}",
                case_id=submitted.case.id,
                item=item,
                sha256=stored.sha256,
                size=stored.size,
                original_name=name,
                stored_at=NOW,
                kind="pdf",
                path=path,
            )
        )
    app.documents.add(rows)
    return rows


def test_the_package_holds_the_summary_the_index_and_the_original_files(
    chat: Chat, app: App, tmp_path: Path
) -> None:
    submitted = submit_oncology_case(chat, app, tmp_path)
    awkward_documents(app, submitted)
    documents = app.documents.for_case(submitted.case.id)
    out = tmp_path / "export"
    out.mkdir()

    written = write_package(
        submitted.case, documents, app.pipeline.files, out, {"diagnosis": "肺腺癌"}, NOW
    )

    assert written == out / f"{submitted.case.reference}.zip"
    assert [p.name for p in out.iterdir()] == [written.name]  # no temporary file left
    with zipfile.ZipFile(written) as package:
        assert package.testzip() is None
        names = package.namelist()
        for name in names:
            assert not name.startswith("/") and ".." not in name.split("/") and "\\" not in name
        assert names[:5] == [
            "summary.pdf",
            "summary.html",
            "case.json",
            "documents.csv",
            "dicom_studies.csv",
        ]
        assert package.read("summary.pdf").startswith(b"%PDF-")
        assert "会诊目的" in package.read("summary.html").decode()

        # The originals, byte for byte: archive members under the archive's folder.
        letter = "files/diagnosis_reports/clinic-letter.pdf"
        assert package.read(letter) == submitted.letter.read_bytes()
        for scan in submitted.scans:
            member = f"files/imaging/ct.zip/DICOM/{scan.name}"
            assert sha256(package.read(member)) == sha256(scan.read_bytes())
        assert "files/imaging/ct.zip" not in names  # its members stand in for it
        previews = [n for n in names if n.startswith("previews/")]
        assert len(previews) == 2 and all(n.endswith(".png") for n in previews)
        assert all(package.read(n).startswith(b"\x89PNG") for n in previews)

        # Names made safe: no way out of the folder, duplicates numbered (whatever the case).
        assert "files/unsorted/etc/passwd" in names
        assert {n for n in names if n.startswith("files/labs/")} == {
            "files/labs/home/patient/blood.pdf",
            "files/labs/Users/p/blood.pdf",
            "files/labs/blood.pdf",
            "files/labs/BLOOD (2).PDF",
            "files/labs/=HYPERLINK(1).pdf",
        }

        case = json.loads(package.read("case.json"))
        index = list(csv.DictReader(io.StringIO(package.read("documents.csv").decode("utf-8-sig"))))
        studies = list(
            csv.DictReader(io.StringIO(package.read("dicom_studies.csv").decode("utf-8-sig")))
        )

    assert case["schema"] == SCHEMA == "huizhen.case/1"
    assert case["reference"] == submitted.case.reference
    assert case["answers"]["diagnosis"] == "Рак лёгкого 3 см; سرطان الرئة المبكر; 肺腺癌"
    assert case["answers"]["relationship"] == "мой дядя Иван"
    assert case["translations"] == {"diagnosis": "肺腺癌"}
    assert case["fit"]["verdict"] == "good_fit" and case["fit"]["reasons"] == ["new_diagnosis"]
    checklist = {row["item"]: row for row in case["checklist"]}
    assert checklist["imaging"]["status"] == "present" and checklist["imaging"]["critical"]
    assert checklist["pathology_report"]["status"] == "later"
    imaging = case["documents"]["imaging"]
    members = [d for d in imaging if d["kind"] == "dicom"]
    assert {(d["sha256"], d["size"]) for d in members} == {
        (sha256(s.read_bytes()), s.stat().st_size) for s in submitted.scans
    }
    assert [d["in_package"] for d in imaging if d["kind"] == "zip"] == [None]
    assert case["dicom_studies"][0]["images"] == 6

    by_name = {(row["item"], row["in_package"]): row for row in index}
    letter_row = by_name[("diagnosis_reports", "files/diagnosis_reports/clinic-letter.pdf")]
    assert letter_row["sha256"] == sha256(submitted.letter.read_bytes())
    assert letter_row["item_label"] == "Diagnosis reports and clinic letters"
    # The index follows the checklist's order; a name that looks like a formula stays inert.
    assert [row["item"] for row in index][:1] == ["diagnosis_reports"]
    assert "'=HYPERLINK(1).pdf" in {row["name"] for row in index}
    assert [(s["study_date"], s["modalities"], s["images"]) for s in studies] == [
        ("2026-05-10", "CT", "6")
    ]


def test_a_failed_export_leaves_nothing_behind(chat: Chat, app: App, tmp_path: Path) -> None:
    submitted = submit_oncology_case(chat, app, tmp_path)
    target = tmp_path / "out" / "case.zip"
    target.parent.mkdir()
    letter = next(d for d in submitted.documents if d.original_name == "clinic-letter.pdf")
    lost = replace(letter, file_id="lost", sha256="f" * 64)
    with pytest.raises(FileNotFoundError):
        write_package(
            submitted.case,
            [*submitted.documents, lost],
            app.pipeline.files,
            target,
            {},
            NOW,
        )
    assert list(target.parent.iterdir()) == []


@pytest.mark.parametrize(
    ("sent", "safe"),
    [
        ("../../etc/passwd", ["etc", "passwd"]),
        ("/abs/scan.dcm", ["abs", "scan.dcm"]),
        ("C:\\Users\\me\\scan.dcm", ["Users", "me", "scan.dcm"]),
        ("a<b>:c|d?.dcm", ["a_b__c_d_.dcm"]),
        ("CD/./DICOM/IM0001", ["CD", "DICOM", "IM0001"]),
        ("bell\x07name .", ["bellname"]),
        ("..", []),
    ],
)
def test_names_are_made_safe(sent: str, safe: list[str]) -> None:
    assert safe_parts(sent) == safe


def test_duplicate_and_nameless_files_get_names_of_their_own() -> None:
    rows = [
        document("labs", "Report.pdf"),
        replace(document("labs", "report.pdf"), file_id="second"),
        replace(document("labs", "report.pdf"), file_id="third"),
        replace(document("labs", "IM0001", kind="dicom"), file_id="scan-a"),
        replace(document("labs", "IM0001", kind="dicom"), file_id="scan-b"),
        replace(document("", ".."), file_id="nameless"),
        replace(document("imaging", "preview-abc.png", kind="preview"), file_id="preview"),
    ]
    assert list(package_names(rows).values()) == [
        "files/labs/Report.pdf",
        "files/labs/report (2).pdf",
        "files/labs/report (3).pdf",
        "files/labs/IM0001",
        "files/labs/IM0001 (2)",
        "files/unsorted/nameless",
        "previews/preview-abc.png",
    ]

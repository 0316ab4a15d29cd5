"""Records in the chat: what a patient sees when they send scans, photos, archives and broken
files, and what is kept. Real files, a real store, the real worker process."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image

from bot.app import App, build_app
from bot.config import Settings, load_settings
from conversations.state import ConversationKey
from conversations.steps.records import current_item
from records.checklist import ITEMS
from tests.dicom_factory import (
    DEFAULT_STUDY_DATE,
    corpus,
    uid,
    write_deep_sequence,
    write_dicomdir,
    write_report,
    write_series,
    write_truncated,
    zip_files,
)
from tests.support.console import (
    Chat,
    documents,
    make_chat,
    to_imaging,
)
from tests.support.records import mpeg2_video, pdf

TODAY = datetime.now(UTC).date()


def stored_files(app: App) -> list[Path]:
    root = app.settings.data_dir / "files"
    return [p for p in root.rglob("*") if p.is_file() and p.parent.name != "incoming"]


def ct_zip(tmp_path: Path, *, count: int = 12, study_date: date | None = None) -> Path:
    folder = tmp_path / "cd"
    files = write_series(
        folder / "DICOM", count=count, study_date=study_date or TODAY - timedelta(days=20)
    )
    return zip_files(tmp_path / "ct.zip", files, root=folder)


def test_a_zipped_ct_study_is_recognised_previewed_and_confirmed(
    chat: Chat, app: App, tmp_path: Path
) -> None:
    to_imaging(chat)
    archive = ct_zip(tmp_path, study_date=date(2026, 10, 1))
    reply = chat.say(str(archive))
    assert "Received: ct.zip" in reply
    assert "ct.zip: 12 files inside" in reply
    assert "Scans I found:" in reply
    assert "CT scan of the chest, October 1, 2026: 1 series, 12 images" in reply
    assert "Is this the scan you meant? CT scan of the chest" in reply
    picture = Path(reply.split("saved for you to open: ")[1].split(")")[0])
    with Image.open(picture) as image:
        assert image.format == "PNG" and min(image.size) >= 64
    reply = chat.press("Yes, that's it")
    assert "The scan is with your case" in reply

    kinds = sorted(d.kind for d in documents(app))
    assert kinds == sorted(["zip", *["dicom"] * 12, "preview", "contact_sheet"])
    members = [d for d in documents(app) if d.kind == "dicom"]
    assert {d.path for d in members} == {f"DICOM/IM{n:05d}" for n in range(1, 13)}
    # Encrypted at rest: no DICOM marker, no patient name, anywhere in the store.
    for path in stored_files(app):
        data = path.read_bytes()
        assert b"DICM" not in data and b"DOE^JANE" not in data

    chat.press("Done")


def test_old_imaging_in_an_oncology_case_is_flagged_kindly(chat: Chat, tmp_path: Path) -> None:
    to_imaging(chat)
    archive = ct_zip(tmp_path, study_date=TODAY - timedelta(days=200))
    reply = chat.say(str(archive))
    assert "about 7 months old" in reply
    assert "scans from the last 3 months" in reply


def test_a_series_with_gaps_and_scans_of_two_people_are_pointed_out(
    chat: Chat, tmp_path: Path
) -> None:
    to_imaging(chat)
    first = write_series(tmp_path / "cd" / "A", count=10, skip_instances=(4, 5, 6), seed="a")
    second = write_series(tmp_path / "cd" / "B", count=3, patient_name="ROE^RICHARD", seed="b")
    archive = zip_files(tmp_path / "two.zip", [*first, *second], root=tmp_path / "cd")
    reply = chat.say(str(archive))
    assert "seems to be missing (about 3 images)" in reply
    assert "belong to more than one person" in reply


def test_the_same_file_sent_twice_is_kept_once(chat: Chat, app: App, tmp_path: Path) -> None:
    to_imaging(chat)
    archive = ct_zip(tmp_path, count=3)
    chat.say(str(archive))
    before = len(documents(app))
    copy = tmp_path / "again.zip"
    copy.write_bytes(archive.read_bytes())
    reply = chat.say(str(copy))
    assert "You already sent again.zip earlier (as ct.zip), so I kept just one copy." in reply
    assert len(documents(app)) == before


def test_a_photo_of_a_scan_gets_advice_on_the_original_files(
    chat: Chat, app: App, tmp_path: Path
) -> None:
    to_imaging(chat)
    photo = tmp_path / "IMG_2041.jpg"
    Image.new("RGB", (320, 240), (40, 40, 40)).save(photo, "JPEG")
    reply = chat.say(str(photo))
    assert "IMG_2041.jpg: a photo or picture" in reply
    assert "specialists need the original scan files (called DICOM)" in reply
    assert ITEMS["imaging"].request_zh in reply  # the sentence to show hospital staff
    chat.press("Done")
    while chat.buttons[:1] == ["Send it now"]:
        chat.press("I'll get it later")
    readiness = chat.transcript[-1]
    assert "You sent photos of these; specialists need the original files:" in readiness


def test_a_report_sent_outside_the_checklist_is_sorted_with_buttons(
    chat: Chat, app: App, tmp_path: Path
) -> None:
    to_imaging(chat)
    chat.press("Not now")
    report = tmp_path / "pathology.pdf"
    report.write_bytes(b"%PDF-1.4\n% biopsy report\n")
    reply = chat.say(str(report))
    assert "pathology.pdf: a document (PDF)" in reply
    assert "Which part of the checklist is pathology.pdf?" in reply
    reply = chat.press("Pathology report")
    assert "pathology.pdf is now under: Pathology report" in reply
    # The intake question is still there to answer: the side question did not move it.
    state = app.pipeline.state_of(ConversationKey("console", "alice"))
    assert state is not None and state.step == "records"
    item = current_item(state)
    assert item is not None and item.id == "imaging"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: _bomb(p), "unpacks to far more than its size suggests"),
        (lambda p: _climbing_zip(p), "point outside the archive"),
        (lambda p: _write(p / "empty.pdf", b""), "empty.pdf is empty"),
        (lambda p: _mz_preamble(p), "contains a computer program"),
    ],
    ids=["zip-bomb", "climbing-zip", "empty", "program-in-preamble"],
)
def test_harmful_or_empty_files_are_refused_and_nothing_is_kept(
    chat: Chat, app: App, tmp_path: Path, make: Callable[[Path], Path], expected: str
) -> None:
    to_imaging(chat)
    path = make(tmp_path)
    reply = chat.say(str(path))
    assert expected in reply
    assert documents(app) == []
    assert stored_files(app) == []
    # And the conversation goes on, to the next item of the checklist.
    assert "Records, item 3 of" in chat.choose("done")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: _write(p / "scan.dcm", bytes(range(256)) * 40), "doesn't look like a scan file"),
        (lambda p: write_truncated(_one_slice(p)), "looks cut off"),
        (lambda p: write_deep_sequence(p / "deep.dcm", 5000), "scan file I couldn't read"),
    ],
    ids=["random-bytes-named-dcm", "truncated", "deeply-nested"],
)
def test_broken_scan_files_are_explained_and_kept_for_the_coordinator(
    chat: Chat, app: App, tmp_path: Path, make: Callable[[Path], Path], expected: str
) -> None:
    to_imaging(chat)
    path = make(tmp_path)
    reply = chat.say(str(path))
    assert expected in reply
    assert len(documents(app)) == 1 and documents(app)[0].problem


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _one_slice(folder: Path) -> Path:
    return write_series(folder / "one", count=1, rows=128, cols=128)[0]


def _bomb(folder: Path) -> Path:
    path = folder / "records.zip"
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("scan.dcm", "w", force_zip64=True) as member,
    ):
        zeros = bytes(1024 * 1024)
        for _ in range(512):
            member.write(zeros)
    return path


def _climbing_zip(folder: Path) -> Path:
    path = folder / "cd.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("DICOM/IM1", b"fine")
        archive.writestr("../../etc/cron.d/evil", b"* * * * * root true")
    return path


def _mz_preamble(folder: Path) -> Path:
    source = _one_slice(folder)
    data = bytearray(source.read_bytes())
    data[0:2] = b"MZ"
    return _write(folder / "viewer.dcm", bytes(data))


def test_an_upload_link_is_offered_for_big_files(chat: Chat) -> None:
    to_imaging(chat)
    reply = chat.press("Big files or a disc: get an upload link")
    assert "a whole folder such as a hospital disc" in reply
    # No PUBLIC_BASE_URL here: said plainly, no broken link.
    assert "The upload page is not switched on for this service yet" in reply


def test_a_scan_of_someone_else_is_pointed_out_after_the_patient_confirmed_theirs(
    chat: Chat, tmp_path: Path
) -> None:
    to_imaging(chat)
    reply = chat.say(str(ct_zip(tmp_path, count=3)))
    assert "The scan names: JANE DOE, born" in reply
    chat.press("Yes, that's it")
    other = write_series(tmp_path / "other" / "MR", count=3, patient_name="ROE^RICHARD", seed="r")
    reply = chat.say(str(zip_files(tmp_path / "mri.zip", other, root=tmp_path / "other")))
    assert "doesn't match the patient's" in reply
    assert "Please check that these are the patient's own scans." in reply


def test_a_disc_whose_index_lists_files_that_did_not_arrive_is_pointed_out(
    chat: Chat, app: App, tmp_path: Path
) -> None:
    to_imaging(chat)
    disc = tmp_path / "disc"
    series = write_series(disc / "DICOM" / "ST1", count=6)
    index = write_dicomdir(disc, series, extra_references=[("..", "..", "etc", "passwd")])
    sent = [index, *series[:4]]  # two images left behind
    reply = chat.say(str(zip_files(tmp_path / "disc.zip", sent, root=disc)))
    assert "The disc's index lists 2 files that did not arrive." in reply
    assert "disc.zip: 5 files inside" in reply
    assert not any("passwd" in d.path for d in documents(app))


def test_a_case_over_its_quota_is_told_plainly(
    settings_with_small_quota: App, tmp_path: Path
) -> None:
    chat = make_chat(settings_with_small_quota)
    to_imaging(chat)
    big = tmp_path / "scan-archive.zip"
    big.write_bytes(os.urandom(2 * 1024 * 1024))
    reply = chat.say(str(big))
    assert "This case has reached the most it can hold, so I didn't keep scan-archive.zip." in reply
    assert documents(settings_with_small_quota) == []


@pytest.fixture
def settings_with_small_quota(settings: Settings) -> Iterator[App]:
    env = {"DATA_DIR": str(settings.data_dir), "DATABASE_URL": settings.database_url}
    app = build_app(load_settings({**env, "CASE_QUOTA_MB": "1"}))
    yield app
    app.close()


def _cd_with_viewer(tmp_path: Path) -> Path:
    """A hospital CD zipped: the scans, and the viewer program the disc carries."""
    folder = tmp_path / "cd"
    scans = write_series(folder / "DICOM", count=3)
    path = tmp_path / "disc.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for scan in scans:
            archive.write(scan, scan.relative_to(folder).as_posix())
        archive.writestr("VIEWER/VIEWER.EXE", b"MZ\x90\x00" + bytes(200))
        archive.writestr("VIEWER/dicomlib.dll", b"MZ\x90\x00" + bytes(100))
        archive.writestr("AUTORUN.INF", b"[autorun]\r\nopen=VIEWER\\VIEWER.EXE\r\n")
        archive.writestr("RUN.BAT", b"@echo off\r\nstart VIEWER\\VIEWER.EXE\r\n")
        archive.writestr("start.sh", b"#!/bin/sh\nwine VIEWER/VIEWER.EXE\n")
        archive.writestr("Viewer.app/Contents/Info.plist", b"<?xml version='1.0'?><plist/>")
        archive.writestr("README", b"\x7fELF\x02\x01\x01" + bytes(60))  # a program by content
        archive.writestr("report.txt", b"CT chest, no change.\n")
    return path


def test_a_viewer_inside_a_zipped_cd_is_left_out_and_the_patient_is_told(
    chat: Chat, app: App, tmp_path: Path
) -> None:
    to_imaging(chat)
    reply = chat.say(str(_cd_with_viewer(tmp_path)))
    assert reply.count("programs inside (such as a disc viewer)") == 1
    assert "disc.zip had 7 programs inside" in reply
    kept = [d for d in documents(app) if d.parent_file_id]
    assert sorted(d.path for d in kept) == [
        "DICOM/IM00001",
        "DICOM/IM00002",
        "DICOM/IM00003",
        "report.txt",
    ]
    for path in stored_files(app):  # nothing of the programs is in the store, even encrypted
        assert path.stat().st_size > 0
    assert len(stored_files(app)) == len({d.sha256 for d in documents(app)})


def test_an_archive_of_nothing_but_a_program_is_refused(
    chat: Chat, app: App, tmp_path: Path
) -> None:
    to_imaging(chat)
    path = tmp_path / "viewer.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("VIEWER.EXE", b"MZ\x90\x00" + bytes(200))
    reply = chat.say(str(path))
    assert "viewer.zip contains a computer program" in reply
    assert documents(app) == [] and stored_files(app) == []


def test_problems_inside_an_archive_are_told_as_for_loose_files(
    chat: Chat, app: App, tmp_path: Path
) -> None:
    to_imaging(chat)
    folder = tmp_path / "cd"
    good = write_series(folder / "DICOM", count=2)
    cut = write_truncated(write_series(folder / "CUT", count=1, seed="cut")[0])
    deep = write_deep_sequence(folder / "DICOM" / "IM00099", 5000)
    archive = zip_files(tmp_path / "cd.zip", [*good, cut, deep], root=folder)
    reply = chat.say(str(archive))
    assert "IM00001 (in cd.zip) looks cut off" in reply
    assert "IM00099 (in cd.zip) is a scan file I couldn't read" in reply
    assert len([d for d in documents(app) if d.parent_file_id]) == 4  # all kept


def test_many_broken_files_inside_an_archive_are_told_in_few_lines(
    chat: Chat, tmp_path: Path
) -> None:
    to_imaging(chat)
    folder = tmp_path / "cd"
    broken = [
        write_truncated(write_series(folder / f"S{n}", count=1, seed=f"s{n}")[0], seed=f"t{n}")
        for n in range(6)
    ]
    reply = chat.say(str(zip_files(tmp_path / "cd.zip", broken, root=folder)))
    assert reply.count("(in cd.zip) looks cut off") == 3
    assert "3 more files in cd.zip have problems like these" in reply


def test_a_scan_in_a_format_without_a_decoder_is_kept_and_explained(
    chat: Chat, app: App, tmp_path: Path
) -> None:
    to_imaging(chat)
    reply = chat.say(str(mpeg2_video(tmp_path / "video.dcm")))
    assert "saved in a compressed format I can't open. The files are safely kept" in reply
    assert [d.kind for d in documents(app)] == ["dicom"]


@pytest.mark.skipif(corpus("dcm_qa_ts") is None, reason="shared/corpora is not beside the project")
def test_a_real_jpeg_2000_scan_is_previewed(chat: Chat, tmp_path: Path) -> None:
    to_imaging(chat)
    source = (corpus("dcm_qa_ts") or Path()) / "In" / "9.dcm"  # Siemens MR, JPEG 2000
    copy = tmp_path / "9.dcm"
    copy.write_bytes(source.read_bytes())
    reply = chat.say(str(copy))
    assert "Is this the scan you meant? MRI scan" in reply
    assert "compressed format" not in reply


def test_a_password_protected_pdf_is_met_with_a_request_for_an_unlocked_copy(
    chat: Chat, app: App, tmp_path: Path
) -> None:
    to_imaging(chat)
    path = _write(tmp_path / "report.pdf", pdf(user_password="1234"))
    reply = chat.say(str(path))
    assert "report.pdf is protected by a password" in reply
    assert "Please send a copy without the password" in reply
    assert "a document (PDF)" in reply  # kept, for a coordinator who may know the password
    assert [d.problem for d in documents(app)] == ["locked_pdf"]


def test_a_pdf_with_javascript_is_kept_and_flagged_for_the_coordinator(
    chat: Chat, app: App, tmp_path: Path
) -> None:
    to_imaging(chat)
    path = _write(tmp_path / "report.pdf", pdf(js="app.launchURL('http://example.invalid');"))
    reply = chat.say(str(path))
    assert "report.pdf: a document (PDF)" in reply
    assert "couldn't" not in reply and "password" not in reply  # nothing for the patient to do
    assert [d.problem for d in documents(app)] == ["pdf_javascript"]


def test_a_folder_path_typed_at_the_console_sends_every_file_under_it(
    chat: Chat, app: App, tmp_path: Path
) -> None:
    to_imaging(chat)
    disc = tmp_path / "CD"
    write_series(disc / "DICOM" / "S1", count=4, study_date=TODAY - timedelta(days=10))
    (disc / "README.TXT").write_text("Hospital disc\n")
    (disc / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    reply = chat.say(f'"{disc}"')  # dragged into the terminal, quoted
    assert "CT scan of the chest" in reply and "1 series, 4 images" in reply
    sent = [d for d in documents(app) if d.kind not in ("preview", "contact_sheet")]
    assert sorted(d.path for d in sent) == [
        "CD/DICOM/S1/IM00001",
        "CD/DICOM/S1/IM00002",
        "CD/DICOM/S1/IM00003",
        "CD/DICOM/S1/IM00004",
        "CD/README.TXT",
    ]


def test_counts_of_one_are_told_in_the_singular(chat: Chat, tmp_path: Path) -> None:
    to_imaging(chat)
    archive = ct_zip(tmp_path, count=1)
    reply = chat.say(str(archive))
    assert "ct.zip: 1 file inside" in reply
    assert "1 series, 1 image" in reply and "1 images" not in reply


def test_old_scans_are_told_in_years_in_one_paragraph(chat: Chat, tmp_path: Path) -> None:
    to_imaging(chat)
    folder = tmp_path / "cd"
    files = []
    for n, years in enumerate((23, 5, 3)):
        files += write_series(
            folder / f"S{n}",
            count=2,
            seed=f"old{n}",
            study_date=TODAY - timedelta(days=round(years * 365.25)),
        )
    reply = chat.say(str(zip_files(tmp_path / "old.zip", files, root=folder)))
    assert reply.count("Some of these scans are older than specialists usually want") == 1
    assert "(scans from the last 3 months)" in reply
    assert "about 23 years old" in reply and "about 5 years old" in reply
    assert "months old" not in reply
    assert reply.count("If you have more recent scans") == 1


def test_a_report_among_the_scans_is_not_counted_as_an_image(chat: Chat, tmp_path: Path) -> None:
    to_imaging(chat)
    folder = tmp_path / "cd"
    scans = write_series(folder / "CT", count=3, seed="withsr", study_date=DEFAULT_STUDY_DATE)
    (folder / "SR").mkdir()
    report = write_report(
        folder / "SR" / "SR00001",
        study_uid=uid("withsr:study"),
        series_uid=uid("withsr:sr"),
        sop_uid=uid("withsr:sr:1"),
    )
    reply = chat.say(str(zip_files(tmp_path / "cd.zip", [*scans, report], root=folder)))
    assert "2 series, 3 images" in reply


def test_an_iphone_photo_is_taken_as_a_photo(chat: Chat, app: App, tmp_path: Path) -> None:
    pillow_heif.register_heif_opener()
    to_imaging(chat)
    path = tmp_path / "IMG_0042.HEIC"
    Image.new("RGB", (120, 80), (180, 180, 180)).save(path, format="HEIF")
    reply = chat.say(str(path))
    assert "IMG_0042.HEIC: a photo or picture" in reply
    assert "Photos of films or screens help" in reply
    assert [d.kind for d in documents(app)] == ["image"]

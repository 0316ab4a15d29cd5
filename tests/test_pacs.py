"""Imaging in a real Orthanc: studies a patient sends reach it (original and a de-identified
copy), coordinators open the copy through a signed link of the web app, an erasure removes
both, and Orthanc being down only delays the viewer."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import aiohttp
import pydicom
import pytest

from bot.app import App, build_app
from bot.config import ConfigError, load_settings
from bot.imaging import pushing
from bot.queue_cli import _show
from bot.runner import public_web_app
from bot.web import start_web_app
from handlers.casework.operations import Actor
from handlers.privacy.person import Person
from records.deidentify import Deidentifier
from storage.orthanc import OrthancClient
from storage.pacs import StudyRow
from tests.dicom_factory import uid, write_series, zip_files
from tests.support.console import Chat, make_chat, to_imaging
from tests.support.orthanc import RunningOrthanc, free_port

pytestmark = pytest.mark.databases("sqlite")

PATIENT = "ZEBRAFINCH^OSWALD"


def _app(tmp_path: Path, orthanc_url: str, web_port: int = 8080) -> App:
    return build_app(
        load_settings(
            {
                "DATA_DIR": str(tmp_path / "data"),
                "ORTHANC_URL": orthanc_url,
                "ORTHANC_USER": "huizhen",
                "ORTHANC_PASSWORD": "test-orthanc-password",
                "PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}",
            }
        )
    )


@pytest.fixture
def pacs(orthanc: RunningOrthanc, tmp_path: Path) -> Iterator[tuple[App, RunningOrthanc, int]]:
    orthanc.empty()
    port = free_port()
    app = _app(tmp_path, orthanc.url, port)
    yield app, orthanc, port
    app.close()


def _scans(tmp_path: Path) -> Path:
    """A 40-slice CT and a three-series MR study, on one CD."""
    root = tmp_path / "cd"
    files = write_series(
        root / "DICOM" / "CT",
        count=40,
        seed="ct40",
        patient_name=PATIENT,
        study_date=date(2026, 5, 10),
    )
    mr_study = uid("mr:study")
    for number in range(3):
        files += write_series(
            root / "DICOM" / f"MR{number}",
            count=4,
            seed=f"mr{number}",
            modality="MR",
            patient_name=PATIENT,
            study_uid=mr_study,
            study_date=date(2026, 6, 1),
            series_description=f"SERIES {number}",
        )
    return zip_files(tmp_path / "cd.zip", files, root=root)


def _submit(chat: Chat, app: App, tmp_path: Path) -> str:
    """A case with the scans sent at its imaging item, submitted; returns its reference."""
    to_imaging(chat)
    chat.say(str(_scans(tmp_path)))
    while "Yes, that's it" in chat.buttons:
        chat.press("Yes, that's it")
    chat.choose("done")
    while chat.option_ids[:1] == ["upload"]:
        chat.choose("later")
    chat.choose("continue")
    chat.choose("submit")
    return app.queue.list()[0].reference


def _studies(app: App) -> list[StudyRow]:
    assert app.imaging is not None
    case = app.queue.list()[0]
    return app.imaging.tables.for_cases([case.id])


def _qido(orthanc: RunningOrthanc, **query: str) -> list[dict[str, dict[str, list[object]]]]:
    found: list[dict[str, dict[str, list[object]]]] = orthanc.get(
        "/dicom-web/studies", **query
    ).json()
    return found


def _value(study: dict[str, dict[str, list[object]]], tag: str) -> object:
    return (study.get(tag, {}).get("Value") or [None])[0]


def test_studies_reach_orthanc_with_a_deidentified_copy(
    pacs: tuple[App, RunningOrthanc, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app, orthanc, _ = pacs
    assert app.imaging is not None
    reference = _submit(make_chat(app), app, tmp_path)
    assert app.imaging.push.run_pending() == 2
    studies = _studies(app)
    assert len(studies) == 2 and all(s.pushed_at is not None for s in studies)

    # QIDO-RS: four studies, two originals and their copies.
    everything = _qido(orthanc, includefield="PatientBirthDate,NumberOfStudyRelatedSeries")
    assert len(everything) == 4
    for study in studies:
        original = _qido(orthanc, StudyInstanceUID=study.study_uid)[0]
        copy = _qido(
            orthanc,
            StudyInstanceUID=study.deidentified_uid,
            includefield="PatientBirthDate,NumberOfStudyRelatedSeries,NumberOfStudyRelatedInstances",
        )[0]
        assert study.deidentified_uid != study.study_uid
        assert _value(original, "00100010") == {"Alphabetic": PATIENT}
        assert PATIENT not in str(copy) and "ZEBRAFINCH" not in str(copy)
        assert _value(copy, "00100020") != _value(original, "00100020")
        assert _value(copy, "00100030") is None  # no birth date
        assert _value(copy, "00201206") == _value(original, "00201206")  # series
        assert _value(copy, "00201208") == _value(original, "00201208")  # instances
    by_size = {_value(s, "00201208"): s for s in everything}
    assert set(by_size) == {40, 12}

    # Consistent: the patient's seed maps the same UID the same way again.
    seed = app.imaging.tables.seed_for_case(studies[0].case_id, datetime.now(UTC))
    again = pydicom.dcmread(io.BytesIO(_first_file(tmp_path)))
    Deidentifier(seed).apply(again)
    assert again.StudyInstanceUID in {s.deidentified_uid for s in studies}

    _show(app, reference, Actor("7001", "cli"))
    shown = capsys.readouterr().out
    assert shown.count("Viewer (de-identified copy, link valid for one hour): http") == 2
    assert "not ready" not in shown


def _first_file(tmp_path: Path) -> bytes:
    return (tmp_path / "cd" / "DICOM" / "CT" / "IM00001").read_bytes()


def test_the_signed_link_opens_that_study_only(
    pacs: tuple[App, RunningOrthanc, int], tmp_path: Path
) -> None:
    app, orthanc, port = pacs
    assert app.imaging is not None
    _submit(make_chat(app), app, tmp_path)
    app.imaging.push.run_pending()
    ct, mr = sorted(_studies(app), key=lambda s: s.study_uid != uid("ct40:study"))
    link = app.imaging.links.link(ct.id)
    assert link is not None and link.startswith(f"http://127.0.0.1:{port}/v/")
    other = app.imaging.links.token(mr.id)

    async def browse() -> dict[str, int]:
        async def no_files(_: object) -> None:
            return None

        runner = await start_web_app(public_web_app(app, no_files), "127.0.0.1", port)
        seen: dict[str, int] = {}
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(link) as page:
                    seen["landing"] = page.status
                    body = await page.text()
                assert "web-viewer/app/viewer.html?series=" in body
                series = body.split("series=")[1].split('"')[0]
                copy = orthanc.get(f"/studies/{ct.orthanc_deidentified}/instances").json()[0]
                original = orthanc.get(f"/studies/{ct.orthanc_original}/instances").json()[0]
                paths = {
                    "viewer": "web-viewer/app/viewer.html",
                    "slice": f"web-viewer/instances/jpeg95-{copy['ID']}_0",
                    "copy_file": f"instances/{copy['ID']}/file",
                    "original_file": f"instances/{original['ID']}/file",
                    "original_slice": f"web-viewer/instances/jpeg95-{original['ID']}_0",
                    "series": f"web-viewer/series/{series}",
                    "dicomweb": f"dicom-web/studies/{ct.deidentified_uid}/series",
                    "original": f"dicom-web/studies/{ct.study_uid}/series",
                    "other_series": f"web-viewer/series/{orthanc.studies()[0]}",
                    "all_studies": "studies",
                    "escape": "web-viewer/app/../../studies",
                }
                for name, path in paths.items():
                    async with session.get(link + path) as response:
                        seen[name] = response.status
                        if name == "dicomweb":
                            assert len(await response.json()) == 1
                async with session.get(link.replace(link.split("/")[4], _tampered(other))) as bad:
                    seen["tampered"] = bad.status
        finally:
            await runner.cleanup()
        return seen

    seen = asyncio.run(browse())
    assert seen == {
        "landing": 200,
        "viewer": 200,
        "slice": 200,
        "copy_file": 200,
        "original_file": 404,
        "original_slice": 404,
        "series": 200,
        "dicomweb": 200,
        "original": 404,
        "other_series": 404,
        "all_studies": 404,
        "escape": 404,
        "tampered": 404,
    }
    opened = [e for e in app.casework.audit.entries() if e.action == "viewer_opened"]
    assert len(opened) == 1


def _tampered(token: str) -> str:
    """The token with the last character of its signature changed."""
    return token[:-1] + ("1" if token[-1] == "0" else "0")


def _pushed(app: App, orthanc: RunningOrthanc, tmp_path: Path) -> Chat:
    """A submitted case whose two studies are in Orthanc, each with its copy; its chat."""
    assert app.imaging is not None
    chat = make_chat(app)
    _submit(chat, app, tmp_path)
    app.imaging.push.run_pending()
    assert len(orthanc.studies()) == 4
    return chat


def test_an_erasure_removes_both_copies_from_orthanc(
    pacs: tuple[App, RunningOrthanc, int], tmp_path: Path
) -> None:
    app, orthanc, _ = pacs
    _pushed(app, orthanc, tmp_path)
    assert app.imaging is not None
    case = app.queue.list()[0]
    app.erasure.erase(
        Person(case.channel, case.user_key, case.chat_key), actor="patient", farewell=None
    )
    assert orthanc.studies() == []
    assert app.imaging.tables.for_cases([case.id]) == []


def test_withdrawing_consent_removes_the_studies_from_orthanc(
    pacs: tuple[App, RunningOrthanc, int], tmp_path: Path
) -> None:
    app, orthanc, _ = pacs
    chat = _pushed(app, orthanc, tmp_path)
    assert app.imaging is not None
    chat.say("/withdraw")
    chat.press("Yes, withdraw my consent")
    assert app.queue.list()[0].status == "withdrawn"
    app.imaging.push.run_pending()
    assert orthanc.studies() == []
    assert app.imaging.tables.for_cases([app.queue.list()[0].id]) == []


def test_orthanc_down_delays_the_viewer_and_the_push_retries(
    orthanc: RunningOrthanc,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    orthanc.empty()
    app = _app(tmp_path, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    try:
        assert app.imaging is not None
        reference = _submit(make_chat(app), app, tmp_path)
        assert app.imaging.push.run_pending() == 0
        studies = _studies(app)
        assert [s.attempts for s in studies] == [1, 1]
        assert all(s.next_try_at is not None for s in studies)
        _show(app, reference, Actor("7001", "cli"))
        assert capsys.readouterr().out.count("Viewer not ready yet") == 2
        assert app.imaging.push.run_pending() == 0  # not due yet: no second try at once

        # Orthanc is back; half a minute later the retry is due and goes through.
        app.imaging.orthanc = app.imaging.push.orthanc = OrthancClient(
            orthanc.url, orthanc.user, orthanc.password
        )
        app.imaging.push.clock = lambda: datetime.now(UTC) + timedelta(minutes=1)
        assert app.imaging.push.run_pending() == 2
        assert len(orthanc.studies()) == 4
        _show(app, reference, Actor("7001", "cli"))
        assert "Viewer not ready yet" not in capsys.readouterr().out
    finally:
        app.close()


def test_the_orthanc_settings(tmp_path: Path) -> None:
    base = {"DATA_DIR": str(tmp_path)}
    assert load_settings(base).orthanc_url is None
    settings = load_settings({**base, "ORTHANC_URL": "http://orthanc:8042/"})
    assert settings.orthanc_url == "http://orthanc:8042" and not settings.orthanc_keep_dates
    with pytest.raises(ConfigError, match="ORTHANC_PASSWORD"):
        load_settings({**base, "ORTHANC_URL": "http://orthanc:8042", "ORTHANC_USER": "huizhen"})
    with pytest.raises(ConfigError, match="ORTHANC_URL"):
        load_settings({**base, "ORTHANC_URL": "orthanc:8042"})
    with pytest.raises(ConfigError, match="ORTHANC_KEEP_DATE"):
        load_settings({**base, "ORTHANC_KEEP_DATE": "yes"})
    app = build_app(load_settings(base))
    try:
        assert app.imaging is None  # without the setting nothing changes
    finally:
        app.close()


def test_the_console_pushes_too(pacs: tuple[App, RunningOrthanc, int], tmp_path: Path) -> None:
    """`huizhen run` with no platform serves the console: its studies reach Orthanc as well,
    while it runs, and the push stops with it."""
    app, orthanc, _ = pacs
    with pushing(app.imaging, interval=0.1):
        _submit(make_chat(app), app, tmp_path)
        deadline = time.monotonic() + 60
        while len(orthanc.studies()) < 4:
            assert time.monotonic() < deadline, "the console's studies never reached Orthanc"
            time.sleep(0.2)
    assert all(study.pushed_at is not None for study in _studies(app))

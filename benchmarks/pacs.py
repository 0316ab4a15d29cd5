"""Speed of Huizhen's push of a study to Orthanc against a plain loop posting the same files.

A synthetic 500-slice CT series (512 x 512, 16-bit, about 256 MB; tests/dicom_factory.py) is
put into the encrypted file store and recorded as the checked documents of a submitted case.
A real Orthanc (Debian's package, with its DICOMweb and web viewer plugins; started on
loopback with its own storage folder, as the tests do) then takes, in the same run:

  1. Huizhen's push (handlers/imaging/pacs.py `PacsPush.run_pending`): each file decrypted in
     memory, stored as it is, de-identified (dicognito, the patient's seed) and stored again:
     two instances in Orthanc per slice, a few in flight at once;
  2. a plain loop: `requests.post(url + "/instances", file bytes)` for each of the same files,
     read from plain files on disk, one after the other, on one kept-alive session.

Orthanc is emptied before each round; each figure is the best of three rounds, the two taking
turns. rate = slices of the series per second; ratio = Huizhen's rate / the loop's.

    .venv/bin/python benchmarks/pacs.py            # 500 slices
    .venv/bin/python benchmarks/pacs.py --quick    # 100 slices

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from bot.app import App, build_app  # noqa: E402
from bot.config import load_settings  # noqa: E402
from storage.documents import DocumentRow  # noqa: E402
from storage.models import Case, PacsInstance, PacsStudy  # noqa: E402
from tests.dicom_factory import uid, write_series  # noqa: E402
from tests.support.orthanc import RunningOrthanc, running_orthanc  # noqa: E402

ROUNDS = 3


def submitted_case(app: App, files: list[Path]) -> None:
    """The series as a submitted case's checked documents, in the real store and tables."""
    now = datetime.now(UTC)
    rows = []
    for number, path in enumerate(files):
        with path.open("rb") as source:
            stored = app.pipeline.files.put(source)
        rows.append(
            DocumentRow(
                file_id=f"bench-{number}",
                case_id="bench-case",
                item="imaging",
                sha256=stored.sha256,
                size=stored.size,
                original_name=path.name,
                stored_at=now,
                kind="dicom",
                details_json=json.dumps({"study_uid": uid("bench:study")}),
            )
        )
    app.documents.add(rows)
    with app.engine.begin() as conn:
        conn.execute(
            insert(Case.__table__),  # type: ignore[attr-defined]
            {
                "id": "bench-case",
                "reference": "HZ-BENCH",
                "channel": "console",
                "user_key": "bench",
                "chat_key": "bench",
                "status": "submitted",
                "locale": "en",
                "area": "oncology",
                "verdict": "good",
                "readiness": 100,
                "answers_json": "{}",
                "submitted_at": now,
                "updated_at": now,
            },
        )


def huizhen_push(app: App) -> float:
    """Seconds for Huizhen to push the whole series again (its rows reset first)."""
    assert app.imaging is not None
    with app.engine.begin() as conn:
        conn.execute(PacsInstance.__table__.delete())  # type: ignore[attr-defined]
        conn.execute(PacsStudy.__table__.delete())  # type: ignore[attr-defined]
    started = time.perf_counter()
    pushed = app.imaging.push.run_pending()
    elapsed = time.perf_counter() - started
    assert pushed == 1, "the push did not finish"
    return elapsed


def plain_loop(orthanc: RunningOrthanc, files: list[Path]) -> float:
    session = requests.Session()
    session.auth = (orthanc.user, orthanc.password)
    started = time.perf_counter()
    for path in files:
        response = session.post(
            orthanc.url + "/instances",
            data=path.read_bytes(),
            headers={"Content-Type": "application/dicom"},
        )
        response.raise_for_status()
    elapsed = time.perf_counter() - started
    session.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 slices instead of 500")
    args = parser.parse_args()
    slices = 100 if args.quick else 500
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        files = write_series(
            folder / "series", count=slices, rows=512, cols=512, seed="bench", study_uid=None
        )
        (folder / "orthanc").mkdir()
        with running_orthanc(folder / "orthanc") as orthanc:
            settings = load_settings(
                {
                    "DATA_DIR": str(folder / "data"),
                    "ORTHANC_URL": orthanc.url,
                    "ORTHANC_USER": orthanc.user,
                    "ORTHANC_PASSWORD": orthanc.password,
                }
            )
            app = build_app(settings)
            try:
                submitted_case(app, files)
                ours, loop = [], []
                for _ in range(ROUNDS):
                    orthanc.empty()
                    ours.append(huizhen_push(app))
                    orthanc.empty()
                    loop.append(plain_loop(orthanc, files))
                in_orthanc = len(orthanc.get("/instances").json())
            finally:
                app.close()
    ours_rate = slices / min(ours)
    loop_rate = slices / min(loop)
    print(f"Huizhen push (decrypt, store, de-identify, store): {ours_rate:,.1f} slices/s")
    print(f"plain loop POST /instances:                        {loop_rate:,.1f} slices/s")
    # Each slice is two instances in Orthanc (the original and the copy): per instance stored
    # the push runs at twice its slice rate.
    print(f"ratio {ours_rate / loop_rate:.2f} (aim: 0.8); instances in Orthanc {in_orthanc}")
    print(f"per instance stored: {2 * ours_rate / loop_rate:.2f}")
    print(
        json.dumps(
            {
                "slices": slices,
                "huizhen_slices_per_s": round(ours_rate, 1),
                "plain_loop_slices_per_s": round(loop_rate, 1),
                "ratio": round(ours_rate / loop_rate, 2),
                "ratio_per_instance_stored": round(2 * ours_rate / loop_rate, 2),
            }
        )
    )


if __name__ == "__main__":
    main()

"""Speed of Huizhen's DICOM inspection against dcm2niix, and memory while ingesting 2 GB.

A synthetic 500-slice CT series (512 x 512, 16-bit, about 256 MB; tests/dicom_factory.py) is
written to a temporary folder, and the same files into a zip (ZIP_STORED: the members are read
as they are, so the zip figure measures inspection, not inflating). With the page cache warm
(everything read once first), the same run measures files per second for:

  1. `records.dicom.read_instance` over the loose files, in one process and in two worker
     processes (a ProcessPoolExecutor, chunks of files per task; pool started before timing);
  2. `read_instance` over the zip members, through `zipfile.ZipFile.open` streams;
  3. a raw read of the same bytes (open, read the whole file);
  4. `dcm2niix -b o` (its pass that writes only the BIDS JSON sidecar, no image) over the
     folder: the venv's binary, one process, its start-up included.

Each figure is the best of five rounds, the rounds taking the readers in turn.
ratio = best Huizhen figure / dcm2niix.

Then the ingest of one 2 GB upload (a DICOM multi-frame file, 4,096 frames of 512 x 512,
written in chunks): in a fresh child interpreter, `storage.files.FileStore.put` (encrypting)
followed by `read_instance` on the stored file through `FileStore.open`. The child's peak RSS
is `resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`, taken in the parent before any other
child exists. The 2 GB files are deleted as soon as that is measured.

    .venv/bin/python benchmarks/dicom.py                    # 500 slices, 2 GB upload
    .venv/bin/python benchmarks/dicom.py --quick            # 100 slices, 256 MB upload
    .venv/bin/python benchmarks/dicom.py --profile /tmp/dicom.prof
    .venv/bin/python benchmarks/dicom.py --disc 3000        # the hospital disc only
    .venv/bin/python benchmarks/dicom.py --disc 3000 --disc-side 512

The hospital disc (`--disc N`, 3,000 files by default in a full run): a synthetic disc of N
images in four series of two studies (CT chest, MR brain; 256 x 256 by default), its DICOMDIR,
a report PDF and a viewer EXE, sent through the upload page's path end to end in a fresh child
interpreter: the app as `huizhen run` builds it (SQLite, encrypted store), a console patient at
the scans item, the real upload page over HTTP on 127.0.0.1 (begin and an 8 MB-or-less chunk
per file, three at a time as the page's script does; the spool encrypted), "done", then the
jobs: stored, checked in the worker process, previews drawn, ONE report in the chat. Files/s is
the disc's files over that whole time; beside it, dcm2niix's metadata pass over the same folder
in the same run. Peak RSS is the larger of the child (web app, pipeline) and its analysis worker.

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Run as a script, Python puts benchmarks/ first on the path, where telegram.py would shadow
# the python-telegram-bot package: put the project root there instead.
ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == ROOT / "benchmarks":
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.filewriter import dcmwrite  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian  # noqa: E402

from handlers.ingest.analysis import AnalysisRequest, StoreAccess, analyse  # noqa: E402
from records.dicom import DicomUnreadable, read_instance  # noqa: E402
from storage.files import FileStore  # noqa: E402
from tests.dicom_factory import (  # noqa: E402
    ct_slice_hu,
    uid,
    write_dicomdir,
    write_series,
    zip_files,
)

SLICES = 500
QUICK_SLICES = 100
UPLOAD_MB = 2048
QUICK_UPLOAD_MB = 256
ROUNDS = 5
WORKERS = 2
CHUNK_FILES = 25
FRAME_SIDE = 512
WRITE_CHUNK = 16 * 1024 * 1024


@dataclass(frozen=True)
class Throughput:
    files: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.files / self.seconds


def timed(run: Callable[[], int]) -> Throughput:
    started = time.perf_counter()
    files = run()
    return Throughput(files, time.perf_counter() - started)


def best_rounds(rounds: int, runs: dict[str, Callable[[], int]]) -> dict[str, Throughput]:
    """The best of `rounds` for each; rounds interleave the readers, so a busy moment on the
    machine (other processes share the two cores) does not land on one reader only."""
    best: dict[str, Throughput] = {}
    for _ in range(rounds):
        for name, run in runs.items():
            result = timed(run)
            if name not in best or result.per_s > best[name].per_s:
                best[name] = result
    return best


# --- the four readers -----------------------------------------------------------------------


def inspect_files(paths: list[str]) -> int:
    """read_instance over loose files; returns how many were images (all of them, or the
    check below fails)."""
    images = 0
    for path in paths:
        with open(path, "rb") as stream:
            images += read_instance(stream).is_image
    return images


def inspect_zip(archive: Path) -> int:
    images = 0
    with zipfile.ZipFile(archive) as zipped:
        for info in zipped.infolist():
            with zipped.open(info) as member:
                images += read_instance(member).is_image  # type: ignore[arg-type]
    return images


def ingest_zip(archive: Path, store_root: Path) -> int:
    """Huizhen's whole path for an uploaded zip, as the worker process runs it: the zip
    encrypted into the store, then unpacked member by member into the store (encrypted), each
    member recognised and its header read back through decryption."""
    key = bytes(32)
    store = FileStore(store_root, key)
    with archive.open("rb") as stream:
        stored = store.put(stream)
    request = AnalysisRequest(StoreAccess(str(store_root), key), stored.sha256, stored.size, 2**40)
    analysis = analyse(request, lambda done, total: None)
    return sum(1 for entry in analysis.entries if entry.instance and entry.instance.is_image)


def raw_read(paths: list[str]) -> int:
    for path in paths:
        with open(path, "rb") as stream:
            stream.read()
    return len(paths)


def dcm2niix(folder: Path, scratch: Path, count: int) -> int:
    binary = Path(sys.executable).parent / "dcm2niix"
    out = Path(tempfile.mkdtemp(dir=scratch))
    done = subprocess.run(
        [str(binary), "-b", "o", "-o", str(out), str(folder)], capture_output=True, check=False
    )
    written = list(out.glob("*.json"))
    shutil.rmtree(out)
    if done.returncode != 0 or not written:
        raise RuntimeError(f"dcm2niix failed ({done.returncode}): {done.stderr[-500:]!r}")
    return count


def inspect_in_workers(pool: ProcessPoolExecutor, paths: list[str]) -> int:
    chunks = [paths[i : i + CHUNK_FILES] for i in range(0, len(paths), CHUNK_FILES)]
    return sum(pool.map(inspect_files, chunks))


# --- the 2 GB ingest --------------------------------------------------------------------------


def write_upload(path: Path, megabytes: int) -> int:
    """A multi-frame CT of `megabytes` MiB of pixels, header written by pydicom and the pixel
    data streamed in chunks (never the whole file in memory). Returns its size."""
    frame = (ct_slice_hu(FRAME_SIDE, FRAME_SIDE).astype(np.int32) + 1024).astype("<u2").tobytes()
    frames = megabytes * 1024 * 1024 // len(frame)
    header = Dataset()
    header.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    header.SOPInstanceUID = uid("upload:sop")
    header.StudyInstanceUID = uid("upload:study")
    header.SeriesInstanceUID = uid("upload:series")
    header.Modality = "CT"
    header.PatientName = "BENCH^UPLOAD"
    header.InstanceNumber = 1
    header.NumberOfFrames = frames
    header.SamplesPerPixel = 1
    header.PhotometricInterpretation = "MONOCHROME2"
    header.Rows = header.Columns = FRAME_SIDE
    header.BitsAllocated = header.BitsStored = 16
    header.HighBit = 15
    header.PixelRepresentation = 0
    header.RescaleSlope, header.RescaleIntercept = 1, -1024
    header.file_meta = FileMetaDataset()
    header.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    header.file_meta.MediaStorageSOPClassUID = header.SOPClassUID
    header.file_meta.MediaStorageSOPInstanceUID = header.SOPInstanceUID
    dcmwrite(path, header, enforce_file_format=True)
    per_chunk = max(1, WRITE_CHUNK // len(frame))
    with path.open("ab") as out:
        length = frames * len(frame)
        out.write(b"\xe0\x7f\x10\x00OW\x00\x00" + length.to_bytes(4, "little"))
        written = 0
        while written < frames:
            batch = min(per_chunk, frames - written)
            out.write(frame * batch)
            written += batch
    return path.stat().st_size


def ingest_child(upload: Path, store_root: Path) -> None:
    """Runs in a fresh interpreter: what the worker does with one uploaded file."""
    # Interpreter and imports (pydicom, numpy, cryptography): the floor under the peak.
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    store = FileStore(store_root, secrets.token_bytes(32))
    started = time.perf_counter()
    with upload.open("rb") as source:
        stored = store.put(source)
    put_seconds = time.perf_counter() - started
    with store.open(stored.sha256) as stream:
        instance = read_instance(stream)
    print(
        json.dumps(
            {
                "size": stored.size,
                "put_seconds": put_seconds,
                "baseline_rss_mb": baseline_kb / 1024,
                "frames": instance.frames,
                "is_image": instance.is_image,
            }
        )
    )


@dataclass(frozen=True)
class Ingest:
    size: int
    put_seconds: float
    baseline_rss_mb: float
    frames: int
    is_image: bool
    peak_rss_mb: float


def measure_ingest(scratch: Path, megabytes: int) -> Ingest:
    upload = scratch / "upload.dcm"
    store_root = scratch / "store"
    try:
        write_upload(upload, megabytes)
        done = subprocess.run(
            [sys.executable, __file__, "--ingest-child", str(upload), str(store_root)],
            capture_output=True,
            text=True,
            check=False,
        )
        # No other child has ended yet: this is the ingest child's peak.
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    finally:
        upload.unlink(missing_ok=True)
        shutil.rmtree(store_root, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"ingest child failed: {done.stderr[-2000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return Ingest(peak_rss_mb=peak_kb / 1024, **report)


# --- the hospital disc, end to end ---------------------------------------------------------

DISC_FILES = 3000
DISC_SIDE = 256
DISC_SERIES = (
    ("CT", "CHEST", "ct", "AXIAL 1.0"),
    ("CT", "CHEST", "ct", "CORONAL 3.0"),
    ("MR", "BRAIN", "mr", "T1 AXIAL"),
    ("MR", "BRAIN", "mr", "T2 AXIAL"),
)
UPLOADS_AT_ONCE = 3  # bot/static/upload.js WORKERS
MINIMAL_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def write_disc(root: Path, count: int, side: int) -> list[Path]:
    """A hospital disc: DICOM/<series>/IM*, a DICOMDIR, a report PDF and a viewer program."""
    images: list[Path] = []
    per_series = count // len(DISC_SERIES)
    for number, (modality, part, study, description) in enumerate(DISC_SERIES):
        size = per_series if number < len(DISC_SERIES) - 1 else count - len(images)
        images += write_series(
            root / "DICOM" / f"S{number:07d}",
            count=size,
            rows=side,
            cols=side,
            modality=modality,
            body_part=part,
            study_uid=uid(f"disc:{study}"),
            seed=f"disc:{number}",
            series_description=description,
        )
    index = write_dicomdir(root, images)
    report = root / "REPORT" / "REPORT.PDF"
    report.parent.mkdir()
    report.write_bytes(MINIMAL_PDF)
    viewer = root / "VIEWER" / "VIEWER.EXE"
    viewer.parent.mkdir()
    viewer.write_bytes(b"MZ\x90\x00" + bytes(4096))
    return [index, report, viewer, *images]


async def send_disc(app: Any, console: Any, link: str, files: list[Path], root: Path) -> float:
    """The upload page's requests for every file, a few at once, then "done" (which stores,
    checks and reports, as the web app does)."""
    from aiohttp.test_utils import TestClient, TestServer

    from bot.channels.console import CHANNEL
    from bot.upload_page import UploadPage
    from bot.web import make_web_app

    async def announce(grant: Any, uploads: Any) -> None:
        await asyncio.to_thread(app.announce_uploads, grant, uploads)
        await app.after_update({CHANNEL: console}, {CHANNEL: console}, console)

    page = UploadPage(app.upload_tokens, app.uploads, announce)
    async with TestClient(TestServer(make_web_app(None, page))) as client:
        waiting = list(files)

        async def sender() -> None:
            while waiting:
                file = waiting.pop()
                data = file.read_bytes()
                path = file.relative_to(root).as_posix()
                body = {"name": file.name, "relative_path": path, "size": len(data)}
                async with client.post(f"{link}/files", json={**body, "fingerprint": path}) as r:
                    upload_id = (await r.json())["id"]
                async with client.put(f"{link}/files/{upload_id}?offset=0", data=data) as r:
                    if not (await r.json())["complete"]:
                        raise RuntimeError("an upload did not complete")

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(UPLOADS_AT_ONCE)))
        sent = time.perf_counter() - started
        async with client.post(f"{link}/done") as response:
            if (await response.json())["announced"] != len(files):
                raise RuntimeError("not every file was announced")
    return sent


def disc_child(root: Path, data_dir: Path) -> None:
    """Runs in a fresh interpreter: the disc through the upload page, end to end."""
    from bot.app import build_app
    from bot.config import load_settings
    from tests.support.console import documents, make_chat, to_imaging, upload_link_path

    files = sorted(path for path in root.rglob("*") if path.is_file())
    env = {
        "DATA_DIR": str(data_dir),
        "PUBLIC_BASE_URL": "https://huizhen.example",
        "CASE_QUOTA_MB": "20000",
    }
    app = build_app(load_settings(env))
    try:
        chat = make_chat(app)
        to_imaging(chat)
        link, _ = upload_link_path(chat)
        before = len(chat.screen.getvalue())
        started = time.perf_counter()
        upload_seconds = asyncio.run(send_disc(app, chat.channel, link, files, root))
        seconds = time.perf_counter() - started
        screen = chat.screen.getvalue()[before:]
        stored = documents(app)
    finally:
        app.close()  # the worker ends: its peak is counted in RUSAGE_CHILDREN
    print(
        json.dumps(
            {
                "files": len(files),
                "seconds": seconds,
                "upload_seconds": upload_seconds,
                "reports": screen.count("I've checked what you sent"),
                "missing_flags": screen.count("seems to be missing")
                + screen.count("did not arrive"),
                "dicom_stored": sum(1 for row in stored if row.kind == "dicom"),
                "previews": sum(1 for row in stored if row.kind in ("preview", "contact_sheet")),
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            }
        )
    )


@dataclass(frozen=True)
class Disc:
    files: int
    images: int
    seconds: float
    upload_seconds: float
    reports: int
    missing_flags: int
    dicom_stored: int
    previews: int
    rss_mb: float
    worker_rss_mb: float
    dcm2niix: Throughput

    @property
    def per_s(self) -> float:
        return self.files / self.seconds

    @property
    def peak_rss_mb(self) -> float:
        return max(self.rss_mb, self.worker_rss_mb)


def measure_disc(scratch: Path, count: int, side: int) -> Disc:
    root = scratch / "disc"
    files = write_disc(root, count, side)
    raw_read([str(path) for path in files])  # warm, as for dcm2niix
    done = subprocess.run(
        [sys.executable, __file__, "--disc-child", str(root), str(scratch / "data")],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"disc child failed: {done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    shutil.rmtree(scratch / "data", ignore_errors=True)
    peer = best_rounds(ROUNDS, {"dcm2niix": lambda: dcm2niix(root / "DICOM", scratch, count)})
    shutil.rmtree(root, ignore_errors=True)
    return Disc(images=count, dcm2niix=peer["dcm2niix"], **result)


def disc_rows(disc: Disc) -> list[tuple[str, str]]:
    return [
        ("hospital disc: files (images + DICOMDIR, PDF, EXE)", f"{disc.files:,}"),
        ("  end to end through the upload page (files/s)", f"{disc.per_s:,.0f}"),
        ("  dcm2niix -b o over the same images (files/s)", f"{disc.dcm2niix.per_s:,.0f}"),
        ("  ratio end to end / dcm2niix", f"{disc.per_s / disc.dcm2niix.per_s:.3f}"),
        ("  of the time, the page's uploads (s)", f"{disc.upload_seconds:,.1f}"),
        (
            "  of the time, storing, checking, reporting (s)",
            f"{disc.seconds - disc.upload_seconds:,.1f}",
        ),
        ("  reports in the chat", f"{disc.reports}"),
        (
            "  peak RSS, app / analysis worker (MB)",
            f"{disc.rss_mb:,.0f} / {disc.worker_rss_mb:,.0f}",
        ),
    ]


def disc_ok(disc: Disc) -> bool:
    return disc.reports == 1 and disc.missing_flags == 0 and disc.dicom_stored == disc.images


def disc_json(disc: Disc) -> dict[str, Any]:
    return {
        "disc_files": disc.files,
        "disc_files_per_s": round(disc.per_s, 1),
        "disc_dcm2niix_files_per_s": round(disc.dcm2niix.per_s, 1),
        "disc_ratio": round(disc.per_s / disc.dcm2niix.per_s, 3),
        "disc_reports": disc.reports,
        "disc_peak_rss_mb": round(disc.peak_rss_mb, 1),
    }


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=SLICES)
    parser.add_argument("--upload-mb", type=int, default=UPLOAD_MB)
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_SLICES} slices, {QUICK_UPLOAD_MB} MB"
    )
    parser.add_argument("--profile", type=Path, help="write cProfile stats of read_instance")
    parser.add_argument("--ingest-child", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--disc", type=int, help=f"only the hospital disc, of N images ({DISC_FILES} in a full run)"
    )
    parser.add_argument("--disc-side", type=int, default=DISC_SIDE, help="image rows and columns")
    parser.add_argument("--disc-child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ingest_child:
        ingest_child(*args.ingest_child)
        return 0
    if args.disc_child:
        disc_child(*args.disc_child)
        return 0
    if args.disc is not None:
        return disc_only(args.disc, args.disc_side)
    slices = QUICK_SLICES if args.quick else args.slices
    upload_mb = QUICK_UPLOAD_MB if args.quick else args.upload_mb
    if slices < 1 or upload_mb < 1:
        parser.error("--slices and --upload-mb must be at least 1")

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="huizhen-bench-dicom-") as tmp:
        scratch = Path(tmp)
        # First, while no other child process has run (RUSAGE_CHILDREN keeps the maximum).
        ingest = measure_ingest(scratch, upload_mb)

        folder = scratch / "series"
        files = write_series(folder, count=slices, rows=FRAME_SIDE, cols=FRAME_SIDE, seed="bench")
        paths = [str(path) for path in files]
        archive = zip_files(
            scratch / "series.zip", files, root=scratch, compression=zipfile.ZIP_STORED
        )
        series_bytes = sum(path.stat().st_size for path in files)
        raw_read(paths)  # warm the page cache: every figure below reads warm files
        raw_read([str(archive)])

        with ProcessPoolExecutor(max_workers=WORKERS) as pool:
            inspect_in_workers(pool, paths)  # start the workers and their imports first
            best = best_rounds(
                ROUNDS,
                {
                    "single": lambda: inspect_files(paths),
                    "parallel": lambda: inspect_in_workers(pool, paths),
                    "zip": lambda: inspect_zip(archive),
                    "ingest": lambda: ingest_zip(archive, scratch / "store"),
                    "raw": lambda: raw_read(paths),
                    "dcm2niix": lambda: dcm2niix(folder, scratch, slices),
                },
            )
        disc = measure_disc(scratch, DISC_FILES // 10 if args.quick else DISC_FILES, DISC_SIDE)
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(inspect_files, paths)
            profiler.dump_stats(args.profile)
    total_seconds = time.perf_counter() - started

    single, parallel, zipped = best["single"], best["parallel"], best["zip"]
    ingested = best["ingest"]
    raw, reference = best["raw"], best["dcm2niix"]
    fastest = max(single.per_s, parallel.per_s)
    ratio = fastest / reference.per_s
    rows = [
        ("slices (512 x 512, 16-bit)", f"{slices:,}"),
        ("series on disk (MB)", f"{series_bytes / 1e6:,.0f}"),
        ("zip", "ZIP_STORED"),
        ("read_instance, 1 process (files/s)", f"{single.per_s:,.0f}"),
        (f"read_instance, {WORKERS} processes (files/s)", f"{parallel.per_s:,.0f}"),
        ("read_instance over zip members (files/s)", f"{zipped.per_s:,.0f}"),
        ("whole ingest of the zip: store, unpack, read (files/s)", f"{ingested.per_s:,.0f}"),
        ("raw read of the files (files/s)", f"{raw.per_s:,.0f}"),
        ("dcm2niix -b o (files/s)", f"{reference.per_s:,.0f}"),
        ("ratio best Huizhen / dcm2niix", f"{ratio:.3f}"),
        ("upload ingested (MB)", f"{ingest.size / 2**20:,.0f}"),
        ("FileStore.put (MB/s)", f"{ingest.size / 2**20 / ingest.put_seconds:,.0f}"),
        ("ingest child peak RSS (MB)", f"{ingest.peak_rss_mb:,.1f}"),
        ("  of which interpreter and imports (MB)", f"{ingest.baseline_rss_mb:,.1f}"),
        *disc_rows(disc),
        ("total wall time (s)", f"{total_seconds:,.1f}"),
    ]
    width = max(len(name) for name, _ in rows)
    print("Huizhen DICOM inspection benchmark")
    for name, value in rows:
        print(f"  {name:<{width}}  {value:>12}")
    ok = (
        single.files == parallel.files == zipped.files == ingested.files == slices
        and ingest.is_image
        and ingest.frames > 1
        and disc_ok(disc)
    )
    print("check: every slice and the upload read as images" if ok else "check FAILED")
    print(
        json.dumps(
            {
                "benchmark": "dicom",
                "files_per_s": round(fastest, 1),
                "dcm2niix_files_per_s": round(reference.per_s, 1),
                "ratio": round(ratio, 3),
                "raw_read_files_per_s": round(raw.per_s, 1),
                "zip_files_per_s": round(zipped.per_s, 1),
                "ingest_files_per_s": round(ingested.per_s, 1),
                "single_process_files_per_s": round(single.per_s, 1),
                "peak_rss_mb": round(ingest.peak_rss_mb, 1),
                "slices": slices,
                "upload_mb": round(ingest.size / 2**20),
                **disc_json(disc),
            }
        )
    )
    return 0 if ok else 1


def disc_only(count: int, side: int) -> int:
    if count < len(DISC_SERIES) or side < 8:
        raise SystemExit("--disc needs at least 4 images, --disc-side at least 8")
    with tempfile.TemporaryDirectory(prefix="huizhen-bench-disc-") as tmp:
        disc = measure_disc(Path(tmp), count, side)
    print("Huizhen hospital disc benchmark")
    rows = disc_rows(disc)
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value:>12}")
    ok = disc_ok(disc)
    print("check: one report, nothing missing, every image stored" if ok else "check FAILED")
    print(json.dumps({"benchmark": "dicom_disc", "disc_side": side, **disc_json(disc)}))
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DicomUnreadable as error:  # a regression in read_instance, not a benchmark figure
        sys.exit(f"read_instance refused a benchmark file: {error.problem}")

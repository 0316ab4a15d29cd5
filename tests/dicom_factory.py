"""Synthetic DICOM files written with pydicom, for tests (and the DICOM benchmark).

Everything is deterministic: UIDs derive from a seed, pixels from the slice geometry. The
default slice is a CT in Hounsfield units: air (-1000) around a soft-tissue body (40) with a
bone-bright square (1000) in the upper left, stored unsigned with intercept -1024, and a
soft-tissue window (40/400) so air shows black and bone white.
"""

from __future__ import annotations

import hashlib
import struct
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    UID,
    BasicTextSRStorage,
    CTImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MediaStorageDirectoryStorage,
    SecondaryCaptureImageStorage,
)

DEFAULT_STUDY_DATE = date(2024, 3, 1)
DEFAULT_BIRTH_DATE = date(1970, 5, 17)
AIR_HU = -1000
TISSUE_HU = 40
BONE_HU = 1000
SOFT_TISSUE_WINDOW = (40.0, 400.0)
CT_RESCALE = (1.0, -1024.0)  # slope, intercept


def uid(seed: str) -> str:
    """A valid, deterministic UID (2.25.<128-bit int>, as UUID-derived UIDs are) from a seed."""
    return "2.25." + str(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:16], "big"))


def bright_square(rows: int, cols: int) -> tuple[slice, slice]:
    """Where the bone-bright square sits in the default slice."""
    return slice(rows // 8, rows * 3 // 8), slice(cols // 8, cols * 3 // 8)


def air_corner(rows: int, cols: int) -> tuple[slice, slice]:
    """A patch of air (outside the body) in the default slice."""
    return slice(rows - rows // 16, rows), slice(cols - cols // 16, cols)


def ct_slice_hu(rows: int, cols: int) -> np.ndarray[Any, np.dtype[np.int16]]:
    """Air, a soft-tissue ellipse filling most of the field, and a bright square."""
    y, x = np.ogrid[:rows, :cols]
    inside = ((y - rows / 2) / (rows * 0.45)) ** 2 + ((x - cols / 2) / (cols * 0.45)) ** 2 <= 1
    hu = np.full((rows, cols), AIR_HU, dtype=np.int16)
    hu[inside] = TISSUE_HU
    hu[bright_square(rows, cols)] = BONE_HU
    return hu


def _stored(hu: np.ndarray[Any, Any], bits: int) -> np.ndarray[Any, Any]:
    slope, intercept = CT_RESCALE if bits == 16 else (16.0, -1024.0)
    values = np.round((hu.astype(np.float64) - intercept) / slope)
    return values.astype(np.uint16 if bits == 16 else np.uint8)


def write_instance(
    path: Path,
    *,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    instance_number: int | None = 1,
    modality: str = "CT",
    study_date: date | None = DEFAULT_STUDY_DATE,
    patient_name: str = "DOE^JANE",
    birth_date: date | None = DEFAULT_BIRTH_DATE,
    body_part: str = "CHEST",
    institution: str = "General Hospital",
    study_description: str = "CT CHEST",
    series_description: str = "AXIAL 1.0",
    rows: int = 64,
    cols: int = 64,
    bits: int = 16,
    pixels: np.ndarray[Any, Any] | None = None,
    photometric: str = "MONOCHROME2",
    window: tuple[float, float] | None = SOFT_TISSUE_WINDOW,
    images_in_acquisition: int | None = None,
    preamble: bool = True,
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> Path:
    """One image instance. `pixels` overrides the default CT slice: stored values shaped
    (rows, cols), (frames, rows, cols) or (rows, cols, 3) for RGB (uint8)."""
    ds = _patient_study_series(
        study_uid, series_uid, sop_uid, modality, study_date, patient_name, birth_date
    )
    ds.SOPClassUID = CTImageStorage if modality == "CT" else SecondaryCaptureImageStorage
    ds.BodyPartExamined = body_part
    ds.InstitutionName = institution
    ds.StudyDescription = study_description
    ds.SeriesDescription = series_description
    if instance_number is not None:
        ds.InstanceNumber = instance_number
        _set_geometry(ds, instance_number)
    if images_in_acquisition is not None:
        ds.ImagesInAcquisition = images_in_acquisition
    if pixels is None:
        pixels = _stored(ct_slice_hu(rows, cols), bits)
    _set_pixels(ds, pixels, photometric, bits)
    if photometric.startswith("MONOCHROME"):
        slope, intercept = CT_RESCALE if bits == 16 else (16.0, -1024.0)
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        if window is not None:
            ds.WindowCenter, ds.WindowWidth = window
    return _write(path, ds, preamble=preamble, transfer_syntax=transfer_syntax)


def write_series(
    folder: Path,
    *,
    count: int,
    rows: int = 64,
    cols: int = 64,
    modality: str = "CT",
    study_date: date | None = DEFAULT_STUDY_DATE,
    patient_name: str = "DOE^JANE",
    birth_date: date | None = DEFAULT_BIRTH_DATE,
    study_uid: str | None = None,
    series_uid: str | None = None,
    preamble: bool = True,
    skip_instances: Iterable[int] = (),
    body_part: str = "CHEST",
    bits: int = 16,
    seed: str = "series",
    series_description: str = "AXIAL 1.0",
    images_in_acquisition: int | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> list[Path]:
    """Instances numbered 1..count (minus `skip_instances`), one file each, IM00001 style
    names without an extension, as on a CD. The slice is computed once: this stays fast."""
    folder.mkdir(parents=True, exist_ok=True)
    study_uid = study_uid or uid(f"{seed}:study")
    series_uid = series_uid or uid(f"{seed}:series")
    pixels = _stored(ct_slice_hu(rows, cols), bits)
    skipped = set(skip_instances)
    written = []
    for number in range(1, count + 1):
        if number in skipped:
            continue
        written.append(
            write_instance(
                folder / f"IM{number:05d}",
                study_uid=study_uid,
                series_uid=series_uid,
                sop_uid=uid(f"{seed}:{series_uid}:{number}"),
                instance_number=number,
                modality=modality,
                study_date=study_date,
                patient_name=patient_name,
                birth_date=birth_date,
                body_part=body_part,
                series_description=series_description,
                bits=bits,
                pixels=pixels,
                images_in_acquisition=images_in_acquisition,
                preamble=preamble,
                transfer_syntax=transfer_syntax,
            )
        )
    return written


def write_report(
    path: Path, *, study_uid: str, series_uid: str, sop_uid: str, patient_name: str = "DOE^JANE"
) -> Path:
    """A Basic Text SR: a DICOM instance with no pixels."""
    ds = _patient_study_series(
        study_uid, series_uid, sop_uid, "SR", DEFAULT_STUDY_DATE, patient_name, None
    )
    ds.SOPClassUID = BasicTextSRStorage
    ds.InstanceNumber = 1
    ds.ValueType = "CONTAINER"
    return _write(path, ds, preamble=True, transfer_syntax=ExplicitVRLittleEndian)


def zip_files(
    zip_path: Path,
    files: Iterable[Path],
    *,
    root: Path,
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """A zip of `files`, named by their path relative to `root`."""
    with zipfile.ZipFile(zip_path, "w", compression=compression) as archive:
        for file in files:
            archive.write(file, file.relative_to(root).as_posix())
    return zip_path


def write_dicomdir(
    folder: Path, files: Sequence[Path], *, extra_references: Iterable[Sequence[str]] = ()
) -> Path:
    """A DICOMDIR in `folder` listing `files` (which must be inside it) under one patient,
    study and series record per UID met. `extra_references` adds IMAGE records with these
    raw ReferencedFileID components, e.g. ("..", "..", "etc", "passwd")."""
    records: list[Dataset] = []
    seen: set[str] = set()
    from pydicom import dcmread  # local: the factory is imported by many tests

    for file in files:
        ds = dcmread(file, stop_before_pixels=True)
        if "patient" not in seen:
            seen.add("patient")
            records.append(_record("PATIENT", PatientName=ds.PatientName, PatientID="P1"))
        if ds.StudyInstanceUID not in seen:
            seen.add(ds.StudyInstanceUID)
            records.append(_record("STUDY", StudyInstanceUID=ds.StudyInstanceUID))
        if ds.SeriesInstanceUID not in seen:
            seen.add(ds.SeriesInstanceUID)
            records.append(
                _record("SERIES", SeriesInstanceUID=ds.SeriesInstanceUID, Modality=ds.Modality)
            )
        records.append(
            _record(
                "IMAGE",
                ReferencedFileID=list(file.relative_to(folder).parts),
                ReferencedSOPInstanceUIDInFile=ds.SOPInstanceUID,
            )
        )
    for components in extra_references:
        records.append(_record("IMAGE", ReferencedFileID=list(components)))

    index = Dataset()
    index.FileSetID = "HUIZHEN"
    index.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    index.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    index.FileSetConsistencyFlag = 0
    index.DirectoryRecordSequence = DicomSequence(records)
    index.file_meta = _file_meta(MediaStorageDirectoryStorage, uid("dicomdir"))
    index.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = folder / "DICOMDIR"
    dcmwrite(path, index, enforce_file_format=True, implicit_vr=False, little_endian=True)
    return path


def write_deep_sequence(path: Path, depth: int, *, seed: str = "deep") -> Path:
    """A DICOM file whose Referenced Series Sequence nests `depth` items deep, as raw bytes:
    undefined lengths everywhere, the way a hostile file would force a recursive parser."""
    le = "<"

    def element(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
        if len(value) % 2:
            value += b"\x00" if vr == b"UI" else b" "
        return struct.pack(f"{le}HH2sH", group, elem, vr, len(value)) + value

    meta_body = element(0x0002, 0x0010, b"UI", ExplicitVRLittleEndian.encode())
    meta = element(0x0002, 0x0000, b"UL", struct.pack(f"{le}I", len(meta_body))) + meta_body
    body = element(0x0008, 0x0018, b"UI", uid(f"{seed}:sop").encode())
    body += element(0x0008, 0x0060, b"CS", b"CT")
    open_sq = struct.pack(f"{le}HH2sHI", 0x0008, 0x1115, b"SQ", 0, 0xFFFFFFFF)
    open_item = struct.pack(f"{le}HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    close_item = struct.pack(f"{le}HHI", 0xFFFE, 0xE00D, 0)
    close_sq = struct.pack(f"{le}HHI", 0xFFFE, 0xE0DD, 0)
    tail = element(0x0020, 0x000D, b"UI", uid(f"{seed}:study").encode())
    tail += element(0x0020, 0x000E, b"UI", uid(f"{seed}:series").encode())
    with path.open("wb") as out:
        out.write(b"\x00" * 128 + b"DICM" + meta + body)
        out.write((open_sq + open_item) * depth)
        out.write((close_item + close_sq) * depth)
        out.write(tail)
    return path


def write_truncated(path: Path, *, keep_fraction: float = 0.6, seed: str = "truncated") -> Path:
    """A CT instance cut off part-way through its pixel data, like an interrupted upload."""
    write_instance(
        path,
        study_uid=uid(f"{seed}:study"),
        series_uid=uid(f"{seed}:series"),
        sop_uid=uid(f"{seed}:sop"),
    )
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    return path


def _patient_study_series(
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    modality: str,
    study_date: date | None,
    patient_name: str,
    birth_date: date | None,
) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = modality
    ds.PatientName = patient_name
    ds.PatientID = "P1"
    if birth_date is not None:
        ds.PatientBirthDate = birth_date.strftime("%Y%m%d")
    if study_date is not None:
        ds.StudyDate = study_date.strftime("%Y%m%d")
        ds.SeriesDate = ds.StudyDate
    ds.StudyTime = "101500"
    ds.StudyID = "1"
    ds.AccessionNumber = "A1"
    ds.SeriesNumber = 1
    return ds


def _set_geometry(ds: Dataset, instance_number: int) -> None:
    """Axial slices 1 mm apart, so converters (dcm2niix) can stack the series."""
    ds.FrameOfReferenceUID = uid(f"{ds.StudyInstanceUID}:frame")
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [-160.0, -160.0, float(instance_number)]
    ds.SliceThickness = 1.0
    ds.PixelSpacing = [0.625, 0.625]


def _set_pixels(ds: Dataset, pixels: np.ndarray[Any, Any], photometric: str, bits: int) -> None:
    if photometric == "RGB":
        ds.SamplesPerPixel = 3
        ds.PlanarConfiguration = 0
        frames_shape = pixels.shape[:-1]
        bits = 8
    else:
        ds.SamplesPerPixel = 1
        frames_shape = pixels.shape
    if len(frames_shape) == 3:
        ds.NumberOfFrames = frames_shape[0]
    ds.Rows, ds.Columns = frames_shape[-2], frames_shape[-1]
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 1 if np.issubdtype(pixels.dtype, np.signedinteger) else 0
    ds.PixelData = pixels.tobytes()  # little endian; _write swaps for big endian


def _write(path: Path, ds: Dataset, *, preamble: bool, transfer_syntax: str) -> Path:
    syntax = UID(transfer_syntax)
    implicit = syntax == ImplicitVRLittleEndian
    little = syntax != ExplicitVRBigEndian
    if not little and "PixelData" in ds and ds.BitsAllocated > 8:
        ds.PixelData = np.frombuffer(ds.PixelData, dtype="<u2").astype(">u2").tobytes()
    if preamble:
        ds.file_meta = _file_meta(ds.SOPClassUID, ds.SOPInstanceUID)
        ds.file_meta.TransferSyntaxUID = syntax
        dcmwrite(path, ds, enforce_file_format=True, implicit_vr=implicit, little_endian=little)
    else:
        # A bare dataset: no preamble, no "DICM", no file meta (old ACR-NEMA style exports).
        dcmwrite(path, ds, implicit_vr=implicit, little_endian=little)
    return path


def _file_meta(sop_class: str, sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.ImplementationClassUID = UID(uid("huizhen-tests"))
    return meta


def _record(kind: str, **values: Any) -> Dataset:
    record = Dataset()
    record.OffsetOfTheNextDirectoryRecord = 0
    record.RecordInUseFlag = 0xFFFF
    record.OffsetOfReferencedLowerLevelDirectoryEntity = 0
    record.DirectoryRecordType = kind
    with warnings.catch_warnings():
        # Hostile references ("..") are invalid CS values: written on purpose.
        warnings.simplefilter("ignore")
        for keyword, value in values.items():
            setattr(record, keyword, value)
    return record


def corpus(name: str) -> Path | None:
    """A folder of the real scanner files kept beside the project (shared/corpora/<name>):
    looked for beside the checkout and beside each folder above it; None when absent."""
    for folder in Path(__file__).resolve().parents[1:]:
        candidate = folder / "shared" / "corpora" / name
        if candidate.is_dir():
            return candidate
    return None

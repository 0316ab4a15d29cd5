"""DICOM inspection: what a coordinator learns from an upload's headers, and what it is warned
about. Real files: pydicom's test data and synthetic series written with pydicom."""

from __future__ import annotations

import contextlib
import functools
import io
import random
import tempfile
import time
import zipfile
import zlib
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from records.dicom import (
    DicomFlag,
    DicomInstance,
    DicomProblem,
    DicomUnreadable,
    FlagCode,
    StudySummary,
    flags,
    names_match,
    read_dicomdir,
    read_instance,
    safe_referenced_path,
    summarize,
)
from storage.files import FileStore
from tests.dicom_factory import (
    DEFAULT_BIRTH_DATE,
    DEFAULT_STUDY_DATE,
    uid,
    write_deep_sequence,
    write_dicomdir,
    write_instance,
    write_report,
    write_series,
    write_truncated,
    zip_files,
)

TODAY = date(2025, 6, 1)


def inspect(path: Path | str) -> DicomInstance:
    with open(path, "rb") as stream:
        return read_instance(stream)


def problem_of(data: bytes) -> DicomProblem:
    with pytest.raises(DicomUnreadable) as caught:
        read_instance(io.BytesIO(data))
    return caught.value.problem


def sample_file(name: str) -> str:
    path = get_testdata_file(name)
    assert path is not None, name
    return str(path)


# --- reading one instance -------------------------------------------------------------------


def test_a_ct_slice_reads_as_the_patient_study_and_series_it_belongs_to(tmp_path: Path) -> None:
    [path] = write_series(tmp_path, count=1, seed="one")
    instance = inspect(path)
    assert instance.study_uid == uid("one:study")
    assert instance.series_uid == uid("one:series")
    assert instance.modality == "CT"
    assert instance.body_part == "CHEST"
    assert instance.patient_name == "DOE^JANE"
    assert instance.patient_birth_date == DEFAULT_BIRTH_DATE
    assert instance.study_date == DEFAULT_STUDY_DATE
    assert instance.study_description == "CT CHEST"
    assert instance.institution == "General Hospital"
    assert instance.instance_number == 1
    assert (instance.rows, instance.columns, instance.frames) == (64, 64, 1)
    assert instance.transfer_syntax == ExplicitVRLittleEndian
    assert instance.is_image


@pytest.mark.parametrize("preamble", [True, False], ids=["preamble", "bare"])
@pytest.mark.parametrize(
    "syntax",
    [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian],
    ids=["explicit-le", "implicit-le", "explicit-be"],
)
def test_every_encoding_with_or_without_preamble_reads_the_same(
    tmp_path: Path, preamble: bool, syntax: str
) -> None:
    path = write_instance(
        tmp_path / "x",
        study_uid=uid("s"),
        series_uid=uid("r"),
        sop_uid=uid("i"),
        instance_number=7,
        preamble=preamble,
        transfer_syntax=syntax,
    )
    instance = inspect(path)
    assert (instance.sop_uid, instance.instance_number, instance.rows) == (uid("i"), 7, 64)
    assert instance.patient_name == "DOE^JANE"
    assert instance.transfer_syntax == syntax
    assert instance.is_image


@pytest.mark.parametrize(
    ("name", "modality", "is_image"),
    [
        ("CT_small.dcm", "CT", True),
        ("MR_small_bigendian.dcm", "MR", True),
        ("MR_small_implicit.dcm", "MR", True),
        ("rtdose.dcm", "RTDOSE", True),
        ("JPEG2000.dcm", "NM", True),
        ("reportsi.dcm", "SR", False),
        ("ExplVR_BigEndNoMeta.dcm", "RTPLAN", False),
    ],
)
def test_real_files_from_other_writers(name: str, modality: str, is_image: bool) -> None:
    instance = inspect(sample_file(name))
    assert instance.modality == modality
    assert instance.is_image is is_image
    assert instance.sop_uid


def test_multiframe_files_report_their_frames() -> None:
    assert inspect(sample_file("rtdose.dcm")).frames == 15


def test_a_report_is_dicom_but_not_an_image(tmp_path: Path) -> None:
    path = write_report(tmp_path / "sr", study_uid=uid("s"), series_uid=uid("r"), sop_uid="1.2.3")
    instance = inspect(path)
    assert instance.modality == "SR"
    assert not instance.is_image


def test_zip_members_read_as_streams(tmp_path: Path) -> None:
    files = write_series(tmp_path / "cd", count=3)
    archive = zip_files(tmp_path / "cd.zip", files, root=tmp_path)
    with zipfile.ZipFile(archive) as zipped:
        numbers: set[int | None] = set()
        for name in zipped.namelist():
            with zipped.open(name) as member:
                numbers.add(read_instance(member).instance_number)  # type: ignore[arg-type]
    assert numbers == {1, 2, 3}


def test_files_from_the_encrypted_store_read_like_any_file(tmp_path: Path) -> None:
    [path] = write_series(tmp_path / "in", count=1, rows=512, cols=512)
    store = FileStore(tmp_path / "store", bytes(range(32)))
    with path.open("rb") as source:
        stored = store.put(source)
    with store.open(stored.sha256) as stream:
        assert read_instance(stream).rows == 512


def test_a_header_longer_than_the_read_ahead_is_read_from_the_file(tmp_path: Path) -> None:
    path = write_instance(
        tmp_path / "long",
        study_uid=uid("s"),
        series_uid=uid("r"),
        sop_uid=uid("i"),
        series_description="X" * 60,
        study_description="Y" * 60,
    )
    data = path.read_bytes()
    # A 100 kB private element before the pixel data, as some scanners write.
    pixel_at = data.index(b"\xe0\x7f\x10\x00")
    private = b"\x09\x00\x10\x10OB\x00\x00" + (100_000).to_bytes(4, "little") + b"\x00" * 100_000
    patched = data[:pixel_at] + private + data[pixel_at:]
    instance = read_instance(io.BytesIO(patched))
    assert instance.is_image and instance.series_description == "X" * 60


# --- what is refused ------------------------------------------------------------------------


def test_random_bytes_are_not_dicom() -> None:
    rng = random.Random(7)
    for _ in range(300):
        data = rng.randbytes(rng.randrange(0, 4000))
        assert problem_of(data) == DicomProblem.NOT_DICOM


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_no_bytes_make_inspection_fail_other_than_with_a_problem_code(data: bytes) -> None:
    with contextlib.suppress(DicomUnreadable):
        read_instance(io.BytesIO(data))


def test_empty_and_text_files_are_not_dicom() -> None:
    assert problem_of(b"") == DicomProblem.NOT_DICOM
    assert problem_of(b"Patient notes, please see attached\n" * 20) == DicomProblem.NOT_DICOM


@pytest.mark.parametrize(
    "magic", [b"MZ\x90\x00", b"\x7fELF", b"\xcf\xfa\xed\xfe", b"#!/bin/sh\n"], ids=repr
)
def test_a_preamble_that_is_also_a_program_is_refused(tmp_path: Path, magic: bytes) -> None:
    [path] = write_series(tmp_path, count=1)
    data = path.read_bytes()
    assert problem_of(magic + data[len(magic) :]) == DicomProblem.EXECUTABLE_PREAMBLE


def test_a_tiff_preamble_is_an_ordinary_dicom_file(tmp_path: Path) -> None:
    [path] = write_series(tmp_path, count=1)
    data = path.read_bytes()
    assert read_instance(io.BytesIO(b"II*\x00" + data[4:])).is_image


def test_a_sequence_nested_thousands_deep_is_refused_and_the_process_goes_on(
    tmp_path: Path,
) -> None:
    path = write_deep_sequence(tmp_path / "deep", depth=5000)
    with path.open("rb") as stream, pytest.raises(DicomUnreadable) as caught:
        read_instance(stream)
    assert caught.value.problem == DicomProblem.TOO_DEEP
    [ordinary] = write_series(tmp_path / "after", count=1)
    assert inspect(ordinary).is_image


def test_a_deflated_file_reads_like_any_other() -> None:
    instance = inspect(sample_file("image_dfl.dcm"))
    assert instance.is_image and (instance.rows, instance.columns) == (512, 512)


def test_a_deflate_bomb_is_not_inflated_whole() -> None:
    with open(sample_file("image_dfl.dcm"), "rb") as stream:
        data = stream.read()
    meta_length = int.from_bytes(data[140:144], "little")  # (0002,0000) value
    squeezer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    megabyte = squeezer.compress(b"\x00" * 2**20)
    # 1 GiB of zeros once inflated, from a few megabytes.
    bomb = data[: 144 + meta_length] + megabyte * 1024 + squeezer.flush()
    started = time.perf_counter()
    assert problem_of(bomb) == DicomProblem.NOT_DICOM
    assert time.perf_counter() - started < 10


def test_a_shallow_nested_sequence_is_fine(tmp_path: Path) -> None:
    instance = inspect(write_deep_sequence(tmp_path / "shallow", depth=3, seed="s"))
    assert instance.sop_uid == uid("s:sop")
    assert instance.study_uid == uid("s:study")


def test_an_upload_cut_off_in_the_pixels_is_truncated(tmp_path: Path) -> None:
    with (
        write_truncated(tmp_path / "cut").open("rb") as stream,
        pytest.raises(DicomUnreadable) as caught,
    ):
        read_instance(stream)
    assert caught.value.problem == DicomProblem.TRUNCATED
    with open(sample_file("MR_truncated.dcm"), "rb") as stream, pytest.raises(DicomUnreadable):
        read_instance(stream)


@settings(max_examples=150, deadline=None)
@given(fraction=st.floats(min_value=0.0, max_value=0.9999))
def test_a_cut_off_image_never_passes_for_a_complete_one(fraction: float) -> None:
    data = one_slice()
    cut = data[: int(len(data) * fraction)]
    try:
        instance = read_instance(io.BytesIO(cut))
    except DicomUnreadable as error:
        assert error.problem in (DicomProblem.TRUNCATED, DicomProblem.NOT_DICOM)
    else:
        assert not instance.is_image


@functools.cache
def one_slice() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        [written] = write_series(Path(folder), count=1, rows=32, cols=32)
        return written.read_bytes()


# --- DICOMDIR -------------------------------------------------------------------------------


def test_a_dicomdir_lists_its_files_relative_to_its_folder(tmp_path: Path) -> None:
    first = write_series(tmp_path / "DICOM" / "S1", count=2, seed="a")
    second = write_series(tmp_path / "DICOM" / "S2", count=1, seed="b")
    index_path = write_dicomdir(tmp_path, first + second)
    with index_path.open("rb") as stream:
        index = read_dicomdir(stream)
    assert index.referenced == (
        "DICOM/S1/IM00001",
        "DICOM/S1/IM00002",
        "DICOM/S2/IM00001",
    )
    assert (index.studies, index.series, index.unsafe_references) == (2, 2, 0)


def test_references_leaving_the_folder_are_ignored_and_counted(tmp_path: Path) -> None:
    files = write_series(tmp_path / "DICOM", count=1)
    index_path = write_dicomdir(
        tmp_path,
        files,
        extra_references=[("..", "..", "etc", "passwd"), ("DICOM", "..", "..", "x"), ("", "x")],
    )
    with index_path.open("rb") as stream:
        index = read_dicomdir(stream)
    assert index.referenced == ("DICOM/IM00001",)
    assert index.unsafe_references == 3


def test_a_dicomdir_is_read_without_opening_the_files_it_lists(tmp_path: Path) -> None:
    files = write_series(tmp_path / "DICOM", count=2)
    index_path = write_dicomdir(tmp_path, files)
    for file in files:
        file.unlink()
    with index_path.open("rb") as stream:
        assert len(read_dicomdir(stream).referenced) == 2


@pytest.mark.parametrize("variant", ["DICOMDIR", "DICOMDIR-bigEnd", "DICOMDIR-implicit"])
def test_dicomdirs_written_by_other_tools(variant: str) -> None:
    with open(sample_file(variant), "rb") as stream:
        index = read_dicomdir(stream)
    assert len(index.referenced) == 31
    assert all(path.count("/") >= 1 and ".." not in path.split("/") for path in index.referenced)
    assert (index.studies, index.series) == (6, 13)  # as pydicom's FileSet counts them


def test_a_plain_instance_is_not_a_dicomdir(tmp_path: Path) -> None:
    [path] = write_series(tmp_path, count=1)
    with path.open("rb") as stream, pytest.raises(DicomUnreadable):
        read_dicomdir(stream)


@given(st.text(alphabet=st.sampled_from("AB./\\:\x00 "), max_size=30))
def test_a_safe_reference_never_leaves_the_folder(file_id: str) -> None:
    path = safe_referenced_path(file_id)
    if path is not None:
        assert path and not path.startswith("/")
        assert all(part not in ("", ".", "..") for part in path.split("/"))
        assert ":" not in path and "\\" not in path


# --- summaries ------------------------------------------------------------------------------


def instance(
    sop: str,
    *,
    study: str = "1.1",
    series: str = "1.1.1",
    number: int | None = None,
    modality: str = "CT",
    is_image: bool = True,
    study_date: date | None = DEFAULT_STUDY_DATE,
    patient_name: str = "DOE^JANE",
    birth_date: date | None = DEFAULT_BIRTH_DATE,
    images_in_acquisition: int | None = None,
    z: float | None = None,
) -> DicomInstance:
    return DicomInstance(
        study_uid=study,
        series_uid=series,
        sop_uid=sop,
        modality=modality,
        body_part="CHEST",
        study_description="CT CHEST",
        series_description="AXIAL",
        study_date=study_date,
        institution="General Hospital",
        patient_name=patient_name,
        patient_birth_date=birth_date,
        transfer_syntax=ExplicitVRLittleEndian,
        instance_number=number,
        images_in_acquisition=images_in_acquisition,
        rows=512 if is_image else None,
        columns=512 if is_image else None,
        frames=1,
        is_image=is_image,
        position=None if z is None else (-160.0, -160.0, z),
        orientation=None if z is None else (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    )


def test_a_series_read_from_disk_summarises_with_its_missing_slices(tmp_path: Path) -> None:
    files = write_series(tmp_path, count=10, skip_instances=(4, 5))
    [study] = summarize(inspect(path) for path in files)
    [series] = study.series
    assert (study.instances, series.instances, series.expected, series.missing) == (8, 8, 10, 2)
    assert study.modalities == ("CT",) and study.body_parts == ("CHEST",)
    assert study.patient_name == "DOE^JANE"


def test_the_same_file_sent_twice_counts_once() -> None:
    first = [instance(f"1.{n}", number=n) for n in range(1, 4)]
    [study] = summarize(first + first[:2])
    assert study.instances == 3
    assert study.series[0].missing == 0


def test_images_in_acquisition_reveals_missing_slices_at_the_end() -> None:
    members = [instance(f"1.{n}", number=n, images_in_acquisition=5) for n in (1, 2, 3)]
    [study] = summarize(members)
    assert (study.series[0].expected, study.series[0].missing) == (5, 2)


def test_a_complete_philips_series_numbered_16_to_1280_is_not_missing_anything() -> None:
    # 680 slices 1.5 mm apart, numbered from 16 in uneven steps (how Philips numbers across
    # the acquisitions of an exam): the highest number is no count of anything.
    numbers = sorted({16 + round(n * 1264 / 679) for n in range(680)})
    members = [instance(f"1.{n}", number=number, z=n * 1.5) for n, number in enumerate(numbers)]
    [study] = summarize(members)
    [series] = study.series
    assert (series.instances, series.expected, series.missing) == (680, 680, 0)
    assert flags([study], today=TODAY, stale_after_days=None) == []


def test_slices_missing_from_the_stack_are_found_even_when_renumbered() -> None:
    # Slices 4 and 5 of 10 (2 mm apart) are gone, and the rest numbered 1..8 after them.
    places = [z for z in range(10) if z not in (4, 5)]
    members = [instance(f"1.{n}", number=n + 1, z=z * 2.0) for n, z in enumerate(places)]
    [study] = summarize(members)
    assert (study.series[0].expected, study.series[0].missing) == (10, 2)


def test_numbering_in_steps_of_two_without_positions_is_complete() -> None:
    members = [instance(f"1.{n}", number=n) for n in range(1, 40, 2)]
    [study] = summarize(members)
    assert (study.series[0].expected, study.series[0].missing) == (20, 0)
    gappy = [instance(f"1.{n}", number=n) for n in range(1, 40, 2) if n != 21]
    assert summarize(gappy)[0].series[0].missing == 1


def test_a_series_numbered_from_100_is_complete() -> None:
    members = [instance(f"1.{n}", number=n) for n in range(100, 130)]
    assert summarize(members)[0].series[0].missing == 0


def test_two_echoes_per_place_with_one_image_lost_count_one_missing() -> None:
    members = [
        instance(f"1.{z}.{echo}", number=2 * z + echo, z=float(z))
        for z in range(6)
        for echo in (1, 2)
        if (z, echo) != (3, 2)
    ]
    [study] = summarize(members)
    assert (study.series[0].expected, study.series[0].missing) == (12, 1)


def test_a_series_read_from_disk_knows_where_its_slices_lie(tmp_path: Path) -> None:
    files = write_series(tmp_path, count=6)
    assert [inspect(path).position for path in files][:2] == [
        (-160.0, -160.0, 1.0),
        (-160.0, -160.0, 2.0),
    ]
    assert inspect(files[0]).orientation == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@pytest.mark.parametrize(
    "uids",
    [
        ("2.25.329800735698586629295641978511506172918",) * 3,  # a valid, long decimal UID
        ("a3f9c2e1.44b0", "9f0c2d7e44b14c6f", "ANON.SERIES.0001"),  # hex and letters
        ("1." + "2" * 90, "1." + "3" * 90, "1." + "4" * 90),  # longer than 64
    ],
)
def test_an_anonymised_ct_with_odd_uids_is_a_scan(tmp_path: Path, uids: tuple[str, ...]) -> None:
    sop, study, series = uids
    path = write_instance(
        tmp_path / "anon.dcm", study_uid=study, series_uid=series, sop_uid=sop + "0"
    )
    read = inspect(path)
    assert (read.study_uid, read.series_uid, read.sop_uid) == (study, series, sop + "0")
    assert read.is_image


def test_a_dicm_file_whose_uids_were_blanked_is_still_a_scan(tmp_path: Path) -> None:
    junk = "\x7f\x7f"  # what a broken anonymiser left: no UID at all once read
    path = write_instance(tmp_path / "blank.dcm", study_uid=junk, series_uid=junk, sop_uid=junk)
    assert inspect(path).is_image


def test_studies_come_newest_first() -> None:
    studies = summarize(
        [
            instance("1", study="2.1", study_date=date(2020, 1, 1)),
            instance("2", study="2.2", study_date=date(2024, 1, 1)),
            instance("3", study="2.3", study_date=None),
            instance("4", study="2.4", study_date=date(2022, 1, 1)),
        ]
    )
    assert [s.study_uid for s in studies] == ["2.2", "2.4", "2.1", "2.3"]


sops = st.sampled_from([f"9.{n}" for n in range(12)])
numbers = st.one_of(st.none(), st.integers(min_value=1, max_value=15))
series_uids = st.sampled_from(["7.1", "7.2", "7.3"])


@st.composite
def instance_lists(draw: st.DrawFn) -> list[DicomInstance]:
    # One fixed description per SOP UID, so a repeated UID is the same file sent again.
    chosen = draw(st.lists(sops, max_size=30))
    layout = {sop: (draw(series_uids), draw(numbers), draw(st.booleans())) for sop in set(chosen)}
    return [
        instance(sop, series=layout[sop][0], study="8." + layout[sop][0], number=layout[sop][1])
        if layout[sop][2]
        else instance(sop, series=layout[sop][0], study="8." + layout[sop][0], is_image=False)
        for sop in chosen
    ]


@settings(max_examples=200, deadline=None)
@given(instance_lists(), st.randoms(use_true_random=False))
def test_summaries_count_each_file_once_whatever_the_order(
    members: list[DicomInstance], rng: random.Random
) -> None:
    studies = summarize(members)
    assert sum(study.instances for study in studies) == len({m.sop_uid for m in members})
    assert sum(study.images for study in studies) == len({m.sop_uid for m in members if m.is_image})
    shuffled = members[:]
    rng.shuffle(shuffled)
    assert summarize(shuffled) == studies
    for study in studies:
        for series in study.series:
            assert series.missing >= 0


# --- flags ----------------------------------------------------------------------------------


def study_of(*members: DicomInstance) -> StudySummary:
    [study] = summarize(members)
    return study


def codes(found: list[DicomFlag]) -> list[FlagCode]:
    return [flag.code for flag in found]


def test_an_old_study_is_stale_where_the_area_has_a_limit() -> None:
    old = study_of(instance("1", study_date=date(2024, 1, 1)))
    [stale] = flags([old], today=TODAY, stale_after_days=180)
    assert stale == DicomFlag(FlagCode.STALE, old.study_uid, age_days=517)
    assert flags([old], today=TODAY, stale_after_days=None) == []
    assert flags([old], today=TODAY, stale_after_days=600) == []


def test_a_study_of_someone_else_is_flagged() -> None:
    study = study_of(instance("1", patient_name="SMITH^ROBERT"))
    found = flags([study], today=TODAY, stale_after_days=None, case_patient_name="Jane Doe")
    assert found == [DicomFlag(FlagCode.PATIENT_MISMATCH, study.study_uid)]


def test_the_same_name_written_differently_is_not_a_mismatch() -> None:
    study = study_of(instance("1", patient_name="DOE^JANE"))
    assert (
        flags(
            [study],
            today=TODAY,
            stale_after_days=None,
            case_patient_name="jane doe",
            case_birth_date=DEFAULT_BIRTH_DATE,
        )
        == []
    )


def test_a_different_birth_date_is_a_mismatch() -> None:
    study = study_of(instance("1"))
    found = flags([study], today=TODAY, stale_after_days=None, case_birth_date=date(1980, 1, 1))
    assert codes(found) == [FlagCode.PATIENT_MISMATCH]


def test_anonymised_studies_never_mismatch() -> None:
    study = study_of(instance("1", patient_name="", birth_date=None))
    found = flags(
        [study],
        today=TODAY,
        stale_after_days=None,
        case_patient_name="Jane Doe",
        case_birth_date=date(1980, 1, 1),
    )
    assert found == []


def test_studies_of_two_people_are_mixed() -> None:
    studies = summarize(
        [
            instance("1", study="3.1", patient_name="DOE^JANE"),
            instance("2", study="3.2", patient_name="ROE^RICHARD"),
            instance("3", study="3.3", patient_name=""),
        ]
    )
    assert codes(flags(studies, today=TODAY, stale_after_days=None)) == [FlagCode.MIXED_PATIENTS]


def test_missing_slices_are_flagged_per_series() -> None:
    study = study_of(*(instance(f"1.{n}", number=n) for n in (1, 2, 5)))
    [flag] = flags([study], today=TODAY, stale_after_days=None)
    assert flag == DicomFlag(
        FlagCode.MISSING_INSTANCES, study.study_uid, study.series[0].series_uid, missing=2
    )


def test_reports_alone_are_nothing_usable() -> None:
    study = study_of(instance("1", modality="SR", is_image=False))
    assert codes(flags([study], today=TODAY, stale_after_days=None)) == [FlagCode.NOTHING_USABLE]
    assert codes(flags([], today=TODAY, stale_after_days=None)) == [FlagCode.NOTHING_USABLE]


# --- names ----------------------------------------------------------------------------------

words = st.text(alphabet=st.characters(categories=("Lu", "Ll")), min_size=1, max_size=8)


@given(st.lists(words, min_size=1, max_size=4), st.randoms(use_true_random=False))
def test_word_order_case_and_carets_do_not_change_a_name(
    parts: list[str], rng: random.Random
) -> None:
    dicom_style = "^".join(part.upper() for part in parts)
    shuffled = parts[:]
    rng.shuffle(shuffled)
    typed = " ".join(part.lower() for part in shuffled)
    assert names_match(dicom_style, typed)
    assert names_match(typed, dicom_style)


@given(st.text(max_size=20), st.text(max_size=20))
def test_name_comparison_is_symmetric(first: str, second: str) -> None:
    assert names_match(first, second) == names_match(second, first)


@given(st.text(max_size=20))
def test_an_anonymised_name_matches_anyone(name: str) -> None:
    assert names_match("", name)
    assert names_match("^^", name)


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("DOE^JOHN", "John Doe", True),
        ("DOE^JOHN^Q^DR", "John Doe", True),
        ("MÜLLER^JOSÉ", "Jose Muller", True),
        ("O'BRIEN^SEAN", "Sean OBrien", True),
        ("Yamada^Tarou=山田^太郎", "山田太郎", True),
        ("DOE^JOHN", "Doe Jane", False),
        ("DOE^JOHN", "John", False),
        ("SMITH^ANNA", "Anna Schmidt", False),
    ],
)
def test_names_people_would_call_the_same(first: str, second: str, same: bool) -> None:
    assert names_match(first, second) is same

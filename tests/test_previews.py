"""Previews a coordinator looks at: the right slice, windowed so anatomy shows, no text."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pillow_heif
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import (
    ExplicitVRBigEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
)

from records.classify import FileKind, sniff
from records.previews import (
    PREVIEW_SIDE,
    PreviewProblem,
    PreviewUnavailable,
    contact_sheet_png,
    photo_preview_png,
    render_instance,
    representative_index,
    series_preview_png,
)
from tests.dicom_factory import (
    air_corner,
    bright_square,
    corpus,
    ct_slice_hu,
    uid,
    write_report,
    write_series,
    write_truncated,
)
from tests.support.records import mpeg2_video, slice_file


def render(path: Path | str, **options: Any) -> np.ndarray[Any, Any]:
    with open(path, "rb") as stream:
        return np.asarray(render_instance(stream, **options))


def unavailable(path: Path | str) -> PreviewProblem:
    with open(path, "rb") as stream, pytest.raises(PreviewUnavailable) as caught:
        render_instance(stream)
    return caught.value.problem


def sample_file(name: str) -> str:
    path = get_testdata_file(name)
    assert path is not None, name
    return str(path)


def test_the_soft_tissue_window_shows_air_black_bone_white_and_tissue_grey(
    tmp_path: Path,
) -> None:
    picture = render(slice_file(tmp_path / "ct"))
    assert picture.shape == (64, 64)
    assert picture[bright_square(64, 64)].min() == 255
    assert picture[air_corner(64, 64)].max() == 0
    assert 100 < picture[32, 48] < 160  # soft tissue (40 HU) at the window's centre


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    picture = render(slice_file(tmp_path / "mono1", photometric="MONOCHROME1"))
    assert picture[bright_square(64, 64)].max() == 0
    assert picture[air_corner(64, 64)].min() == 255


def test_without_a_window_the_bright_square_still_stands_out(tmp_path: Path) -> None:
    picture = render(slice_file(tmp_path / "nowindow", window=None))
    assert picture[bright_square(64, 64)].mean() > 240
    assert picture[air_corner(64, 64)].mean() < 15


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian])
def test_other_encodings_look_the_same(tmp_path: Path, syntax: str) -> None:
    reference = render(slice_file(tmp_path / "le"))
    assert np.array_equal(render(slice_file(tmp_path / "other", transfer_syntax=syntax)), reference)


def test_a_file_without_preamble_or_meta_still_renders(tmp_path: Path) -> None:
    picture = render(slice_file(tmp_path / "bare", preamble=False))
    assert picture[bright_square(64, 64)].min() == 255


def test_the_middle_frame_of_a_multiframe_file_is_shown(tmp_path: Path) -> None:
    frames = np.zeros((5, 32, 32), dtype=np.uint16)  # air everywhere (stored 0 = -1024 HU)
    frames[2, 8:24, 8:24] = 2024  # bone only in the middle frame
    picture = render(slice_file(tmp_path / "multi", pixels=frames))
    assert picture[8:24, 8:24].min() == 255
    assert picture[:8].max() == 0


def test_colour_images_pass_through(tmp_path: Path) -> None:
    red = np.zeros((16, 24, 3), dtype=np.uint8)
    red[..., 0] = 200
    picture = render(slice_file(tmp_path / "rgb", modality="OT", photometric="RGB", pixels=red))
    assert picture.shape == (16, 24, 3)
    assert tuple(picture[8, 12]) == (200, 0, 0)


def test_a_large_slice_is_shrunk_to_fit(tmp_path: Path) -> None:
    [path] = write_series(tmp_path, count=1, rows=512, cols=384)
    picture = render(path, max_side=128)
    assert picture.shape == (128, 96)


def test_real_files_from_other_writers_render() -> None:
    assert render(sample_file("CT_small.dcm")).shape == (128, 128)
    assert render(sample_file("MR_small_bigendian.dcm")).std() > 10
    assert render(sample_file("JPEG2000.dcm")).ndim == 2
    assert render(sample_file("examples_ybr_color.dcm")).shape[-1] == 3


def test_an_upload_cut_off_in_the_pixels_has_no_preview(tmp_path: Path) -> None:
    assert unavailable(write_truncated(tmp_path / "cut")) == PreviewProblem.NO_PIXELS


def test_pixels_shorter_than_declared_have_no_preview(tmp_path: Path) -> None:
    # Declared length honest about the bytes present, but fewer than rows x columns need.
    path = slice_file(tmp_path / "short", pixels=np.zeros((64, 64), dtype=np.uint16))
    data = bytearray(path.read_bytes())
    at = data.index(b"\xe0\x7f\x10\x00")
    short = 64 * 64  # half the bytes
    data[at + 8 : at + 12] = short.to_bytes(4, "little")
    path.write_bytes(bytes(data[: at + 12 + short]))
    assert unavailable(path) == PreviewProblem.BAD_DATA


def test_a_report_has_no_preview(tmp_path: Path) -> None:
    report = write_report(tmp_path / "sr", study_uid=uid("s"), series_uid=uid("r"), sop_uid="1.2")
    assert unavailable(report) == PreviewProblem.NO_PIXELS


def test_a_compression_without_a_decoder_is_reported_as_such(tmp_path: Path) -> None:
    assert unavailable(mpeg2_video(tmp_path / "video.dcm")) == PreviewProblem.NO_DECODER


@pytest.mark.parametrize(
    "name",
    [
        "JPEG2000.dcm",  # JPEG 2000
        "MR_small_jp2klossless.dcm",  # JPEG 2000 lossless
        "MR_small_RLE.dcm",  # RLE
        "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS lossless
        "JPEGLSNearLossless_16.dcm",  # JPEG-LS near lossless
        "JPGExtended.dcm",  # 12-bit JPEG Extended
        "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline, colour
        "SC_rgb_rle.dcm",  # RLE, colour
        "image_dfl.dcm",  # Deflated
    ],
)
def test_compressed_scans_are_decoded_for_a_preview(name: str) -> None:
    picture = render(sample_file(name))
    assert picture.std() > 5  # a picture, not a blank


TS_CORPUS = corpus("dcm_qa_ts")
CORPUS_TS = (TS_CORPUS or Path()) / "In"


@pytest.mark.skipif(TS_CORPUS is None, reason="shared/corpora/dcm_qa_ts is not beside the project")
@pytest.mark.parametrize("number", range(2, 10))
def test_one_real_scanner_image_in_every_transfer_syntax_previews_the_same(number: int) -> None:
    # dcm_qa_ts: one Siemens slice saved as implicit, big endian, RLE, JPEG lossless,
    # JPEG-LS and JPEG 2000; the pixels are the same, so the previews must be.
    reference = render(CORPUS_TS / "1.dcm")
    assert np.abs(render(CORPUS_TS / f"{number}.dcm").astype(int) - reference).max() <= 1


def test_a_tiny_image_is_enlarged_to_a_readable_preview() -> None:
    with open(sample_file("JPEGLSNearLossless_16.dcm"), "rb") as stream:  # 10 x 50 pixels
        png = series_preview_png(stream)
    assert max(Image.open(io.BytesIO(png)).size) == PREVIEW_SIDE


def test_a_gigantic_declared_frame_is_refused_before_decoding(tmp_path: Path) -> None:
    path = slice_file(tmp_path / "huge", pixels=np.zeros((8, 8), dtype=np.uint16))
    data = bytearray(path.read_bytes())
    for tag in (b"\x28\x00\x10\x00US\x02\x00", b"\x28\x00\x11\x00US\x02\x00"):  # Rows, Columns
        at = data.index(tag) + len(tag)
        data[at : at + 2] = (60000).to_bytes(2, "little")
    with pytest.raises(PreviewUnavailable) as caught:
        render_instance(io.BytesIO(bytes(data)))
    assert caught.value.problem == PreviewProblem.TOO_LARGE


# --- PNGs -----------------------------------------------------------------------------------


def test_a_series_preview_is_a_png_without_text(tmp_path: Path) -> None:
    path = slice_file(tmp_path / "ct", patient_name="WANG^XIAOMING")
    with path.open("rb") as stream:
        png = series_preview_png(stream)
    image = Image.open(io.BytesIO(png))
    # A 64 x 64 slice, enlarged to be seen.
    assert image.format == "PNG" and image.size == (PREVIEW_SIDE, PREVIEW_SIDE)
    assert not image.info.get("text") and b"tEXt" not in png and b"iTXt" not in png
    assert b"WANG" not in png
    inner = tuple(slice(s.start + 8, s.stop - 8) for s in bright_square(512, 512))
    assert np.asarray(image)[inner].min() == 255


def test_a_contact_sheet_tiles_readable_slices_and_skips_the_rest(tmp_path: Path) -> None:
    files = write_series(tmp_path / "s", count=5)
    report = write_report(tmp_path / "sr", study_uid=uid("s"), series_uid=uid("r"), sop_uid="1.2")
    streams = [path.open("rb") for path in [files[0], report, *files[1:]]]
    try:
        png = contact_sheet_png(streams, columns=4, tile=32)
    finally:
        for stream in streams:
            stream.close()
    sheet = np.asarray(Image.open(io.BytesIO(png)))
    assert sheet.shape == (64, 128)  # five tiles: two rows of four
    for index in range(5):
        row, column = divmod(index, 4)
        tile = sheet[row * 32 : row * 32 + 32, column * 32 : column * 32 + 32]
        assert tile[6:10, 6:10].min() == 255  # each tile shows its slice's bright square
    assert sheet[32:, 32:].max() == 0  # the empty cells stay black


def test_a_contact_sheet_stops_reading_after_the_last_tile(tmp_path: Path) -> None:
    files = write_series(tmp_path, count=6)
    streams = [path.open("rb") for path in files]
    try:
        png = contact_sheet_png(streams, columns=2, tile=16, max_tiles=3)
        untouched = [stream.tell() for stream in streams[3:]]
    finally:
        for stream in streams:
            stream.close()
    assert Image.open(io.BytesIO(png)).size == (32, 32)
    assert untouched == [0, 0, 0]


def test_a_contact_sheet_of_nothing_viewable_is_unavailable(tmp_path: Path) -> None:
    report = write_report(tmp_path / "sr", study_uid=uid("s"), series_uid=uid("r"), sop_uid="1.2")
    with report.open("rb") as stream, pytest.raises(PreviewUnavailable):
        contact_sheet_png([stream])


# --- choosing the slice ---------------------------------------------------------------------


def test_the_representative_slice_is_the_middle_one_by_instance_number() -> None:
    assert representative_index([5, 1, 3, 2, 4]) == 2  # instance 3
    assert representative_index([2, 1]) == 1  # instance 1 of 1..2
    assert representative_index([None, 7, None]) == 0
    assert representative_index([10]) == 0
    with pytest.raises(ValueError):
        representative_index([])


def test_the_default_slice_has_the_documented_anatomy() -> None:
    hu = ct_slice_hu(64, 64)
    assert hu[bright_square(64, 64)].min() == 1000 and hu[air_corner(64, 64)].max() == -1000


# --- photos ---------------------------------------------------------------------------------


@pytest.mark.parametrize("image_format", ["HEIF", "JPEG", "TIFF", "WEBP", "PNG"])
def test_a_phone_photo_is_previewed_upright_and_without_its_exif(image_format: str) -> None:
    # A photo taken with the phone turned: stored 80 x 40, EXIF says rotate to 40 x 80.
    if image_format == "HEIF":  # Pillow writes HEIF once pillow-heif registered it
        pillow_heif.register_heif_opener()
    photo = Image.new("RGB", (80, 40), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 clockwise
    exif[0x010F] = "Apple"
    out = io.BytesIO()
    photo.save(out, format=image_format, exif=exif.tobytes())
    data = out.getvalue()
    assert sniff(data, "IMG_0001") is FileKind.IMAGE
    png = photo_preview_png(io.BytesIO(data))
    preview = Image.open(io.BytesIO(png))
    assert preview.format == "PNG" and preview.size == (40, 80)
    assert b"Apple" not in png and b"eXIf" not in png
    red, green, _ = preview.convert("RGB").getpixel((20, 40))  # type: ignore[misc]
    assert red > 150 and green < 80


def test_something_that_is_no_picture_has_no_photo_preview() -> None:
    with pytest.raises(PreviewUnavailable):
        photo_preview_png(io.BytesIO(b"not a picture at all"))


def test_a_scan_in_the_htj2k_syntax_is_previewed(tmp_path: Path) -> None:
    # No HTJ2K encoder is installed; an HTJ2K decoder also reads part-1 JPEG 2000
    # codestreams, which is what this file carries under the HTJ2K transfer syntax.
    dataset = pydicom.dcmread(slice_file(tmp_path / "ct"))
    dataset.compress(JPEG2000Lossless)
    dataset.file_meta.TransferSyntaxUID = HTJ2KLossless
    dataset.save_as(tmp_path / "htj2k.dcm", enforce_file_format=True)
    picture = render(tmp_path / "htj2k.dcm")
    assert picture[bright_square(64, 64)].min() == 255

"""Pictures of DICOM images for coordinators: one windowed slice per series, and contact
sheets. Only pixels are drawn, never text, so no patient detail is burned into a preview.

Memory stays bounded: one frame of one file is decoded at a time (pydicom reads just the
frame asked for), and a frame larger than MAX_FRAME_PIXELS is refused before decoding.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any, BinaryIO

from records.dicom import (
    DeflatedExplicitVRLittleEndian,
    DicomInstance,
    DicomUnreadable,
    ExplicitVRLittleEndian,
    read_deflated,
    read_instance,
)

# numpy, Pillow and pydicom's pixel handlers take most of a second to import: each function
# imports what it uses, so they load at the first preview, not when the bot starts.
if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from PIL import Image
    from pydicom.dataset import Dataset


@cache
def _heif_opener() -> None:
    """iPhone photos are HEIC: Pillow opens them once pillow-heif has registered its opener."""
    import pillow_heif

    pillow_heif.register_heif_opener()


MAX_FRAME_PIXELS = 50_000_000  # about 7000 x 7000: larger than any radiograph
DEFLATED_HEADER_ALLOWANCE = 16 * 1024 * 1024


class PreviewProblem(StrEnum):
    NO_PIXELS = "no_pixels"  # not DICOM, not an image, or a report
    NO_DECODER = "no_decoder"  # a compression no installed decoder reads
    BAD_DATA = "bad_data"  # truncated or inconsistent pixel data
    TOO_LARGE = "too_large"


class PreviewUnavailable(Exception):
    def __init__(self, problem: PreviewProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


def render_instance(stream: BinaryIO, *, max_side: int = 512, enlarge: bool = False) -> Image.Image:
    """The middle frame of the instance in `stream`, as an 8-bit greyscale (or RGB) picture
    that fits in max_side x max_side (and, with `enlarge`, fills it: a 64 x 64 ultrasound
    crop or a 10 x 50 test image is too small to see): Modality LUT (rescale) applied, then
    the file's window, or the 1st-99th percentile range when it has none; MONOCHROME1
    inverted."""
    from PIL import Image
    from pydicom.uid import UID

    try:
        header = read_instance(stream)
    except DicomUnreadable as error:
        raise PreviewUnavailable(PreviewProblem.NO_PIXELS) from error
    if not header.is_image or not header.rows or not header.columns:
        raise PreviewUnavailable(PreviewProblem.NO_PIXELS)
    frame_pixels = header.rows * header.columns
    if frame_pixels > MAX_FRAME_PIXELS:
        raise PreviewUnavailable(PreviewProblem.TOO_LARGE)
    stream.seek(0)
    try:
        frame, attributes = _middle_frame(stream, header, frame_pixels)
        picture = _to_8bit(frame, attributes)
    except NotImplementedError as error:
        raise PreviewUnavailable(PreviewProblem.NO_DECODER) from error
    except RuntimeError as error:
        # pydicom raises RuntimeError both when no plugin is installed and when all failed.
        # A compressed frame that every decoder refused may be sound (JPEG variants differ
        # in what each library takes): that is a decoder we lack, not damage we can tell.
        no_plugin = "no plugins" in str(error).lower() or "missing" in str(error).lower()
        compressed = UID(header.transfer_syntax).is_compressed
        decoder = no_plugin or compressed
        problem = PreviewProblem.NO_DECODER if decoder else PreviewProblem.BAD_DATA
        raise PreviewUnavailable(problem) from error
    except Exception as error:  # whatever a damaged file makes the decoders raise
        raise PreviewUnavailable(PreviewProblem.BAD_DATA) from error
    image = Image.fromarray(picture)
    size = _display_size(image.size, attributes, max_side, enlarge=enlarge)
    # Enlarging: bicubic keeps edges sharp; shrinking: bilinear, as before.
    larger = size[0] > image.width or size[1] > image.height
    resample = Image.Resampling.BICUBIC if larger else Image.Resampling.BILINEAR
    return image.resize(size, resample)


def _middle_frame(
    stream: BinaryIO, header: DicomInstance, frame_pixels: int
) -> tuple[NDArray[Any], Dataset]:
    """The decoded middle frame, and the dataset elements needed to display it."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.pixels.utils import pixel_array
    from pydicom.uid import UID

    index = header.frames // 2
    if header.transfer_syntax == DeflatedExplicitVRLittleEndian:
        # Deflated files cannot be read frame by frame: inflated whole, within a limit.
        pixel_bytes = frame_pixels * header.frames * 8  # up to 4 samples of 16 bits
        dataset = read_deflated(stream, limit=pixel_bytes + DEFLATED_HEADER_ALLOWANCE)
        dataset.file_meta = FileMetaDataset()
        dataset.file_meta.TransferSyntaxUID = UID(ExplicitVRLittleEndian)
        return pixel_array(dataset, index=index), dataset
    attributes = Dataset()  # receives the Image Pixel, Modality LUT and VOI LUT elements
    frame = pixel_array(
        stream, ds_out=attributes, index=index, transfer_syntax_uid=header.transfer_syntax
    )
    return frame, attributes


def representative_index(instance_numbers: Sequence[int | None]) -> int:
    """Index (into `instance_numbers`) of the middle slice by instance number; instances
    without a number count as coming after the numbered ones."""
    if not instance_numbers:
        raise ValueError("no instances")
    order = sorted(
        range(len(instance_numbers)),
        key=lambda i: (instance_numbers[i] is None, instance_numbers[i] or 0, i),
    )
    return order[(len(order) - 1) // 2]


# The long side of the picture a patient and a coordinator look at, however small the scan.
PREVIEW_SIDE = 512


def series_preview_png(stream: BinaryIO) -> bytes:
    """PNG of one windowed slice, PREVIEW_SIDE on its long side, without any text or
    metadata."""
    return _png(render_instance(stream, max_side=PREVIEW_SIDE, enlarge=True))


def photo_preview_png(stream: BinaryIO, *, max_side: int = PREVIEW_SIDE) -> bytes:
    """PNG of a photo (JPEG, PNG, HEIC/HEIF, TIFF, WEBP, GIF, BMP) the way it was taken (EXIF
    orientation applied), fitted within max_side, without EXIF or any text: a phone's
    photo carries the place it was taken."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    _heif_opener()
    try:
        with Image.open(stream) as opened:
            if opened.width * opened.height > MAX_FRAME_PIXELS:
                raise PreviewUnavailable(PreviewProblem.TOO_LARGE)
            opened.seek(0)  # the first frame of an animation or a multi-page TIFF
            picture = ImageOps.exif_transpose(opened).convert("RGB")
    except UnidentifiedImageError as error:
        raise PreviewUnavailable(PreviewProblem.NO_DECODER) from error
    except PreviewUnavailable:
        raise
    except Exception as error:  # whatever a damaged file makes the decoders raise
        raise PreviewUnavailable(PreviewProblem.BAD_DATA) from error
    picture.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    return _png(picture)


def contact_sheet_png(
    streams: Iterable[BinaryIO], *, columns: int = 4, tile: int = 192, max_tiles: int = 16
) -> bytes:
    """One tile per readable instance, left to right then top to bottom, up to max_tiles;
    instances without a picture are left out. Streams are read one at a time, and those
    after the last tile not at all."""
    from PIL import Image

    if columns < 1 or tile < 1 or max_tiles < 1:
        raise ValueError("columns, tile and max_tiles must be at least 1")
    tiles: list[Image.Image] = []
    for stream in streams:
        if len(tiles) >= max_tiles:
            break
        try:
            tiles.append(render_instance(stream, max_side=tile, enlarge=True))
        except PreviewUnavailable:
            continue
    if not tiles:
        raise PreviewUnavailable(PreviewProblem.NO_PIXELS)
    mode = "RGB" if any(t.mode == "RGB" for t in tiles) else "L"
    across = min(columns, len(tiles))
    sheet = Image.new(mode, (across * tile, math.ceil(len(tiles) / across) * tile))
    for index, picture in enumerate(tiles):
        row, column = divmod(index, across)
        left = column * tile + (tile - picture.width) // 2
        top = row * tile + (tile - picture.height) // 2
        sheet.paste(picture.convert(mode), (left, top))
    return _png(sheet)


def _to_8bit(frame: NDArray[Any], attributes: Dataset) -> NDArray[np.uint8]:
    import numpy as np
    from pydicom.pixels.processing import apply_color_lut, apply_modality_lut

    photometric = str(attributes.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        frame = apply_color_lut(frame, attributes)
    if frame.ndim == 3:  # colour: already RGB (pydicom converts YBR)
        return _scale_colour(frame)
    values = apply_modality_lut(frame, attributes).astype(np.float64, copy=False)
    lower, upper = _window(values, attributes)
    scaled = np.clip((values - lower) / (upper - lower), 0.0, 1.0) * 255.0
    if photometric == "MONOCHROME1":  # low values are white in MONOCHROME1
        scaled = 255.0 - scaled
    return np.round(scaled).astype(np.uint8)


def _window(values: NDArray[np.float64], attributes: Dataset) -> tuple[float, float]:
    import numpy as np

    try:
        center = _first_number(attributes.get("WindowCenter"))
        width = _first_number(attributes.get("WindowWidth"))
    except (TypeError, ValueError):  # a malformed window: fall back to the percentiles
        center = width = None
    if center is not None and width is not None and width > 0:
        return center - width / 2, center + width / 2
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    lower, upper = (float(v) for v in np.percentile(finite, [1.0, 99.0]))
    return (lower, upper) if upper > lower else (lower, lower + 1.0)


def _first_number(value: object) -> float | None:
    from pydicom.multival import MultiValue

    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if len(value) else None
    if value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _scale_colour(frame: NDArray[Any]) -> NDArray[np.uint8]:
    import numpy as np

    if frame.dtype == np.uint8:
        return np.ascontiguousarray(frame[..., :3])
    peak = float(frame.max()) or 1.0
    return np.round(np.clip(frame[..., :3] / peak, 0.0, 1.0) * 255.0).astype(np.uint8)


def _display_size(
    size: tuple[int, int], attributes: Dataset, max_side: int, *, enlarge: bool = False
) -> tuple[int, int]:
    """Fit within max_side (and, when `enlarge`, fill it), keeping the physical aspect ratio
    when pixels are not square."""
    width, height = float(size[0]), float(size[1])
    spacing = attributes.get("PixelSpacing")  # row spacing (vertical), column spacing
    try:
        row_mm, column_mm = float(spacing[0]), float(spacing[1])
        if row_mm > 0 and column_mm > 0 and math.isfinite(row_mm / column_mm):
            height *= row_mm / min(row_mm, column_mm)
            width *= column_mm / min(row_mm, column_mm)
    except (TypeError, ValueError, IndexError):
        pass
    scale = max_side / max(width, height)
    if not enlarge:
        scale = min(1.0, scale)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")  # no pnginfo: the file carries no text chunks
    return out.getvalue()

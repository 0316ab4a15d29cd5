"""The case summary as a PDF (fpdf2), with Debian's Noto fonts found on disk.

The patient's words can be in any script, so the text font (Noto Sans: Latin, Cyrillic, Greek,
Vietnamese) falls back to Noto Sans CJK (Chinese, Japanese, Korean) and Noto Naskh Arabic, and
to whatever other Noto fonts are installed; HarfBuzz (uharfbuzz) shapes Arabic and lays it out
right to left. Nothing here reads the health data beyond laying it out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from handlers.casework.operations import CaseworkRefused
from handlers.documents.summary import CaseSummary, Entry, Half, Section

FONT_ROOT = Path("/usr/share/fonts")
FONT_DIRS = (FONT_ROOT / "truetype" / "noto", FONT_ROOT / "opentype" / "noto")
FONT_PACKAGES = "fonts-noto-cjk fonts-noto-core"
TEXT_FAMILY = "NotoSans"


@dataclass(frozen=True)
class FontFile:
    family: str
    file_name: str
    style: str = ""
    # Which font of a collection (.ttc): Noto Sans CJK holds JP, KR, SC, TC, HK in that order.
    collection_index: int = 0
    required: bool = False


FONTS = (
    FontFile(TEXT_FAMILY, "NotoSans-Regular.ttf", required=True),
    FontFile(TEXT_FAMILY, "NotoSans-Bold.ttf", "B"),
    # Simplified Chinese glyph forms: the summary is read in mainland China.
    FontFile("NotoSansCJK", "NotoSansCJK-Regular.ttc", collection_index=2, required=True),
    FontFile("NotoSansCJK", "NotoSansCJK-Bold.ttc", "B", collection_index=2),
    FontFile("NotoNaskhArabic", "NotoNaskhArabic-Regular.ttf", required=True),
    FontFile("NotoNaskhArabic", "NotoNaskhArabic-Bold.ttf", "B"),
    # Other scripts a patient may write in, used when installed.
    FontFile("NotoSansHebrew", "NotoSansHebrew-Regular.ttf"),
    FontFile("NotoSansThai", "NotoSansThai-Regular.ttf"),
    FontFile("NotoSansDevanagari", "NotoSansDevanagari-Regular.ttf"),
    FontFile("NotoSansGeorgian", "NotoSansGeorgian-Regular.ttf"),
    FontFile("NotoSansArmenian", "NotoSansArmenian-Regular.ttf"),
    FontFile("NotoSansMongolian", "NotoSansMongolian-Regular.ttf"),
)

BODY_SIZE = 10
LINE_HEIGHT = 5.4
KEEP_WITH_HEADING = 2  # lines that must fit under a heading on its page
GREY = (110, 110, 110)
TRANSLATION_FILL = (255, 248, 220)
# Study table column widths, relative (date, modality, body part, description, series,
# images, institution, missing images).
STUDY_WIDTHS = (17, 13, 15, 26, 9, 9, 22, 11)


class FontsMissing(CaseworkRefused):
    """The fonts the summary needs are not installed; the message says how to install them."""


def render_pdf(summary: CaseSummary) -> bytes:
    pdf = _SummaryPdf(summary)
    for half in summary.halves:
        pdf.add_page()
        _half(pdf, half)
    return bytes(pdf.output())


@cache
def font_paths() -> dict[str, Path]:
    """File name -> where it is installed, for every font found; raises FontsMissing when a
    required one is absent."""
    found: dict[str, Path] = {}
    for font in FONTS:
        path = _find(font.file_name)
        if path is not None:
            found[font.file_name] = path
    missing = [font.file_name for font in FONTS if font.required and font.file_name not in found]
    if missing:
        raise FontsMissing(
            f"The case summary needs the Noto fonts, and {', '.join(missing)} could not be found "
            f"under {FONT_ROOT}. Install them with: sudo apt-get install {FONT_PACKAGES} "
            "(or run `make browser`)."
        )
    return found


def _find(file_name: str) -> Path | None:
    for folder in FONT_DIRS:
        if (folder / file_name).is_file():
            return folder / file_name
    # Other distributions keep Noto elsewhere under the same root.
    return next(FONT_ROOT.rglob(file_name), None) if FONT_ROOT.is_dir() else None


class _SummaryPdf(FPDF):
    def __init__(self, summary: CaseSummary) -> None:
        super().__init__(format="A4")
        self.summary = summary
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(True, margin=16)
        # No health data in the metadata: the reference says which case this is.
        self.set_title(f"{summary.reference} 会诊病例摘要 / Case summary")
        self.set_creator("Huizhen")
        self.set_creation_date(summary.prepared_at)
        self.has_bold = _add_fonts(self)
        self.set_text_shaping(True)

    # fpdf2 (2.8.9) sets a page's font lazily, with the first line drawn. When that line starts
    # in a fallback font (★, Chinese) and ends in another, the font lands inside the line's
    # q … Q and is dropped with it, while fpdf2 counts it as set: later lines are drawn in the
    # heading's font with the wrong glyphs, or in no font at all. Setting it first, outside any
    # line (an empty text() does), keeps every line readable.
    def multi_cell(self, *args: Any, **kwargs: Any) -> Any:
        self._pin_font()
        return super().multi_cell(*args, **kwargs)

    def write(self, *args: Any, **kwargs: Any) -> Any:
        self._pin_font()
        return super().write(*args, **kwargs)

    def cell(self, *args: Any, **kwargs: Any) -> Any:
        self._pin_font()
        return super().cell(*args, **kwargs)

    def _pin_font(self) -> None:
        if self.page and not self.current_font_is_set_on_page:
            self.text(self.x, self.y, "")

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(TEXT_FAMILY, size=8)
        self.set_text_color(*GREY)
        text = f"{self.summary.reference} · 会诊病例摘要 / Case summary · {self.page_no()}/{{nb}}"
        self.cell(0, 5, text, align="C")
        self.set_text_color(0)

    def heading(self, text: str, size: float, before: float = 3) -> None:
        # A heading stays with the first lines under it, never alone at the foot of a page.
        if self.will_page_break(before + size * 0.5 + 1 + KEEP_WITH_HEADING * LINE_HEIGHT):
            self.add_page()
        else:
            self.ln(before)
        self.set_font(TEXT_FAMILY, "B" if self.has_bold else "", size)
        self.multi_cell(0, size * 0.5, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(TEXT_FAMILY, size=BODY_SIZE)
        self.ln(1)

    def paragraph(self, text: str) -> None:
        self.multi_cell(0, LINE_HEIGHT, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _add_fonts(pdf: FPDF) -> bool:
    """Register the text font and its fallbacks; True when a bold face is available."""
    paths = font_paths()
    fallbacks: list[str] = []
    for font in FONTS:
        path = paths.get(font.file_name)
        if path is None:
            continue
        pdf.add_font(font.family, font.style, path, collection_font_number=font.collection_index)
        if font.family != TEXT_FAMILY and font.family not in fallbacks:
            fallbacks.append(font.family)
    # Not an exact match: bold text in a script without a bold face falls back to regular.
    pdf.set_fallback_fonts(fallbacks, exact_match=False)
    return "NotoSans-Bold.ttf" in paths


def _half(pdf: _SummaryPdf, half: Half) -> None:
    language = half.language
    pdf.heading(language.title, 18, before=0)
    pdf.set_text_color(*GREY)
    pdf.paragraph(half.prepared)
    pdf.set_text_color(0)
    for section in half.sections:
        _section(pdf, section)
        if section.studies and pdf.summary.studies:
            _studies(pdf, half)
    pdf.heading(language.checklist_title, 13, before=5)
    _lines(pdf, half.checklist)
    pdf.heading(language.fit_title, 13, before=5)
    _lines(pdf, half.fit)


def _section(pdf: _SummaryPdf, section: Section) -> None:
    pdf.heading(section.heading, 13)
    for entry in section.entries:
        _entry(pdf, entry)
    if section.translation:
        pdf.set_fill_color(*TRANSLATION_FILL)
        pdf.multi_cell(
            0,
            LINE_HEIGHT,
            f"{section.translation_label} {section.translation}",
            fill=True,
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
    for entry in section.documents:
        _entry(pdf, entry)


def _entry(pdf: _SummaryPdf, entry: Entry) -> None:
    """Our text, the patient's words as they wrote them, then the mark in grey."""
    if entry.text:
        pdf.write(LINE_HEIGHT, entry.text + (" " if entry.words or entry.mark else ""))
    if entry.words:
        pdf.write(LINE_HEIGHT, entry.words + (" " if entry.mark else ""))
    if entry.mark:
        pdf.set_text_color(*GREY)
        pdf.write(LINE_HEIGHT, entry.mark)
        pdf.set_text_color(0)
    pdf.ln(LINE_HEIGHT)


def _studies(pdf: _SummaryPdf, half: Half) -> None:
    pdf.ln(1)
    pdf.set_font(TEXT_FAMILY, size=8)
    with pdf.table(
        col_widths=STUDY_WIDTHS, line_height=4.2, first_row_as_headings=True, text_align="LEFT"
    ) as table:
        heading = table.row()
        for column in half.language.study_columns:
            heading.cell(column)
        for study in pdf.summary.studies:
            row = table.row()
            for cell in study.cells:
                row.cell(cell)
    pdf.set_font(TEXT_FAMILY, size=BODY_SIZE)


def _lines(pdf: _SummaryPdf, lines: Iterable[str]) -> None:
    for line in lines:
        pdf.paragraph(line)

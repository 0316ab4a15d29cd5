"""The summary as a PDF and as HTML: fonts that show Chinese, Latin, Cyrillic and Arabic (read
back with poppler: a page drawn to PNG, the text extracted), and a clear message when the fonts
are not installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from benchmarks.patient_script import COMPLAINT, PATIENT_ANSWERS
from bot.app import App
from handlers.documents import summary_pdf
from handlers.documents.summary import SECTIONS, build_summary
from handlers.documents.summary_html import render_html
from handlers.documents.summary_pdf import FontsMissing, render_pdf
from tests.support.cases import NOW, constructed_case, document, submit_oncology_case
from tests.support.console import Chat

PAGE_ONE_PNG = Path("/tmp/summary_page1.png")
HEADING_ZH = {spec.id: spec.title_zh for spec in SECTIONS}
HEADING_EN = {spec.id: spec.title_en for spec in SECTIONS}
# Directional marks and embeddings pdftotext adds around right-to-left runs.
_BIDI_CONTROLS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def poppler(tool: str) -> str:
    """pdftoppm / pdftotext from poppler-utils (`make browser` installs it); in CI it must be
    there, elsewhere the test says what is missing."""
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} (poppler-utils) is missing; CI must have it")
        pytest.skip(f"{tool} (poppler-utils) is not installed: sudo apt-get install poppler-utils")
    return path


def test_the_pdf_shows_both_halves_and_every_script_the_patient_wrote_in(
    chat: Chat, app: App, tmp_path: Path
) -> None:
    submitted = submit_oncology_case(chat, app, tmp_path)
    summary = build_summary(submitted.case, submitted.documents, {"diagnosis": "肺癌，3厘米"}, NOW)
    pdf = tmp_path / "summary.pdf"
    pdf.write_bytes(render_pdf(summary))
    assert pdf.read_bytes().startswith(b"%PDF-")

    prefix = tmp_path / "page"
    subprocess.run(
        [poppler("pdftoppm"), "-png", "-r", "80", "-f", "1", "-l", "1", str(pdf), str(prefix)],
        check=True,
        timeout=60,
    )
    (page_one,) = tmp_path.glob("page*.png")
    shutil.copyfile(page_one, PAGE_ONE_PNG)  # for a person to look at
    with Image.open(page_one) as image:
        grey = image.convert("L")
        inked = sum(grey.histogram()[:128])
        assert inked > 0.01 * grey.width * grey.height, "page 1 is (nearly) blank"

    text = subprocess.run(
        [poppler("pdftotext"), "-enc", "UTF-8", str(pdf), "-"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    plain = _BIDI_CONTROLS.sub("", text)
    for spec in SECTIONS:
        assert spec.title_zh in plain
        assert spec.title_en in plain
    assert plain.index(HEADING_ZH["purpose"]) < plain.index(HEADING_EN["basic"])
    for word in ("Рак", "лёгкого", "кашель", "химиотерапия", "سرطان", "الرئة", "肺腺癌"):
        assert word in plain, word
    assert "肺癌，3厘米" in plain  # the coordinator's translation
    assert "CHEST" in plain and "2026-05-10" in plain  # the study table
    assert submitted.case.reference in plain
    # Who the patient is, as stated in the chat, under each half's basic information.
    basic_zh = plain[plain.index(HEADING_ZH["basic"]) : plain.index(HEADING_ZH["chief_complaint"])]
    for line in (
        "姓名：Maria Ivanova",
        "性别：女",
        "出生日期/年龄：1958年3月12日",
        "国籍：Kazakhstan",
    ):
        assert line in basic_zh, line
    assert "填写人与患者关系：" in basic_zh
    basic_en = plain[plain.index(HEADING_EN["basic"]) : plain.index(HEADING_EN["chief_complaint"])]
    for line in ("Name: Maria Ivanova", "Sex: Female", "Date of birth or age: March 12, 1958"):
        assert line in basic_en, line


def test_the_rendered_headings_follow_the_section_table_with_the_studies_in_investigations(
    chat: Chat, app: App, tmp_path: Path
) -> None:
    submitted = submit_oncology_case(chat, app, tmp_path)
    summary = build_summary(submitted.case, submitted.documents, {}, NOW)
    titles = [*(spec.title_zh for spec in SECTIONS), *(spec.title_en for spec in SECTIONS)]
    pdf = tmp_path / "summary.pdf"
    pdf.write_bytes(render_pdf(summary))
    text = subprocess.run(
        [poppler("pdftotext"), "-enc", "UTF-8", str(pdf), "-"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    pdf_lines = [line.strip() for line in _BIDI_CONTROLS.sub("", text).splitlines()]
    # The HTML's headings, and "<table>" where a table starts.
    page = render_html(summary)
    found = re.findall(r"<h2>(.*?)</h2>|(<table>)", page)
    html_lines = [unescape(heading) or table for heading, table in found]
    for rendered, study_cell in ((pdf_lines, "CHEST"), (html_lines, "<table>")):
        assert [line for line in rendered if line in titles] == titles
        # The study table sits between the investigations and diagnosis headings, in each half.
        for heading in (HEADING_ZH, HEADING_EN):
            start = rendered.index(heading["investigations"])
            end = rendered.index(heading["diagnosis"])
            assert study_cell in rendered[start:end]


def test_every_checklist_line_reads_back_after_a_translation_and_across_page_breaks(
    tmp_path: Path,
) -> None:
    # A translated last section, then checklist lines that start with ★ (a fallback font's
    # glyph) and mix Latin and Chinese: once drawn in the wrong font, or in none.
    documents = [
        document(item, f"{item}.pdf")
        for item in ("diagnosis_reports", "labs", "treatment_history", "discharge_summaries")
    ]
    summary = build_summary(constructed_case(), documents, {"purpose": "x"}, NOW)
    pdf = tmp_path / "summary.pdf"
    pdf.write_bytes(render_pdf(summary))
    read = subprocess.run(
        [poppler("pdftotext"), "-enc", "UTF-8", str(pdf), "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "Syntax Error" not in read.stderr  # "No font in show": text drawn in no font
    plain = "".join(_BIDI_CONTROLS.sub("", read.stdout).split())
    for half in summary.halves:
        for line in (*half.checklist, *half.fit[:3]):
            assert "".join(line.split()) in plain, line


def test_no_heading_is_left_alone_at_the_foot_of_a_page(
    chat: Chat, app: App, tmp_path: Path
) -> None:
    submitted = submit_oncology_case(chat, app, tmp_path)
    # With this translation the Chinese half's checklist heading falls at the foot of page 1.
    summary = build_summary(submitted.case, submitted.documents, {"diagnosis": "肺癌，3厘米"}, NOW)
    headings = {spec.title_zh for spec in SECTIONS} | {spec.title_en for spec in SECTIONS}
    for half in summary.halves:
        headings |= {half.language.checklist_title, half.language.fit_title}
    pdf = tmp_path / "summary.pdf"
    pdf.write_bytes(render_pdf(summary))
    text = subprocess.run(
        # -layout: the lines top to bottom, as they stand on the page
        [poppler("pdftotext"), "-layout", "-enc", "UTF-8", str(pdf), "-"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    for number, page in enumerate(text.split("\f")[:-1], start=1):
        lines = [line.strip() for line in page.splitlines() if line.strip()]
        body = [line for line in lines if "Case summary ·" not in line]  # without the footer
        assert body[-1] not in headings, f"page {number} ends with the heading {body[-1]}"


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_html_is_standalone_escaped_and_marks_languages_and_directions() -> None:
    case = constructed_case(diagnosis='<script>alert("x")</script> سرطان الرئة')
    summary = build_summary(case, [], {"purpose": "Can open-heart surgery be avoided?"}, NOW)
    page = render_html(summary)
    assert "<script>" not in page and "&lt;script&gt;" in page
    parsed = _Page()
    parsed.feed(page)
    text = "".join(parsed.text)
    assert text.index(HEADING_ZH["basic"]) < text.index(HEADING_ZH["purpose"])
    assert text.index(HEADING_ZH["purpose"]) < text.index(HEADING_EN["basic"])
    assert "Can open-heart surgery be avoided?" in text
    halves = [attrs for tag, attrs in parsed.tags if attrs.get("class") == "half"]
    assert [(h["lang"], h["dir"]) for h in halves] == [("zh-Hans", "ltr"), ("en", "ltr")]
    words = [attrs for tag, attrs in parsed.tags if tag == "bdi"]
    assert words and all(w["dir"] == "auto" for w in words)
    # Nothing is fetched from elsewhere: no links, scripts, images or remote styles.
    assert not [tag for tag, _ in parsed.tags if tag in ("script", "link", "img", "iframe")]
    assert "http://" not in page and "https://" not in page


def test_missing_fonts_give_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(summary_pdf, "FONT_ROOT", tmp_path)
    monkeypatch.setattr(summary_pdf, "FONT_DIRS", (tmp_path,))
    summary_pdf.font_paths.cache_clear()
    try:
        with pytest.raises(FontsMissing) as raised:
            render_pdf(build_summary(constructed_case(), [], {}, NOW))
    finally:
        summary_pdf.font_paths.cache_clear()
    message = str(raised.value)
    assert "NotoSansCJK-Regular.ttc" in message
    assert "apt-get install fonts-noto-cjk fonts-noto-core" in message


def test_the_pdf_puts_the_background_and_the_main_worry_under_their_headings(
    chat: Chat, app: App, tmp_path: Path
) -> None:
    submitted = submit_oncology_case(chat, app, tmp_path)
    pdf = tmp_path / "summary.pdf"
    pdf.write_bytes(render_pdf(build_summary(submitted.case, submitted.documents, {}, NOW)))
    text = subprocess.run(
        [poppler("pdftotext"), "-enc", "UTF-8", str(pdf), "-"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    text = " ".join(_BIDI_CONTROLS.sub("", text).split())

    def under(heading: str, following: str) -> str:
        start = text.index(heading)
        return text[start : text.index(following, start)]

    illnesses = PATIENT_ANSWERS["history_illnesses"].removeprefix("text:")
    medicines = PATIENT_ANSWERS["history_medicines"].removeprefix("text:")
    # In the Chinese half, first: the patient's words under the Chinese headings.
    assert COMPLAINT in under(HEADING_ZH["chief_complaint"], HEADING_ZH["present_illness"])
    assert "ECOG 0–1" in under(HEADING_ZH["present_illness"], HEADING_ZH["past_history"])
    assert illnesses in under(HEADING_ZH["past_history"], HEADING_ZH["medications_allergies"])
    medications = under(HEADING_ZH["medications_allergies"], HEADING_ZH["investigations"])
    assert medicines in medications and "过敏： 未提供" in medications

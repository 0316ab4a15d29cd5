"""The summary as a PDF and as HTML: fonts that show Chinese, Latin, Cyrillic and Arabic (read
back with poppler: a page drawn to PNG, the text extracted), and a clear message when the fonts
are not installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from bot.app import App
from handlers.documents import summary_pdf
from handlers.documents.summary import HEADINGS_EN, HEADINGS_ZH, SECTION_IDS, build_summary
from handlers.documents.summary_html import render_html
from handlers.documents.summary_pdf import FontsMissing, render_pdf
from tests.support.cases import NOW, constructed_case, submit_oncology_case
from tests.support.console import Chat

PAGE_ONE_PNG = Path("/tmp/summary_page1.png")
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
    for section_id in SECTION_IDS:
        assert HEADINGS_ZH[section_id] in plain
        assert HEADINGS_EN[section_id] in plain
    assert plain.index(HEADINGS_ZH["purpose"]) < plain.index(HEADINGS_EN["basic"])
    for word in ("Рак", "лёгкого", "кашель", "химиотерапия", "سرطان", "الرئة", "肺腺癌"):
        assert word in plain, word
    assert "肺癌，3厘米" in plain  # the coordinator's translation
    assert "CHEST" in plain and "2026-05-10" in plain  # the study table
    assert submitted.case.reference in plain


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
    assert text.index(HEADINGS_ZH["basic"]) < text.index(HEADINGS_ZH["purpose"])
    assert text.index(HEADINGS_ZH["purpose"]) < text.index(HEADINGS_EN["basic"])
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

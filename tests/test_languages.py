"""Every supported language: complete rendering of every step, buttons that fit a phone,
emergencies recognised, and right-to-left text kept readable."""

from __future__ import annotations

from datetime import UTC, datetime
from io import BytesIO

import pytest
from babel.messages.pofile import read_po

from conversations.flow import STEPS
from conversations.i18n import (
    FIRST_STRONG_ISOLATE,
    LOCALES_DIR,
    SUPPORTED_LOCALES,
    negotiate,
    translator,
)
from conversations.questions import ALL_SUGGESTIONS
from conversations.redflags import is_red_flag
from conversations.state import (
    Consent,
    ConversationState,
    IntakeDraft,
    Question,
    RecordItem,
    SubmittedCase,
    TimelineEntry,
)
from conversations.step import Outcome
from conversations.steps.screening import emergency_message
from conversations.transition import render

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
# What a phone shows on a full-width inline button (one per row, as Huizhen lays them out)
# before cutting the label.
BUTTON_LIMIT = 48
# Suggested questions are buttons too, but whole questions; they may wrap to two lines.
QUESTION_BUTTON_LIMIT = 110
OTHER_LOCALES = [locale for locale in SUPPORTED_LOCALES if locale != "en"]


def translated_strings(locale: str) -> set[str]:
    path = LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po"
    catalog = read_po(BytesIO(path.read_bytes()), locale=locale)
    return {m.string for m in catalog if m.id and isinstance(m.string, str) and m.string}


def a_full_state(locale: str, step: str) -> ConversationState:
    consent = Consent(version="v", given_at=NOW)
    draft = IntakeDraft(
        case_id="case-1",
        for_whom="family",
        relationship="parent",
        fit_reasons=["new_diagnosis", "conflicting_advice"],
        situation={"treatment_started": "no", "records": "yes", "goal": "review"},
        area="oncology",
        subarea="hepatobiliary_gi",
        diagnosis="Liver cancer, 4 cm",
        questions=[Question(suggestion="q_staging"), Question(text="Is resection the best step?")],
        timeline=[TimelineEntry(when="March 2024", sort_key="2024-03-00", what="CT scan")],
        records={"imaging": RecordItem(status="later"), "labs": RecordItem(status="uploaded")},
        record_cursor=1,
    )
    return ConversationState(
        step=step,
        locale=locale,
        draft=draft,
        consent_health=consent,
        consent_transfer=consent,
        paused_step="questions" if step == "emergency_paused" else None,
        submitted=[SubmittedCase(case_id="case-1", reference="HZ-7K3M-9QXD", submitted_at=NOW)]
        if step == "submitted"
        else [],
    )


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_every_step_renders_in_every_language(locale: str) -> None:
    for step in STEPS:
        replies = render(a_full_state(locale, step), Outcome())
        assert replies and all(reply.text.strip() for reply in replies), (locale, step)
        if locale != "en":
            english = render(a_full_state("en", step), Outcome())
            assert replies[-1].text != english[-1].text, f"{step} is still English in {locale}"
            labels = [o.label for o in replies[-1].options]
            english_labels = [o.label for o in english[-1].options]
            same = [a for a, b in zip(labels, english_labels, strict=True) if a == b]
            # A word can be the same in both ("No" in Spanish): fine when the catalog says so.
            untranslated = [u for u in same if any(c.isalpha() for c in u)]
            assert set(untranslated) <= translated_strings(locale), (step, untranslated)


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_button_labels_fit_a_phone(locale: str) -> None:
    suggestions = {translator(locale)(label) for label in ALL_SUGGESTIONS.values()}
    for step in STEPS:
        for option in render(a_full_state(locale, step), Outcome())[-1].options:
            limit = QUESTION_BUTTON_LIMIT if option.label in suggestions else BUTTON_LIMIT
            assert len(option.label) <= limit, (locale, step, option.label)


# Languages whose labelled corpus covers every emergency ambulance services list (see
# /work/shared/domain.md), as patients and relatives write them, and the quiet sentences of
# ordinary case descriptions, negations and events that are over.
MEASURED_LOCALES = ("en", "zh_Hans", "ru", "ar", "es")


def labelled_examples(locale: str) -> tuple[list[str], list[str]]:
    path = LOCALES_DIR / locale / "redflag_examples.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    must = [line[2:] for line in lines if line.startswith("+ ")]
    must_not = [line[2:] for line in lines if line.startswith("- ")]
    return must, must_not


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_emergencies_are_recognised_in_every_language(locale: str) -> None:
    """Recall on the must-raise sentences and false alarms on the quiet ones, printed."""
    must, must_not = labelled_examples(locale)
    if locale in MEASURED_LOCALES:
        assert len(must) >= 30 and len(must_not) >= 20
    else:
        assert len(must) >= 5 and len(must_not) >= 3
    missed = [text for text in must if not is_red_flag(text)]
    alarms = [text for text in must_not if is_red_flag(text)]
    recall = 1 - len(missed) / len(must)
    figures = f"{locale}: recall {recall:.2f}, false alarms {len(alarms)}/{len(must_not)}"
    print(figures)
    # Missing an emergency is worse than a false alarm: at most one in twenty quiet sentences.
    assert recall >= 0.95, f"{figures}; missed {missed}"
    assert len(alarms) / len(must_not) <= 0.05, f"{figures}; alarms {alarms}"


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_the_emergency_answer_gives_numbers_in_every_language(locale: str) -> None:
    text = emergency_message(translator(locale))
    for number in ("120", "999", "911", "112"):
        assert number in text


def test_the_emergency_answer_puts_local_numbers_first_where_the_language_says() -> None:
    if "ja" not in SUPPORTED_LOCALES:
        pytest.skip("Japanese is not complete yet")
    text = emergency_message(translator("ja"))
    assert "日本: 119" in text


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        ("en-GB", "en"),
        ("zh-CN", "zh_Hans"),
        ("zh-hans", "zh_Hans"),
        ("zh-SG", "zh_Hans"),
        ("zh", "zh_Hans"),
        ("de-AT", "de"),
        ("ar-EG", "ar"),
        ("es-MX", "es"),
        ("ko-KR", "ko"),
        ("pt-BR", None),
        ("", None),
        ("not a language!", None),
    ],
)
def test_platform_language_hints_are_matched(hint: str, expected: str | None) -> None:
    assert negotiate(hint) == expected


@pytest.mark.parametrize("hint", ["zh-TW", "zh-HK", "zh-hant", "zh_Hant_TW"])
def test_traditional_chinese_regions_read_traditional(hint: str) -> None:
    expected = "zh_Hant" if "zh_Hant" in SUPPORTED_LOCALES else "zh_Hans"
    assert negotiate(hint) == expected


def test_dates_and_lists_follow_the_language() -> None:
    chinese = translator("zh_Hans")
    assert chinese.date(NOW.date()) == "2026年11月22日"
    assert chinese.join(["甲", "乙", "丙"]) == "甲、乙和丙"
    english = translator("en")
    assert english.date(NOW.date()) == "November 22, 2026"
    assert english.join(["a", "b", "c"]) == "a, b, and c"


def test_embedded_latin_text_is_isolated_in_right_to_left_languages() -> None:
    if "ar" not in SUPPORTED_LOCALES:
        pytest.skip("Arabic is not complete yet")
    arabic = render(a_full_state("ar", "submitted"), Outcome())[-1].text
    assert f"{FIRST_STRONG_ISOLATE}HZ-7K3M-9QXD" in arabic
    assert FIRST_STRONG_ISOLATE not in render(a_full_state("en", "submitted"), Outcome())[-1].text


def test_choosing_patterns_by_script_loses_no_emergency() -> None:
    """Running only the patterns whose script the text uses gives the same answers as running
    every language's patterns on every text."""
    samples = [
        line[2:]
        for path in sorted(LOCALES_DIR.glob("*/redflag_examples.txt"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line[:2] in ("+ ", "- ")
    ]
    assert len(samples) > 100
    for text in samples:
        assert is_red_flag(text) == is_red_flag(text, every_script=True), text

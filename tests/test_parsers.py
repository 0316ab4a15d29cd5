"""Property tests for the small parsers the conversation relies on."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conversations.questions import is_vague
from conversations.redflags import is_red_flag, is_timeline_red_flag
from conversations.reference import case_reference
from conversations.timeline import parse_entry, parse_lines

years = st.integers(min_value=1950, max_value=2039)
months = st.integers(min_value=1, max_value=12)
days = st.integers(min_value=1, max_value=28)
events = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() and "\n" not in s)
MONTH_NAMES = ["January", "Feb", "March", "Apr", "May", "June", "Jul", "August", "Sept", "Oct"]


@given(st.text(max_size=300))
def test_parse_lines_never_raises_and_accounts_for_every_line(text: str) -> None:
    entries, undated = parse_lines(text)
    assert len(entries) + len(undated) == len([line for line in text.splitlines() if line.strip()])
    for entry in entries:
        assert len(entry.sort_key) == 10 and entry.what


@given(years, months, days, events)
def test_iso_dates_sort_by_the_calendar(year: int, month: int, day: int, what: str) -> None:
    entry = parse_entry(f"{year}-{month:02d}-{day:02d}: {what}")
    assert entry is not None
    assert entry.sort_key == f"{year:04d}-{month:02d}-{day:02d}"
    assert entry.what == what.strip()


@given(years, st.sampled_from(MONTH_NAMES), events)
def test_month_names_are_understood(year: int, month: str, what: str) -> None:
    entry = parse_entry(f"{month} {year}: {what}")
    assert entry is not None
    assert entry.sort_key.startswith(f"{year:04d}-")
    assert entry.sort_key[5:7] != "00"


@given(years, months, events)
def test_chinese_dates_are_understood(year: int, month: int, what: str) -> None:
    entry = parse_entry(f"{year}年{month}月：{what}")
    assert entry is not None
    assert entry.sort_key == f"{year:04d}-{month:02d}-00"


@given(st.lists(st.tuples(years, months, days), min_size=1, max_size=8))
def test_pasted_entries_come_back_in_order(dates: list[tuple[int, int, int]]) -> None:
    text = "\n".join(f"{y}-{m:02d}-{d:02d} event {i}" for i, (y, m, d) in enumerate(dates))
    entries, undated = parse_lines(text)
    assert not undated
    keys = sorted(entry.sort_key for entry in entries)
    assert keys == sorted(f"{y:04d}-{m:02d}-{d:02d}" for y, m, d in dates)


def test_approximate_dates_are_marked() -> None:
    entry = parse_entry("about 2019 - first symptoms")
    assert entry is not None and entry.approximate and entry.sort_key == "2019-00-00"
    assert parse_entry("surgery last year") is None


# The first call compiles every language's patterns: no deadline on a shared machine.
@settings(deadline=None)
@given(st.text(max_size=200))
def test_checks_never_raise(text: str) -> None:
    assert isinstance(is_red_flag(text), bool)
    assert isinstance(is_vague(text), bool)


def test_red_flags_in_english_and_chinese() -> None:
    for text in (
        "My mother has chest pain right now",
        "he can't breathe",
        "I think she is having a stroke",
        "heavy bleeding after surgery",
        "I want to kill myself",
        "父亲胸痛得厉害",
        "呼吸困难",
        "我不想活了",
    ):
        assert is_red_flag(text), text
    for text in ("Liver cancer, 4 cm", "肝癌，约4厘米", "MRI shows a disc herniation"):
        assert not is_red_flag(text), text


def test_vague_questions_are_recognised() -> None:
    assert is_vague("What do you think?")
    assert is_vague("help")
    assert is_vague("你怎么看")
    assert not is_vague("Is surgery necessary, or is there a non-surgical option?")
    assert not is_vague("我的肝脏肿瘤可以手术切除吗？")


@given(st.text(min_size=1, max_size=64))
def test_case_references_are_short_and_unambiguous(case_id: str) -> None:
    reference = case_reference(case_id)
    assert len(reference) == 12 and reference.startswith("HZ-")
    assert not set(reference[3:]) & set("ILOU")


def test_dates_are_understood_the_way_each_language_writes_them() -> None:
    expected = {
        "Mai 2024: Biopsie": "2024-05-00",
        "12. März 2024: Operation": "2024-03-12",
        "mars 2024 : scanner": "2024-03-00",
        "12 de mayo de 2024: cirugía": "2024-05-12",
        "12 мая 2024 г.: операция": "2024-05-12",
        "около 2023: первые симптомы": "2023-00-00",
        "2024년 5월 10일: CT 검사": "2024-05-10",
        "2024年6月頃：手術": "2024-06-00",
    }
    for line, key in expected.items():
        entry = parse_entry(line)
        assert entry is not None and entry.sort_key == key, line


@pytest.mark.parametrize(
    ("negated", "current"),
    [
        ("no chest pain", "chest pain"),
        ("He denies shortness of breath", "He is short of breath"),
        ("没有胸痛", "胸痛"),
        ("нет боли в груди", "боль в груди"),
        ("لا يوجد ألم في الصدر", "ألم في الصدر"),
        ("sin dolor de pecho", "dolor de pecho"),
        ("Stroke was ruled out", "She is having a stroke"),
    ],
)
def test_a_negated_symptom_is_not_an_emergency(negated: str, current: str) -> None:
    assert is_red_flag(current)
    assert not is_red_flag(negated)


@pytest.mark.parametrize(
    "text",
    [
        "No, he can't breathe",
        "No fever, but his chest pain is crushing",
        "I'm not sure if she is having a stroke",
        "He has no appetite, vomiting blood since morning",
        "她不停地吐血",
        "У него не проходит боль в груди",
        "لا يزال ينزف بشدة",
        "No se le pasa el dolor de pecho",
    ],
)
def test_a_negation_word_that_negates_nothing_still_raises(text: str) -> None:
    assert is_red_flag(text)


def test_an_event_that_is_over_is_history_but_a_new_symptom_raises() -> None:
    assert not is_red_flag("She had a small stroke in 2019 and recovered fully")
    assert is_red_flag("A small stroke in 2019, recovered fully, but now her face droops")
    assert is_red_flag("She had a stroke in 2019, fully recovered, and now she has one again")
    assert is_red_flag("She had a stroke in 2019")  # not said to be over: ask


def test_dated_timeline_lines_of_past_events_do_not_raise() -> None:
    today = date(2026, 12, 4)
    assert not is_timeline_red_flag("March 2024: vomiting blood, gastroscopy", today)
    assert not is_timeline_red_flag("2023-05-12: seizure\n2024年3月 吐血", today)
    # Something dated today, or told as current, or without a date, still raises.
    assert is_timeline_red_flag("2026-12-04: chest pain", today)
    assert is_timeline_red_flag("March 2024: first symptoms\nnow he can't breathe", today)
    assert is_timeline_red_flag("March 2024: seizures, and again right now", today)
    assert is_timeline_red_flag("he is vomiting blood", today)

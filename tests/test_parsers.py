"""Property tests for the small parsers the conversation relies on."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from conversations.questions import is_vague
from conversations.redflags import is_red_flag
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

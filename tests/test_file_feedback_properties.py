"""Property tests: whatever a check reports, in whatever order the patient answers the side
questions, the draft stays consistent and every reply says something."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from conversations.file_feedback import files_checked, side_choice
from conversations.i18n import SUPPORTED_LOCALES, translator
from conversations.state import ConversationState, RecordFile, RecordItem
from records.report import FileCheck, FilesReport, FlagLine, StudyLine

FILE_IDS = [f"{n:032x}" for n in range(1, 7)]
KINDS = ["dicom", "dicomdir", "zip", "tar", "pdf", "image", "word", "text", "unknown", "empty"]
PROBLEMS = [
    "",
    "",
    "",
    "duplicate",
    "executable",
    "empty",
    "quota",
    "ratio",
    "unsafe_path",
    "not_dicom",
    "truncated",
    "not_checked",
    "unreachable",
    "encrypted",
    "whatever",
]
FLAG_CODES = [
    "stale",
    "patient_mismatch",
    "mixed_patients",
    "missing_instances",
    "nothing_usable",
    "missing_from_disc",
    "unknown_code",
]

checks = st.builds(
    FileCheck,
    file_id=st.sampled_from(FILE_IDS),
    name=st.sampled_from(["", "ct.zip", "IMG_1.jpg", "report.pdf", "‮evil.exe"]),
    kind=st.sampled_from(KINDS),
    problem=st.sampled_from(PROBLEMS),
    kept=st.booleans(),
    duplicate_of=st.sampled_from(["", "first.zip"]),
    members=st.integers(0, 400),
    dicom_files=st.integers(0, 400),
)
studies = st.builds(
    StudyLine,
    key=st.sampled_from(["aaaa", "bbbb", "cccc"]),
    study_date=st.one_of(st.none(), st.dates(date(1990, 1, 1), date(2030, 1, 1))),
    modalities=st.lists(st.sampled_from(["CT", "MR", "PT", "XX"]), max_size=2),
    body_parts=st.lists(st.sampled_from(["CHEST", "HEAD", "ODDPART"]), max_size=2),
    series=st.integers(0, 20),
    images=st.integers(0, 3000),
    preview=st.sampled_from(["", "ab" * 32]),
    patient_name=st.sampled_from(["", "DOE^JANE", "ROE"]),
)
flags = st.builds(
    FlagLine,
    code=st.sampled_from(FLAG_CODES),
    study_key=st.sampled_from(["", "aaaa", "zzzz"]),
    age_days=st.one_of(st.none(), st.integers(0, 5000)),
    missing=st.one_of(st.none(), st.integers(0, 500)),
    stale_after_days=st.one_of(st.none(), st.integers(1, 365)),
)
reports = st.builds(
    FilesReport,
    files=st.lists(checks, max_size=6),
    studies=st.lists(studies, max_size=3),
    flags=st.lists(flags, max_size=4),
)


def _state(locale: str, area: str) -> ConversationState:
    state = ConversationState(step="records_upload", locale=locale)
    state.draft.case_id = "case"
    state.draft.area = area
    state.draft.records["imaging"] = RecordItem(
        status="uploaded", files=[RecordFile(file_id=FILE_IDS[0], name="a")]
    )
    state.draft.records["labs"] = RecordItem(
        status="uploaded", files=[RecordFile(file_id=FILE_IDS[1], name="b")]
    )
    state.draft.unsorted_files = [RecordFile(file_id=i, name=i[-4:]) for i in FILE_IDS[2:]]
    return state


def _all_file_ids(state: ConversationState) -> list[str]:
    ids = [f.file_id for record in state.draft.records.values() for f in record.files]
    return ids + [f.file_id for f in state.draft.unsorted_files]


@settings(max_examples=150, deadline=None)
@given(
    locale=st.sampled_from(SUPPORTED_LOCALES),
    area=st.sampled_from(["oncology", "eye", "fertility", "other"]),
    batch=st.lists(reports, min_size=1, max_size=3),
    answers=st.lists(
        st.one_of(
            st.sampled_from(["scan:aaaa:yes", "scan:bbbb:no", "scan::", "sort::", "sort:0000"]),
            st.builds(
                lambda i, item: f"sort:{i[:8]}:{item}",
                st.sampled_from(FILE_IDS),
                st.sampled_from(["", "imaging", "labs", "pathology_report", "nonsense"]),
            ),
        ),
        max_size=8,
    ),
)
def test_reports_and_answers_keep_the_draft_consistent(
    locale: str, area: str, batch: list[FilesReport], answers: list[str]
) -> None:
    state = _state(locale, area)
    t = translator(locale)
    transitions = [files_checked(state, report, t) for report in batch]
    transitions += [side_choice(state, answer, t) for answer in answers]
    for transition in transitions:
        assert all(reply.text.strip() for reply in transition.replies)
        assert all(len(o.id.encode()) <= 60 for reply in transition.replies for o in reply.options)
    ids = _all_file_ids(state)
    assert len(ids) == len(set(ids)), "a file is in two places"
    assert set(state.draft.sorting) <= set(ids), "a sorting question about a file not kept"
    for item_id, record in state.draft.records.items():
        if record.status == "uploaded" and item_id not in ("imaging", "labs"):
            assert record.files, f"{item_id} says uploaded with no file"

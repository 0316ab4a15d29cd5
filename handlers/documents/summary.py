"""The bilingual case summary: one document, Chinese first, then English, in the order Chinese
specialists read a case (shared/domain.md), with the DICOM study table, the records checklist
and the fit assessment.

Structured answers are read from the catalogs in each half's language. The patient's own words
(diagnosis, own questions, timeline, a relationship typed as text) stay verbatim in both halves,
marked as untranslated until a coordinator attaches a translation for that section; the
translation is then shown beside them, marked as the coordinator's.

The builder does all the wording; the renderers (summary_pdf, summary_html) only lay it out.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from babel import Locale, UnknownLocaleError

from conversations.fit import (
    REASONS,
    RECOMMENDATION_TEXTS,
    SITUATION_QUESTIONS,
    VERDICT_TITLES,
    FitAssessment,
    assess,
)
from conversations.i18n import Translator, translator
from conversations.state import IntakeDraft, TimelineEntry
from conversations.steps import history, patient
from conversations.steps.case_details import question_text
from conversations.steps.fit import GOAL_CHOICES, YES_NO_UNSURE
from conversations.steps.records import item_title
from handlers.ingest.ingestor import instance_from_json
from records.checklist import (
    AREAS,
    ITEMS,
    ONCOLOGY_KINDS,
    Readiness,
    checklist_for,
    critical_items,
    readiness,
)
from records.classify import FileKind
from records.dicom import StudySummary, summarize
from records.markers import N_
from storage.documents import DocumentRow
from storage.models import Case

UNTRANSLATED = N_("(patient's words, untranslated)")
PATIENT_WORDS = N_("(patient's words)")
TRANSLATION_LABEL = N_("Coordinator's translation:")
CRITICAL_LEGEND = N_("★ needed for a specialist to review the case")
WRITTEN_OPINION = N_("Please give a written opinion on these questions.")

# Checklist status ids -> how they read.
STATUS_TEXTS: dict[str, str] = {
    "present": N_("received"),
    "partial": N_("photos only; the original files are needed"),
    "missing": N_("missing"),
    "later": N_("later"),
    "not_applicable": N_("doesn't apply"),
}
# How the records checklist scores each status (records.checklist.readiness).
_READINESS_STATUS = {
    "present": "uploaded",
    "partial": "partial",
    "missing": "pending",
    "later": "later",
    "not_applicable": "not_applicable",
}
# Files Huizhen drew itself, or that came back from the specialists: not the patient's records.
DERIVED_KINDS = frozenset({"preview", "contact_sheet", "opinion", "opinion_translation"})
ARCHIVE_KINDS = frozenset({FileKind.ZIP.value, FileKind.TAR.value})


@dataclass(frozen=True)
class Language:
    """One half of the summary: its locale and the fixed texts written in it."""

    code: str  # BCP 47, for the HTML lang attribute
    locale: str  # the catalog the structured answers come from
    title: str
    # The section headings are fixed, not translated per reader: each half has one language.
    heading: Callable[[SectionSpec], str]
    studies_title: str
    study_columns: tuple[str, ...]
    checklist_title: str
    fit_title: str


CHINESE = Language(
    code="zh-Hans",
    locale="zh_Hans",
    title="会诊病例摘要",
    heading=lambda spec: spec.title_zh,
    studies_title="DICOM 影像检查",
    study_columns=("检查日期", "检查类型", "部位", "描述", "序列", "图像", "机构", "缺失图像"),
    checklist_title="病历资料清单",
    fit_title="适合度评估",
)
ENGLISH = Language(
    code="en",
    locale="en",
    title="Case summary for a specialist consultation",
    heading=lambda spec: spec.title_en,
    studies_title="DICOM studies",
    study_columns=(
        "Date",
        "Modality",
        "Body part",
        "Description",
        "Series",
        "Images",
        "Institution",
        "Missing images",
    ),
    checklist_title="Records checklist",
    fit_title="Fit assessment",
)
LANGUAGES = (CHINESE, ENGLISH)


@dataclass(frozen=True)
class Entry:
    """One line: our text, then the patient's own words (verbatim) with their mark."""

    text: str
    words: str = ""
    mark: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "words", without_controls(self.words))

    @property
    def line(self) -> str:
        return " ".join(part for part in (self.text, self.words, self.mark) if part)


def without_controls(text: str) -> str:
    """The patient's words as written, minus control characters (a bell, an escape) that
    no document can show and some readers choke on; line breaks and tabs stay."""
    return "".join(char for char in text if char in "\n\t" or unicodedata.category(char) != "Cc")


@dataclass(frozen=True)
class Section:
    id: str
    heading: str
    entries: tuple[Entry, ...]
    # A coordinator's translation of this section's free text, with its label ("" if none).
    translation: str = ""
    translation_label: str = ""
    # Where the records may say more: the documents of the checklist items naming it.
    documents: tuple[Entry, ...] = ()
    # The DICOM study table follows the section's lines in the renderings.
    studies: bool = False


@dataclass(frozen=True)
class Half:
    language: Language
    sections: tuple[Section, ...]
    checklist: tuple[str, ...]
    fit: tuple[str, ...]
    prepared: str


@dataclass(frozen=True)
class StudyRow:
    study_uid: str
    study_date: str  # ISO, "" when unknown: reads the same in both halves
    modalities: str
    body_parts: str
    description: str
    institution: str
    series: int
    images: int
    missing_images: int
    patient_name: str
    patient_birth_date: str

    @property
    def cells(self) -> tuple[str, ...]:
        """The table's columns, in the order of Language.study_columns."""
        return (
            self.study_date or "—",
            self.modalities,
            self.body_parts,
            self.description,
            str(self.series),
            str(self.images),
            self.institution,
            str(self.missing_images) if self.missing_images else "",
        )


@dataclass(frozen=True)
class ChecklistRow:
    item: str
    status: str  # a key of STATUS_TEXTS
    critical: bool
    files: int


@dataclass(frozen=True)
class CaseSummary:
    reference: str
    prepared_at: datetime
    locale: str  # the patient's language
    halves: tuple[Half, ...]  # Chinese, then English
    studies: tuple[StudyRow, ...]
    checklist: tuple[ChecklistRow, ...]
    other_files: int  # files not sorted into the area's checklist
    fit: FitAssessment
    fit_reasons: tuple[str, ...]
    readiness: int


def build_summary(
    case: Case,
    documents: list[DocumentRow],
    translations: Mapping[str, str],
    now: datetime,
    *,
    for_coordinators: bool = True,
) -> CaseSummary:
    """The summary; `for_coordinators` False leaves out how to reach the patient (the copy
    specialists read has the clinical picture only)."""
    draft = IntakeDraft.model_validate_json(case.answers_json)
    records = patient_records(documents)
    checklist = _checklist(draft, records)
    statuses = {row.item: _READINESS_STATUS[row.status] for row in checklist}
    listed = {row.item for row in checklist}
    facts = _Facts(
        case=case,
        draft=draft,
        checklist=tuple(checklist),
        other_files=sum(1 for row in records if row.item not in listed),
        studies=tuple(study_rows(documents)),
        fit=assess(draft),
        readiness=readiness(draft.area, statuses),
        translations=translations,
        now=now,
        for_coordinators=for_coordinators,
    )
    return CaseSummary(
        reference=case.reference,
        prepared_at=now,
        locale=case.locale,
        halves=tuple(_half(facts, language) for language in LANGUAGES),
        studies=facts.studies,
        checklist=facts.checklist,
        other_files=facts.other_files,
        fit=facts.fit,
        fit_reasons=tuple(draft.fit_reasons),
        readiness=facts.readiness.score,
    )


def patient_records(documents: Sequence[DocumentRow]) -> list[DocumentRow]:
    """The files the patient sent, one row each: archive members in place of their archive
    (unless it held nothing), without Huizhen's previews or the specialists' opinion."""
    parents = {row.parent_file_id for row in documents if row.parent_file_id}
    return [
        row
        for row in documents
        if row.kind not in DERIVED_KINDS
        and not (row.kind in ARCHIVE_KINDS and row.file_id in parents)
    ]


def study_rows(documents: Sequence[DocumentRow]) -> list[StudyRow]:
    instances = (
        instance_from_json(row.details_json)
        for row in documents
        if row.kind == FileKind.DICOM.value and row.details_json
    )
    return [_study_row(study) for study in summarize(instances)]


def _study_row(study: StudySummary) -> StudyRow:
    return StudyRow(
        study_uid=study.study_uid,
        study_date=study.study_date.isoformat() if study.study_date else "",
        modalities=", ".join(study.modalities),
        body_parts=", ".join(study.body_parts),
        description=study.description,
        institution=study.institution,
        series=len(study.series),
        images=study.images,
        missing_images=sum(series.missing for series in study.series),
        patient_name=_person(study.patient_name),
        patient_birth_date=(
            study.patient_birth_date.isoformat() if study.patient_birth_date else ""
        ),
    )


def _checklist(draft: IntakeDraft, records: Sequence[DocumentRow]) -> list[ChecklistRow]:
    """The documents decide what is present (files sent after submission count too); the
    patient's answers decide between later, doesn't apply and missing."""
    critical = critical_items(draft.area)
    rows = []
    for item in checklist_for(draft.area):
        usable = [row for row in records if row.item == item.id and not row.problem]
        answered = draft.records.get(item.id)
        if usable:
            photos_only = all(row.kind == FileKind.IMAGE.value for row in usable)
            status = "partial" if item.id == "imaging" and photos_only else "present"
        elif answered is not None and answered.status in ("later", "not_applicable"):
            status = answered.status
        else:
            status = "missing"
        rows.append(ChecklistRow(item.id, status, item.id in critical, len(usable)))
    return rows


@dataclass(frozen=True)
class _Facts:
    """Everything the halves are written from."""

    case: Case
    draft: IntakeDraft
    checklist: tuple[ChecklistRow, ...]
    other_files: int
    studies: tuple[StudyRow, ...]
    fit: FitAssessment
    readiness: Readiness
    translations: Mapping[str, str]
    now: datetime
    for_coordinators: bool


def _half(facts: _Facts, language: Language) -> Half:
    t = translator(language.locale)
    writer = _Writer(facts, t)
    sections = []
    for spec in SECTIONS:
        translation = without_controls(facts.translations.get(spec.id, "")).strip()
        mark = t(PATIENT_WORDS if translation else UNTRANSLATED)
        sections.append(
            Section(
                id=spec.id,
                heading=language.heading(spec),
                entries=tuple(spec.build(writer, mark)),
                translation=translation,
                translation_label=t(TRANSLATION_LABEL) if translation else "",
                documents=tuple(writer.documents(spec.id)),
                studies=spec.studies,
            )
        )
    return Half(
        language=language,
        sections=tuple(sections),
        checklist=tuple(writer.checklist()),
        fit=tuple(writer.fit()),
        prepared=t("Prepared on {date}", date=t.date(facts.now.date())),
    )


class _Writer:
    """The lines of one half, in its language. `mark` follows the patient's own words: still
    untranslated, or translated by a coordinator (shown beside them)."""

    def __init__(self, facts: _Facts, t: Translator) -> None:
        self.facts = facts
        self.draft = facts.draft
        self.t = t

    # --- the sections' lines (SECTIONS below says which section each writes) -------------

    def basic(self, mark: str) -> list[Entry]:
        t, draft, case = self.t, self.draft, self.facts.case
        entries = [
            Entry(t("Case {reference}", reference=case.reference)),
            Entry(t("Submitted on {date}", date=t.date(case.submitted_at.date()))),
            Entry(t("Language: {locale}", locale=_language_name(case.locale, t.locale))),
        ]
        # The stated details, never a name read from a scan: a scan may be someone else's.
        details = draft.patient
        entries += [
            Entry(t("Name: {value}", value=patient.name_text(details, t))),
            Entry(t("Sex: {value}", value=patient.sex_text(details, t))),
            Entry(t("Date of birth or age: {value}", value=patient.birth_text(details, t))),
            Entry(t("Nationality: {value}", value=patient.value_text(details.nationality, t))),
            Entry(t("Lives in: {value}", value=patient.value_text(details.residence, t))),
            Entry(t("Written opinion in: {value}", value=patient.language_text(details, t))),
        ]
        if self.facts.for_coordinators:
            contact = patient.value_text(details.contact, t)
            entries.append(Entry(t("Contact (for coordinators only): {value}", value=contact)))
        entries.append(self._filled_in_by(mark))
        return entries

    def _filled_in_by(self, mark: str) -> Entry:
        """Who wrote, from the patient's side (患者本人, 患者子女…): the answer to "who is
        the patient to you?" turned round."""
        t, draft = self.t, self.draft
        relation = "self" if draft.for_whom == "self" else draft.relationship or ""
        if relation in FILLED_IN_BY:
            return Entry(t("Filled in by: {value}", value=t(FILLED_IN_BY[relation])))
        if relation:
            return Entry(t("Filled in by:"), relation, mark)
        return Entry(t("Filled in by: {value}", value=t(patient.NOT_GIVEN)))

    def chief_complaint(self, mark: str) -> list[Entry]:
        t, draft = self.t, self.draft
        area = t(AREAS[draft.area]) if draft.area in AREAS else "—"
        if draft.subarea in ONCOLOGY_KINDS:
            area += f" — {t(ONCOLOGY_KINDS[draft.subarea])}"
        entries = [
            self._words(t("Main worry:"), draft.complaint, mark),
            Entry(t("Area: {value}", value=area)),
            Entry(t("Reasons: {value}", value=self._reasons())),
        ]
        if draft.timeline:
            earliest = _event(draft.timeline[0])
            entries.append(Entry(t("Earliest event in the timeline:"), earliest, mark))
        return entries

    def present_illness(self, mark: str) -> list[Entry]:
        t, draft = self.t, self.draft
        if draft.timeline:
            entries = [Entry("•", _event(entry), mark) for entry in draft.timeline]
        else:
            entries = [Entry(t("No timeline was given."))]
        # What the patient can do day to day, asked in cancer only: ECOG, and the words chosen.
        performance = draft.history.performance
        if performance in history.PERFORMANCE_GRADES:
            words = history.performance_text(draft.history, t)
            grade = history.PERFORMANCE_GRADES[performance]
            entries.append(
                Entry(t("Performance status: ECOG {grade}", grade=grade) + f" ({words})")
            )
        elif performance == "":
            entries.append(Entry(t("Performance status: ECOG {grade}", grade=t(patient.NOT_GIVEN))))
        return entries

    def past_history(self, mark: str) -> list[Entry]:
        words = self.draft.history.illnesses
        return [self._words(self.t("Other illnesses and operations:"), words, mark)]

    def medications_allergies(self, mark: str) -> list[Entry]:
        t, background = self.t, self.draft.history
        return [
            self._words(t("Medicines:"), background.medicines, mark),
            self._words(t("Allergies:"), background.allergies, mark),
        ]

    def investigations(self, mark: str) -> list[Entry]:
        # The study table follows the section's lines; without studies, say so.
        return [] if self.facts.studies else [Entry(self.t("No DICOM scans among the files."))]

    def diagnosis(self, mark: str) -> list[Entry]:
        t = self.t
        if self.draft.diagnosis:
            return [Entry(t("Diagnosis given so far:"), self.draft.diagnosis, mark)]
        return [Entry(t("Diagnosis: {value}", value=t("No diagnosis yet")))]

    def treatment(self, mark: str) -> list[Entry]:
        return [
            Entry(f"{self.t(SITUATION_QUESTIONS[key])} {self._answer(key)}")
            for key in ("treatment_started", "irreversible")
            if key in self.draft.situation
        ]

    def purpose(self, mark: str) -> list[Entry]:
        t = self.t
        entries = []
        for number, question in enumerate(self.draft.questions, start=1):
            if question.suggestion:
                entries.append(Entry(f"{number}. {question_text(question, t)}"))
            else:
                entries.append(Entry(f"{number}.", question.text, mark))
        if "goal" in self.draft.situation:
            entries.append(Entry(f"{t(SITUATION_QUESTIONS['goal'])} {self._answer('goal')}"))
        entries.append(Entry(t(WRITTEN_OPINION)))
        return entries

    # --- shared pieces ------------------------------------------------------------------

    def _words(self, label: str, words: str | None, mark: str) -> Entry:
        """The patient's words after a label, or "not given" (skipped, or a case begun
        before the question was asked)."""
        if words:
            return Entry(label, words, mark)
        return Entry(f"{label} {self.t(patient.NOT_GIVEN)}")

    def _reasons(self) -> str:
        t = self.t
        return t.join([t(REASONS[r]) for r in self.draft.fit_reasons if r in REASONS]) or "—"

    def _answer(self, key: str) -> str:
        answer = self.draft.situation[key]
        return self.t(ANSWER_LABELS[answer]) if answer in ANSWER_LABELS else answer

    def documents(self, section_id: str) -> list[Entry]:
        """Where the intake asks nothing, the records may say it: point to the documents of
        the checklist items that name this section."""
        t = self.t
        entries = []
        for row in self.facts.checklist:
            if ITEMS[row.item].section == section_id and row.files:
                # A call nested in the arguments hides the plural form from Babel's extractor.
                title = item_title(ITEMS[row.item], t)
                text = t.plural(
                    "See the documents under {item} ({count} file).",
                    "See the documents under {item} ({count} files).",
                    row.files,
                    item=title,
                )
                entries.append(Entry(text))
        return entries

    def checklist(self) -> list[str]:
        t = self.t
        lines = []
        for row in self.facts.checklist:
            title = item_title(ITEMS[row.item], t)
            line = t("{item}: {status}", item=title, status=t(STATUS_TEXTS[row.status]))
            if row.files:
                line += " " + t.plural("({count} file)", "({count} files)", row.files)
            lines.append(("★ " if row.critical else "") + line)
        if self.facts.other_files:
            count = self.facts.other_files
            lines.append(t.plural("{count} other file", "{count} other files", count))
        lines.append(t(CRITICAL_LEGEND))
        return lines

    def fit(self) -> list[str]:
        t, fit = self.t, self.facts.fit
        missing = [item_title(item, t) for item in self.facts.readiness.missing_critical]
        return [
            t("Assessment: {value}", value=t(VERDICT_TITLES[fit.verdict])),
            t("Reasons: {value}", value=self._reasons()),
            *(f"✓ {t(strength)}" for strength in fit.strengths),
            *(f"• {t(concern)}" for concern in fit.concerns),
            t(RECOMMENDATION_TEXTS[fit.recommendation]),
            t("Readiness: {score}%", score=self.facts.readiness.score),
            t("Missing: {items}", items=t.join(missing) or t("none")),
        ]


@dataclass(frozen=True)
class SectionSpec:
    """One section of the summary. `id` is what a coordinator names to translate it and what
    checklist items name to be pointed to from it (records.checklist.ChecklistItem.section)."""

    id: str
    title_zh: str
    title_en: str
    # Writes the section's lines in one half's language; the argument is the mark that
    # follows the patient's own words.
    build: Callable[[_Writer, str], list[Entry]]
    studies: bool = False  # the DICOM study table follows the section's lines


# The sections, in the order Chinese specialists read a case (shared/domain.md).
SECTIONS: tuple[SectionSpec, ...] = (
    SectionSpec("basic", "基本信息", "Basic information", _Writer.basic),
    SectionSpec("chief_complaint", "主诉", "Chief complaint", _Writer.chief_complaint),
    SectionSpec("present_illness", "现病史", "History of present illness", _Writer.present_illness),
    SectionSpec("past_history", "既往史", "Past medical history", _Writer.past_history),
    SectionSpec(
        "medications_allergies",
        "用药及过敏史",
        "Medications and allergies",
        _Writer.medications_allergies,
    ),
    SectionSpec(
        "investigations",
        "辅助检查 (影像 / 病理 / 化验)",
        "Investigations (imaging / pathology / laboratory)",
        _Writer.investigations,
        studies=True,
    ),
    SectionSpec("diagnosis", "诊断", "Diagnosis", _Writer.diagnosis),
    SectionSpec("treatment", "治疗经过", "Treatment so far", _Writer.treatment),
    SectionSpec("purpose", "会诊目的", "Purpose of the consultation", _Writer.purpose),
)


# The relationship as the patient's side reads it: "my parent" means the writer is their child.
FILLED_IN_BY: dict[str, str] = {
    "self": N_("the patient"),
    "parent": N_("the patient's child"),
    "partner": N_("the patient's spouse or partner"),
    "child": N_("the patient's parent"),
    "sibling": N_("the patient's brother or sister"),
    "other_family": N_("a relative or friend of the patient"),
}

ANSWER_LABELS: dict[str, str] = {
    choice.id: choice.label for choice in (*YES_NO_UNSURE, *GOAL_CHOICES)
}


def _event(entry: TimelineEntry) -> str:
    return f"{entry.when}: {entry.what}" if entry.when else entry.what


def _person(dicom_name: str) -> str:
    """DICOM writes names FAMILY^GIVEN^MIDDLE; people read them with spaces."""
    return " ".join(part for part in dicom_name.split("^") if part.strip())


def _language_name(locale: str, reader_locale: str) -> str:
    try:
        return Locale.parse(locale).get_display_name(reader_locale) or locale
    except (ValueError, UnknownLocaleError):
        return locale

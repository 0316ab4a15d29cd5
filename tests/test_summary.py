"""The bilingual case summary: Chinese first in the order Chinese specialists read, then
English; the patient's words verbatim and marked until a coordinator translates them; the
DICOM study table, the checklist and the fit assessment. Real cases come from the console
chat, with real files through the real worker."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from benchmarks.patient_script import COMPLAINT, PATIENT_ANSWERS
from bot.app import App
from conversations.fit import REASONS, VERDICT_TITLES
from conversations.i18n import Translator, translator
from conversations.questions import ALL_SUGGESTIONS
from conversations.state import PatientDetails
from conversations.steps.records import item_title
from handlers.documents.summary import (
    PATIENT_WORDS,
    SECTIONS,
    TRANSLATION_LABEL,
    UNTRANSLATED,
    CaseSummary,
    Half,
    Section,
    build_summary,
)
from records.checklist import AREAS, CHECKLISTS, ITEMS, ONCOLOGY_KINDS
from tests.support.cases import (
    DIAGNOSIS,
    NOW,
    OWN_QUESTION,
    RELATION,
    TIMELINE,
    constructed_case,
    document,
    submit_oncology_case,
)
from tests.support.console import Chat

ZH, EN = translator("zh_Hans"), translator("en")


def section(half: Half, section_id: str) -> Section:
    return next(s for s in half.sections if s.id == section_id)


def lines(half: Half, section_id: str) -> list[str]:
    """The section as it reads: its lines, then the documents it points to."""
    found = section(half, section_id)
    return [entry.line for entry in (*found.entries, *found.documents)]


def test_the_summary_is_chinese_first_then_english_in_the_specialists_order(
    chat: Chat, app: App, tmp_path: Path
) -> None:
    submitted = submit_oncology_case(chat, app, tmp_path)
    summary = build_summary(submitted.case, submitted.documents, {}, NOW)

    chinese, english = summary.halves
    assert [s.heading for s in chinese.sections] == [
        "基本信息",
        "主诉",
        "现病史",
        "既往史",
        "用药及过敏史",
        "辅助检查 (影像 / 病理 / 化验)",
        "诊断",
        "治疗经过",
        "会诊目的",
    ]
    assert [s.id for s in english.sections] == [spec.id for spec in SECTIONS]
    assert [s.heading for s in english.sections] == [spec.title_en for spec in SECTIONS]
    assert [s.heading for s in chinese.sections] == [spec.title_zh for spec in SECTIONS]

    # Structured answers come from the catalogs, in each half's language.
    for half, t in ((chinese, ZH), (english, EN)):
        area = f"{t(AREAS['oncology'])} — {t(ONCOLOGY_KINDS['solid_other'])}"
        assert t("Area: {value}", value=area) in lines(half, "chief_complaint")
        reasons = t("Reasons: {value}", value=t(REASONS["new_diagnosis"]))
        assert reasons in lines(half, "chief_complaint")
        assert t("Name: {value}", value="Maria Ivanova") in lines(half, "basic")
        assert t("Sex: {value}", value=t("Female")) in lines(half, "basic")
        assert lines(half, "purpose")[:2] == [
            f"1. {t(ALL_SUGGESTIONS['q_pathology'])}",
            f"2. {t(ALL_SUGGESTIONS['q_staging'])}",
        ]
        # The background in the patient's words; skipped reads "not given", never "not
        # collected".
        mark = t(UNTRANSLATED)
        illnesses = PATIENT_ANSWERS["history_illnesses"].removeprefix("text:")
        medicines = PATIENT_ANSWERS["history_medicines"].removeprefix("text:")
        assert lines(half, "past_history") == [
            f"{t('Other illnesses and operations:')} {illnesses} {mark}"
        ]
        assert lines(half, "medications_allergies") == [
            f"{t('Medicines:')} {medicines} {mark}",
            f"{t('Allergies:')} {t('not given')}",
        ]
        assert lines(half, "chief_complaint")[0] == f"{t('Main worry:')} {COMPLAINT} {mark}"
        ecog = t("Performance status: ECOG {grade}", grade="0–1")
        assert f"{ecog} ({t('Up and about, works or does normal activities')})" in lines(
            half, "present_illness"
        )
    assert "专科领域：癌症或肿瘤 — 其他实体瘤" in lines(chinese, "chief_complaint")
    assert "Language: English" in lines(english, "basic")

    # The patient's own words: verbatim in both halves, marked as not yet translated.
    for half, t in ((chinese, ZH), (english, EN)):
        mark = t(UNTRANSLATED)
        assert f"{t('Diagnosis given so far:')} {DIAGNOSIS} {mark}" in lines(half, "diagnosis")
        assert f"3. {OWN_QUESTION} {mark}" in lines(half, "purpose")
        assert f"{t('Filled in by:')} {RELATION} {mark}" in lines(half, "basic")
        events = lines(half, "present_illness")[: len(TIMELINE)]
        assert [line.removeprefix("• ") for line in events] == [
            f"{event} {mark}" for event in TIMELINE
        ]
        assert all(not s.translation for s in half.sections)


def test_the_study_table_checklist_and_fit_come_from_the_records(
    chat: Chat, app: App, tmp_path: Path
) -> None:
    submitted = submit_oncology_case(chat, app, tmp_path)
    summary = build_summary(submitted.case, submitted.documents, {}, NOW)

    (study,) = summary.studies
    assert (study.study_date, study.modalities, study.body_parts) == ("2026-05-10", "CT", "CHEST")
    assert (study.series, study.images, study.missing_images) == (1, 6, 0)
    assert study.patient_name == "DOE JANE"

    statuses = {row.item: (row.status, row.critical, row.files) for row in summary.checklist}
    assert statuses["diagnosis_reports"] == ("present", False, 1)
    assert statuses["imaging"] == ("present", True, 6)
    assert statuses["pathology_report"] == ("later", True, 0)
    assert statuses["labs"] == ("later", False, 0)
    assert summary.readiness == submitted.case.readiness
    assert summary.fit.verdict == submitted.case.verdict == "good_fit"

    chinese, english = summary.halves
    for half, t in ((chinese, ZH), (english, EN)):
        imaging = t("{item}: {status}", item=_title(t, "imaging"), status=t("received"))
        assert f"★ {imaging} {t.plural('({count} file)', '({count} files)', 6)}" in half.checklist
        later = t("{item}: {status}", item=_title(t, "pathology_report"), status=t("later"))
        assert f"★ {later}" in half.checklist
        assert half.fit[0] == t("Assessment: {value}", value=t(VERDICT_TITLES["good_fit"]))
        assert t("Readiness: {score}%", score=summary.readiness) in half.fit
        # Investigations point to the documents; the table follows in the renderings.
        pointer = t.plural(
            "See the documents under {item} ({count} file).",
            "See the documents under {item} ({count} files).",
            6,
            item=_title(t, "imaging"),
        )
        assert pointer in lines(half, "investigations")
    assert chinese.language.study_columns[:3] == ("检查日期", "检查类型", "部位")
    assert english.language.study_columns[:3] == ("Date", "Modality", "Body part")


def _title(t: Translator, item_id: str) -> str:
    return item_title(ITEMS[item_id], t)


# --- built from rows directly: what changes with a translation, with documents ----------------


def test_a_coordinators_translation_is_shown_beside_the_patients_words() -> None:
    case = constructed_case()
    before = build_summary(case, [], {}, NOW)
    after = build_summary(
        case, [], {"diagnosis": "Aortic valve stenosis", "unknown": "ignored"}, NOW
    )
    for half_before, half_after, t in zip(before.halves, after.halves, (ZH, EN), strict=True):
        words = "Стеноз аортального клапана"
        assert lines(half_before, "diagnosis")[0].endswith(f"{words} {t(UNTRANSLATED)}")
        translated = section(half_after, "diagnosis")
        assert translated.entries[0].line.endswith(f"{words} {t(PATIENT_WORDS)}")
        assert (translated.translation_label, translated.translation) == (
            t(TRANSLATION_LABEL),
            "Aortic valve stenosis",
        )
        # Other sections keep their mark until they are translated too.
        assert lines(half_after, "purpose")[0].endswith(t(UNTRANSLATED))
        assert not section(half_after, "purpose").translation


def test_every_checklist_item_names_a_section_of_the_summary() -> None:
    ids = [spec.id for spec in SECTIONS]
    assert len(set(ids)) == len(ids)
    assert {item.id: item.section for item in ITEMS.values() if item.section not in ids} == {}


def test_each_items_documents_are_pointed_to_from_the_section_it_names_only() -> None:
    for item in ITEMS.values():
        area = next(area for area, (order, _) in CHECKLISTS.items() if item.id in order)
        case = constructed_case(area=area)
        summary = build_summary(case, [document(item.id, "report.pdf")], {}, NOW)
        for half in summary.halves:
            assert [s.id for s in half.sections if s.documents] == [item.section], item.id


def test_what_the_intake_does_not_ask_points_to_the_documents_that_may_say_it() -> None:
    documents = [
        document("medications", "medicine-boxes.jpg", kind="image"),
        document("discharge_summaries", "discharge.pdf"),
        document("discharge_summaries", "unreadable.pdf", problem="unreadable"),
        document("", "misc.pdf"),
        document("imaging", "preview-1.png", kind="preview"),
    ]
    summary = build_summary(constructed_case(), documents, {}, NOW)
    chinese, english = summary.halves
    assert lines(english, "medications_allergies") == [
        "Medicines: not given",
        "Allergies: not given",
        "See the documents under Current medicines and allergies (用药清单 / 过敏史) (1 file).",
    ]
    assert lines(english, "past_history")[1] == (
        "See the documents under Discharge summaries (出院小结) (1 file)."
    )
    assert lines(chinese, "medications_allergies")[0] == f"{ZH('Medicines:')} {ZH('not given')}"
    assert lines(english, "investigations") == ["No DICOM scans among the files."]
    assert lines(english, "diagnosis")[0].startswith("Diagnosis given so far: Стеноз")
    assert lines(english, "treatment") == ["Has treatment for this already started? Yes"]
    assert "What would help you most? Treatment in China" in lines(english, "purpose")

    statuses = {row.item: row.status for row in summary.checklist}
    assert statuses["medications"] == "present"
    assert statuses["labs"] == "not_applicable"
    assert statuses["imaging"] == "missing"  # a preview is not a scan
    assert summary.other_files == 1
    assert "1 other file" in english.checklist
    assert english.checklist[-1] == "★ needed for a specialist to review the case"


def test_photos_where_scans_are_needed_count_half_and_scan_names_are_not_the_patients() -> None:
    case = constructed_case(patient_name="DOE^JANE", patient_birth_date=date(1970, 5, 17))
    photo = document("imaging", "IMG_2041.jpg", kind="image")
    summary: CaseSummary = build_summary(case, [photo], {}, NOW)
    assert {row.item: row.status for row in summary.checklist}["imaging"] == "partial"
    english = summary.halves[1]
    # The name a scan gives is not the patient's stated name: it is never shown as theirs.
    assert not any("DOE" in line for line in lines(english, "basic"))
    assert "Name: not given" in lines(english, "basic")
    assert "Language: Russian" in lines(english, "basic")
    assert "语言：俄语" in lines(summary.halves[0], "basic")


def test_the_stated_patient_reads_in_both_halves_and_contact_stays_with_coordinators() -> None:
    details = PatientDetails(
        name="Wang Jianguo",
        name_zh="王建国",
        age=67,
        sex="male",
        residence="Almaty, Kazakhstan",
        nationality="Kazakhstan",
        opinion_language="ru",
        contact="+7 701 123 4567",
    )
    case = constructed_case(patient=details, for_whom="family", relationship="parent")
    chinese, english = build_summary(case, [], {}, NOW).halves
    assert lines(chinese, "basic")[3:] == [
        "姓名：Wang Jianguo / 王建国",
        "性别：男",
        "出生日期/年龄：67岁",
        "国籍：Kazakhstan",
        "居住地：Almaty, Kazakhstan",
        "书面意见语言：русский",
        "联系方式（仅供协调员）：+7 701 123 4567",
        "填写人与患者关系：患者子女",
    ]
    assert "Filled in by: the patient's child" in lines(english, "basic")
    assert "Date of birth or age: age 67" in lines(english, "basic")
    specialists = build_summary(case, [], {}, NOW, for_coordinators=False)
    assert not any("+7 701" in line for half in specialists.halves for line in lines(half, "basic"))


def test_a_skipped_detail_reads_not_given_never_not_collected() -> None:
    case = constructed_case(patient=PatientDetails(name="Maria Ivanova", name_zh="", contact=""))
    english = build_summary(case, [], {}, NOW).halves[1]
    assert "Name: Maria Ivanova" in lines(english, "basic")
    assert "Contact (for coordinators only): not given" in lines(english, "basic")
    assert "Filled in by: the patient" in lines(english, "basic")

"""The records checklist per area of medicine, and the readiness score.

Facts from shared/domain.md: missing imaging or pathology in a cancer case is the first thing
to chase; imaging means the original DICOM files, not photos of a screen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from records.markers import N_

# Area ids -> label msgids, in the order offered to the patient.
AREAS: dict[str, str] = {
    "oncology": N_("Cancer or a tumour"),
    "cardiovascular": N_("Heart and blood vessels"),
    "spine_ortho": N_("Spine, bones and joints"),
    "neurology": N_("Brain and nerves"),
    "rare": N_("Rare or undiagnosed condition"),
    "fertility": N_("Fertility"),
    "eye": N_("Eyes"),
    "rehab_chronic": N_("Rehabilitation or a chronic condition"),
    "other": N_("Something else"),
}

ONCOLOGY_KINDS: dict[str, str] = {
    "hepatobiliary_gi": N_("Liver, bile duct, pancreas, stomach or bowel"),
    "haematological": N_("Blood cancer (lymphoma, leukaemia, myeloma)"),
    "solid_other": N_("Another solid tumour"),
}

# Shown to hospital staff as it is, in Chinese, whatever language the patient reads.
FULL_RECORD_REQUEST_ZH = "我需要一份完整的病历复印件。"


@dataclass(frozen=True)
class ChecklistItem:
    id: str
    label: str
    term_zh: str
    hint: str
    how_to_get: str
    request_zh: str
    # The id of the case summary section whose reader needs these documents (the summary
    # points there to them); tests/test_summary.py checks every id names a section.
    section: str


ITEMS: dict[str, ChecklistItem] = {
    item.id: item
    for item in (
        ChecklistItem(
            "diagnosis_reports",
            N_("Diagnosis reports and clinic letters"),
            "诊断报告 / 病历",
            N_("The written reports and letters, not a summary from memory."),
            N_("Ask the clinic or hospital for copies of your reports and letters."),
            FULL_RECORD_REQUEST_ZH,
            section="diagnosis",
        ),
        ChecklistItem(
            "imaging",
            N_("Scans as original files (CT, MRI, PET-CT, X-ray, ultrasound)"),
            "原始片 / 影像资料",
            N_(
                "The original DICOM files, often on a CD. Photos of a screen or of films are "
                "not enough."
            ),
            N_(
                "Ask the radiology department for a CD or download of the original images in "
                "DICOM format."
            ),
            "我需要原始影像资料（DICOM格式）的光盘或电子版。",
            section="investigations",
        ),
        ChecklistItem(
            "radiology_reports",
            N_("Radiology reports"),
            "影像学报告",
            N_("The written report that goes with each scan."),
            N_("The radiology department gives the report with the images."),
            "我需要影像学报告。",
            section="investigations",
        ),
        ChecklistItem(
            "pathology_report",
            N_("Pathology report"),
            "病理报告",
            N_("The report on tissue taken in a biopsy or operation."),
            N_("Ask the pathology department, or the doctor who arranged the biopsy."),
            "我需要病理报告。",
            section="investigations",
        ),
        ChecklistItem(
            "pathology_slides",
            N_("Pathology slides or tissue blocks"),
            "病理切片 / 蜡块",
            N_(
                "Physical material lent by the hospital; slide images if available. It takes "
                "longest to get."
            ),
            N_("Ask the pathology department to lend the slides or blocks; start early."),
            "我需要借出病理切片或蜡块，用于专家会诊。",
            section="investigations",
        ),
        ChecklistItem(
            "labs",
            N_("Lab results and tumour markers"),
            "化验单",
            N_("Recent blood tests and other lab results."),
            N_("Ask the clinic or the hospital laboratory for printed results."),
            "我需要最近的化验单。",
            section="investigations",
        ),
        ChecklistItem(
            "genetic_tests",
            N_("Genetic or molecular test reports"),
            "基因检测报告",
            N_("Any gene, biomarker or molecular test."),
            N_("Ask the doctor who ordered the test, or the testing laboratory."),
            "我需要基因检测报告。",
            section="investigations",
        ),
        ChecklistItem(
            "treatment_history",
            N_("Treatment history with dates, drugs and doses"),
            "治疗经过",
            N_("Operations, chemotherapy, radiotherapy and other treatment, with dates."),
            N_("Your treating team or discharge papers usually list this."),
            FULL_RECORD_REQUEST_ZH,
            section="treatment",
        ),
        ChecklistItem(
            "operative_notes",
            N_("Operation notes"),
            "手术记录",
            N_("Only if there was an operation."),
            N_("Ask the surgical department for the operation record."),
            "我需要手术记录。",
            section="treatment",
        ),
        ChecklistItem(
            "discharge_summaries",
            N_("Discharge summaries"),
            "出院小结",
            N_("The summary written when leaving hospital."),
            N_("Ask the hospital ward or records office."),
            "我需要出院小结。",
            section="past_history",
        ),
        ChecklistItem(
            "medications",
            N_("Current medicines and allergies"),
            "用药清单 / 过敏史",
            N_("A list of medicines with doses, and any allergies."),
            N_("A photo of your medicine boxes or a list you write yourself is fine."),
            "我需要用药清单。",
            section="medications_allergies",
        ),
        ChecklistItem(
            "ivf_records",
            N_("IVF cycle records and fertility tests"),
            "试管周期记录",
            N_("Details of each cycle, and reproductive test results."),
            N_("Ask your fertility clinic for the cycle records."),
            "我需要试管周期记录。",
            section="investigations",
        ),
    )
}

_COMMON = ("diagnosis_reports", "labs", "treatment_history", "discharge_summaries", "medications")

# Area -> (items in the order asked, items critical for a review).
CHECKLISTS: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "oncology": (
        (
            "diagnosis_reports",
            "imaging",
            "radiology_reports",
            "pathology_report",
            "pathology_slides",
            "labs",
            "genetic_tests",
            "treatment_history",
            "operative_notes",
            "discharge_summaries",
            "medications",
        ),
        frozenset({"imaging", "pathology_report"}),
    ),
    "cardiovascular": (
        (*_COMMON[:1], "imaging", "radiology_reports", *_COMMON[1:], "operative_notes"),
        frozenset({"diagnosis_reports", "imaging"}),
    ),
    "spine_ortho": (
        (*_COMMON[:1], "imaging", "radiology_reports", *_COMMON[1:], "operative_notes"),
        frozenset({"imaging"}),
    ),
    "neurology": (
        (*_COMMON[:1], "imaging", "radiology_reports", *_COMMON[1:]),
        frozenset({"imaging"}),
    ),
    "rare": (
        (*_COMMON[:1], "imaging", "radiology_reports", "genetic_tests", *_COMMON[1:]),
        frozenset({"diagnosis_reports", "labs"}),
    ),
    "fertility": (
        ("ivf_records", "genetic_tests", *_COMMON),
        frozenset({"ivf_records"}),
    ),
    "eye": (
        (*_COMMON[:1], "imaging", *_COMMON[1:], "operative_notes"),
        frozenset({"diagnosis_reports"}),
    ),
    "rehab_chronic": (
        (*_COMMON[:1], "imaging", "radiology_reports", *_COMMON[1:]),
        frozenset({"diagnosis_reports"}),
    ),
    "other": (
        (*_COMMON[:1], "imaging", "radiology_reports", *_COMMON[1:]),
        frozenset({"diagnosis_reports"}),
    ),
}


def checklist_for(area: str | None) -> tuple[ChecklistItem, ...]:
    order, _ = CHECKLISTS.get(area or "other", CHECKLISTS["other"])
    return tuple(ITEMS[item_id] for item_id in order)


def critical_items(area: str | None) -> frozenset[str]:
    return CHECKLISTS.get(area or "other", CHECKLISTS["other"])[1]


@dataclass(frozen=True)
class Readiness:
    score: int  # 0..100
    missing_critical: tuple[ChecklistItem, ...]
    later: tuple[ChecklistItem, ...]
    # Sent, but not in a form specialists can use (photos of scans instead of the files).
    partial: tuple[ChecklistItem, ...] = ()


CRITICAL_WEIGHT = 3


def readiness(area: str | None, statuses: Mapping[str, str]) -> Readiness:
    """Score the records: uploaded items count, critical ones three times; N/A is left out.

    `statuses` maps item id -> "pending" | "uploaded" | "partial" | "later" |
    "not_applicable"; "partial" (photos where the original files are needed) counts half.
    """
    critical = critical_items(area)
    total = have = 0.0
    missing: list[ChecklistItem] = []
    later: list[ChecklistItem] = []
    partial: list[ChecklistItem] = []
    for item in checklist_for(area):
        status = statuses.get(item.id, "pending")
        if status == "not_applicable" and item.id not in critical:
            continue
        weight = CRITICAL_WEIGHT if item.id in critical else 1
        total += weight
        if status == "uploaded":
            have += weight
        elif status == "partial":
            have += weight / 2
            partial.append(item)
        elif item.id in critical:
            missing.append(item)
        elif status == "later":
            later.append(item)
    score = round(100 * have / total) if total else 0
    return Readiness(score, tuple(missing), tuple(later), tuple(partial))

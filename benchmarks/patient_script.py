"""What the simulated patients of the benchmarks say: one script, shared by every benchmark."""

from __future__ import annotations

DIAGNOSES = (
    "Liver cancer, about 4 cm; the doctors suggest surgery.",
    "Narrowed heart valve, a valve replacement has been proposed.",
    "Herniated disc at L4-L5, spinal fusion was suggested.",
)
TYPED_QUESTION = "Is surgery necessary, or is there a non-surgical option for a 4 cm tumour?"
TIMELINE_LINES = ("March 2024: first symptoms", "2024-05-10: CT scan of the abdomen")
# Who the patient is and their medical background, in the order asked (straight after "for
# whom"): step id -> option id, or "text:" and what is typed.
PATIENT_ANSWERS = {
    "patient_name": "text:Maria Ivanova",
    "patient_name_zh": "skip",
    "patient_birth": "text:1958-03-12",
    "patient_sex": "female",
    "patient_residence": "text:Kazakhstan, Almaty",
    "patient_nationality": "text:Kazakhstan",
    "opinion_language": "opinion:en",
    "patient_contact": "skip",
    "history_illnesses": "text:Type 2 diabetes since 2015; appendix removed in 1990",
    "history_medicines": "text:Metformin 500 mg twice a day",
    "history_allergies": "skip",
}
# Asked after the diagnosis, in this order: what the patient can do day to day (cancer only),
# then the main worry.
PERFORMANCE_ANSWER = "perf:0_1"
COMPLAINT = "A lump in the liver since May; the doctors disagree about surgery"
LATER_ANSWERS = {"performance_status": PERFORMANCE_ANSWER, "complaint": f"text:{COMPLAINT}"}
# Steps with one sensible answer: step id -> option id (or "text:" and what is typed).
FIXED_ANSWERS = {
    **PATIENT_ANSWERS,
    **LATER_ANSWERS,
    "emergency": "no",
    "about": "continue",
    "consent_health": "agree",
    "consent_transfer": "agree",
    "for_whom": "self",
    "fit_verdict": "continue",
    "readiness": "continue",
    "review": "submit",
}

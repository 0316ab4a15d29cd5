"""What the simulated patients of the benchmarks say: one script, shared by every benchmark."""

from __future__ import annotations

DIAGNOSES = (
    "Liver cancer, about 4 cm; the doctors suggest surgery.",
    "Narrowed heart valve, a valve replacement has been proposed.",
    "Herniated disc at L4-L5, spinal fusion was suggested.",
)
TYPED_QUESTION = "Is surgery necessary, or is there a non-surgical option for a 4 cm tumour?"
TIMELINE_LINES = ("March 2024: first symptoms", "2024-05-10: CT scan of the abdomen")
# Who the patient is, in the order asked: step id -> option id, or "text:" and what is typed.
PATIENT_ANSWERS = {
    "patient_name": "text:Maria Ivanova",
    "patient_name_zh": "skip",
    "patient_birth": "text:1958-03-12",
    "patient_sex": "female",
    "patient_residence": "text:Kazakhstan, Almaty",
    "patient_nationality": "text:Kazakhstan",
    "opinion_language": "opinion:en",
    "patient_contact": "skip",
}
# Steps with one sensible answer: step id -> option id (or "text:" and what is typed).
FIXED_ANSWERS = {
    **PATIENT_ANSWERS,
    "emergency": "no",
    "about": "continue",
    "consent_health": "agree",
    "consent_transfer": "agree",
    "for_whom": "self",
    "fit_verdict": "continue",
    "readiness": "continue",
    "review": "submit",
}

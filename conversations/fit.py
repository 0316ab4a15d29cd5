"""The fit assessment: an honest verdict, with reasons in plain words.

The rules follow the facts in shared/domain.md: strong reasons for a second opinion, weaker
ones, and situations in which a remote review cannot do much (no records, an instant answer
wanted, a particular answer hoped for).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from conversations.state import IntakeDraft
from records.markers import N_

Verdict = Literal["good_fit", "possible_fit", "not_now"]
Recommendation = Literal["remote_review", "in_person"]

# id -> label msgid; the first group are strong reasons for a second opinion.
STRONG_REASONS: dict[str, str] = {
    "new_diagnosis": N_("A new or serious diagnosis"),
    "major_treatment": N_("Major or irreversible treatment proposed"),
    "conflicting_advice": N_("Doctors disagree"),
    "rare_condition": N_("A rare or complex condition"),
    "not_working": N_("Treatment isn't working"),
    "inconsistent": N_("Diagnosis doesn't fit my symptoms"),
    "cross_border": N_("Care across several countries"),
}
OTHER_REASONS: dict[str, str] = {
    "poor_communication": N_("Hard to talk with my doctor"),
    "reassurance": N_("Peace of mind about a clear plan"),
}
REASONS: dict[str, str] = {**STRONG_REASONS, **OTHER_REASONS}

# Situation questions, asked one per message. id -> question msgid.
SITUATION_QUESTIONS: dict[str, str] = {
    "treatment_started": N_("Has treatment for this already started?"),
    "irreversible": N_(
        "Has a doctor proposed a major or irreversible treatment, such as surgery, "
        "chemotherapy or a transplant?"
    ),
    "records": N_(
        "Can you get the actual medical records: reports, scan files and, for a tumour, "
        "the pathology report?"
    ),
    "instant": N_("Do you need an answer within the next few days?"),
    "confirm": N_("Are you mainly hoping a specialist will confirm a particular answer?"),
    "goal": N_("What would help you most?"),
}

VERDICT_TITLES: dict[str, str] = {
    "good_fit": N_("A remote second opinion looks like a good fit."),
    "possible_fit": N_("A second opinion may help, with some caveats."),
    "not_now": N_("A remote second opinion is probably not the right step now."),
}

RECOMMENDATION_TEXTS: dict[str, str] = {
    "remote_review": N_(
        "Suggested: a remote record review. Specialists read your records and answer your "
        "questions in writing; no travel is needed. If the review raises real questions, an "
        "in-person visit can follow."
    ),
    "in_person": N_(
        "Suggested: an in-person evaluation in China, with an examination and fresh tests. "
        "A remote review of your records can still come first."
    ),
}


@dataclass(frozen=True)
class FitAssessment:
    verdict: Verdict
    recommendation: Recommendation
    # Plain-word reasons (msgids), good points first, then concerns.
    strengths: tuple[str, ...]
    concerns: tuple[str, ...]


def assess(draft: IntakeDraft) -> FitAssessment:
    answers = draft.situation
    strong = [r for r in draft.fit_reasons if r in STRONG_REASONS]
    strengths: list[str] = []
    concerns: list[str] = []
    blockers = 0

    if strong:
        strengths.append(N_("Your reasons are the kind a second opinion is meant for."))
    else:
        concerns.append(
            N_(
                "For a clear, well-understood condition with a standard plan, a second opinion "
                "often adds little."
            )
        )
    if answers.get("irreversible") == "yes":
        strengths.append(
            N_("A major or irreversible treatment is proposed: a good time to check is before it.")
        )
    if answers.get("treatment_started") == "yes":
        concerns.append(
            N_(
                "Treatment has already started, so the question becomes whether to continue or "
                "change it."
            )
        )
    if answers.get("records") == "no":
        blockers += 1
        concerns.append(
            N_(
                "Without the actual records (scans, pathology, lab results) specialists can "
                "only discuss, not review."
            )
        )
    elif answers.get("records") == "unsure":
        concerns.append(
            N_("The review depends on getting the actual records; I'll help with that.")
        )
    if answers.get("instant") == "yes":
        blockers += 1
        concerns.append(
            N_("A written review usually takes 7 to 14 days once the case is complete.")
        )
    if answers.get("confirm") == "yes":
        concerns.append(
            N_(
                "Specialists give their own independent view, which may differ from the answer "
                "you hope for."
            )
        )

    verdict: Verdict
    if blockers or not strong:
        verdict = "not_now"
    elif concerns:
        verdict = "possible_fit"
    else:
        verdict = "good_fit"

    wants_treatment = answers.get("goal") == "treatment"
    recommendation: Recommendation = (
        "in_person" if wants_treatment or answers.get("records") == "no" else "remote_review"
    )
    return FitAssessment(verdict, recommendation, tuple(strengths), tuple(concerns))

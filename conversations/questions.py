"""Questions for the specialist: suggestions per area, and a gentle check for vague ones."""

from __future__ import annotations

import re

from records.markers import N_

MIN_QUESTIONS = 3
MAX_QUESTIONS = 5
MAX_QUESTION_LENGTH = 500

GENERAL_SUGGESTIONS: dict[str, str] = {
    "q_diagnosis": N_("Is this the right diagnosis?"),
    "q_more_tests": N_("Are more tests needed before deciding on treatment?"),
    "q_alternative": N_("Is there a less invasive option than the one proposed?"),
    "q_travel": N_("Is travelling for in-person care medically reasonable for me?"),
}

AREA_SUGGESTIONS: dict[str, dict[str, str]] = {
    "oncology": {
        "q_pathology": N_(
            "Should the pathology be reviewed again, and are biomarker tests needed?"
        ),
        "q_staging": N_("Is the stage right, based on my scans and pathology?"),
        "q_sequence": N_("Is the planned order of surgery, chemotherapy and radiotherapy right?"),
        "q_trials": N_("Are there clinical trials I might be eligible for?"),
    },
    "cardiovascular": {
        "q_surgery_needed": N_(
            "Is surgery needed, or can this be treated with medicine or a catheter procedure?"
        ),
        "q_timing": N_(
            "How urgent is the proposed operation or procedure, and what are the risks of waiting?"
        ),
    },
    "spine_ortho": {
        "q_fusion": N_("Is spinal fusion or joint replacement really necessary?"),
        "q_conservative": N_("Could physiotherapy or other non-surgical treatment be tried first?"),
    },
    "neurology": {
        "q_imaging_read": N_("Do the MRI findings match my symptoms?"),
        "q_treatment_options": N_("Are there other treatment options for my condition?"),
    },
    "rare": {
        "q_genetic": N_("Which genetic or specialised tests could find the cause?"),
        "q_centre": N_("Is there a team with experience of this condition?"),
    },
    "fertility": {
        "q_ivf_failure": N_("Why might my IVF cycles have failed, and what could change?"),
        "q_tests_missing": N_("Which tests are missing for me or my partner?"),
    },
    "eye": {
        "q_eye_surgery": N_("Is surgery the right choice for my eye condition now?"),
    },
    "rehab_chronic": {
        "q_rehab_plan": N_("Is my rehabilitation plan the right one, and what could be added?"),
    },
}

ALL_SUGGESTIONS: dict[str, str] = {
    key: label for group in AREA_SUGGESTIONS.values() for key, label in group.items()
} | GENERAL_SUGGESTIONS

_VAGUE = re.compile(
    r"^\s*(what do you think|what should i do|any (advice|thoughts|ideas)|help( me)?|"
    r"is it (bad|serious|ok|okay)|can you help|please advise|your opinion|what now|"
    r"你(们)?怎么看|怎么办|有什么建议|帮帮我|严重吗|看看|请指教)\W*$",
    re.IGNORECASE,
)
_CJK = re.compile(r"[\u3400-\u9fff]")


def suggestions_for(area: str | None) -> dict[str, str]:
    return {**AREA_SUGGESTIONS.get(area or "", {}), **GENERAL_SUGGESTIONS}


def is_vague(question: str) -> bool:
    """Too short or too open to get a useful written answer."""
    text = question.strip()
    if _VAGUE.match(text):
        return True
    if _CJK.search(text):
        return len(_CJK.findall(text)) < 6
    return len(re.findall(r"\w+", text)) < 4

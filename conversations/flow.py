"""The intake as one flat, declarative table of steps, in the order a patient meets them."""

from __future__ import annotations

from pathlib import Path

from conversations.step import Step
from conversations.steps import (
    case_details,
    fit,
    history,
    patient,
    people,
    privacy,
    records,
    review,
    screening,
)

STEPS: dict[str, Step] = {
    step.id: step
    for step in (
        *screening.STEPS,
        *people.STEPS,
        *patient.STEPS,
        *history.STEPS,
        *fit.STEPS,
        *case_details.STEPS,
        *history.LATER_STEPS,
        *records.STEPS,
        *review.STEPS,
        *privacy.STEPS,
    )
}

FIRST_STEP = "emergency"

# Steps before consent, as each declares: they take buttons only, and nothing they see is kept.
BEFORE_CONSENT = frozenset(step.id for step in STEPS.values() if step.before_consent)

# Section of each step, in order, so the review can send a patient back to one part.
SECTION_ORDER = (
    "who",
    "patient",
    "history",
    "fit",
    "area",
    "complaint",
    "questions",
    "timeline",
    "records",
)


# Moves made by commands rather than by answers (drawn dotted in the diagram).
COMMAND_EDGES: tuple[tuple[str, str, str], ...] = (
    ("declined", "/start", "emergency"),
    ("stopped", "/start", "fit_verdict"),
    ("submitted", "/newcase", "emergency"),
    ("any_step", "red flag in a text", "emergency_paused"),
    ("any_step", "/restart or /newcase", "emergency"),
    ("any_step", "/back", "previous_step"),
    ("any_step", "/withdraw", "withdrawn"),
    ("any_step", "/delete", "erasing"),
    ("withdrawn", "/start", "emergency"),
)


def mermaid() -> str:
    """The flow diagram, drawn from the table; conversations/intake.mmd must equal this."""
    lines = ["flowchart TD"]
    for step in STEPS.values():
        for target in step.edges:
            if target == "*":
                lines.append(f"    {step.id} -->|resume| paused_step([the paused step])")
            else:
                lines.append(f"    {step.id} --> {target}")
    for source, label, target in COMMAND_EDGES:
        lines.append(f"    {source} -.->|{label}| {target}")
    return "\n".join(lines) + "\n"


DIAGRAM_PATH = Path(__file__).with_name("intake.mmd")

if __name__ == "__main__":
    DIAGRAM_PATH.write_text(mermaid(), encoding="utf-8")
    print(f"wrote {DIAGRAM_PATH}")

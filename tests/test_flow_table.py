"""The step table is the flow: the diagram is drawn from it and every edge is real."""

from __future__ import annotations

from conversations.flow import BEFORE_CONSENT, COMMAND_EDGES, DIAGRAM_PATH, STEPS, mermaid
from conversations.i18n import translator
from conversations.steps import privacy, screening


def test_the_flow_diagram_matches_the_step_table() -> None:
    assert DIAGRAM_PATH.read_text(encoding="utf-8") == mermaid(), (
        "conversations/intake.mmd is out of date: run `python -m conversations.flow`"
    )


def test_every_declared_edge_leads_to_a_step() -> None:
    for step in STEPS.values():
        for target in step.edges:
            assert target == "*" or target in STEPS, f"{step.id} -> {target}"


def test_every_step_can_be_reached_from_the_first() -> None:
    """By answers, or by a command that works at any step (/withdraw, /delete)."""
    from_anywhere = [target for source, _, target in COMMAND_EDGES if source == "any_step"]
    reached, frontier = {"emergency"}, ["emergency"]
    while frontier:
        for target in (*STEPS[frontier.pop()].edges, *from_anywhere):
            if target in STEPS and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert set(STEPS) - reached == set()


def test_step_ids_are_stable_named_strings() -> None:
    for step_id in STEPS:
        assert step_id.isidentifier() and step_id.islower()


def test_every_step_declares_what_status_says_about_it() -> None:
    """ "You are at: …" in /status comes from the step itself, in the patient's language."""
    chinese = translator("zh_Hans")
    for step in STEPS.values():
        assert step.description.strip(), step.id
        assert chinese(step.description) != step.description, f"{step.id}: not in the catalogs"


def test_the_steps_before_consent_are_the_screen_the_consents_and_where_they_end() -> None:
    """Only the emergency screen, what the service is, the two consents, and the resting
    places of a patient who said no, withdrew or asked for an erasure come before consent:
    every other step may keep what the patient writes."""
    declared = {step.id for step in STEPS.values() if step.before_consent}
    assert declared == BEFORE_CONSENT
    assert declared == {
        "emergency",
        "emergency_paused",
        "about",
        "consent_health",
        "consent_transfer",
        "declined",
        "withdrawn",
        "erasing",
    }
    assert declared == {step.id for step in (*screening.STEPS, *privacy.STEPS)}

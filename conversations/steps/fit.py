"""Fit assessment: reasons, the situation one question at a time, then an honest verdict."""

from __future__ import annotations

from conversations.fit import (
    REASONS,
    RECOMMENDATION_TEXTS,
    SITUATION_QUESTIONS,
    VERDICT_TITLES,
    assess,
)
from conversations.i18n import Translator
from conversations.state import ConversationState
from conversations.step import Choice, Context, Outcome, Step
from records.markers import N_

# /status for every question of the fit assessment.
FITS_DESCRIPTION = N_("whether a second opinion fits")

EXPECTATIONS = N_(
    "What to expect: finding a suitable specialist usually takes 1 to 3 weeks, and a written "
    "review 7 to 14 days once your case is complete. These are typical times, not promises, "
    "and no particular doctor or result can be guaranteed."
)


def _reason_choices(state: ConversationState) -> tuple[Choice, ...]:
    chosen = set(state.draft.fit_reasons)
    toggles = tuple(Choice(key, label, marked=key in chosen) for key, label in REASONS.items())
    return (*toggles, Choice("done", N_("Done")))


def _toggle_reason(state: ConversationState, choice: str, ctx: Context) -> Outcome:
    if choice == "done":
        return Outcome(goto=SITUATION_STEP_IDS[0])
    reasons = state.draft.fit_reasons
    if choice in reasons:
        reasons.remove(choice)
    else:
        reasons.append(choice)
    return Outcome()


FIT_REASONS = Step(
    id="fit_reasons",
    description=FITS_DESCRIPTION,
    prompt=N_("Why are you looking for a second opinion? Choose all that apply, then press Done."),
    choices=_reason_choices,
    on_choice=_toggle_reason,
    edges=("fit_treatment_started",),
    section="fit",
)

YES_NO_UNSURE = (
    Choice("yes", N_("Yes")),
    Choice("no", N_("No")),
    Choice("unsure", N_("Not sure")),
)
GOAL_CHOICES = (
    Choice("review", N_("A review of the diagnosis or plan")),
    Choice("treatment", N_("Treatment in China")),
    Choice("unsure", N_("Not sure yet")),
)

SITUATION_STEP_IDS = tuple(f"fit_{key}" for key in SITUATION_QUESTIONS)


def _situation_step(index: int, key: str) -> Step:
    following = (
        SITUATION_STEP_IDS[index + 1] if index + 1 < len(SITUATION_STEP_IDS) else "fit_verdict"
    )

    def answer(state: ConversationState, choice: str, ctx: Context) -> Outcome:
        state.draft.situation[key] = choice
        return Outcome(goto=following)

    return Step(
        id=SITUATION_STEP_IDS[index],
        description=FITS_DESCRIPTION,
        prompt=SITUATION_QUESTIONS[key],
        choices=GOAL_CHOICES if key == "goal" else YES_NO_UNSURE,
        on_choice=answer,
        edges=(following,),
        section="fit",
    )


def verdict_text(state: ConversationState, t: Translator) -> str:
    fit = assess(state.draft)
    lines = [t(VERDICT_TITLES[fit.verdict]), ""]
    lines += [f"✓ {t(s)}" for s in fit.strengths]
    lines += [f"• {t(c)}" for c in fit.concerns]
    lines += ["", t(RECOMMENDATION_TEXTS[fit.recommendation]), "", t(EXPECTATIONS)]
    return "\n".join(lines)


def _verdict_prompt(state: ConversationState, t: Translator) -> str:
    text = verdict_text(state, t)
    if assess(state.draft).verdict == "not_now":
        text += "\n\n" + t(
            "You can still go on and prepare the case; the points above will stay on it for the "
            "coordinator."
        )
    return text


def _verdict_choices(state: ConversationState) -> tuple[Choice, ...]:
    if assess(state.draft).verdict == "not_now":
        return (
            Choice("continue", N_("Continue anyway"), goto="area"),
            Choice("stop", N_("Stop here for now"), goto="stopped"),
        )
    return (Choice("continue", N_("Continue"), goto="area"),)


FIT_VERDICT = Step(
    id="fit_verdict",
    description=FITS_DESCRIPTION,
    prompt=_verdict_prompt,
    choices=_verdict_choices,
    edges=("area", "stopped"),
    section="fit",
)

STOPPED = Step(
    id="stopped",
    description=N_("paused after the fit assessment"),
    prompt=N_(
        "Thank you for telling me. Your answers are kept, and you can come back at any "
        "time: send /start to pick up where you left off.\n\nPlease keep talking with your "
        "treating doctors about next steps."
    ),
    edges=(),
)

STEPS = (
    FIT_REASONS,
    *(_situation_step(i, key) for i, key in enumerate(SITUATION_QUESTIONS)),
    FIT_VERDICT,
    STOPPED,
)

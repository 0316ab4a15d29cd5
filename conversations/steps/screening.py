"""Emergency screen, what the service is, and the two consents."""

from __future__ import annotations

from typing import Literal

from babel import Locale

from conversations.effects import ConsentGiven
from conversations.i18n import Translator
from conversations.state import Consent, ConversationState
from conversations.step import Choice, ChoiceHandler, Context, Outcome, Step
from records.markers import N_

# /status for both consents.
CONSENT_DESCRIPTION = N_("consent")

# Bump a version when its text changes in meaning; the version a patient agreed to is stored.
HEALTH_CONSENT_VERSION = "health-2026-11"
TRANSFER_CONSENT_VERSION = "transfer-2026-11"

EMERGENCY_NUMBERS = N_(
    "If this is an emergency, please get help now:\n"
    "• China: 120\n"
    "• United Kingdom: 999\n"
    "• United States and Canada: 911\n"
    "• European Union: 112\n"
    "• Elsewhere: your local emergency number, or go to the nearest emergency department."
)


# Where a language is mostly spoken, the numbers there come first (region code -> number);
# the general list follows for everyone, since the language does not say where someone is.
LOCAL_EMERGENCY_NUMBERS: dict[str, tuple[tuple[str, str], ...]] = {
    "zh_Hant": (("TW", "119"), ("HK", "999"), ("MO", "999")),
    "ru": (("RU", "112 / 103"), ("KZ", "112 / 103")),
    "ar": (("SA", "997"), ("AE", "998"), ("EG", "123")),
    "es": (("ES", "112"), ("MX", "911"), ("AR", "107")),
    "fr": (("FR", "15 / 112"), ("BE", "112"), ("CH", "144")),
    "de": (("DE", "112"), ("AT", "144"), ("CH", "144")),
    "ja": (("JP", "119"),),
    "ko": (("KR", "119"),),
    "vi": (("VN", "115"),),
    "id": (("ID", "112 / 119"),),
    "kk": (("KZ", "112 / 103"),),
    "mn": (("MN", "103"),),
}


def emergency_message(t: Translator) -> str:
    local = LOCAL_EMERGENCY_NUMBERS.get(t.locale, ())
    territories = Locale.parse(t.locale).territories
    lines = [
        f"• {territories.get(region, region)}: {t.isolate(number)}" for region, number in local
    ]
    numbers = t(EMERGENCY_NUMBERS)
    if lines:
        head, _, rest = numbers.partition("\n")
        numbers = "\n".join([head, *lines, rest])
    return (
        t("Please stop here and get urgent help. I can't help with emergencies.") + "\n\n" + numbers
    )


EMERGENCY = Step(
    id="emergency",
    description=N_("the first safety question"),
    before_consent=True,
    prompt=N_(
        "Hello, I'm Huizhen. I help you prepare a case for a second opinion from specialists "
        "in China.\n\nFirst, an important question: is anyone having sudden, severe or "
        "quickly worsening symptoms right now, such as chest pain, trouble breathing, signs "
        "of a stroke or heavy bleeding?"
    ),
    choices=(
        Choice("no", N_("No, not an emergency")),
        Choice("yes", N_("Yes, or I'm not sure")),
    ),
    on_choice=lambda state, choice, ctx: _after_screen(state, choice),
    edges=("about", "emergency_paused", "for_whom"),
)


def _after_screen(state: ConversationState, choice: str) -> Outcome:
    # Consent is the user's, not the case's: a second case skips straight to its questions.
    following = "for_whom" if state.consented else "about"
    if choice == "yes":
        state.paused_step = following
        return Outcome(goto="emergency_paused")
    return Outcome(goto=following)


def _resume_after_emergency(state: ConversationState, choice: str, ctx: Context) -> Outcome:
    return Outcome(goto=state.paused_step or "emergency")


def _for_a_relative(state: ConversationState) -> bool:
    return state.draft.for_whom == "family"


def _paused_prompt(state: ConversationState, t: Translator) -> str:
    if _for_a_relative(state):
        carry_on = t(
            "Your answers are kept. When the patient is being cared for, press a button to "
            "carry on."
        )
    else:
        carry_on = t("Your answers are kept. When you are safe, press the button to carry on.")
    return emergency_message(t) + "\n\n" + carry_on


def _paused_choices(state: ConversationState) -> tuple[Choice, ...]:
    # Both buttons carry on with the words that raised the alarm; "the past" says the alarm
    # was about history, which the words themselves did not make clear.
    past = Choice("past", N_("This is about the past, continue"))
    if _for_a_relative(state):
        # The person writing is safe; what matters is that the patient is being helped.
        return (Choice("resume", N_("Help is on the way, continue")), past)
    safe = Choice("resume", N_("I'm safe now, continue"))
    return (safe, past) if state.paused_text else (safe,)


EMERGENCY_PAUSED = Step(
    id="emergency_paused",
    description=N_("paused for your safety"),
    before_consent=True,
    prompt=_paused_prompt,
    choices=_paused_choices,
    on_choice=_resume_after_emergency,
    edges=("*",),
)

ABOUT = Step(
    id="about",
    description=N_("what the service is"),
    before_consent=True,
    prompt=N_(
        "Here is what I do, and what I don't.\n\n"
        "• I help you gather your medical records and questions into one clear case.\n"
        "• A coordinator checks the case and looks for suitable specialists in China.\n"
        "• I don't give a diagnosis or medical advice.\n"
        "• No particular doctor, hospital, treatment, timing or result can be promised.\n\n"
        "A written remote review usually takes 7 to 14 days once a case is complete."
    ),
    choices=(
        Choice("continue", N_("Continue"), goto="consent_health"),
        Choice("not_now", N_("Not now"), goto="declined"),
    ),
    edges=("consent_health", "declined"),
)


ConsentScope = Literal["health_data", "transfer_to_china"]


def _consent(scope: ConsentScope, version: str, goto: str) -> ChoiceHandler:
    def handle(state: ConversationState, choice: str, ctx: Context) -> Outcome:
        if choice != "agree":
            return Outcome(goto="declined")
        consent = Consent(version=version, given_at=ctx.now)
        if scope == "health_data":
            state.consent_health = consent
        else:
            state.consent_transfer = consent
            if state.draft.case_id is None:
                state.draft.case_id = ctx.new_id()
        return Outcome(
            goto=goto,
            effects=[ConsentGiven(scope=scope, version=version, given_at=ctx.now)],
        )

    return handle


CONSENT_HEALTH_PROMPT = N_(
    "To prepare your case I need to keep health information: your answers and the "
    "medical records you send. It is stored securely, used only for your case, and you "
    "can ask for it to be deleted.\n\nDo you agree that Huizhen may process this health "
    "information?"
)

CONSENT_HEALTH = Step(
    id="consent_health",
    description=CONSENT_DESCRIPTION,
    before_consent=True,
    prompt=CONSENT_HEALTH_PROMPT,
    choices=(
        Choice("agree", N_("I agree")),
        Choice("decline", N_("I don't agree")),
    ),
    on_choice=_consent("health_data", HEALTH_CONSENT_VERSION, "consent_transfer"),
    edges=("consent_transfer", "declined"),
)

CONSENT_TRANSFER_PROMPT = N_(
    "One more consent, asked separately because the law asks for it: your case will be "
    "shared with coordinators and specialists in China, so your information will be "
    "transferred to China.\n\nDo you agree to this transfer?"
)

CONSENT_TRANSFER = Step(
    id="consent_transfer",
    description=CONSENT_DESCRIPTION,
    before_consent=True,
    prompt=CONSENT_TRANSFER_PROMPT,
    choices=(
        Choice("agree", N_("I agree")),
        Choice("decline", N_("I don't agree")),
    ),
    on_choice=_consent("transfer_to_china", TRANSFER_CONSENT_VERSION, "for_whom"),
    edges=("for_whom", "declined"),
)

DECLINED = Step(
    id="declined",
    description=N_("not started"),
    before_consent=True,
    prompt=N_(
        "That's completely fine. I haven't stored any health information about you.\n\n"
        "If you change your mind, send /start at any time."
    ),
    edges=(),
)

STEPS = (EMERGENCY, EMERGENCY_PAUSED, ABOUT, CONSENT_HEALTH, CONSENT_TRANSFER, DECLINED)

"""Whole conversations on the console, read like the transcript a patient would see."""

from __future__ import annotations

from pathlib import Path

from benchmarks.patient_script import PATIENT_ANSWERS
from bot.app import App
from conversations.state import ConversationKey
from storage.models import Case
from tests.support.console import (
    Chat,
    about_patient,
    consent,
    make_chat,
    through_fit,
)


def test_a_patient_goes_from_start_to_a_submitted_case(
    chat: Chat, app: App, tmp_path: Path
) -> None:
    reply = chat.say("/start")
    assert "Hello, I'm Huizhen" in reply
    assert "chest pain" in reply
    reply = chat.choose("no")
    assert "I don't give a diagnosis" in reply
    assert "No particular doctor, hospital, treatment, timing or result can be promised" in reply
    reply = chat.choose("continue")
    assert "Do you agree that Huizhen may process this health information?" in reply
    reply = chat.choose("agree")
    assert "transferred to China" in reply
    reply = chat.choose("agree")
    assert "Who is this second opinion for?" in reply
    reply = chat.choose("self")
    assert "What is your full name, as written in your passport" in reply
    reply = about_patient(chat)
    assert "Choose all that apply" in reply
    reply = chat.choose("new_diagnosis")
    assert "✓ A new or serious diagnosis" in chat.buttons
    chat.choose("major_treatment")
    reply = chat.choose("done")
    assert "Has treatment for this already started?" in reply
    chat.choose("no")  # treatment started
    chat.choose("yes")  # irreversible treatment proposed
    chat.choose("yes")  # records at hand
    chat.choose("no")  # instant answer
    chat.choose("no")  # particular answer
    reply = chat.choose("review")
    assert "A remote second opinion looks like a good fit." in reply
    assert "Suggested: a remote record review." in reply
    assert "1 to 3 weeks" in reply and "7 to 14 days" in reply
    assert "not promises" in reply
    reply = chat.choose("continue")
    assert "Which area of medicine" in reply
    chat.choose("oncology")
    reply = chat.choose("hepatobiliary_gi")
    assert "what diagnosis has been given so far" in reply
    reply = chat.say("Liver cancer, 4 cm, surgeons propose a resection")
    assert "These days, what can you do on a usual day?" in reply
    assert chat.option_ids == ["perf:0_1", "perf:2", "perf:3", "perf:4", "skip"]
    reply = chat.choose("perf:2")
    assert "In one sentence: what worries you most, and since when?" in reply
    reply = chat.say("A lump in my liver since May, and the doctors disagree about surgery")
    assert "What would you like the specialist to answer?" in reply

    reply = chat.say("what do you think?")
    assert "make it more specific" in reply
    chat.choose("q_staging")
    chat.say("Is a resection the best first step, or should I have chemotherapy first?")
    reply = chat.choose("q_trials")
    assert "1. Is the stage right, based on my scans and pathology?" in reply
    assert "3. Are there clinical trials I might be eligible for?" in reply
    chat.choose("edit")
    chat.choose("edit:1")
    reply = chat.say("Is resection the best first step, or chemotherapy before surgery?")
    assert "2. Is resection the best first step, or chemotherapy before surgery?" in reply
    chat.choose("q_sequence")
    chat.choose("remove")
    reply = chat.choose("remove:3")
    assert "4. Is the planned order" not in reply
    assert "3. Are there clinical trials" in reply
    reply = chat.choose("done")
    assert "one event per line" in reply

    reply = chat.say("2024-05-10: CT scan shows a liver lesion\nMarch 2024: tiredness, weight loss")
    assert reply.index("March 2024 — tiredness") < reply.index("2024-05-10 — CT scan")
    reply = chat.say("about June 2024: biopsy")
    assert "about June 2024 — biopsy" in reply
    reply = chat.choose("done")
    assert "Records, item 1 of 11" in reply
    assert "Diagnosis reports and clinic letters (诊断报告 / 病历)" in reply

    report = tmp_path / "discharge-letter.pdf"
    report.write_bytes(b"%PDF-1.4 a letter")
    chat.choose("upload")
    reply = chat.say(str(report))
    assert "Received: discharge-letter.pdf" in reply
    reply = chat.choose("done")
    assert "Records, item 2 of 11" in reply
    assert "Specialists need this one" in reply
    chat.choose("later")  # imaging
    while "Records, item" in chat.transcript[-1]:
        chat.choose("not_applicable")
    reply = chat.transcript[-1]
    assert "Readiness of your records for review" in reply
    assert "Scans as original files" in reply
    assert "我需要原始影像资料（DICOM格式）的光盘或电子版。" in reply

    reply = chat.choose("continue")
    assert "Your case" in reply
    assert "Diagnosis: Liver cancer, 4 cm" in reply
    assert "• March 2024 — tiredness" in reply
    reply = chat.choose("submit")
    assert "Your case has been submitted" in reply
    assert "[coordinators] New case HZ-" in reply

    cases = app.queue.list()
    assert len(cases) == 1
    case: Case = cases[0]
    assert case.reference in reply
    assert case.status == "submitted"
    assert case.area == "oncology"
    assert case.verdict == "good_fit"
    assert "Liver cancer, 4 cm" in case.answers_json
    documents = app.queue.documents(case.id)
    assert [(d.item, d.original_name, d.size) for d in documents] == [
        ("diagnosis_reports", "discharge-letter.pdf", len(b"%PDF-1.4 a letter"))
    ]


def test_probably_not_now_is_said_honestly_and_the_patient_may_go_on(chat: Chat, app: App) -> None:
    consent(chat)
    chat.choose("family")
    reply = chat.choose("parent")
    assert "answer about the patient" in chat.transcript[-2]
    assert "What is the patient's full name" in reply
    assert "Choose all that apply" in about_patient(chat)
    reply = through_fit(
        chat,
        ("reassurance",),
        ("yes", "no", "no", "yes", "yes", "treatment"),
    )
    assert "A remote second opinion is probably not the right step now." in reply
    assert "Without the actual records" in reply
    assert "A written review usually takes 7 to 14 days" in reply
    assert "Suggested: an in-person evaluation in China" in reply
    assert chat.buttons == ["Continue anyway", "Stop here for now"]
    reply = chat.choose("stop")
    assert "Your answers are kept" in reply
    reply = chat.say("/start")
    assert "Welcome back" in reply
    assert "Continue anyway" in chat.buttons
    reply = chat.choose("continue")
    assert "Which area of medicine" in reply
    state = app.pipeline.state_of(ConversationKey("console", "alice"))
    assert state is not None and state.draft.relationship == "parent"


def test_declining_consent_ends_kindly_and_stores_no_health_data(chat: Chat, app: App) -> None:
    chat.say("/start")
    chat.choose("no")
    chat.choose("continue")
    reply = chat.choose("decline")
    assert "That's completely fine" in reply
    assert "haven't stored any health information" in reply
    state = app.pipeline.state_of(ConversationKey("console", "alice"))
    assert state is not None and state.step == "declined"
    assert state.consent_health is None and not state.draft.has_health_data()
    reply = chat.say("I have liver cancer")
    assert "Send /help" in reply
    state = app.pipeline.state_of(ConversationKey("console", "alice"))
    assert state is not None and not state.draft.has_health_data()


def test_declining_the_transfer_to_china_also_ends_kindly(chat: Chat, app: App) -> None:
    chat.say("/start")
    chat.choose("no")
    chat.choose("continue")
    chat.choose("agree")
    reply = chat.choose("decline")
    assert "That's completely fine" in reply
    assert app.queue.list() == []


def test_an_emergency_answer_gives_numbers_and_pauses_without_losing_the_case(chat: Chat) -> None:
    consent(chat)
    chat.choose("self")
    about_patient(chat)
    chat.choose("new_diagnosis")
    reply = chat.say("my father has chest pain right now and can't breathe")
    assert "get urgent help" in reply
    assert "China: 120" in reply and "999" in reply and "911" in reply and "112" in reply
    assert "Your answers are kept" in reply
    assert chat.buttons == ["I'm safe now, continue"]
    reply = chat.say("hello?")
    assert "press the button" in reply
    reply = chat.choose("resume")
    assert "Choose all that apply" in reply
    assert "✓ A new or serious diagnosis" in chat.buttons


def test_a_past_event_that_sounds_alarming_is_kept_after_the_patient_says_they_are_safe(
    chat: Chat, app: App
) -> None:
    consent(chat)
    chat.choose("self")
    about_patient(chat)
    through_fit(chat, ("new_diagnosis",), ("no", "no", "yes", "no", "no", "unsure"))
    chat.choose("continue")
    chat.choose("neurology")
    reply = chat.say("I had a stroke in 2023, now doctors propose surgery on an aneurysm")
    assert "get urgent help" in reply
    assert chat.buttons == ["I'm safe now, continue", "This is about the past, continue"]
    reply = chat.choose("resume")
    assert "what worries you most" in reply  # no question about daily activity: not cancer
    state = app.pipeline.state_of(ConversationKey("console", "alice"))
    assert state is not None and state.draft.diagnosis is not None
    assert state.draft.diagnosis.startswith("I had a stroke in 2023")


def to_the_timeline_as_a_relative(chat: Chat) -> str:
    consent(chat)
    chat.press("For a family member or friend")
    chat.press("My parent")
    about_patient(chat)
    through_fit(chat, ("new_diagnosis",), ("no", "no", "yes", "no", "no", "unsure"))
    chat.press("Continue")
    chat.press("Cancer or a tumour")
    chat.press("Liver, bile duct, pancreas")
    chat.say("Liver cancer, 4 cm, surgeons propose a resection")
    chat.press("Up and about, cannot work")
    chat.say("A lump in his liver since May; the doctors disagree about surgery")
    chat.press("Is the stage right")
    chat.press("Are there clinical trials")
    chat.press("Is the planned order")
    return chat.press("Done")


def test_past_events_on_the_timeline_do_not_stop_the_intake(chat: Chat, app: App) -> None:
    assert "one event per line" in to_the_timeline_as_a_relative(chat)
    reply = chat.say("March 2024: vomiting blood, gastroscopy found an ulcer\n2023-05-12: seizure")
    assert "get urgent help" not in reply
    assert "March 2024 — vomiting blood" in reply and "2023-05-12 — seizure" in reply
    # Something happening now still stops everything, dated or not.
    reply = chat.say("he is vomiting blood right now")
    assert "get urgent help" in reply
    assert chat.buttons == ["Help is on the way, continue", "This is about the past, continue"]
    assert "When the patient is being cared for" in reply
    reply = chat.press("Help is on the way, continue")
    # The words are kept as the answer they were: an undated line, asked to be dated.
    assert "I couldn't find a date" in reply and "Done" in chat.buttons
    state = app.pipeline.state_of(ConversationKey("console", "alice"))
    assert state is not None and [e.what[:14] for e in state.draft.timeline] == [
        "seizure",
        "vomiting blood",
    ]


def test_a_relative_can_say_the_alarm_was_about_the_past(chat: Chat, app: App) -> None:
    consent(chat)
    chat.press("For a family member or friend")
    chat.press("My parent")
    about_patient(chat)
    through_fit(chat, ("new_diagnosis",), ("no", "no", "yes", "no", "no", "unsure"))
    chat.press("Continue")
    chat.press("Brain and nerves")
    reply = chat.say("My father had a stroke in 2023, now doctors propose surgery on an aneurysm")
    assert "get urgent help" in reply
    assert "I'm safe now, continue" not in chat.buttons
    reply = chat.press("This is about the past, continue")
    assert "what worries the patient most" in reply
    state = app.pipeline.state_of(ConversationKey("console", "alice"))
    assert state is not None and state.draft.diagnosis is not None
    assert state.draft.diagnosis.startswith("My father had a stroke in 2023")


def test_yes_on_the_emergency_screen_sends_to_emergency_care(chat: Chat) -> None:
    chat.say("/start")
    reply = chat.choose("yes")
    assert "China: 120" in reply
    reply = chat.choose("resume")
    assert "Here is what I do" in reply


def test_back_returns_to_the_previous_question_and_keeps_answers(chat: Chat, app: App) -> None:
    consent(chat)
    chat.choose("self")
    about_patient(chat)
    chat.choose("conflicting_advice")
    chat.choose("done")
    reply = chat.say("/back")
    assert "Choose all that apply" in reply
    assert "✓ Doctors disagree" in chat.buttons
    reply = chat.say("/back")
    assert "Does the patient have any allergies" not in reply and "any allergies" in reply
    for _ in range(len(PATIENT_ANSWERS) - 1):
        reply = chat.say("/back")
    assert "What is your full name" in reply
    reply = chat.say("/back")
    assert "Who is this second opinion for?" in reply
    reply = chat.say("/back")
    assert "as far back as we can go" in reply


def test_language_switch_mid_flow_rerenders_the_question_and_keeps_answers(
    chat: Chat, app: App
) -> None:
    consent(chat)
    chat.choose("self")
    about_patient(chat)
    chat.choose("conflicting_advice")
    reply = chat.say("/language")
    assert "Which language" in reply
    assert chat.buttons[:2] == ["English", "中文 (简体)"]
    assert chat.buttons[-1] == "Cancel"
    assert "Deutsch" in chat.buttons and "русский" in chat.buttons
    reply = chat.choose("lang:zh_Hans")
    assert "Choose all that apply" not in reply
    assert any(label.startswith("✓ ") for label in chat.buttons)
    state = app.pipeline.state_of(ConversationKey("console", "alice"))
    assert state is not None and state.locale == "zh_Hans" and state.locale_chosen
    assert state.draft.fit_reasons == ["conflicting_advice"]
    reply = chat.say("/language en")
    assert "I'll write in English from now on." in reply
    assert "Choose all that apply" in reply


def test_restart_asks_first_and_newcase_keeps_submitted_cases(chat: Chat, app: App) -> None:
    consent(chat)
    chat.choose("self")
    reply = chat.say("/restart")
    assert "Start again from the beginning?" in reply
    reply = chat.choose("cancel")
    assert "What is your full name" in reply
    chat.say("/restart")
    reply = chat.choose("confirm")
    assert "is anyone having sudden, severe" in reply
    reply = chat.choose("no")
    # Consent belongs to the person: a fresh case does not ask for it again.
    assert "Who is this second opinion for?" in reply


def test_status_and_help_answer_at_any_step(chat: Chat) -> None:
    consent(chat)
    reply = chat.say("/status")
    assert "You are at: who the case is for." in reply
    assert "Who is this second opinion for?" in reply
    reply = chat.say("/help")
    assert "/newcase" in reply and "120" in reply
    reply = chat.say("/frobnicate")
    assert "I don't know that command" in reply


def test_typing_instead_of_pressing_a_button_is_answered_kindly(chat: Chat) -> None:
    chat.say("/start")
    reply = chat.say("No")
    assert "Please choose one of the options below." in reply
    assert chat.buttons == ["No, not an emergency", "Yes, or I'm not sure"]


def test_a_file_before_consent_is_not_kept(chat: Chat, app: App, tmp_path: Path) -> None:
    scan = tmp_path / "scan.dcm"
    scan.write_bytes(b"DICM")
    chat.say("/start")
    reply = chat.say(str(scan))
    assert "Nothing from this file was kept" in reply
    assert not any((app.settings.data_dir / "files").glob("**/*"))


def test_two_patients_at_the_console_do_not_mix(app: App) -> None:
    alice, bob = make_chat(app, "alice"), make_chat(app, "bob")
    consent(alice)
    bob.say("/start")
    assert "is anyone having sudden" in bob.transcript[-1]
    assert "Who is this second opinion for?" in alice.say("/status")

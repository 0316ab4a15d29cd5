"""Who the patient is: a relative answers about the patient in English, Chinese and Arabic,
one question a message, buttons by id; skipped answers read "not given"; the review edits."""

from __future__ import annotations

from datetime import date

from benchmarks.patient_script import COMPLAINT
from bot.app import App
from conversations.state import ConversationKey, MedicalHistory, PatientDetails
from tests.support.console import (
    Chat,
    about_patient,
    consent,
    make_chat,
    to_imaging,
    to_review,
)


def _as_relative(chat: Chat) -> str:
    """Consent in whatever language the chat is in, then say it is for a parent."""
    chat.say("/start")
    chat.choose("no")
    chat.choose("continue")
    chat.choose("agree")
    chat.choose("agree")
    chat.choose("family")
    return chat.choose("parent")


def _details(app: App, user: str) -> PatientDetails:
    state = app.pipeline.state_of(ConversationKey("console", user))
    assert state is not None
    return state.draft.patient


def test_a_relative_tells_who_the_patient_is_in_english(app: App) -> None:
    chat = make_chat(app, "dana")
    reply = _as_relative(chat)
    assert "What is the patient's full name" in reply and "Latin letters" in reply
    assert "my " not in reply.lower()
    reply = chat.say("Мария Иванова")
    assert "Latin letters" in reply  # asked again, nothing stored
    reply = chat.say("Maria  Ivanova")
    assert "Does the patient also have a name in Chinese characters?" in reply
    assert chat.option_ids == ["skip"]
    reply = chat.say("王丽")
    assert "What is the patient's date of birth?" in reply
    reply = chat.say("sometime long ago")
    assert "couldn't read that" in reply
    reply = chat.say("about 71")
    assert "What is the patient's sex?" in reply
    assert chat.option_ids == ["female", "male"]
    reply = chat.choose("female")
    assert "In which country and city does the patient live?" in reply
    reply = chat.say("Kazakhstan, Almaty")
    assert "What is the patient's nationality" in reply
    reply = chat.say("Kazakh")
    assert "In which language would you like to read the written opinion?" in reply
    assert chat.option_ids == ["opinion:chat", "opinion:zh_Hans", "opinion:en"]
    reply = chat.choose("opinion:en")
    assert "a coordinator can reach you" in reply and chat.option_ids == ["skip"]
    reply = chat.say("call me maybe")
    assert "doesn't look like a phone number" in reply
    reply = chat.say("dana@example.com")
    # The medical background, about the patient, each question skippable.
    assert "Does the patient have any other illnesses" in reply and chat.option_ids == ["skip"]
    assert "your" not in reply.lower()
    reply = chat.say("Hypertension since 2010;  hip replaced in 2018")
    assert "Which medicines does the patient take now" in reply and chat.option_ids == ["skip"]
    reply = chat.say("Amlodipine 5 mg once a day")
    assert "Does the patient have any allergies" in reply
    reply = chat.choose("skip")
    assert "Choose all that apply" in reply
    assert _details(app, "dana") == PatientDetails(
        name="Maria Ivanova",
        name_zh="王丽",
        age=71,
        sex="female",
        residence="Kazakhstan, Almaty",
        nationality="Kazakh",
        opinion_language="en",
        contact="dana@example.com",
    )
    state = app.pipeline.state_of(ConversationKey("console", "dana"))
    assert state is not None
    assert state.draft.history == MedicalHistory(
        illnesses="Hypertension since 2010; hip replaced in 2018",
        medicines="Amlodipine 5 mg once a day",
        allergies="",
    )


def test_a_relative_answers_in_chinese(app: App) -> None:
    chat = make_chat(app, "li", language_hint="zh-CN")
    reply = _as_relative(chat)
    assert "患者" in reply and "护照" in reply and "拉丁字母" in reply
    reply = chat.say("Wang Jianguo")
    assert "患者" in reply and "中文名" in reply
    reply = chat.choose("skip")
    assert "患者的出生日期" in reply
    reply = chat.say("1956年4月3日")
    assert "患者的性别" in reply and chat.buttons == ["女", "男"]
    chat.choose("male")
    chat.say("中国，上海")
    chat.say("加拿大")
    assert chat.buttons == ["本聊天使用的语言", "中文", "英语"]
    chat.choose("opinion:zh_Hans")
    reply = chat.choose("skip")
    assert "患者还有其他疾病吗" in reply and chat.buttons == ["跳过"]
    reply = chat.say("高血压十年")
    assert "患者现在在用哪些药" in reply
    reply = chat.choose("skip")
    assert "患者对药物或其他东西过敏吗" in reply
    reply = chat.say("青霉素过敏")
    assert "完成" in chat.buttons
    details = _details(app, "li")
    assert details.birth_date == date(1956, 4, 3) and details.name_zh == ""
    assert details.contact == "" and details.sex == "male"
    state = app.pipeline.state_of(ConversationKey("console", "li"))
    assert state is not None
    assert state.draft.history == MedicalHistory(
        illnesses="高血压十年", medicines="", allergies="青霉素过敏"
    )


def test_a_relative_answers_in_arabic(app: App) -> None:
    chat = make_chat(app, "amal", language_hint="ar")
    reply = _as_relative(chat)
    assert "المريض" in reply and "جواز" in reply
    chat.say("Ahmed Al-Sayed")
    reply = chat.choose("skip")
    assert "تاريخ ميلاد المريض" in reply
    chat.say("12/03/1960")
    reply = chat.choose("male")
    assert "المريض" in reply
    chat.say("الإمارات، دبي")
    chat.say("مصري")
    chat.choose("opinion:chat")
    reply = chat.say("+971 50 123 4567")
    assert "هل لدى المريض أمراض أخرى" in reply
    chat.choose("skip")
    reply = chat.say("ميتفورمين 500 ملغ مرتين يوميًا")
    assert "هل لدى المريض أي حساسية" in reply
    chat.choose("skip")
    details = _details(app, "amal")
    assert details.name == "Ahmed Al-Sayed" and details.birth_date == date(1960, 3, 12)
    assert details.opinion_language == "ar" and details.contact == "+971 50 123 4567"
    state = app.pipeline.state_of(ConversationKey("console", "amal"))
    assert state is not None and state.draft.history.medicines == "ميتفورمين 500 ملغ مرتين يوميًا"


def test_skipped_details_read_not_given_on_the_review_card_and_can_be_changed(
    chat: Chat, app: App
) -> None:
    reply = to_review(chat)
    assert "Patient: Maria Ivanova" in reply
    assert "Date of birth or age: March 12, 1958" in reply
    assert "Contact: not given" in reply
    assert "not collected" not in reply.lower()
    reply = chat.choose("edit_patient")
    assert "What is your full name" in reply and chat.option_ids == ["keep"]
    reply = chat.choose("keep")
    assert "Chinese characters" in reply and chat.option_ids == ["keep", "skip"]
    chat.say("王丽")
    chat.say("70")
    chat.choose("female")
    for _ in range(2):
        chat.choose("keep")
    assert "✓ English" in chat.buttons
    chat.choose("opinion:en")
    reply = chat.say("+7 701 123 4567")
    assert "Please check everything" in reply
    assert "Patient: Maria Ivanova / 王丽" in reply
    assert "Date of birth or age: age 70" in reply
    assert "Contact: +7 701 123 4567" in reply


def test_an_alarming_answer_about_the_patient_is_checked_like_any_other(chat: Chat) -> None:
    consent(chat)
    chat.choose("self")
    chat.say("Maria Ivanova")
    reply = chat.say("I have chest pain right now")
    assert "get urgent help" in reply


def test_the_whole_intake_helper_answers_every_question_about_the_patient(chat: Chat) -> None:
    consent(chat)
    chat.choose("self")
    assert "Choose all that apply" in about_patient(chat)


def test_skipped_background_reads_not_given_on_the_review_card_and_can_be_changed(
    chat: Chat,
) -> None:
    reply = to_review(chat)
    assert "Other illnesses and operations: Type 2 diabetes since 2015" in reply
    assert "Medicines: Metformin 500 mg twice a day" in reply
    assert "Allergies: not given" in reply
    assert f"Main worry: {COMPLAINT}" in reply
    assert "Day to day:" not in reply  # asked in cancer only
    assert "not collected" not in reply.lower()
    reply = chat.choose("edit_history")
    assert "Do you have any other illnesses" in reply
    assert chat.option_ids == ["keep", "skip"]
    chat.choose("keep")
    chat.choose("skip")
    reply = chat.say("Penicillin: a rash")
    assert "Please check everything" in reply
    assert "Medicines: not given" in reply and "Allergies: Penicillin: a rash" in reply
    reply = chat.choose("edit_complaint")
    assert "what worries you most, and since when?" in reply and chat.option_ids == ["keep"]
    reply = chat.say("Back pain since January, worse at night")
    assert "Main worry: Back pain since January, worse at night" in reply


def test_in_cancer_the_card_shows_and_changes_what_the_patient_can_do(chat: Chat) -> None:
    to_imaging(chat)
    chat.choose("done")
    while "Continue to review" not in chat.buttons:
        chat.choose("later")
    reply = chat.press("Continue to review")
    assert "Day to day: Up and about, works or does normal activities" in reply
    chat.choose("edit_area")
    chat.choose("oncology")
    chat.choose("solid_other")
    reply = chat.choose("no_diagnosis")
    assert "These days, what can you do on a usual day?" in reply
    assert "✓ Up and about, works or does normal activities" in chat.buttons
    reply = chat.choose("skip")
    assert "Please check everything" in reply and "Day to day: not given" in reply

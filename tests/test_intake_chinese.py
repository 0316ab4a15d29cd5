"""The same intake in Simplified Chinese, chosen from the platform's language hint."""

from __future__ import annotations

from bot.app import App
from tests.support.console import about_patient, make_chat


def test_a_chinese_speaking_family_member_submits_a_case(app: App) -> None:
    chat = make_chat(app, "li", language_hint="zh-CN")
    reply = chat.say("/start")
    assert "会诊助手" in reply or "第二诊疗意见" in reply
    reply = chat.press(chat.buttons[0])  # 不是紧急情况
    assert "不提供诊断" in reply or "诊断" in reply
    reply = chat.press(chat.buttons[0])  # 继续
    reply = chat.press(chat.buttons[0])  # 同意 (health data)
    assert "中国" in reply
    reply = chat.press(chat.buttons[0])  # 同意 (transfer)
    assert chat.buttons[:2] == ["为我自己", "为家人或朋友咨询"]
    chat.press("为家人或朋友咨询")
    reply = chat.press(chat.buttons[0])  # parent
    assert "患者" in reply and "护照" in reply
    about_patient(chat)
    chat.press(chat.buttons[0])  # a new or serious diagnosis
    chat.press("完成")
    for index in (1, 0, 0, 1, 1, 0):  # no, yes, yes, no, no, review
        reply = chat.press(chat.buttons[index])
    assert "远程" in reply
    assert "1" in reply and "3" in reply and "7" in reply and "14" in reply
    chat.press(chat.buttons[0])  # continue
    chat.press(chat.buttons[0])  # oncology
    chat.press(chat.buttons[0])  # hepatobiliary / GI
    reply = chat.say("肝癌，约4厘米，医生建议手术切除")
    assert "患者平常一天能做些什么" in reply
    reply = chat.press("能下床活动，但不能工作")
    assert "患者最让人担心的是什么" in reply
    reply = chat.say("今年5月发现肝上有肿块，医生对是否手术意见不一")
    assert "问题" in reply
    reply = chat.say("你怎么看")
    assert "具体" in reply
    for _ in range(3):
        chat.press(chat.buttons[0])
    chat.press("完成")
    reply = chat.say("2024年3月：乏力，体重下降\n2024-05-10：CT检查发现肝脏占位")
    assert reply.index("2024年3月") < reply.index("2024-05-10")
    chat.press("完成")
    while len(chat.buttons) == 3:
        chat.press(chat.buttons[1])  # I'll get it later
    reply = chat.transcript[-1]
    assert "我需要原始影像资料（DICOM格式）的光盘或电子版。" in reply
    assert "我需要病理报告。" in reply
    reply = chat.press(chat.buttons[0])  # continue to review
    assert "肝癌，约4厘米" in reply
    reply = chat.press(chat.buttons[0])  # submit
    case = app.queue.list()[0]
    assert case.reference in reply
    assert case.locale == "zh_Hans"
    assert "[coordinators] New case" in reply  # coordinators read English for now


def test_the_emergency_check_understands_chinese(app: App) -> None:
    chat = make_chat(app, "wang", language_hint="zh-CN")
    chat.say("/start")
    reply = chat.say("我爸爸突然胸痛，喘不过气")
    assert "120" in reply
    assert chat.buttons and len(chat.buttons) == 1

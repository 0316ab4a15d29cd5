from tests.support.console import Chat


def test_start_shows_the_emergency_screen(chat: Chat) -> None:
    reply = chat.say("/start")
    assert "emergency" in reply.lower() or "sudden" in reply
    assert chat.buttons == ["No, not an emergency", "Yes, or I'm not sure"]

"""Conversations survive restarts; a duplicate update has one effect."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text
from sqlmodel import Session, func, select

from bot.app import build_app
from bot.config import Settings
from conversations.events import Inbound, InboundKind
from conversations.state import ConversationKey
from storage.models import Outbox
from tests.support.console import about_patient, make_chat


def outbox_rows(settings: Settings) -> int:
    app = build_app(settings)
    with Session(app.engine) as session:
        count = session.exec(select(func.count()).select_from(Outbox)).one()
    app.close()
    return int(count)


def test_a_new_process_resumes_each_conversation_at_its_step(settings: Settings) -> None:
    first = build_app(settings)
    alice, bob = make_chat(first, "alice"), make_chat(first, "bob")
    alice.say("/start")
    alice.press("No, not an emergency")
    alice.press("Continue")
    alice.press("I agree")
    alice.press("I agree")
    alice.press("For me")
    about_patient(alice)
    alice.press("Doctors disagree")
    bob.say("/start")
    first.close()

    # A separate interpreter, as after a crash or a deploy, on the same database.
    script = (
        "import io, sys\n"
        "from bot.app import build_app\n"
        "from bot.config import load_settings\n"
        "from tests.support.console import make_chat\n"
        f"env = {{'DATA_DIR': {str(settings.data_dir)!r}, "
        f"'DATABASE_URL': {settings.database_url!r}}}\n"
        "app = build_app(load_settings(env))\n"
        "for user in ('alice', 'bob'):\n"
        "    chat = make_chat(app, user)\n"
        "    print(user, '|', chat.say('/start').replace(chr(10), ' '))\n"
    )
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=True
    )
    alice_line, bob_line = result.stdout.strip().splitlines()
    assert "Welcome back" in alice_line
    assert "Choose all that apply" in alice_line and "✓ Doctors disagree" in alice_line
    assert "is anyone having sudden" in bob_line


def test_the_same_update_delivered_twice_has_one_effect(settings: Settings) -> None:
    app = build_app(settings)
    chat = make_chat(app, "carol")
    chat.say("/start")
    before = outbox_rows(settings)
    update = Inbound(
        channel="console",
        user_key="carol",
        chat_key="carol",
        update_key="update-42",
        kind=InboundKind.CHOICE,
        choice_id="no",
    )
    assert app.pipeline.handle(update) is not None
    after_first = outbox_rows(settings)
    state_after_first = app.pipeline.state_of(ConversationKey("console", "carol"))
    assert app.pipeline.handle(update) is None
    assert outbox_rows(settings) == after_first > before
    assert app.pipeline.state_of(ConversationKey("console", "carol")) == state_after_first
    assert state_after_first is not None and state_after_first.step == "about"


def test_replies_are_delivered_once_and_marked_sent(settings: Settings) -> None:
    app = build_app(settings)
    chat = make_chat(app, "dan")
    chat.say("/start")
    assert app.outbox.pending() == []
    first = chat.say("/status")
    assert "You are at" in first
    # Delivering again sends nothing twice.
    asyncio.run(
        app.after_update({"console": chat.channel}, {"console": chat.channel}, chat.channel)
    )
    assert chat.screen.getvalue().count("You are at") == 1


def test_a_failure_on_our_side_is_answered_kindly_and_loses_nothing(settings: Settings) -> None:
    app = build_app(settings)
    chat = make_chat(app, "erin")
    chat.say("/start")
    chat.press("No, not an emergency")
    before = app.pipeline.state_of(ConversationKey("console", "erin"))
    # A real failure, not a mock: the table the update needs disappears under the bot.
    with app.engine.begin() as conn:
        conn.execute(text("ALTER TABLE conversation RENAME TO conversation_away"))
    reply = chat.press("Continue")
    assert "something went wrong on our side" in reply
    assert "Traceback" not in reply
    with app.engine.begin() as conn:
        conn.execute(text("ALTER TABLE conversation_away RENAME TO conversation"))
    assert app.pipeline.state_of(ConversationKey("console", "erin")) == before
    reply = chat.press("Continue")
    assert "Do you agree that Huizhen may process" in reply

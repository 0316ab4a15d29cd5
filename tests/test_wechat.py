"""The WeChat Official Account channel, over real HTTP: WeChat's side signs (and in safe mode
encrypts) each message with wechatpy's own crypto and posts it to the project's web app; the
channel calls a local fake of the WeChat API (tests/wechat_fake.py) through wechatpy."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import aiohttp
from sqlalchemy import text
from sqlmodel import Session, select

from bot.app import build_app
from bot.channels.wechat import describe, parse
from bot.channels.wechat_runtime import UNSUPPORTED, WEBHOOK_PATH, wechat_api
from bot.config import Settings
from conversations.events import Outbound
from conversations.i18n import translator
from conversations.state import ConversationKey, ConversationState
from handlers.casework.operations import Actor
from storage.models import Document, ProcessedUpdate, WeChatNonce, WeChatUser
from storage.wechat import ServiceSlot, WeChatStore
from tests.support import run
from tests.support.wechat import (
    APP_ID,
    SECRET,
    TOKEN,
    World,
    wechat,
    wechat_settings,
)
from tests.wechat_fake import FakeWeChatApi, WeChatServer

T = TypeVar("T")


def state_of(world: World, openid: str) -> ConversationState | None:
    return world.app.pipeline.state_of(ConversationKey("wechat", openid))


async def shown(world: World, openid: str, label: str) -> None:
    """Wait until the channel has recorded a customer-service message's options as shown
    (it does so once WeChat took the message; a person takes longer to read it)."""

    def recorded() -> bool:
        return any(label in user.options_json for user in rows(world, WeChatUser))

    await world.api.wait_for(recorded)


def rows(world: World, model: type[T]) -> list[T]:
    with Session(world.app.engine) as session:
        return list(session.exec(select(model)).all())


# --- a whole intake ------------------------------------------------------------------------


def test_a_complete_intake_in_chinese_on_passive_replies(
    settings: Settings, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with wechat(settings, PUBLIC_BASE_URL="https://huizhen.example") as world:
            li = world.follower("o-li-0001", language="zh_CN")
            reply = await li.follow(scene="clinic-42")
            assert "会诊助手" in reply or "第二诊疗意见" in reply
            assert li.options and not any("No, not" in o for o in li.options)
            await li.say("1")  # 不是紧急情况
            await li.say("1")  # 继续
            reply = await li.say("1")  # 同意 (health data)
            assert "中国" in reply
            await li.say("1")  # 同意 (transfer)
            assert li.options[:2] == ["为我自己", "为家人或朋友咨询"]
            await li.say("为家人或朋友咨询")  # the option's own words answer it too
            await li.say("1")  # parent
            # Who the patient is, and their background: typed, or numbered options.
            for answer in ("Wang Jianguo", "1", "1956年4月3日", "2", "中国，上海", "加拿大", "2"):
                await li.say(answer)  # "1" no Chinese name, "2" male, "2" opinion in Chinese
            await li.say("1")  # no contact besides the chat
            reply = await li.say("高血压十年")
            assert "患者现在在用哪些药" in reply
            await li.say("1")  # medicines skipped
            await li.say("1")  # allergies skipped
            await li.say("1")  # a new or serious diagnosis
            await li.press("完成")
            for index in (1, 0, 0, 1, 1, 0):  # no, yes, yes, no, no, review
                reply = await li.say(str(index + 1))
            assert "远程" in reply
            await li.say("1")  # continue
            await li.say("1")  # oncology
            await li.say("1")  # hepatobiliary / GI
            reply = await li.say("肝癌，约4厘米，医生建议手术切除")
            assert "患者平常一天能做些什么" in reply
            await li.say("2")  # up and about, cannot work
            reply = await li.say("今年5月发现肝上有肿块，医生对是否手术意见不一")
            assert "问题" in reply
            reply = await li.say("你怎么看")
            assert "具体" in reply
            for _ in range(3):
                await li.say("1")
            await li.press("完成")
            reply = await li.say("2024年3月：乏力，体重下降\n2024-05-10：CT检查发现肝脏占位")
            assert reply.index("2024年3月") < reply.index("2024-05-10")
            await li.press("完成")
            reply = await li.say("1")  # send it now: Official Accounts take no files…
            link = re.search(r"https://huizhen\.example/u/([\w-]+)", reply)
            assert link is not None  # …so the secure upload page is where they go
            grant = world.app.upload_tokens.resolve(link.group(1), datetime.now(UTC))
            assert grant is not None and (grant.channel, grant.chat_key) == ("wechat", li.openid)
            await li.say("3")  # not now
            while len(li.options) == 3:
                await li.say("2")  # I'll get it later
            reply = await li.say("1")  # continue to review
            assert "肝癌，约4厘米" in reply
            reply = await li.say("1")  # submit
            case = world.app.queue.list()[0]
            assert case.reference in reply
            assert (case.channel, case.user_key, case.locale) == ("wechat", "o-li-0001", "zh_Hans")
            state = world.app.pipeline.state_of(ConversationKey("wechat", "o-li-0001"))
            assert state is not None and state.referral == "clinic-42"
            # Every answer went back in the HTTP response: no customer-service message.
            assert world.api.sent == []
            assert len(world.api.calls_to("user/info")) == 1  # the profile language, once

            # Coordinators' work reaches the follower as customer-service messages.
            coordinator = Actor("900", "cli")
            casework = world.app.casework
            await asyncio.to_thread(casework.claim, case.reference, coordinator)
            world.channel.wake()
            [reviewing] = await world.api.wait_for(lambda: world.api.texts_to(li.openid))
            assert case.reference in reviewing and "协调员" in reviewing  # in Chinese
            for status in ("ready_to_send", "sent_to_specialist"):
                await asyncio.to_thread(casework.move, case.reference, status, coordinator)
            opinion = tmp_path / "opinion.pdf"
            opinion.write_bytes(b"%PDF-1.4 the written opinion")
            await asyncio.to_thread(
                casework.attach_opinion, case.reference, opinion, None, coordinator
            )
            world.channel.wake()
            # An Official Account cannot send files: the opinion is named, not attached.
            await world.api.wait_for(
                lambda: any("opinion.pdf" in text for text in world.api.texts_to(li.openid))
            )

    run(scenario)


# --- files ---------------------------------------------------------------------------------


def documents(world: World) -> list[Document]:
    return rows(world, Document)


def test_an_image_is_downloaded_at_once_and_stored_as_a_document(
    sqlite_settings: Settings,
) -> None:
    """Plain mode (no encryption) here; the photo's check comes back as a customer-service
    message, since it is the result of slow work."""

    async def scenario() -> None:
        async with wechat(sqlite_settings, safe_mode=False) as world:
            ann = world.follower("o-ann-0002")
            await ann.consent()
            photo = b"\xff\xd8\xff\xe0 a photo of a discharge letter"
            media_id = world.api.add_media(photo)
            reply = (await ann.post(world.server.image(ann.openid, media_id))).text
            assert "Received: photo-" in reply
            await world.api.wait_for(lambda: documents(world))
            [stored] = documents(world)
            assert stored.sha256 == hashlib.sha256(photo).hexdigest()
            assert world.api.calls_to("media/get")[0].errcode == 0
            sent = await world.api.wait_for(lambda: len(world.api.texts_to(ann.openid)) == 2)
            report, question = world.api.texts_to(ann.openid)
            assert sent and "I've checked what you sent" in report and "photo-" in report
            assert question.startswith("Which part of the checklist is photo-")
            ann.read(question)
            await shown(world, ann.openid, "Discharge summaries")
            reply = await ann.press("Discharge summaries")  # answered with its digit
            assert "Discharge summaries" in reply

    run(scenario)


# --- WeChat's retries and the 5-second deadline ---------------------------------------------


def test_the_same_msgid_three_times_has_one_effect_and_one_answer(settings: Settings) -> None:
    """WeChat retries a message it got no answer for (new timestamp and nonce, same MsgId):
    every try gets the same answer, and nothing happens twice."""

    async def scenario() -> None:
        async with wechat(settings) as world:
            bo = world.follower("o-bo-0003")
            await bo.say("/start")
            msg_id = world.server.next_msg_id()
            press = world.server.text(bo.openid, "1", msg_id=msg_id)  # "not an emergency"
            answers = [(await bo.post(press)).text for _ in range(3)]
            assert answers[0].startswith("Here is what I do")
            assert answers[1] == answers[0] and answers[2] == answers[0]
            state = state_of(world, bo.openid)
            assert state is not None and state.step == "about"  # one step on, not three
            keys = [r.update_key for r in rows(world, ProcessedUpdate) if r.channel == "wechat"]
            assert keys.count(f"msg:{msg_id}") == 1
            await world.channel.deliver_now()
            assert world.api.sent == []  # and no extra message

    run(scenario)


@asynccontextmanager
async def database_locked(settings: Settings, openid: str) -> AsyncIterator[None]:
    """A real lock held by someone else: SQLite's writer lock, or the follower's conversation
    row on PostgreSQL (the pipeline waits for it)."""
    if settings.database_url.startswith("sqlite"):
        holder = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"))
        holder.isolation_level = None
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    from storage.database import make_engine

    engine = make_engine(settings.database_url)
    with engine.connect() as conn, conn.begin():
        conn.execute(
            text("SELECT 1 FROM conversation WHERE user_key = :who FOR UPDATE"), {"who": openid}
        )
        yield
    engine.dispose()


def test_a_slow_step_is_answered_within_five_seconds_and_delivered_after(
    settings: Settings,
) -> None:
    async def scenario() -> None:
        async with wechat(settings) as world:
            cy = world.follower("o-cy-0004")
            await cy.say("/start")
            async with database_locked(settings, cy.openid):
                started = time.monotonic()
                answer = await world.server.post(world.server.text(cy.openid, "1"))
                took = time.monotonic() - started
                assert answer.success, answer
                assert 4 <= took < 5, f"answered after {took:.2f} s"
                assert world.api.sent == []
            # The step completes once the lock is gone; its answer comes as a customer-service
            # message, and WeChat (which got "success") never retries.
            [late] = await world.api.wait_for(lambda: world.api.texts_to(cy.openid))
            assert late.startswith("Here is what I do")
            assert "1. Continue" in late
            cy.read(late)
            await shown(world, cy.openid, "Continue")
            state = state_of(world, cy.openid)
            assert state is not None and state.step == "about"
            reply = await cy.press("Continue")  # its numbered options are the current ones
            assert "health information" in reply

    run(scenario)


# --- customer-service messages within WeChat's rules --------------------------------------


def test_a_message_refused_by_the_48_hour_rule_goes_out_with_the_next_answer(
    sqlite_settings: Settings,
) -> None:
    async def scenario() -> None:
        async with wechat(sqlite_settings) as world:
            di = world.follower("o-di-0005")
            await di.consent()
            world.api.fail_next("message/custom/send", 45015)
            media_id = world.api.add_media(b"\\xff\\xd8 a photo of a lab report")
            await di.post(world.server.image(di.openid, media_id))
            await world.api.wait_for(
                lambda: [c for c in world.api.calls_to("message/custom/send") if c.errcode]
            )
            # Refused: kept, and not tried again before the follower writes.
            await world.channel.deliver_now()
            assert len(world.api.calls_to("message/custom/send")) == 1
            assert world.api.sent == []
            reply = await di.say("hello")
            assert reply.index("I've checked what you sent") < reply.index("Please choose one")
            # Both questions' options, numbered on: each number answers its own question.
            assert "1. Diagnosis reports" in reply and "8. None of these" in reply
            assert "9. For me" in reply and "10. For a family member" in reply
            await world.channel.deliver_now()
            assert world.api.sent == []  # delivered once, in the passive reply
            reply = await di.say("6")
            assert "Discharge summaries" in reply  # the photo is sorted…
            await di.press("For me")  # numbered afresh in that answer
            state = state_of(world, di.openid)
            assert state is not None and state.step != "for_whom"  # …and the step answered

    run(scenario)


def test_customer_service_messages_are_counted_per_follower(sqlite_settings: Settings) -> None:
    """The window, the quota and who takes a reply are kept in the database, so every
    worker agrees."""
    app = build_app(sqlite_settings)
    try:
        store = WeChatStore(app.engine)
        now = datetime.now(UTC)
        mark = now + timedelta(seconds=6)
        window, quota = timedelta(hours=48), 5

        def slot(at: datetime = now, started: datetime = now, who: str = "o-ed") -> str:
            taken, _ = store.start_sending(who, 1, at, started, window, quota)
            if taken == ServiceSlot.TAKEN:
                store.done_sending(who)
            return taken

        assert store.arrive("1", "n1", "o-ed", now, mark) is not None
        # Their message is being answered: its replies are left to the passive reply.
        assert store.start_sending("o-ed", 1, now, now, window, quota) == (
            ServiceSlot.REPLYING,
            6.0,
        )
        app.pipeline.store.enqueue("wechat", "o-ed", Outbound(text="Checked."), now)
        assert len(store.take_replies("o-ed", now)) == 1
        store.replied("o-ed", mark)
        # A round that read the outbox before that answer took the replies reads it again.
        assert slot(started=now - timedelta(seconds=1)) == ServiceSlot.REPLYING
        later = now + timedelta(seconds=1)
        assert [slot(later, later) for _ in range(6)] == [ServiceSlot.TAKEN] * 5 + [
            ServiceSlot.WAIT
        ]
        store.done_sending("o-ed", unsent=1)  # one was not sent after all
        assert slot(later, later) == ServiceSlot.TAKEN
        # 48 hours after their last message, nothing more; a new message opens the window.
        assert slot(now + timedelta(hours=49), later) == ServiceSlot.WAIT
        assert store.arrive("2", "n2", "o-ed", later, mark) is not None
        store.replied("o-ed", mark)
        assert slot(later, later) == ServiceSlot.TAKEN
        assert slot(later, later, who="o-nobody") == ServiceSlot.WAIT
    finally:
        app.close()


def test_the_access_token_is_shared_and_renewed_once_when_wechat_refuses_it(
    sqlite_settings: Settings,
) -> None:
    async def scenario() -> None:
        async with wechat(sqlite_settings) as world:
            fay = world.follower("o-fay-0006")
            await fay.say("/start")
            assert len(world.api.tokens_issued) == 1  # for the profile language
            # A second worker on the same database uses the same token.
            other = wechat_api(world.app, WeChatStore(world.app.engine))
            assert await asyncio.to_thread(other.user_language, fay.openid) == "en"
            assert len(world.api.tokens_issued) == 1
            world.api.expire_tokens()  # WeChat invalidated it (40001)
            message = Outbound(text="Your files are checked.")
            world.app.pipeline.store.enqueue("wechat", fay.openid, message, datetime.now(UTC))
            world.channel.wake()
            await world.api.wait_for(lambda: world.api.texts_to(fay.openid))
            assert world.api.texts_to(fay.openid) == ["Your files are checked."]
            assert len(world.api.tokens_issued) == 2  # renewed once, then the send went out
            assert [c.errcode for c in world.api.calls_to("message/custom/send")] == [40001, 0]
            assert await asyncio.to_thread(other.user_language, fay.openid) == "en"
            assert len(world.api.tokens_issued) == 2  # the other worker sees the new one
            other.close()

    run(scenario)


# --- what is refused -----------------------------------------------------------------------


def test_a_forged_signature_is_refused_and_changes_nothing(sqlite_settings: Settings) -> None:
    async def scenario() -> None:
        async with wechat(sqlite_settings) as world:
            server = world.server
            message = server.text("o-gus-0007", "/start")
            forged = {**server.signed_query(), "signature": "0" * 40}
            assert (await server.post(message, forged)).status == 403
            # A true signature on the query, but an encrypted part that is not ours.
            query = server.signed_query()
            _, sealed = server.envelope(message, query)
            body = "<xml><ToUserName>gh</ToUserName><Encrypt><![CDATA[AAAA]]></Encrypt></xml>"
            async with server.http.post(server.url, params=sealed, data=body) as response:
                assert response.status == 403
            assert state_of(world, "o-gus-0007") is None
            assert rows(world, WeChatUser) == [] and rows(world, WeChatNonce) == []
            assert (await server.verify("echo", forged))[0] == 403
            assert await server.verify("echo-123") == (200, "echo-123")

    run(scenario)


def test_in_safe_mode_a_plain_message_is_refused(sqlite_settings: Settings) -> None:
    """With WECHAT_ENCODING_AES_KEY set, a message must come encrypted with its
    msg_signature: a plain one (true query signature, body written by anyone) is refused."""

    async def scenario() -> None:
        async with wechat(sqlite_settings) as world:
            server = world.server
            plain = server.text("o-ivy-0010", "/start")
            headers = {"Content-Type": "text/xml"}
            for query in (
                server.signed_query(),
                {**server.signed_query(), "encrypt_type": "raw"},
            ):
                async with server.http.post(
                    server.url, params=query, data=plain.encode(), headers=headers
                ) as response:
                    assert response.status == 403
            assert state_of(world, "o-ivy-0010") is None
            assert rows(world, WeChatUser) == []
            # The same message in its envelope is served.
            reply = await server.post(plain)
            assert reply.status == 200 and reply.text.startswith("Hello, I'm Huizhen")

    run(scenario)


def test_every_wechat_message_is_the_followers_own_chat(sqlite_settings: Settings) -> None:
    """WeChat is private by nature: an Official Account talks with one follower at a time
    (group chats never reach it), so every message is handled as the follower's own chat
    and nothing needs the Telegram rule of asking a group to write privately."""

    async def scenario() -> None:
        async with wechat(sqlite_settings) as world:
            xml = world.server.text("o-jo-0011", "/start")
            incoming = describe(parse(xml.encode()))
            assert incoming.inbound is not None
            assert incoming.inbound.chat_key == incoming.inbound.user_key == "o-jo-0011"
            reply = await world.follower("o-jo-0011").post(xml)
            assert reply.text.startswith("Hello, I'm Huizhen")
            assert state_of(world, "o-jo-0011") is not None

    run(scenario)


def test_a_replayed_or_stale_call_is_refused(sqlite_settings: Settings) -> None:
    async def scenario() -> None:
        async with wechat(sqlite_settings) as world:
            server = world.server
            old = str(int(time.time()) - 10 * 60)
            stale = await server.post(server.text("o-hu-0008", "/start"), server.signed_query(old))
            assert stale.status == 403
            assert state_of(world, "o-hu-0008") is None
            query = server.signed_query()
            first = await server.post(server.text("o-hu-0008", "/start"), query)
            assert first.status == 200 and first.text.startswith("Hello, I'm Huizhen")
            # The same signed call again (a new MsgId does not help: the nonce is spent).
            again = await server.post(server.text("o-hu-0008", "/help"), query)
            assert again.status == 403
            state = state_of(world, "o-hu-0008")
            assert state is not None and state.step == "emergency"

    run(scenario)


def test_an_oversized_body_or_an_external_entity_is_refused(sqlite_settings: Settings) -> None:
    async def scenario() -> None:
        async with wechat(sqlite_settings, safe_mode=False) as world:
            server = world.server
            huge = server.text("o-ivy-0009", "x" * 70_000)
            assert (await server.post(huge)).status == 413
            entity = (
                '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                "<xml><ToUserName>gh</ToUserName><FromUserName>o-ivy-0009</FromUserName>"
                "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&e;</Content>"
                "<MsgId>1</MsgId></xml>"
            )
            assert (await server.post(entity)).status == 400
            assert (await server.post("<xml><MsgType>text</xml")).status == 400
            assert state_of(world, "o-ivy-0009") is None

    run(scenario)


# --- events and other kinds of message -----------------------------------------------------


def test_events_and_other_message_kinds(sqlite_settings: Settings) -> None:
    async def scenario() -> None:
        async with wechat(sqlite_settings) as world:
            jo = world.follower("o-jo-0010", language="ja")
            server = world.server
            reply = await jo.follow()
            assert "Hello" not in reply and "Huizhen" in reply  # welcomed in Japanese
            reply = (await jo.post(server.event(jo.openid, "CLICK", "help"))).text
            assert "/status" in reply  # a menu button runs its command
            reply = (await jo.post(server.voice(jo.openid))).text
            assert reply == translator("ja")(UNSUPPORTED)  # no words: told what works
            state = state_of(world, jo.openid)
            assert state is not None and state.step == "emergency"
            reply = (await jo.post(server.voice(jo.openid, recognition="1"))).text
            state = state_of(world, jo.openid)
            assert state is not None and state.step == "about"  # the recognised words count
            # Unfollowed: nothing more is sent to them (reminders stop), nothing is lost.
            assert (await jo.post(server.event(jo.openid, "unsubscribe"))).success
            reminder = Outbound(text="A gentle reminder")
            world.app.pipeline.store.enqueue("wechat", jo.openid, reminder, datetime.now(UTC))
            await world.channel.deliver_now()
            assert (await jo.post(server.event(jo.openid, "LOCATION"))).success  # no answer
            await world.channel.deliver_now()
            assert world.api.calls_to("message/custom/send") == []
            # Back again (a later event: events are told apart by their time): what waited
            # comes with the welcome back.
            reply = await jo.follow(at=int(time.time()) + 1)
            assert "A gentle reminder" in reply

    run(scenario)


def test_huizhen_run_serves_the_wechat_webhook_until_stopped(sqlite_settings: Settings) -> None:
    import socket

    from bot.runner import serve

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def scenario() -> None:
        async with FakeWeChatApi(APP_ID, SECRET) as api:
            config = wechat_settings(sqlite_settings, api, None, WEB_PORT=str(port))
            assert config.channels == ("wechat",)
            app = build_app(config)
            stop = asyncio.Event()
            server_task = asyncio.create_task(serve(app, stop))
            try:
                url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
                async with aiohttp.ClientSession() as http:
                    server = WeChatServer(url, TOKEN, APP_ID, None, http)
                    for _ in range(100):
                        with contextlib.suppress(aiohttp.ClientConnectionError):
                            reply = await server.post(server.text("o-kai-0011", "/start"))
                            break
                        await asyncio.sleep(0.05)
                    assert reply.text.startswith("Hello, I'm Huizhen")
            finally:
                stop.set()
                await asyncio.wait_for(server_task, timeout=15)
                app.close()

    run(scenario)

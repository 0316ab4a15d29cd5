"""Several senders share one outbox: each message is taken by one of them, a chat's messages
are never taken out of order, and a sender that dies lets its messages go after the lease."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from bot.app import App
from conversations.events import CoordinatorNotice, Outbound
from handlers.updates.delivery import (
    DELIVERY_BATCH,
    DeliveryReport,
    RetryLater,
    deliver_forever,
    deliver_pending,
)
from storage.database import run_once
from storage.models import Outbox
from storage.outbox import LEASE, OutboxStore
from tests.support.tables import table

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def _queue(app: App, chats: list[str], per_chat: int) -> None:
    rows = [
        {
            "channel": "telegram",
            "chat_key": chat,
            "audience": "user",
            "payload_json": Outbound(text=f"{chat} #{n}").model_dump_json(),
            "created_at": NOW,
            "attempts": 0,
        }
        for n in range(per_chat)
        for chat in chats
    ]
    with app.engine.begin() as conn:
        conn.execute(insert(table(Outbox)), rows)


def test_two_senders_never_take_the_same_message_or_a_chat_out_of_order(app: App) -> None:
    chats = [f"chat-{n}" for n in range(30)]
    _queue(app, chats, per_chat=5)
    senders = [OutboxStore(app.engine) for _ in range(4)]
    taken: list[list[int]] = [[] for _ in senders]
    by_chat: dict[str, set[int]] = {}
    lock = threading.Lock()

    def work(index: int) -> None:
        for _ in range(10):
            rows = senders[index].claim(NOW, max_attempts=8, limit=20)
            with lock:
                taken[index] += [row.id for row in rows]
                for row in rows:
                    by_chat.setdefault(row.chat_key, set()).add(index)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(senders))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [row_id for ids in taken for row_id in ids]
    assert len(every) == len(set(every)), "a message was taken twice"
    # Nothing was sent, so each chat stays with whoever took its first message.
    assert all(len(holders) == 1 for holders in by_chat.values())


def test_a_chat_waits_while_another_sender_holds_its_earlier_message(app: App) -> None:
    _queue(app, ["alice"], per_chat=1)
    first = OutboxStore(app.engine)
    [held] = first.claim(NOW, max_attempts=8)
    _queue(app, ["alice", "bob"], per_chat=1)
    second = OutboxStore(app.engine).claim(NOW, max_attempts=8)
    assert [row.chat_key for row in second] == ["bob"]  # alice's next waits for her first
    first.mark_sent([held.id], NOW)
    assert [row.chat_key for row in OutboxStore(app.engine).claim(NOW, max_attempts=8)] == ["alice"]


def test_a_dead_senders_messages_are_taken_again_after_the_lease(app: App) -> None:
    _queue(app, ["alice"], per_chat=2)
    assert len(OutboxStore(app.engine).claim(NOW, max_attempts=8)) == 2
    assert OutboxStore(app.engine).claim(NOW + LEASE / 2, max_attempts=8) == []
    later = NOW + LEASE + timedelta(seconds=1)
    assert len(OutboxStore(app.engine).claim(later, max_attempts=8)) == 2


def test_scheduled_work_runs_in_one_worker_at_a_time(app: App) -> None:
    with (
        run_once(app.engine, "scheduled-work") as first,
        run_once(app.engine, "scheduled-work") as second,
    ):
        both = (first, second)
    if app.engine.dialect.name == "postgresql":
        assert both == (True, False)
    else:
        assert both == (True, True)  # SQLite: one process
    with run_once(app.engine, "scheduled-work") as again:
        assert again  # released when the first finished


class _Platform:
    """A platform that asks to slow down for one chat (Telegram's 429) or fails for it."""

    def __init__(self, refuse: str, error: Exception) -> None:
        self.refuse, self.error = refuse, error
        self.sent: list[str] = []

    async def send(self, chat_key: str, message: Outbound) -> str | None:
        if chat_key == self.refuse:
            raise self.error
        self.sent.append(message.text)
        return None


class _NoCoordinators:
    async def notify(self, notice: CoordinatorNotice) -> None:
        raise AssertionError("no coordinator notice was queued")


async def _round(app: App, platform: _Platform, at: datetime) -> DeliveryReport:
    return await deliver_pending(
        OutboxStore(app.engine), {"telegram": platform}, _NoCoordinators(), clock=lambda: at
    )


@pytest.mark.parametrize("error", [RetryLater(20), ConnectionError("reset")])
def test_a_chat_told_to_wait_waits_for_every_worker(app: App, error: Exception) -> None:
    """After a 429 (or a passing failure), no worker sends that chat anything before the
    time is up, while other chats go on; then its messages go out in order."""
    _queue(app, ["alice", "bob"], per_chat=2)
    platform = _Platform("alice", error)
    first = asyncio.run(_round(app, platform, NOW))
    assert platform.sent == ["bob #0", "bob #1"]
    assert first.more and first.retry_in is not None
    # Another worker's round straight after: alice is still held, for both her messages.
    assert asyncio.run(_round(app, _Platform("nobody", error), NOW)).sent == 0
    after = NOW + timedelta(seconds=first.retry_in + 1)
    recovered = _Platform("nobody", error)
    assert asyncio.run(_round(app, recovered, after)).sent == 2
    assert recovered.sent == ["alice #0", "alice #1"]


def test_a_round_that_sent_asks_for_another(app: App) -> None:
    """A full batch leaves the rest for the next round, which starts at once."""
    _queue(app, [f"chat-{n}" for n in range(DELIVERY_BATCH + 5)], per_chat=1)
    platform = _Platform("nobody", ConnectionError())
    rounds: list[DeliveryReport] = []
    while not rounds or rounds[-1].more:
        rounds.append(asyncio.run(_round(app, platform, NOW)))
    assert [r.sent for r in rounds] == [DELIVERY_BATCH, 5, 0]
    assert len(platform.sent) == DELIVERY_BATCH + 5


def test_a_held_chat_goes_out_when_its_wait_is_over_whatever_ran_in_between(app: App) -> None:
    """Alice's message gets a 429 (wait half a second) while Bob's keep coming: the sender
    remembers her wait through the rounds in between, instead of idling until its timer."""

    class OnceSlow:
        def __init__(self) -> None:
            self.sent: list[str] = []
            self.refused = False

        async def send(self, chat_key: str, message: Outbound) -> str | None:
            if chat_key == "alice" and not self.refused:
                self.refused = True
                raise RetryLater(0.5)
            self.sent.append(message.text)
            return None

    async def scenario() -> None:
        platform = OnceSlow()
        wake, stopping = asyncio.Event(), asyncio.Event()
        outbox = OutboxStore(app.engine)
        sender = asyncio.create_task(
            deliver_forever(
                lambda: deliver_pending(outbox, {"telegram": platform}, _NoCoordinators()),
                wake,
                stopping,
                "test delivery",
                idle_seconds=3600,
            )
        )
        _queue(app, ["alice"], per_chat=1)
        wake.set()
        for n in range(3):  # Bob's messages make rounds while Alice waits
            await asyncio.sleep(0.1)
            _queue(app, [f"bob-{n}"], per_chat=1)
            wake.set()
        for _ in range(100):
            if "alice #0" in platform.sent:
                break
            await asyncio.sleep(0.05)
        stopping.set()
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        assert platform.refused
        assert platform.sent.count("alice #0") == 1
        assert {"bob-0 #0", "bob-1 #0", "bob-2 #0"} <= set(platform.sent)

    asyncio.run(scenario())


def test_a_chat_being_paced_does_not_hold_up_the_others(app: App) -> None:
    """Alice has three messages, each taking the platform a while (Telegram's message a second
    per chat); Bob's one message goes out meanwhile, not after hers."""

    class Paced:
        def __init__(self) -> None:
            self.sent: list[str] = []

        async def send(self, chat_key: str, message: Outbound) -> str | None:
            if chat_key == "alice":
                await asyncio.sleep(0.2)
            self.sent.append(message.text)
            return None

    _queue(app, ["alice"], per_chat=3)
    _queue(app, ["bob"], per_chat=1)
    platform = Paced()
    report = asyncio.run(
        deliver_pending(OutboxStore(app.engine), {"telegram": platform}, _NoCoordinators())
    )
    assert report.sent == 4
    assert platform.sent[0] == "bob #0"
    assert [text for text in platform.sent if text.startswith("alice")] == [
        "alice #0",
        "alice #1",
        "alice #2",
    ]


def _queue_on(app: App, channel: str, chat: str, audience: str = "user") -> None:
    payload = (
        Outbound(text=f"for {chat}").model_dump_json()
        if audience == "user"
        else CoordinatorNotice(case_id="c1", case_ref="HZ-TEST", text="new case").model_dump_json()
    )
    row = {
        "channel": channel,
        "chat_key": chat,
        "audience": audience,
        "payload_json": payload,
        "created_at": NOW,
        "attempts": 0,
    }
    with app.engine.begin() as conn:
        conn.execute(insert(table(Outbox)), [row])


def test_a_channels_round_leaves_the_other_channels_messages_for_that_channel(app: App) -> None:
    """Telegram and WeChat in one process: a Telegram round that took a WeChat follower's
    message could only let it go again, and WeChat's own round, running just then, found it
    taken and waited for its idle poll (30 s) before the follower heard anything."""
    _queue_on(app, "wechat", "o-follower")
    _queue_on(app, "telegram", "701")
    _queue_on(app, "wechat", "", audience="coordinators")
    platform = _Platform(refuse="", error=ConnectionError("unused"))
    # WeChat alone in its process has no coordinators' chat: no sink, no notices taken.
    report = asyncio.run(
        deliver_pending(OutboxStore(app.engine), {"telegram": platform}, None, clock=lambda: NOW)
    )
    assert platform.sent == ["for 701"] and report.sent == 1
    # While that round ran, WeChat's would have found its follower's message free.
    free = OutboxStore(app.engine).claim(
        NOW, max_attempts=8, channels=("wechat",), coordinators=False
    )
    assert [(row.channel, row.chat_key, row.audience) for row in free] == [
        ("wechat", "o-follower", "user")
    ]
    notices = OutboxStore(app.engine).claim(NOW, max_attempts=8, channels=())
    assert [row.audience for row in notices] == ["coordinators"]


class _SlowRights:
    """Copies and erasures whose first run is still going when another thread asks."""

    def __init__(self) -> None:
        self.runs = 0
        self.started = threading.Event()
        self.go_on = threading.Event()

    def run_pending(self) -> int:
        self.runs += 1
        if self.runs == 1:
            self.started.set()
            assert self.go_on.wait(10)
        return 1


def test_jobs_asked_for_while_another_thread_runs_them_are_run_by_that_thread(app: App) -> None:
    """A job queued near the end of another loop's run used to wait for a retry timer (15 s
    on WeChat): the thread at work now goes round again for it."""
    rights = _SlowRights()
    app.pipeline.data_rights = rights
    first = threading.Thread(target=app.pipeline.run_jobs, args=({},))
    first.start()
    assert rights.started.wait(10)
    assert app.pipeline.run_jobs({}) == 0  # the other thread is at it: this one returns
    rights.go_on.set()
    first.join(10)
    assert rights.runs == 2

"""Resilience: updates delivered several times, a Telegram that fails a fifth of the calls,
and fifty writers on one SQLite file. (The bot killed at random moments: test_crash_recovery.)

Patients are the scripted ones of tests/scripted_patients.py: the whole intake with a letter
and an album of photos, each move sent once the replies to the last have arrived, every
reply compared with an uninterrupted run of the same script.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from telegram import Update

from bot.app import App, build_app
from bot.channels.telegram_base import describe_update
from bot.config import Settings, load_settings
from handlers.updates.delivery import MAX_DELIVERY_ATTEMPTS
from tests.scripted_patients import (
    LivePatient,
    check_conversations,
    check_stored_files,
    drained,
    make_patients,
    reference_run,
)
from tests.support.telegram import (
    COORDINATOR,
    COORDINATOR_CHAT,
    WEBHOOK_SECRET,
    Patient,
    bot,
    settle,
    telegram_settings,
    through_to_records,
    webhook,
    webhook_settings,
)
from tests.support.workers import SCRIPT, Driver, check, make_users, running_workers
from tests.support.workers import reference_run as workers_reference
from tests.telegram_fake import SENT_METHODS, FakeBotApi, Sent

JSONDict = dict[str, Any]


# Minutes of concurrent and failing deliveries: slow. The channel is what varies here; the
# databases have their own suites.
pytestmark = [pytest.mark.slow, pytest.mark.databases("sqlite")]


def processed_keys(settings: Settings) -> list[str]:
    app = build_app(settings)
    try:
        with app.engine.connect() as conn:
            return [
                key
                for (key,) in conn.execute(
                    text("SELECT update_key FROM processed_update WHERE channel = 'telegram'")
                )
                if not key.startswith("files:")  # the bot's own reports of checked files
            ]
    finally:
        app.close()


# --------------------------------------------------------------------------- 1 to 3 times


PATIENTS_TWICE = 20
LATE_SHARE = 0.3  # updates posted once more, a while later (the patient has moved on)


def test_every_update_delivered_one_to_three_times_concurrently_and_late_has_one_effect(
    settings: Settings, library: str, tmp_path: Path
) -> None:
    """Each update reaches the webhook one, two or three times at once, some once more a few
    seconds later, and every one of them again after the patients are done: one stored
    update, one reply, one stored file each."""
    scripts = reference_run(tmp_path / "reference", albums_whole=False)
    rng = random.Random(7)
    copies: Counter[int] = Counter()
    late: list[asyncio.Task[None]] = []

    async def scenario() -> tuple[list[LivePatient], int, int]:
        async with FakeBotApi() as fake:
            config = webhook_settings(settings, fake, library)
            async with bot(config, polling=False) as channel, webhook(channel) as post:

                async def deliver(update: JSONDict, times: int) -> None:
                    statuses = await asyncio.gather(
                        *(post(update, WEBHOOK_SECRET) for _ in range(times))
                    )
                    assert set(statuses) == {200}, statuses

                async def later(update: JSONDict) -> None:
                    await asyncio.sleep(rng.uniform(0.5, 4.0))
                    await deliver(update, 1)

                async def push(updates: list[JSONDict]) -> None:
                    for update in updates:  # album parts too: one request each
                        times = rng.choice((1, 2, 3))
                        copies[times] += 1
                        await deliver(update, times)
                        if rng.random() < LATE_SHARE:
                            late.append(asyncio.create_task(later(update)))

                patients = make_patients(fake, scripts, PATIENTS_TWICE, 820_000_000)
                await asyncio.gather(*(p.play(push) for p in patients))
                await asyncio.gather(*late)
                await drained(channel.app.engine)
                await settle(fake, quiet=0.5)
                before = (len(fake.records), len(processed_keys(settings)))
                # Much later, every update once more, all at once.
                everything = [u for p in patients for u in p.updates]
                await asyncio.gather(*(deliver(u, 1) for u in everything))
                await drained(channel.app.engine)
                await settle(fake, quiet=0.5)
                assert (len(fake.records), len(processed_keys(settings))) == before
                for patient in patients:
                    patient.read_the_rest()
                check_conversations(channel.app.engine, patients)
                figures = check_stored_files(settings.data_dir, channel.app.engine, patients)
                assert figures.documents == sum(len(p.script.files) for p in patients)
                return patients, len(everything), len(fake.records)

    started = time.perf_counter()
    patients, updates, records = asyncio.run(scenario())
    # Nothing reached a chat twice, and each update was stored under one key.
    assert [d for p in patients for d in p.duplicates] == []
    keys = processed_keys(settings)
    assert len(keys) == len(set(keys)) == updates
    posts = sum(times * n for times, n in copies.items()) + len(late) + updates
    print(
        f"\n{library}: {len(patients)} patients, {updates} updates posted {posts} times "
        f"(once {copies[1]}, twice at once {copies[2]}, three times {copies[3]}, "
        f"{len(late)} once more a few seconds later, all again at the end); {records} "
        f"messages, none twice; {time.perf_counter() - started:.0f} s"
    )


# --------------------------------------------------------------------------- 429 and 5xx


PATIENTS_FAULTS = 30
FAULT_SHARE = 0.2
# Every call the bot makes but the file download: a file Telegram cannot hand over is tried
# three times, 15 s apart, and then the patient is asked to send it again (by design).
FAULTED_METHODS = (*SENT_METHODS, "answerCallbackQuery", "sendChatAction", "getUpdates")


def test_a_fifth_of_telegrams_answers_429_or_5xx_and_every_message_arrives_once_in_order(
    settings: Settings, library: str, tmp_path: Path
) -> None:
    scripts = reference_run(tmp_path / "reference")

    async def scenario() -> tuple[list[LivePatient], FakeBotApi]:
        async with FakeBotApi() as fake:
            fake.add_chat(COORDINATOR_CHAT, "supergroup", "Coordinators")
            fake.random_faults(FAULTED_METHODS, FAULT_SHARE, seed=11)
            async with bot(telegram_settings(settings, fake, library)) as channel:
                patients = make_patients(fake, scripts, PATIENTS_FAULTS, 830_000_000)

                async def push(updates: list[JSONDict]) -> None:
                    for update in updates:
                        fake.push_update(update)

                await asyncio.gather(*(p.play(push) for p in patients))
                await drained(channel.app.engine)
                await settle(fake, quiet=1.0)
                for patient in patients:
                    patient.read_the_rest()
                check_conversations(channel.app.engine, patients)
                check_stored_files(settings.data_dir, channel.app.engine, patients)
                with channel.app.engine.connect() as conn:
                    given_up = conn.execute(
                        text("SELECT count(*) FROM outbox WHERE attempts >= :most"),
                        {"most": MAX_DELIVERY_ATTEMPTS},
                    ).scalar_one()
                assert given_up == 0
                return patients, fake

    started = time.perf_counter()
    patients, fake = asyncio.run(scenario())
    # Once each and in order (the patients compared every message as it came): no duplicate.
    assert [d for p in patients for d in p.duplicates] == []
    # One card per submitted case in the coordinators' group, each sent once.
    cards = [s for s in fake.sent(COORDINATOR_CHAT) if s.method == "sendMessage"]
    references = [re.search(r"HZ-\w{4}-\w{4}", s.text or "") for s in cards]
    found = [m.group(0) for m in references if m]
    assert len(found) == len(set(found)) == len(patients)
    faulted = Counter(
        (c.method, c.status) for c in fake.calls if c.faulted and c.method in FAULTED_METHODS
    )
    refused = sum(faulted.values())
    print(
        f"\n{library}: {len(patients)} patients, {len(fake.sent())} messages each delivered "
        f"once; {refused} calls refused ({_share(faulted)}) of {len(fake.calls)}; "
        f"{time.perf_counter() - started:.0f} s"
    )


def _share(faulted: Counter[tuple[str, int]]) -> str:
    by_status: Counter[int] = Counter()
    for (_, status), n in faulted.items():
        by_status[status] += n
    return ", ".join(f"{n} × {status}" for status, n in sorted(by_status.items()))


# --------------------------------------------------------------------------- fifty writers


TELEGRAM_WRITERS = 50  # patients posting to the two bot processes at once
THREAD_WRITERS = 50  # patients whose updates threads of this process store directly


def store_directly(app: App, updates: list[JSONDict], failures: list[BaseException]) -> None:
    """One patient's updates stored as a worker's receive stores them (the same Inbound
    from the same update), in a thread of its own."""
    try:
        for update in updates:
            incoming = describe_update(Update.de_json(update, None))
            assert incoming.inbound is not None
            app.pipeline.handle(incoming.inbound)
    except BaseException as error:  # an OperationalError would be a patient's apology
        failures.append(error)


def test_fifty_writers_on_one_sqlite_file_never_show_a_patient_a_locked_database(
    tmp_path: Path,
) -> None:
    """Two bot processes (webhook; python-telegram-bot and aiogram) on one SQLite file, fifty
    patients posting to either at once, and fifty more whose updates fifty threads of this
    process store at the same time: no patient is told something went wrong, every reply
    and every state is what a single quiet run gives, and no database error shows anywhere."""
    data_dir = tmp_path / "data"
    reference = workers_reference(tmp_path / "reference")
    posting = make_users(TELEGRAM_WRITERS, first_id=840_000_000)
    threaded = make_users(THREAD_WRITERS, first_id=850_000_000)
    settings = load_settings({"DATA_DIR": str(data_dir)})
    failures: list[BaseException] = []
    logs = tmp_path / "logs"

    async def scenario() -> tuple[float, Driver]:
        async with FakeBotApi() as fake:
            app = build_app(settings)  # migrated once, as `huizhen run` does on start
            try:
                async with running_workers(2, fake, data_dir, None, logs) as workers:
                    driver = Driver(fake, [w.port for w in workers], connections=TELEGRAM_WRITERS)
                    scripts = []
                    for user in threaded:
                        updates = [driver._update(user, move) for move in SCRIPT[: user.moves]]
                        user.update_ids = [u["update_id"] for u in updates]
                        user.press_ids = []  # stored directly: no one answers these presses
                        scripts.append(updates)
                    threads = [
                        threading.Thread(target=store_directly, args=(app, updates, failures))
                        for updates in scripts
                    ]
                    started = time.perf_counter()
                    for thread in threads:
                        thread.start()
                    await driver.run(posting)
                    await asyncio.gather(*(asyncio.to_thread(t.join) for t in threads))
                    seconds = time.perf_counter() - started
                    # Replies to what the threads stored go out with the workers' next rounds.
                    await drained(app.engine, timeout=90)
                    await settle(fake, quiet=1.0)
                check(fake, app.engine, [*posting, *threaded], reference)
            finally:
                app.close()
            return seconds, driver

    seconds, driver = asyncio.run(scenario())
    assert failures == []
    written = "\n".join(log.read_text(errors="replace") for log in logs.glob("*.log"))
    for sign in ("OperationalError", "database is locked", "could not be stored", "Traceback"):
        assert sign not in written
    assert driver.result.statuses == Counter({200: driver.result.posts})
    updates = driver.result.updates + sum(len(u.update_ids) for u in threaded)
    print(
        f"\n{TELEGRAM_WRITERS} patients posting to two bot processes ({driver.result.posts} "
        f"posts, {driver.result.duplicates} updates twice; p99 "
        f"{driver.result.percentile(0.99) * 1000:.0f} ms) and {THREAD_WRITERS} stored by "
        f"threads, one SQLite file: {updates} updates in {seconds:.1f} s, no apology, no "
        "database error"
    )


def test_a_coordinators_press_delivered_twice_acts_once(settings: Settings, library: str) -> None:
    """A webhook retry of a press on a case card: claimed once, the claim not undone or
    repeated, the history holding one change."""

    async def scenario() -> None:
        async with FakeBotApi() as fake:
            fake.add_chat(COORDINATOR_CHAT, "supergroup", "Coordinators")
            config = webhook_settings(settings, fake, library)
            async with bot(config, polling=False) as channel, webhook(channel) as post:

                class ByWebhook(Patient):
                    async def send(self, update: JSONDict) -> list[Sent]:
                        before = len(self.fake.sent(self.user_id))
                        assert await post(update, WEBHOOK_SECRET) == 200
                        await self.fake.wait_for_sent(self.user_id, before + 1, timeout=10)
                        await settle(self.fake)
                        return self.fake.sent(self.user_id)[before:]

                patient = ByWebhook(fake, 830_000_001)
                await through_to_records(patient)
                while "Send it now" in str(patient.question().buttons):
                    await patient.press("I'll get it later")
                await patient.press("Continue to review")
                await patient.press("Submit the case")
                [card] = await fake.wait_for_sent(COORDINATOR_CHAT, 1)

                async def press_card(label: str, times: int) -> None:
                    shown = fake.message(COORDINATOR_CHAT, card.message_id)
                    assert shown is not None
                    current = Sent(**{**card.__dict__, "message": shown})
                    press = fake.press(current, label, user_id=COORDINATOR)
                    posts = (post(press, WEBHOOK_SECRET) for _ in range(times))
                    assert set(await asyncio.gather(*posts)) == {200}
                    await settle(fake, quiet=0.3)
                    assert await post(press, WEBHOOK_SECRET) == 200  # and later once more
                    await settle(fake, quiet=0.3)

                await press_card("Claim", 3)
                await press_card("Request items", 2)
                # Ticking an item is a toggle: acted on twice, it would be unticked again.
                await press_card("Pathology report", 3)
                [case] = channel.app.queue.list()
                assert case.status == "in_review"
                assert json.loads(case.card_picks_json) == ["pathology_report"]
                claims = [
                    e for e in channel.app.casework.events(case.id) if e.to_status == "in_review"
                ]
                assert len(claims) == 1

    asyncio.run(scenario())

"""The bot killed with SIGKILL at random moments while 50 patients go through the intake.

The real bot (`python -m bot run`, long polling, SQLite in a temporary DATA_DIR) talks to the
fake Bot API in this process. Fifty simulated patients (tests/scripted_patients.py) go through
the whole intake: buttons, typed answers, /status, a PDF letter and an album of two photos;
each sends the next message only once the replies to the last one have arrived. Meanwhile the
bot's process group is killed with SIGKILL at random moments, HUIZHEN_TEST_KILLS times (100 by
default): most while it works (a random time after it started polling), some while it starts
(imports, migrations, command menus). After each kill it is started again at once; after the
last, it runs until every patient is done and is then stopped with SIGTERM.

On the way back Telegram sometimes takes a message and the answer is lost (the fake carries out
1% of sends and closes the connection unanswered). So a message may legitimately reach a chat
twice, and only in two cases: the first copy was never acknowledged, or the process that sent
it was killed after Telegram took it and before it could mark it sent (then it is the last
message that process sent to that chat, and each kill doubles at most one message per chat).

Then: every conversation is at the step its script ends at (submitted); each patient received
every reply of an uninterrupted run once, in order, apart from the duplicates above; every
update was stored once; every file is in the document table once and in the file store once,
readable back as itself; nothing is left unsent or unchecked.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import text

from handlers.updates.delivery import CHATS_AT_ONCE
from storage.database import make_engine
from tests.scripted_patients import (
    Duplicate,
    LivePatient,
    check_conversations,
    check_stored_files,
    drained,
    make_patients,
    reference_run,
)
from tests.support.workers import free_ports, group_alive
from tests.telegram_fake import SENT_METHODS, FakeBotApi, Sent

ROOT = Path(__file__).resolve().parent.parent
KILLS = int(os.environ.get("HUIZHEN_TEST_KILLS", "100"))
PATIENTS = 50
FIRST_PATIENT = 810_000_000
FILE_KEY = base64.urlsafe_b64encode(bytes(range(32, 64))).decode()
STARTUP_KILLS = 0.1  # the share of kills while the process starts
DROPPED_ANSWERS = 0.01
SEED = int(os.environ.get("HUIZHEN_TEST_SEED", "20261122"))


@dataclass
class Generation:
    """One run of the bot process, from its start to its kill."""

    number: int
    token: str  # its own token of the bot: the fake tells what each run sent
    process: subprocess.Popen[bytes]
    phase: str = ""
    killed: bool = False


@dataclass
class Killer:
    """Starts the bot, kills it at random moments, starts it again."""

    fake: FakeBotApi
    data_dir: Path
    log: Path
    rng: random.Random
    generations: list[Generation] = field(default_factory=list)
    kills: int = 0
    busy_at_last_kill: int = 0  # patients in mid-intake when the last kill came
    last_finished: int = 0  # kills before the last patient was done

    def env(self, token: str) -> dict[str, str]:
        env = {k: v for k in ("PATH", "HOME", "LANG", "TMPDIR") if (v := os.environ.get(k))}
        env.update(
            PYTHONUNBUFFERED="1",
            DATA_DIR=str(self.data_dir),
            FILE_ENCRYPTION_KEY=FILE_KEY,
            TELEGRAM_BOT_TOKEN=token,
            TELEGRAM_API_BASE_URL=self.fake.base_url,
            # The pace is not what is tested here: 50 chats at a message a second each.
            TELEGRAM_SEND_RATE="100",
            WEB_HOST="127.0.0.1",
            WEB_PORT=str(free_ports(1)[0]),
        )
        return env

    def start(self) -> Generation:
        number = len(self.generations)
        token = f"{self.fake.token}-run{number}"
        self.fake.add_token(token)
        with self.log.open("ab") as out:
            out.write(f"--- run {number}\n".encode())
            process = subprocess.Popen(
                [sys.executable, "-m", "bot", "run"],
                cwd=ROOT,
                env=self.env(token),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the file worker dies with it
            )
        generation = Generation(number, token, process)
        self.generations.append(generation)
        return generation

    async def kill_at_random(self) -> None:
        generation = self.start()
        if self.rng.random() < STARTUP_KILLS:
            generation.phase = "starting"
            await asyncio.sleep(self.rng.uniform(0.0, 1.5))
        else:
            generation.phase = "working"
            await self.fake.wait_for(
                lambda: self.polling(generation), timeout=30, what="the bot polls"
            )
            await asyncio.sleep(self.rng.uniform(0.0, 1.0))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(generation.process.pid, signal.SIGKILL)
        generation.killed = True
        await asyncio.to_thread(generation.process.wait)
        self.kills += 1

    def polling(self, generation: Generation) -> bool:
        assert generation.process.poll() is None, f"the bot exited:\n{self.tail()}"
        return any(
            call.method == "getUpdates" and call.token == generation.token
            for call in reversed(self.fake.calls[-200:])
        )

    def of(self, record: Sent) -> Generation:
        """The run that sent it."""
        return self.generations[int(record.token.rsplit("-run", 1)[1])]

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def why_allowed(duplicate: Duplicate, killer: Killer, chat: list[Sent]) -> str | None:
    """Why a message may have reached the chat twice, or None when nothing explains it."""
    if not duplicate.first.acknowledged:
        return "unacknowledged"
    first, again = killer.of(duplicate.first), killer.of(duplicate.again)
    # The first copy's run was killed, and it was the last thing that run sent to the chat:
    # Telegram had taken it, the run had not marked it sent.
    last_of_first = [record for record in chat if killer.of(record) is first][-1]
    if first.killed and again.number > first.number and last_of_first is duplicate.first:
        return "killed"
    return None


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_killed_at_random_moments_the_bot_loses_and_doubles_nothing(tmp_path: Path) -> None:
    started = time.perf_counter()
    scripts = reference_run(tmp_path / "reference")
    data_dir = tmp_path / "data"
    rng = random.Random(SEED)

    async def scenario() -> tuple[Killer, list[LivePatient], FakeBotApi]:
        async with FakeBotApi() as fake:
            fake.drop_answers(SENT_METHODS, DROPPED_ANSWERS, seed=SEED)
            killer = Killer(fake, data_dir, tmp_path / "bot.log", rng)
            # A minute per move: far less than the two-minute lease a dead run's messages had.
            patients = make_patients(fake, scripts, PATIENTS, FIRST_PATIENT, timeout=60)

            async def push(updates: list[dict[str, object]]) -> None:
                for update in updates:
                    fake.push_update(update)

            async def play(index: int, patient: LivePatient) -> None:
                # Patients join over the first three quarters of the kills, so the kills
                # keep finding conversations at every stage until the last.
                await fake.wait_for(
                    lambda: killer.kills >= index * KILLS * 3 // (4 * PATIENTS),
                    timeout=600,
                    what="my turn",
                )
                await patient.play(push)
                killer.last_finished = killer.kills

            playing = asyncio.gather(*(play(i, p) for i, p in enumerate(patients)))
            try:
                while killer.kills < KILLS:
                    await killer.kill_at_random()
                killer.busy_at_last_kill = sum(1 for p in patients if p.updates and not p.done)
                last = killer.start()
                await fake.wait_for(lambda: killer.polling(last), timeout=30, what="last run")
                await playing
                engine = make_engine(f"sqlite:///{data_dir / 'huizhen.sqlite3'}")
                try:
                    await drained(engine)
                finally:
                    engine.dispose()
                last.process.send_signal(signal.SIGTERM)
                assert await asyncio.to_thread(last.process.wait, 30) == 0, killer.tail()
            except BaseException:
                playing.cancel()
                print(killer.tail())
                raise
            finally:
                for generation in killer.generations:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(generation.process.pid, signal.SIGKILL)
                    generation.process.wait()
            for patient in patients:
                patient.read_the_rest()
            return killer, patients, fake

    killer, patients, fake = asyncio.run(scenario())
    # Nothing of any run is left (a killed run's file worker is reaped by init: a moment).
    deadline = time.monotonic() + 10
    while any(group_alive(g.process.pid) for g in killer.generations):
        assert time.monotonic() < deadline, "a killed bot left a process running"
        time.sleep(0.1)
    engine = make_engine(f"sqlite:///{data_dir / 'huizhen.sqlite3'}")
    try:
        check_conversations(engine, patients)
        figures = check_stored_files(data_dir, engine, patients, key=FILE_KEY)
        with engine.connect() as conn:
            unchecked = conn.execute(text("SELECT count(*) FROM job WHERE done_at IS NULL"))
            assert unchecked.scalar_one() == 0
    finally:
        engine.dispose()

    # Each duplicate explained; at most one per chat and kill (a chat's messages are sent
    # one after the other, each marked sent before the next), so at most CHATS_AT_ONCE.
    reasons: Counter[str] = Counter()
    per_kill: Counter[int] = Counter()
    unexplained = []
    for patient in patients:
        chat = killer_records(fake, patient.user_id)
        for duplicate in patient.duplicates:
            reason = why_allowed(duplicate, killer, chat)
            if reason is None:
                unexplained.append(duplicate)
                continue
            reasons[reason] += 1
            if reason == "killed":
                per_kill[killer.of(duplicate.first).number] += 1
    assert not unexplained, [
        (d.chat, d.first.text, killer.of(d.first).number, killer.of(d.again).number)
        for d in unexplained
    ]
    assert max(per_kill.values(), default=0) <= CHATS_AT_ONCE
    dropped = sum(1 for call in fake.calls if call.dropped)
    phases = Counter(g.phase for g in killer.generations if g.killed)
    updates = sum(len(p.updates) for p in patients)
    print(
        f"\n{killer.kills} kills ({phases['working']} while working, {phases['starting']} while "
        f"starting; {killer.busy_at_last_kill} patients in mid-intake at the last, the last "
        f"patient done after kill {killer.last_finished}), "
        f"{PATIENTS} patients, {updates} updates, {len(fake.sent())} messages "
        f"received; duplicates: {reasons['killed']} after a kill (on {len(per_kill)} kills, "
        f"at most {max(per_kill.values(), default=0)} per kill), {reasons['unacknowledged']} "
        f"after {dropped} unanswered sends; {figures.documents} documents, {figures.blobs} "
        f"stored files, {figures.leftovers} partial writes left in files/incoming; "
        f"{time.perf_counter() - started:.0f} s"
    )


def killer_records(fake: FakeBotApi, chat: int) -> list[Sent]:
    return [r for r in fake.records if r.method in SENT_METHODS and r.chat_id == chat]

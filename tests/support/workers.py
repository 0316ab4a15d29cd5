"""Several `huizhen run` worker processes behind the fake Bot API, and simulated users."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import Engine, text

from benchmarks.patient_script import FIXED_ANSWERS
from bot.app import build_app
from bot.channels.telegram_base import decode_callback, encode_callback
from bot.config import load_settings
from bot.web import SECRET_HEADER, TELEGRAM_WEBHOOK_PATH
from conversations.events import Inbound, InboundKind, Outbound
from tests.telegram_fake import FakeBotApi

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "workers-webhook-secret"


# One key for every worker, as a deployment sets FILE_ENCRYPTION_KEY (workers starting at
# once must not each try to create DATA_DIR/file-encryption.key).
FILE_KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()


# Telegram opens at most this many connections to a webhook at once (setWebhook's default).
TELEGRAM_CONNECTIONS = 40
DUPLICATE_SHARE = 0.1  # updates posted twice, to two different workers
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
JSONDict = dict[str, Any]


@dataclass(frozen=True)
class Move:
    """One thing a user does: a command ("start"), a text, or a press (callback data)."""

    kind: InboundKind
    value: str


def _press(step: str) -> Move:
    """The button benchmarks/patient_script.py answers this step with."""
    return Move(InboundKind.CHOICE, encode_callback(step, FIXED_ANSWERS[step]))


# Through the consents with a typed word where a button is expected, /status, and an old
# button pressed again: every reply is a new message (nothing here edits one in place).
SCRIPT: tuple[Move, ...] = (
    Move(InboundKind.COMMAND, "start"),
    _press("emergency"),
    _press("about"),
    Move(InboundKind.TEXT, "What will you keep about me?"),
    _press("consent_health"),
    _press("consent_transfer"),
    Move(InboundKind.COMMAND, "status"),
    _press("emergency"),  # a button of an earlier question: answered with where we are now
    _press("for_whom"),
)


SHORTEST = 4  # users stop after 4 to 9 moves, so they end at different steps
LANGUAGES = ("en", "zh-hans", "es", "ar")  # as Telegram's language_code gives them


@dataclass
class SimUser:
    user_id: int
    language: str
    moves: int
    update_ids: list[int] = field(default_factory=list)
    press_ids: list[str] = field(default_factory=list)


def make_users(count: int, first_id: int = 700_000_000) -> list[SimUser]:
    spread = len(SCRIPT) - SHORTEST + 1
    return [
        SimUser(
            first_id + index,
            LANGUAGES[index % len(LANGUAGES)],
            SHORTEST + (index // len(LANGUAGES)) % spread,
        )
        for index in range(count)
    ]


Reply = tuple[str, tuple[str, ...]]  # text, callback data of its buttons


@dataclass(frozen=True)
class Reference:
    """What one process, straight through the pipeline, answers each move of the script."""

    replies: dict[str, list[list[Reply]]]  # language -> per move, the replies
    steps: dict[str, list[str]]  # language -> per move, the step stored after it

    def expected(self, user: SimUser) -> list[Reply]:
        return [r for move in self.replies[user.language][: user.moves] for r in move]

    def final_step(self, user: SimUser) -> str:
        return self.steps[user.language][user.moves - 1]


def reference_run(folder: Path) -> Reference:
    app = build_app(load_settings({"DATA_DIR": str(folder), "FILE_ENCRYPTION_KEY": FILE_KEY}))
    replies: dict[str, list[list[Reply]]] = {}
    steps: dict[str, list[str]] = {}
    try:
        seen = 0
        for number, language in enumerate(LANGUAGES):
            user = str(number + 1)
            replies[language], steps[language] = [], []
            for index, move in enumerate(SCRIPT):
                fields: JSONDict = {}
                if move.kind == InboundKind.COMMAND:
                    fields["command"] = move.value
                elif move.kind == InboundKind.TEXT:
                    fields["text"] = move.value
                else:
                    fields["prompt_ref"], fields["choice_id"] = decode_callback(move.value)
                    fields["message_ref"] = "1"
                app.pipeline.handle(
                    Inbound(
                        channel="telegram",
                        user_key=user,
                        chat_key=user,
                        update_key=f"{user}:{index}",
                        kind=move.kind,
                        language_hint=language,
                        **fields,
                    )
                )
                rows = app.outbox.pending(limit=10_000)[seen:]
                seen += len(rows)
                outbound = [Outbound.model_validate_json(row.payload_json) for row in rows]
                assert all(o.edit_of is None and not o.files for o in outbound), "script edits"
                replies[language].append(
                    [
                        (o.text, tuple(encode_callback(o.prompt_ref, c.id) for c in o.options))
                        for o in outbound
                    ]
                )
                with app.engine.connect() as conn:
                    step = conn.execute(
                        text("SELECT step FROM conversation WHERE user_key = :u"), {"u": user}
                    ).scalar_one()
                steps[language].append(step)
    finally:
        app.close()
    return Reference(replies, steps)


@dataclass
class WorkerProcess:
    index: int
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            sockets.append(probe)
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def worker_env(
    fake: FakeBotApi, data_dir: Path, database_url: str | None, port: int, library: str
) -> dict[str, str]:
    """Only what a worker needs: nothing of the caller's Huizhen or Telegram settings."""
    env = {k: v for k in ("PATH", "HOME", "LANG", "TMPDIR") if (v := os.environ.get(k))}
    env.update(
        PYTHONUNBUFFERED="1",
        DATA_DIR=str(data_dir),
        FILE_ENCRYPTION_KEY=FILE_KEY,
        TELEGRAM_BOT_TOKEN=fake.token,
        TELEGRAM_API_BASE_URL=fake.base_url,
        TELEGRAM_LIBRARY=library,
        TELEGRAM_WEBHOOK_URL="https://bot.example.org/telegram/webhook",
        TELEGRAM_WEBHOOK_SECRET=WEBHOOK_SECRET,
        WEB_HOST="127.0.0.1",
        WEB_PORT=str(port),
    )
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    return env


def _stop(workers: Sequence[WorkerProcess], timeout: float) -> None:
    """SIGTERM, a graceful wait, then SIGKILL to whatever is left of each worker's process
    group (the worker and any child it started)."""
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for worker in workers:
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
    for worker in workers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait()


def group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


@asynccontextmanager
async def running_workers(
    count: int,
    fake: FakeBotApi,
    data_dir: Path,
    database_url: str | None,
    log_dir: Path,
    stopped: list[int] | None = None,
) -> AsyncIterator[list[WorkerProcess]]:
    """`count` workers, ready (each /healthz answers 200); stopped with SIGTERM on the way out
    (killed if they do not stop in time). The exit codes go to `stopped`. Workers alternate
    between the two Telegram libraries: the stored state is theirs to share."""
    log_dir.mkdir(parents=True, exist_ok=True)
    workers: list[WorkerProcess] = []
    try:
        for index, port in enumerate(free_ports(count)):
            library = ("ptb", "aiogram")[index % 2]
            log = log_dir / f"worker-{index}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", "bot", "run"],
                    cwd=ROOT,
                    env=worker_env(fake, data_dir, database_url, port, library),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group, to kill it whole
                )
            workers.append(WorkerProcess(index, port, process, log))
        await _wait_ready(workers)
        yield workers
    finally:
        await asyncio.to_thread(_stop, workers, STOP_TIMEOUT)
        if stopped is not None:
            stopped.extend(worker.process.returncode for worker in workers)


async def _wait_ready(workers: Sequence[WorkerProcess]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    waiting = list(workers)
    async with aiohttp.ClientSession() as http:
        while waiting:
            for worker in list(waiting):
                if worker.process.poll() is not None:
                    raise RuntimeError(f"worker {worker.index} exited:\n{worker.tail()}")
                with contextlib.suppress(aiohttp.ClientError):
                    url = f"http://127.0.0.1:{worker.port}/healthz"
                    async with http.get(url) as response:
                        if response.status == 200:
                            waiting.remove(worker)
            if waiting and time.monotonic() > deadline:
                raise RuntimeError(f"worker {waiting[0].index} not ready:\n{waiting[0].tail()}")
            await asyncio.sleep(0.2)


@dataclass
class DriveResult:
    updates: int = 0  # distinct updates
    posts: int = 0  # webhook calls answered 200, duplicates included
    duplicates: int = 0
    retried: int = 0  # calls answered otherwise, posted again as Telegram would
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, POST to 200
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def per_second(self) -> float:
        return self.updates / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


class Driver:
    """Plays the users against the workers through the webhook, Telegram's way."""

    def __init__(
        self,
        fake: FakeBotApi,
        ports: Sequence[int],
        seed: int = 9,
        duplicate_share: float = DUPLICATE_SHARE,
        connections: int = TELEGRAM_CONNECTIONS,
        max_attempts: int = 5,
    ) -> None:
        self.fake = fake
        self.urls = [f"http://127.0.0.1:{port}{TELEGRAM_WEBHOOK_PATH}" for port in ports]
        self.random = random.Random(seed)
        self.duplicate_share = duplicate_share
        self.slots = asyncio.Semaphore(connections)
        self.connections = connections
        self.max_attempts = max_attempts
        self.result = DriveResult()

    async def run(self, users: Sequence[SimUser]) -> DriveResult:
        connector = aiohttp.TCPConnector(limit=self.connections * 2)
        async with aiohttp.ClientSession(connector=connector) as http:
            order = list(users)
            self.random.shuffle(order)
            started = time.perf_counter()
            await asyncio.gather(*(self._play(http, user) for user in order))
            self.result.seconds = time.perf_counter() - started
        return self.result

    async def _play(self, http: aiohttp.ClientSession, user: SimUser) -> None:
        for move in SCRIPT[: user.moves]:
            update = self._update(user, move)
            user.update_ids.append(update["update_id"])
            self.result.updates += 1
            # Twice: to two different workers where there are several.
            workers = len(self.urls)
            first = self.random.randrange(workers)
            second = (first + self.random.randrange(1, workers)) % workers if workers > 1 else first
            if self.random.random() >= self.duplicate_share:
                await self._post(http, first, update)
                continue
            self.result.duplicates += 1
            if self.random.random() < 0.5:  # both at once, to two workers
                await asyncio.gather(
                    self._post(http, first, update), self._post(http, second, update)
                )
            else:  # the same update again once the first was answered
                await self._post(http, first, update)
                await self._post(http, second, update)

    def _update(self, user: SimUser, move: Move) -> JSONDict:
        language = user.language
        if move.kind == InboundKind.COMMAND:
            return self.fake.command(user.user_id, f"/{move.value}", language_code=language)
        if move.kind == InboundKind.TEXT:
            return self.fake.text_message(user.user_id, move.value, language_code=language)
        # The press is on the latest question the user has been shown, if it arrived yet.
        message_id = next(
            (
                s.message_id
                for s in reversed(self.fake.records)
                if s.chat_id == user.user_id and s.inline_keyboard
            ),
            1,
        )
        update = self.fake.callback(user.user_id, move.value, message_id, language_code=language)
        user.press_ids.append(update["callback_query"]["id"])
        return update

    async def _post(self, http: aiohttp.ClientSession, worker: int, update: JSONDict) -> None:
        for attempt in range(self.max_attempts):
            target = self.urls[(worker + attempt) % len(self.urls)]
            async with self.slots:
                started = time.perf_counter()
                async with http.post(
                    target, json=update, headers={SECRET_HEADER: WEBHOOK_SECRET}
                ) as response:
                    await response.read()
                    status = response.status
                elapsed = time.perf_counter() - started
            self.result.statuses[status] += 1
            if status == 200:
                self.result.latencies.append(elapsed)
                self.result.posts += 1
                return
            self.result.retried += 1
            await asyncio.sleep(0.5 * (attempt + 1))
        raise AssertionError(f"update {update['update_id']} refused {self.max_attempts} times")


def unsent_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(text("SELECT count(*) FROM outbox WHERE sent_at IS NULL")).scalar_one()
        )


def check(fake: FakeBotApi, engine: Engine, users: Sequence[SimUser], ref: Reference) -> None:
    with engine.connect() as conn:
        processed = {
            key
            for (key,) in conn.execute(
                text("SELECT update_key FROM processed_update WHERE channel = 'telegram'")
            )
        }
        outbox = {
            chat: (rows, sent)
            for chat, rows, sent in conn.execute(
                text(
                    "SELECT chat_key, count(*), count(sent_at) FROM outbox "
                    "WHERE audience = 'user' GROUP BY chat_key"
                )
            )
        }
        steps = {
            user_key: step
            for user_key, step in conn.execute(
                text("SELECT user_key, step FROM conversation WHERE channel = 'telegram'")
            )
        }
    # Nothing lost: every update stored once; nothing but these.
    wanted = {str(update_id) for user in users for update_id in user.update_ids}
    assert processed == wanted
    sent_by_chat: dict[int, list[Any]] = {}
    for record in fake.sent():
        sent_by_chat.setdefault(record.chat_id, []).append(record)
    wrong = []
    for user in users:
        records = sent_by_chat.get(user.user_id, [])
        got = [(r.text, tuple(r.callback_data)) for r in records]
        expected = ref.expected(user)
        rows, sent = outbox.get(str(user.user_id), (0, 0))
        # Per-user order: the very replies one process gives, in the same order, no repeats.
        if got != expected:
            wrong.append(f"user {user.user_id}: {len(got)} messages, {len(expected)} expected")
            continue
        # Nothing doubled: one sendMessage per outbox row, every row sent.
        assert all(r.method == "sendMessage" for r in records)
        assert rows == sent == len(records), (user.user_id, rows, sent, len(records))
        assert steps[str(user.user_id)] == ref.final_step(user)
    assert not wrong, f"{len(wrong)} users out of order: {wrong[:5]}"
    # Every button press answered, a press posted twice possibly twice; nothing else.
    answered = {a.callback_query_id for a in fake.callback_answers}
    assert answered == {press for user in users for press in user.press_ids}
    assert set(sent_by_chat) == {user.user_id for user in users}

"""Throughput of the whole intake path against bare SQLite upserts.

Simulated users go through the complete intake (engine, the SQLite transaction, outbox
delivery) with the real wiring from `bot.app.build_app`, interleaved in batches. In the same
process, a baseline runs as many bare single-row upserts with the `sqlite3` module, one
transaction each.

    .venv/bin/python benchmarks/engine.py            # 10,000 users
    .venv/bin/python benchmarks/engine.py --quick    # 500 users
    .venv/bin/python benchmarks/engine.py --users 2000 --profile /tmp/engine.prof

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.patient_script import DIAGNOSES, FIXED_ANSWERS, TIMELINE_LINES, TYPED_QUESTION
from bot.app import App, build_app
from bot.config import load_settings
from conversations.events import CoordinatorNotice, Inbound, InboundKind, Outbound
from conversations.i18n import SUPPORTED_LOCALES, translator
from handlers.updates.delivery import deliver_pending

CHANNEL = "bench"
DEFAULT_USERS = 10_000
QUICK_USERS = 500
DEFAULT_BATCH = 100


class BenchmarkError(RuntimeError):
    """A simulated user met something the script does not expect."""


@dataclass
class SimUser:
    """One simulated patient: reads the last question and answers it."""

    index: int
    key: str
    prompt_ref: str = ""
    option_ids: tuple[str, ...] = ()
    started: bool = False
    finished: bool = False
    reasons: int = 0
    questions: int = 0
    timeline: int = 0
    sent: int = 0
    replies: int = 0

    def next_inbound(self) -> Inbound:
        self.sent += 1
        update_key = f"{self.key}:{self.sent}"
        if not self.started:
            self.started = True
            return self._inbound(update_key, InboundKind.COMMAND, command="start")
        step = self.prompt_ref.partition(".")[0]
        answer = self._answer(step)
        if answer.startswith("text:"):
            return self._inbound(update_key, InboundKind.TEXT, text=answer[5:])
        if answer not in self.option_ids:
            raise BenchmarkError(
                f"user {self.index}: {answer!r} not offered at {self.prompt_ref}: {self.option_ids}"
            )
        if step == "review" and answer == "submit":
            self.finished = True
        return self._inbound(
            update_key, InboundKind.CHOICE, choice_id=answer, prompt_ref=self.prompt_ref
        )

    def _inbound(self, update_key: str, kind: InboundKind, **fields: str) -> Inbound:
        return Inbound(
            channel=CHANNEL,
            user_key=self.key,
            chat_key=self.key,
            update_key=update_key,
            kind=kind,
            **fields,
        )

    def _pick(self, offset: int = 0) -> str:
        ids = self.option_ids
        if not ids:
            raise BenchmarkError(f"user {self.index}: no options at {self.prompt_ref}")
        return ids[(self.index + offset) % len(ids)]

    def _answer(self, step: str) -> str:
        if step in FIXED_ANSWERS:
            return FIXED_ANSWERS[step]
        if step == "fit_reasons":
            if self.reasons < 2 + self.index % 3:
                self.reasons += 1
                reasons = [i for i in self.option_ids if i != "done"]
                return reasons[(self.index + self.reasons * 3) % len(reasons)]
            return "done"
        if step.startswith("fit_"):
            return self._pick(len(step))
        if step in ("area", "oncology_kind"):
            return self._pick()
        if step == "diagnosis":
            return "text:" + DIAGNOSES[self.index % len(DIAGNOSES)]
        if step == "questions":
            return self._question()
        if step == "timeline":
            if self.timeline < len(TIMELINE_LINES):
                self.timeline += 1
                return "text:" + TIMELINE_LINES[self.timeline - 1]
            return "done"
        if step == "records":
            cursor = int(self.prompt_ref.partition(".")[2] or 0)
            return "later" if (self.index + cursor) % 2 else "not_applicable"
        raise BenchmarkError(f"user {self.index}: unexpected step {self.prompt_ref!r}")

    def _question(self) -> str:
        if self.questions >= 3:
            return "done"
        self.questions += 1
        suggestions = [i for i in self.option_ids if i.startswith("q_")]
        typed = self.index % 4 == 0 and self.questions == 3
        if typed or not suggestions:
            suffix = "" if self.questions == 3 else f" ({self.questions})"
            return "text:" + TYPED_QUESTION + suffix
        return suggestions[0]


@dataclass
class Counter:
    """The in-process channel: counts replies, and shows each user its last question."""

    users: dict[str, SimUser]
    messages: int = 0
    notices: int = 0
    seen_refs: set[str] = field(default_factory=set)

    async def send(self, chat_key: str, message: Outbound) -> str | None:
        self.messages += 1
        if message.prompt_ref:
            user = self.users[chat_key]
            user.replies += 1
            user.prompt_ref = message.prompt_ref
            user.option_ids = tuple(option.id for option in message.options)
        return None

    async def notify(self, notice: CoordinatorNotice) -> None:
        self.notices += 1


@dataclass
class IntakeResult:
    messages: int
    seconds: float
    latencies_ms: list[float]
    replies: int
    notices: int
    submitted_cases: int


async def run_intake(
    app: App, users: int, batch: int, profiler: cProfile.Profile | None
) -> IntakeResult:
    sims = {f"u{i:06d}": SimUser(i, f"u{i:06d}") for i in range(users)}
    counter = Counter(sims)
    senders = {CHANNEL: counter}
    handle = app.pipeline.handle
    outbox = app.outbox
    clock = app.pipeline.clock
    latencies: list[float] = []
    order = list(sims.values())
    perf = time.perf_counter
    if profiler is not None:
        profiler.enable()
    started = perf()
    for first in range(0, users, batch):
        active = order[first : first + batch]
        while active:
            # Round-robin: every user of the batch sends one message per round.
            for user in active:
                inbound = user.next_inbound()
                before = perf()
                if handle(inbound) is None:
                    raise BenchmarkError(f"user {user.index}: update treated as a duplicate")
                await deliver_pending(outbox, senders, counter, clock)
                latencies.append((perf() - before) * 1000)
            active = [user for user in active if not user.finished]
    seconds = perf() - started
    if profiler is not None:
        profiler.disable()
    return IntakeResult(
        messages=len(latencies),
        seconds=seconds,
        latencies_ms=latencies,
        replies=counter.messages,
        notices=counter.notices,
        submitted_cases=len(app.queue.list()),
    )


def run_baseline(path: Path, messages: int, users: int) -> float:
    """Bare single-row upserts, one transaction each; returns upserts per second."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.commit()
    sql = (
        "INSERT INTO kv (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value"
    )
    keys = [f"u{i:06d}" for i in range(users)]
    started = time.perf_counter()
    for n in range(messages):
        conn.execute(sql, (keys[n % users], f"value {n}"))
        conn.commit()
    seconds = time.perf_counter() - started
    conn.close()
    return messages / seconds


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=DEFAULT_USERS)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_USERS} users")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="users interleaved")
    parser.add_argument("--profile", type=Path, help="write cProfile stats of the intake here")
    args = parser.parse_args(argv)
    users = QUICK_USERS if args.quick else args.users
    if users < 1 or args.batch < 1:
        parser.error("--users and --batch must be at least 1")

    for locale in SUPPORTED_LOCALES:
        translator(locale)  # load the catalogs before the clock starts

    profiler = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory(prefix="huizhen-bench-") as tmp:
        app = build_app(load_settings({"DATA_DIR": str(Path(tmp) / "data")}))
        try:
            intake = asyncio.run(run_intake(app, users, args.batch, profiler))
        finally:
            app.close()
        baseline_per_s = run_baseline(Path(tmp) / "baseline.sqlite3", intake.messages, users)

    if profiler is not None:
        profiler.dump_stats(args.profile)
    messages_per_s = intake.messages / intake.seconds
    ratio = messages_per_s / baseline_per_s
    p50 = percentile(intake.latencies_ms, 0.50)
    p99 = percentile(intake.latencies_ms, 0.99)
    rows = [
        ("users", f"{users:,}"),
        ("users interleaved per batch", f"{args.batch:,}"),
        ("inbound messages", f"{intake.messages:,}"),
        ("replies delivered", f"{intake.replies:,}"),
        ("coordinator notices", f"{intake.notices:,}"),
        ("intake wall time (s)", f"{intake.seconds:,.2f}"),
        ("intake messages/s", f"{messages_per_s:,.0f}"),
        ("latency mean (ms)", f"{statistics.fmean(intake.latencies_ms):.3f}"),
        ("latency p50 (ms)", f"{p50:.3f}"),
        ("latency p99 (ms)", f"{p99:.3f}"),
        ("latency max (ms)", f"{max(intake.latencies_ms):.3f}"),
        ("baseline upserts/s", f"{baseline_per_s:,.0f}"),
        ("ratio intake/baseline", f"{ratio:.4f}"),
        ("submitted cases", f"{intake.submitted_cases:,} of {users:,}"),
    ]
    width = max(len(name) for name, _ in rows)
    print("Huizhen intake benchmark (SQLite)")
    for name, value in rows:
        print(f"  {name:<{width}}  {value:>14}")
    ok = intake.submitted_cases == users and intake.notices == users
    print("check: every user has a submitted case" if ok else "check FAILED: cases missing")
    print(
        json.dumps(
            {
                "benchmark": "engine",
                "messages_per_s": round(messages_per_s, 1),
                "baseline_per_s": round(baseline_per_s, 1),
                "ratio": round(ratio, 4),
                "p50_ms": round(p50, 3),
                "p99_ms": round(p99, 3),
                "users": users,
                "messages": intake.messages,
            }
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

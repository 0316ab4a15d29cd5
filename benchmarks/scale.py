"""Webhook throughput and latency with 1, 2 and 4 worker processes on PostgreSQL, and 1 on
SQLite.

Each configuration starts real `python -m bot run` workers in Telegram webhook mode against
the fake Bot API of the tests (tests/telegram_fake.py, an aiohttp server in this process), on
a fresh migrated PostgreSQL database (or SQLite in a temporary DATA_DIR), and plays the same
simulated users with the same driver as tests/test_workers.py: each user's updates one after
the other, each posted to a randomly chosen worker once the previous one was answered 200,
users interleaved, at most 40 requests in flight (Telegram's default max_connections for a
webhook), a tenth of the updates posted twice. A few users warm the workers up first.

Figures: distinct updates per second of wall time, from the first POST to the last 200 (an
update is answered only once it is stored), and the latency of each POST up to its 200. The
scaling ratios compare 2 and 4 PostgreSQL workers with 1, measured in the same run. Replies go
out meanwhile, paced by Telegram's limits (30 messages a second per worker process); how many
were delivered while the users played is shown, not waited for.

    .venv/bin/python benchmarks/scale.py               # 1,000 users per configuration
    .venv/bin/python benchmarks/scale.py --users 200   # quicker
    .venv/bin/python benchmarks/scale.py --decay-only --round-users 300   # decay only
    .venv/bin/python benchmarks/scale.py --no-decay --users 200   # configurations only

Decay: one PostgreSQL worker on one database plays ROUNDS rounds of new users, one after the
other, while the outbox fills and its rows are claimed, sent and marked (dead rows pile up
until autovacuum); `decay` is the last round's updates/s over the first's (1.0: flat), and
`decay_cpu` the first round's CPU per update (the worker and its PostgreSQL server
processes) over the last's, which other load on the machine disturbs less.
`scale_2` is two PostgreSQL workers over one.

The driver and the fake Bot API share the machine with the workers and the database (its CPU
share is printed). The last line printed is one JSON object with the figures.

Reading the figures (the project's 2-core machine, 1,000 users, 6,484 updates; 2026-11-22):
135 updates/s with one PostgreSQL worker, 248 with two (x1.83), 216 with four (x1.60): past two
processes the workers, PostgreSQL and the driver only take turns on the same two cores. One
SQLite worker stores 193/s. p99 latency 0.8-1.2 s under this load, p50 86-180 ms. Stored is
not yet delivered: while the users played, one worker sent 23 replies a second and four 115
(each worker paces itself to 30 a second), so some 4,000-6,500 of the 7,300 replies were still
in the outbox when the last update was answered; tests/test_workers.py waits for them (about
40 s more with four workers). The figures vary by 20-40% between runs and machines: an
earlier machine measured 254 / 375 / 322 and 352/s; compare ratios from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, create_engine, text

from storage.database import make_engine, migrate
from tests.support.postgres import POSTGRES_ADMIN_URL
from tests.support.workers import (
    SCRIPT,
    Driver,
    DriveResult,
    make_users,
    running_workers,
    unsent_rows,
)
from tests.telegram_fake import FakeBotApi

DEFAULT_USERS = 1_000
DECAY_ROUNDS = 10
DECAY_ROUND_USERS = 500
WARMUP_USERS = 20
CONFIGURATIONS = (("pg", 1), ("pg", 2), ("pg", 4), ("sqlite", 1))


@dataclass
class Outcome:
    name: str
    workers: int
    users: int
    drive: DriveResult
    delivered: int  # messages the fake received while the users played
    unsent: int  # outbox rows still waiting when the last update was answered
    stored: int  # processed_update rows
    worker_cpu: float  # seconds, all worker processes, the timed part only
    driver_cpu: float  # seconds, this process (driver and fake Bot API)

    @property
    def key(self) -> str:
        return f"{self.name}_{self.workers}"

    @property
    def p99_ms(self) -> float:
        return self.drive.percentile(0.99) * 1000


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database, migrated as `huizhen migrate` does; dropped afterwards."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"huizhen_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a live process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def count_stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM processed_update")).scalar_one())


async def measure(name: str, workers: int, users: int, database_url: str | None) -> Outcome:
    with tempfile.TemporaryDirectory(prefix=f"huizhen-bench-scale-{name}{workers}-") as folder:
        tmp = Path(folder)
        url = database_url or f"sqlite:///{tmp / 'data' / 'huizhen.sqlite3'}"
        environment_url = database_url  # SQLite: the workers' default place in DATA_DIR
        async with (
            FakeBotApi() as fake,
            running_workers(workers, fake, tmp / "data", environment_url, tmp / "logs") as procs,
        ):
            ports = [p.port for p in procs]
            warm = await Driver(fake, ports, seed=1).run(
                make_users(WARMUP_USERS, first_id=600_000_000)
            )
            before_sent = len(fake.sent())
            cpu_before = [process_cpu(p.process.pid) for p in procs]
            driver_cpu = time.process_time()
            drive = await Driver(fake, ports, seed=9).run(make_users(users))
            driver_cpu = time.process_time() - driver_cpu
            worker_cpu = sum(
                process_cpu(p.process.pid) - before
                for p, before in zip(procs, cpu_before, strict=True)
            )
            delivered = len(fake.sent()) - before_sent
            engine = make_engine(url)
            try:
                unsent = await asyncio.to_thread(unsent_rows, engine)
                stored = await asyncio.to_thread(count_stored, engine)
            finally:
                engine.dispose()
    stored -= warm.updates
    return Outcome(name, workers, users, drive, delivered, unsent, stored, worker_cpu, driver_cpu)


def backend_pids(database_url: str) -> list[int]:
    """PostgreSQL's server processes serving the benchmark's database (the worker's pool)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            name = conn.execute(text("SELECT current_database()")).scalar_one()
            pids = conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity"
                    " WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            ).scalars()
            return [int(pid) for pid in pids]
    finally:
        engine.dispose()


@dataclass
class DecayRound:
    drive: DriveResult
    cpu: float  # seconds: the worker and the database's server processes, this round

    @property
    def cpu_ms_per_update(self) -> float:
        return self.cpu / self.drive.updates * 1000


async def measure_decay(rounds: int, users: int, database_url: str) -> list[DecayRound]:
    """Updates/s of one PostgreSQL worker over `rounds` rounds of new users, one database,
    and the CPU the worker and PostgreSQL spent per update (which other load on the machine
    disturbs less than the wall time)."""
    with tempfile.TemporaryDirectory(prefix="huizhen-bench-scale-decay-") as folder:
        tmp = Path(folder)
        async with (
            FakeBotApi() as fake,
            running_workers(1, fake, tmp / "data", database_url, tmp / "logs") as procs,
        ):
            ports = [p.port for p in procs]
            await Driver(fake, ports, seed=1).run(make_users(WARMUP_USERS, first_id=600_000_000))
            results: list[DecayRound] = []
            for index in range(rounds):
                first_id = 700_000_000 + index * users
                pids = [procs[0].process.pid, *await asyncio.to_thread(backend_pids, database_url)]
                before = {pid: process_cpu(pid) for pid in pids}
                drive = await Driver(fake, ports, seed=10 + index).run(make_users(users, first_id))
                cpu = sum(max(0.0, process_cpu(pid) - used) for pid, used in before.items())
                results.append(DecayRound(drive, cpu))
                print(
                    f"  decay round {index + 1}: {drive.per_second:,.0f} updates/s, "
                    f"p99 {drive.percentile(0.99) * 1000:,.0f} ms, "
                    f"CPU {results[-1].cpu_ms_per_update:.1f} ms per update",
                    flush=True,
                )
    return results


def run_decay(rounds: int, users: int) -> list[DecayRound]:
    with postgres_database() as url:
        return asyncio.run(measure_decay(rounds, users, url))


def run_configuration(name: str, workers: int, users: int) -> Outcome:
    if name == "pg":
        with postgres_database() as url:
            return asyncio.run(measure(name, workers, users, url))
    return asyncio.run(measure(name, workers, users, None))


def print_table(outcomes: list[Outcome], cores: int) -> None:
    label = {"pg": "PostgreSQL", "sqlite": "SQLite"}
    heads = [f"{label[o.name]} x{o.workers}" for o in outcomes]
    rows: list[tuple[str, list[str]]] = [
        ("updates (distinct)", [f"{o.drive.updates:,}" for o in outcomes]),
        ("  posted twice", [f"{o.drive.duplicates:,}" for o in outcomes]),
        ("  answered other than 200", [f"{o.drive.retried:,}" for o in outcomes]),
        ("wall time (s)", [f"{o.drive.seconds:,.1f}" for o in outcomes]),
        ("updates/s", [f"{o.drive.per_second:,.0f}" for o in outcomes]),
        ("latency p50 (ms)", [f"{o.drive.percentile(0.5) * 1000:,.0f}" for o in outcomes]),
        ("latency p99 (ms)", [f"{o.p99_ms:,.0f}" for o in outcomes]),
        ("latency max (ms)", [f"{max(o.drive.latencies) * 1000:,.0f}" for o in outcomes]),
        (
            "worker CPU per update (ms)",
            [f"{o.worker_cpu / o.drive.updates * 1000:,.1f}" for o in outcomes],
        ),
        (
            "driver + fake CPU share",
            [f"{o.driver_cpu / (o.drive.seconds * cores):.0%}" for o in outcomes],
        ),
        ("messages delivered meanwhile", [f"{o.delivered:,}" for o in outcomes]),
        ("  delivered/s", [f"{o.delivered / o.drive.seconds:,.0f}" for o in outcomes]),
        ("  outbox rows still waiting", [f"{o.unsent:,}" for o in outcomes]),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\n  {'':<{width}}" + "".join(f" {h:>15}" for h in heads))
    for name, values in rows:
        print(f"  {name:<{width}}" + "".join(f" {v:>15}" for v in values))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=DEFAULT_USERS)
    parser.add_argument("--rounds", type=int, default=DECAY_ROUNDS, help="decay rounds")
    parser.add_argument("--round-users", type=int, default=DECAY_ROUND_USERS)
    parser.add_argument("--decay-only", action="store_true", help="only the decay rounds")
    parser.add_argument("--no-decay", action="store_true", help="only the configurations")
    args = parser.parse_args(argv)
    if args.users < 1 or args.rounds < 1 or args.round_users < 1:
        parser.error("--users, --rounds and --round-users must be at least 1")
    cores = os.cpu_count() or 1

    print(
        f"Huizhen scale-out: {args.users:,} users per configuration, {len(SCRIPT)} moves at "
        f"most each, through the Telegram webhook"
    )
    print(
        f"This machine has {cores} CPU cores, shared by the workers, PostgreSQL, the driver and "
        f"the fake Bot API: {cores} processes at most run at once, so 4 workers cannot be 4x one."
    )
    outcomes: list[Outcome] = []
    started = time.perf_counter()
    decay_figures: dict[str, Any] = {}
    if not args.no_decay:
        print(
            f"Decay: {args.rounds} rounds of {args.round_users:,} new users, one PostgreSQL worker"
        )
        rounds = run_decay(args.rounds, args.round_users)
        decay = rounds[-1].drive.per_second / rounds[0].drive.per_second
        cpu_decay = rounds[0].cpu_ms_per_update / rounds[-1].cpu_ms_per_update
        print(f"  decay (last round's updates/s / first's): {decay:.2f}")
        print(f"  decay of CPU per update (first round's / last's): {cpu_decay:.2f}")
        decay_figures = {
            "decay": round(decay, 3),
            "decay_cpu": round(cpu_decay, 3),
            "decay_rounds_updates_per_s": [round(r.drive.per_second, 1) for r in rounds],
            "decay_rounds_cpu_ms_per_update": [round(r.cpu_ms_per_update, 2) for r in rounds],
            "round_users": args.round_users,
        }
    if args.decay_only:
        print(f"total time {time.perf_counter() - started:.0f} s")
        print(json.dumps({"benchmark": "scale", **decay_figures}))
        return 0
    for name, workers in CONFIGURATIONS:
        outcome = run_configuration(name, workers, args.users)
        outcomes.append(outcome)
        print(
            f"  {name} x{workers}: {outcome.drive.per_second:,.0f} updates/s, "
            f"p99 {outcome.p99_ms:,.0f} ms",
            flush=True,
        )
    print_table(outcomes, cores)

    by = {o.key: o for o in outcomes}
    base = by["pg_1"].drive.per_second
    problems = []
    for o in outcomes:
        expected = o.drive.updates
        if o.drive.statuses[200] != o.drive.updates + o.drive.duplicates:
            problems.append(f"{o.key}: {o.drive.retried} webhook calls not answered 200")
        if o.stored != expected:
            problems.append(f"{o.key}: {o.stored} updates stored, {expected} sent")
    for problem in problems:
        print(f"check FAILED: {problem}")
    if not problems:
        print("check: every update answered 200 and stored once, duplicates included")
    print(f"total time {time.perf_counter() - started:.0f} s")
    figures: dict[str, Any] = {"benchmark": "scale"}
    for o in outcomes:
        figures[f"{o.key}_updates_per_s"] = round(o.drive.per_second, 1)
    figures["p99_ms"] = {o.key: round(o.p99_ms, 1) for o in outcomes}
    figures["scaling_2_over_1"] = round(by["pg_2"].drive.per_second / base, 3)
    figures["scale_2"] = figures["scaling_2_over_1"]
    figures.update(decay_figures)
    figures["scaling_4_over_1"] = round(by["pg_4"].drive.per_second / base, 3)
    figures["cores"] = cores
    figures["users"] = args.users
    figures["updates"] = by["pg_1"].drive.updates
    print(json.dumps(figures))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

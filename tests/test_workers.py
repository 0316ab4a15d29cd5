"""Several worker processes on one PostgreSQL database, fed through the Telegram webhook.

Four real `python -m bot run` processes (webhook mode, each on its own port, one migrated
PostgreSQL database, one shared DATA_DIR) talk to one FakeBotApi running in the test process.
A driver plays many simulated Telegram users at once: each user's updates go, one after the
other, to a randomly chosen worker (the next only once the previous was answered 200, as
Telegram never has two updates of one chat in flight), users interleave, and some updates are
posted twice to two different workers (Telegram resending what it did not see acknowledged).

Then: every user received exactly the messages a single-process run of the same script
produces, in the same order; every update has its processed_update row; each chat's outbox
rows were all sent, and the fake saw exactly as many messages as there are rows; each
conversation stopped at the step its script leads to. The workers are stopped with SIGTERM
(killed if they do not stop) and nothing of them may be left running. `benchmarks/scale.py`
uses the same driver for its figures.

1,000 users send about 6,500 updates, stored in some 30 s; their 7,300 replies go out at up to
30 messages a second per worker (Telegram's per-bot pace, kept per process here), each worker
claiming 60 rows at a time and starting its next round at once while rounds make progress:
about 90 s in all on a 2-core machine. HUIZHEN_TEST_WORKER_USERS sets another count.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from tests.support.postgres import fresh_postgres_database
from tests.support.workers import (
    Driver,
    DriveResult,
    WorkerProcess,
    check,
    group_alive,
    make_users,
    reference_run,
    running_workers,
    unsent_rows,
)
from tests.telegram_fake import FakeBotApi

WORKERS = 4
USERS = int(os.environ.get("HUIZHEN_TEST_WORKER_USERS", "1000"))


# --------------------------------------------------------------------------- the script


# --------------------------------------------------------------------------- the reference


# --------------------------------------------------------------------------- the workers


# --------------------------------------------------------------------------- the driver


def drain_timeout(users: int) -> float:
    """Seconds the replies of `users` users may take to go out after the last update."""
    return 60.0 + 0.3 * users


async def wait_delivered(fake: FakeBotApi, engine: Engine, expected: int, timeout: float) -> float:
    """Wait until the outbox is empty and the fake holds `expected` messages; the seconds."""
    started = time.perf_counter()
    while True:
        if len(fake.sent()) >= expected and await asyncio.to_thread(unsent_rows, engine) == 0:
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            left = await asyncio.to_thread(unsent_rows, engine)
            raise AssertionError(
                f"not delivered after {timeout:.0f} s: {len(fake.sent())} of {expected} "
                f"messages, {left} outbox rows unsent"
            )
        await asyncio.sleep(0.25)


# --------------------------------------------------------------------------- the test


@pytest.mark.slow
@pytest.mark.timeout(120 + drain_timeout(USERS))
def test_four_workers_keep_each_users_order_and_lose_or_double_nothing(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    database_url = fresh_postgres_database(request)  # migrated, as `huizhen migrate` does
    reference = reference_run(tmp_path / "reference")
    users = make_users(USERS)
    expected_total = sum(len(reference.expected(user)) for user in users)
    engine = create_engine(database_url)
    request.addfinalizer(engine.dispose)
    exit_codes: list[int] = []

    async def scenario() -> tuple[FakeBotApi, DriveResult, float, list[WorkerProcess]]:
        async with FakeBotApi() as fake:
            async with running_workers(
                WORKERS, fake, tmp_path / "data", database_url, tmp_path / "logs", exit_codes
            ) as workers:
                result = await Driver(fake, [w.port for w in workers]).run(users)
                drained = await wait_delivered(
                    fake, engine, expected_total, drain_timeout(len(users))
                )
            return fake, result, drained, workers

    fake, result, drained, workers = asyncio.run(scenario())
    print(
        f"\n{WORKERS} workers, {len(users)} users: {result.updates} updates "
        f"({result.duplicates} posted twice, {result.retried} retried) in {result.seconds:.1f} s "
        f"= {result.per_second:.0f}/s, p50 {result.percentile(0.5) * 1000:.0f} ms, "
        f"p99 {result.percentile(0.99) * 1000:.0f} ms; {expected_total} messages, the last "
        f"{drained:.1f} s after the last update"
    )
    assert result.statuses[200] == result.posts == result.updates + result.duplicates
    # Stopped by SIGTERM, gracefully, and nothing of them is left running.
    assert exit_codes == [0] * WORKERS, [w.tail() for w in workers]
    assert not any(group_alive(w.process.pid) for w in workers)
    # Checked once every worker has stopped: a message sent twice, however late, shows here.
    check(fake, engine, users, reference)

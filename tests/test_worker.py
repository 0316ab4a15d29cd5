"""The worker process that opens patients' files: a call that runs too long, eats memory or
crashes the process is stopped, reported by reason, and the next call works."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

import pytest

from handlers.ingest.worker import Worker, WorkerFailed

Progress = Callable[[int, int], None]


def double(value: int, progress: Progress) -> int:
    progress(1, 2)
    progress(2, 2)
    return value * 2


def sleep_forever(value: int, progress: Progress) -> int:
    time.sleep(3600)
    return value


def eat_memory(value: int, progress: Progress) -> int:
    hoard = [bytearray(64 * 1024 * 1024) for _ in range(64)]  # 4 GB, over the limit
    return len(hoard)


def die(value: int, progress: Progress) -> int:
    os._exit(3)


def recurse(value: int, progress: Progress) -> int:
    return recurse(value + 1, progress)


@pytest.fixture
def worker() -> Iterator[Worker]:
    started = Worker(memory_mb=768, timeout_seconds=5)
    yield started
    started.close()


def test_results_and_progress_come_back(worker: Worker) -> None:
    seen: list[tuple[int, int]] = []
    assert worker.call(double, 21, lambda done, total: seen.append((done, total))) == 42
    assert seen == [(1, 2), (2, 2)]


@pytest.mark.parametrize(
    ("function", "reason"),
    [(eat_memory, "memory"), (die, "crashed"), (recurse, "recursion")],
    ids=["memory", "crash", "recursion"],
)
def test_a_failing_call_is_reported_and_the_next_one_works(
    worker: Worker, function: Callable[[int, Progress], int], reason: str
) -> None:
    with pytest.raises(WorkerFailed) as failure:
        worker.call(function, 1)
    assert failure.value.reason == reason
    assert worker.call(double, 4) == 8


def test_a_call_that_runs_too_long_is_stopped_in_time() -> None:
    worker = Worker(memory_mb=768, timeout_seconds=1)
    try:
        started = time.monotonic()
        with pytest.raises(WorkerFailed, match="timeout"):
            worker.call(sleep_forever, 1)
        assert time.monotonic() - started < 30  # not the hour the call wanted
        assert worker.call(double, 5) == 10
    finally:
        worker.close()

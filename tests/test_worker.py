"""The worker process that opens patients' files: a call that runs too long, eats memory or
crashes the process is stopped, reported by reason, and the next call works."""

from __future__ import annotations

import io
import os
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from handlers.ingest.analysis import (
    Analysis,
    AnalysisBatch,
    AnalysisRequest,
    StoreAccess,
    analyse_batch,
    unpacked_bytes,
)
from handlers.ingest.worker import Worker, WorkerFailed
from records.classify import FileKind
from storage.files import FileStore

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


def test_files_checked_together_fail_one_by_one(tmp_path: Path) -> None:
    """One call checks several files; one that cannot be read is reported by its error, the
    others are checked, and an archive's members come off the quota of the files after it."""
    key = bytes(32)
    store = FileStore(tmp_path, key)
    access = StoreAccess(str(tmp_path), key)
    first = store.put(io.BytesIO(b"plain text\n"))
    members = io.BytesIO()
    with zipfile.ZipFile(members, "w") as archive:
        archive.writestr("a.txt", b"x" * 1000)
    archive_file = store.put(io.BytesIO(members.getvalue()))
    after = store.put(io.BytesIO(b"more text\n"))
    requests = (
        AnalysisRequest(access, first.sha256, first.size, 10_000),
        AnalysisRequest(access, "0" * 64, 5, 10_000),  # not in the store
        AnalysisRequest(access, archive_file.sha256, archive_file.size, 10_000),
        AnalysisRequest(access, after.sha256, after.size, 1_500),
    )
    seen: list[tuple[int, int]] = []
    results = analyse_batch(AnalysisBatch(requests), lambda done, total: seen.append((done, total)))
    assert isinstance(results[0], Analysis) and results[0].kind == FileKind.TEXT.value
    assert results[1] == "FileNotFoundError"
    assert isinstance(results[2], Analysis) and unpacked_bytes(results[2]) == 1000
    assert isinstance(results[3], Analysis) and not results[3].problem
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]

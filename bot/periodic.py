"""Work a channel's runtime repeats on a timer (scheduled casework, the upload sweep): run in a
worker thread, so a slow database never stalls the event loop, and a failure is logged by its
kind only (no content) and tried again next time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol, TypeVar

log = logging.getLogger(__name__)

Result = TypeVar("Result")


async def repeat(
    work: Callable[[], Result],
    then: Callable[[Result], None],
    every_seconds: float,
    stopping: asyncio.Event,
    what: str,
    wait_first: bool = False,
) -> None:
    """Run `work` every `every_seconds` until `stopping` is set; `then` gets its result on the
    event loop."""
    if wait_first:
        await asyncio.sleep(every_seconds)
    while not stopping.is_set():
        try:
            then(await asyncio.to_thread(work))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.error("%s failed (%s)", what, type(error).__name__)
        await asyncio.sleep(every_seconds)


UPLOAD_SWEEP_SECONDS = 60
SCHEDULED_WORK_SECONDS = 15 * 60


class PeriodicApp(Protocol):
    def sweep_uploads(self, channel: str) -> bool: ...

    def scheduled_work(self) -> None: ...


def start_periodic_work(
    app: PeriodicApp,
    channel: str,
    stopping: asyncio.Event,
    files_arrived: Callable[[], None],
    replies_queued: Callable[[], None],
    scheduled: bool = True,
) -> list[asyncio.Task[None]]:
    """A channel's timers: the upload sweep for its conversations, and (in one channel per
    process) reminders and idle cases, whose messages then go out."""

    def after_sweep(announced: bool) -> None:
        if announced:
            files_arrived()

    tasks = [
        asyncio.create_task(
            repeat(
                lambda: app.sweep_uploads(channel),
                after_sweep,
                UPLOAD_SWEEP_SECONDS,
                stopping,
                "the upload sweep",
                wait_first=True,
            )
        )
    ]
    if scheduled:
        tasks.append(
            asyncio.create_task(
                repeat(
                    app.scheduled_work,
                    lambda _: replies_queued(),
                    SCHEDULED_WORK_SECONDS,
                    stopping,
                    "scheduled work",
                )
            )
        )
    return tasks

"""What every platform channel (Telegram, WeChat) runs beside its own receiving: the delivery
loop, the file loop, the timers, the files spooled from the platform, and its subscriptions to
the pipeline's hooks. One copy, shared: several channels in one process each subscribe, so
each hears of the work done for its patients whichever channel's loop did it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, cast

from bot.app import App
from bot.periodic import start_periodic_work
from handlers.updates.delivery import DeliveryReport, deliver_forever
from storage.private import private_dir

log = logging.getLogger(__name__)

# A delivery round runs at least this often, in case a wake-up was missed.
DELIVERY_IDLE_SECONDS = 30


class ChannelRuntime:
    """The shared life cycle of a platform channel. A subclass names its channel, makes its
    delivery rounds (`deliver_round`) and opens its files (`open`, with `spooled`)."""

    channel: str
    # A file the platform could not hand over just now is tried again after this.
    file_retry_seconds: float = 15

    def __init__(self, app: App, run_schedule: bool = True) -> None:
        self.app = app
        self.settings = app.settings
        self.run_schedule = run_schedule
        self._wake = asyncio.Event()
        self._files_waiting = asyncio.Event()
        self._stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._unsubscribe: list[Callable[[], None]] = []

    # --- life cycle ------------------------------------------------------------------------

    async def start_runtime(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks.append(asyncio.create_task(self._deliver_forever()))
        self._tasks.append(asyncio.create_task(self._check_files_forever()))
        self._tasks += start_periodic_work(
            self.app,
            self.channel,
            self._stopping,
            self.files_arrived,
            self.wake,
            scheduled=self.run_schedule,
        )
        self.app.openers[self.channel] = self
        pipeline = self.app.pipeline
        self._unsubscribe = [
            # Progress, file reports, copies and farewells queued outside an update.
            pipeline.replies_queued.subscribe(self.wake),
            # A copy or an erasure asked for (from the thread that stored the update).
            pipeline.jobs_queued.subscribe(self.files_arrived),
        ]
        self._wake.set()  # whatever a previous run left in the outbox goes out now
        self._files_waiting.set()  # and files a previous run had not finished are checked

    async def stop_runtime(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        if self.app.openers.get(self.channel) is self:
            del self.app.openers[self.channel]
        self._stopping.set()
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def wake(self) -> None:
        """Deliver now (callable from any thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def files_arrived(self) -> None:
        """Files came in (in the chat, through the upload page) or a copy or an erasure was
        asked for: run the jobs (callable from any thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._files_waiting.set)

    # --- delivery --------------------------------------------------------------------------

    async def deliver_round(self) -> DeliveryReport:
        raise NotImplementedError

    async def _deliver_forever(self) -> None:
        await deliver_forever(
            self.deliver_round,
            self._wake,
            self._stopping,
            f"{self.channel} delivery round",
            DELIVERY_IDLE_SECONDS,
        )

    async def deliver_now(self) -> None:
        """One delivery round (tests and shutdown use it)."""
        await self.deliver_round()

    # --- files -----------------------------------------------------------------------------

    def open(self, source: str) -> BinaryIO:
        raise NotImplementedError

    async def _check_files_forever(self) -> None:
        """Files are stored and checked here, apart from receiving: a 2 GB disc being checked
        does not hold up anyone's messages."""
        while not self._stopping.is_set():
            await self._files_waiting.wait()
            self._files_waiting.clear()
            try:
                openers = {**self.app.openers, self.channel: self}
                await asyncio.to_thread(self.app.pipeline.run_jobs, openers)
                left = await asyncio.to_thread(self._jobs_left)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.error("checking %s files failed (%s)", self.channel, type(error).__name__)
                left = True
            self._wake.set()
            if left and self._loop is not None:
                # The platform could not hand a file over just now, or another channel's
                # loop was running the jobs: try again in a while.
                self._loop.call_later(self.file_retry_seconds, self._files_waiting.set)

    def _jobs_left(self) -> bool:
        return any(job.channel == self.channel for job in self.app.pipeline.jobs.pending())

    def spooled(self, fetch: Callable[[BinaryIO], None]) -> BinaryIO:
        """What `fetch` writes, spooled to disk (never held whole in memory) and read from
        the start; gone when the caller closes it (or at once, if the fetch fails)."""
        folder = private_dir(Path(self.settings.data_dir) / "spool")
        spool = cast(BinaryIO, tempfile.TemporaryFile(dir=folder))  # noqa: SIM115
        try:
            fetch(spool)
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool

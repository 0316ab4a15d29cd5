"""Routes an Inbound through the engine inside one transaction, then runs what follows."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import BinaryIO, Protocol

from conversations import engine
from conversations.effects import (
    ALBUM_SESSION_PREFIX,
    ConsentWithdrawn,
    DataRightRequested,
    IngestFile,
)
from conversations.events import Inbound, InboundKind, Outbound
from conversations.i18n import translator
from conversations.state import ConversationKey, ConversationState
from conversations.step import Context
from conversations.transition import Transition
from handlers.ingest.ingestor import Batch, Ingestor
from handlers.updates.delivery import FileOpener
from handlers.updates.metrics import UPDATE_SECONDS, UPDATES
from handlers.updates.transaction import ConversationStore
from records.report import FileCheck
from storage.files import FileStore
from storage.jobs import MAX_ATTEMPTS, JobStore, PendingJob
from storage.uploads import UPLOAD_SOURCE

log = logging.getLogger(__name__)

PROGRESS_AFTER_SECONDS = 2.0
PROGRESS_EVERY_SECONDS = 1.5
# A Telegram album's parts come one update each (by webhook), a second or so apart, and
# nothing says how many there are: the album is taken as complete once no part has come for
# this long. Every other session (an upload-page session, one message, a zip) arrives whole.
ALBUM_QUIET_SECONDS = 2.0
# However parts keep coming, a session is checked once its first file waited this long: the
# patient always hears back.
SESSION_MAX_WAIT_SECONDS = 60.0
# A session's files are stored and checked in chunks of at most this many files and bytes:
# one quota sum, flush to disk, duplicate lookup, worker call and insert for each chunk.
CHUNK_FILES = 64
CHUNK_BYTES = 256 * 1024 * 1024


class SpoolOpener(Protocol):
    """Opens a completed upload-page file, and removes it once it is in the store."""

    def open(self, source: str) -> BinaryIO: ...

    def discard(self, source: str) -> None: ...

    def remove_leftovers(
        self, grace: timedelta, channel: str | None = None, user_key: str | None = None
    ) -> int: ...


def _new_id() -> str:
    return uuid.uuid4().hex


class Hook:
    """Something channels want to hear of, from any thread: every subscriber is called. With
    Telegram and WeChat in one process both subscribe; one callback slot that each channel
    assigned used to keep only the channel started last, so the other's patients waited for
    its fallback poll."""

    def __init__(self) -> None:
        # Replaced whole, never changed in place: a thread firing the hook reads one tuple.
        self._subscribers: tuple[Callable[[], None], ...] = ()

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Add a subscriber; returns what removes it again."""
        self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            self._subscribers = tuple(c for c in self._subscribers if c is not callback)

        return unsubscribe

    def __call__(self) -> None:
        for callback in self._subscribers:
            callback()


class DataRightsRunner(Protocol):
    def run_pending(self) -> int: ...


class Pipeline:
    def __init__(
        self,
        store: ConversationStore,
        jobs: JobStore,
        files: FileStore,
        ingestor: Ingestor | None = None,
        uploads: SpoolOpener | None = None,
        default_locale: str = "en",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_id: Callable[[], str] = _new_id,
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.files = files
        self.ingestor = ingestor
        self.uploads = uploads
        # Fired (from a worker thread) when messages were queued outside an update: progress
        # while files are checked, and what background jobs made (a file report, a copy, an
        # erasure's farewell); every running channel wakes its delivery loop.
        self.replies_queued = Hook()
        # Copies and erasures the conversations ask for (handlers/privacy/rights_jobs.py), run with
        # the file jobs; and how the channels hear that such a job is waiting (any thread).
        self.data_rights: DataRightsRunner | None = None
        self.jobs_queued = Hook()
        self._running = threading.Lock()
        self._asked_again = threading.Event()
        # Jobs another worker took are left to it for this long (a whole batch's checking).
        self.job_lease_seconds = 3600
        self.default_locale = default_locale
        self.clock = clock
        self.new_id = new_id

    def handle(self, inbound: Inbound, settles: Sequence[int] = ()) -> Transition | None:
        """Apply one update exactly once. None for an update key seen before. `settles`:
        the jobs it reports on, marked done with it (see ConversationStore.process)."""
        now = self.clock()
        context = Context(now=now, new_id=self.new_id)

        def apply(state: ConversationState | None) -> Transition:
            # The store has just read this state from the database: nobody else holds it.
            return engine.handle(state, inbound, context, self.default_locale, owned=True)

        started = time.perf_counter()
        try:
            transition = self.store.process(inbound, now, apply, settles)
        except Exception:
            UPDATES.labels(inbound.channel, "failed").inc()
            raise
        UPDATE_SECONDS.labels(inbound.channel).observe(time.perf_counter() - started)
        UPDATES.labels(inbound.channel, "duplicate" if transition is None else "handled").inc()
        # Kinds, step names and counts only: never what was said or sent.
        log.debug(
            "update handled",
            extra={
                "channel": inbound.channel,
                "kind": str(inbound.kind),
                "duplicate": transition is None,
                "step": transition.state.step if transition else None,
                "replies": len(transition.replies) if transition else 0,
                "effects": len(transition.effects) if transition else 0,
            },
        )
        stopped = transition is not None and any(
            isinstance(effect, ConsentWithdrawn)
            or (isinstance(effect, DataRightRequested) and effect.right == "erase")
            for effect in transition.effects
        )
        if stopped and self.uploads is not None:
            # Its links were revoked in the transaction: what the upload page holds of the
            # patient's (half-sent files, files not yet taken) goes now, not with the sweep.
            self.uploads.remove_leftovers(timedelta(0), inbound.channel, inbound.user_key)
        asked = transition is not None and any(
            isinstance(effect, DataRightRequested) for effect in transition.effects
        )
        if asked:
            self.jobs_queued()
        return transition

    def state_of(self, key: ConversationKey) -> ConversationState | None:
        return self.store.load(key)

    def run_jobs(self, openers: Mapping[str, FileOpener]) -> int:
        """Store and check the files conversations accepted, then make the copies and
        erasures patients asked for. Returns the jobs finished."""
        # A call while another thread is at it is a request that thread takes up: it goes
        # round again before it stops, so a job queued near the end of its run (a WeChat
        # follower's copy while Telegram's loop was running the jobs) is not left for a
        # retry timer.
        self._asked_again.set()
        done = 0
        while self._asked_again.is_set():
            if not self._running.acquire(blocking=False):
                return done
            try:
                self._asked_again.clear()
                done += self._run_file_jobs(openers) if self.ingestor is not None else 0
                if self.data_rights is not None:
                    done += self.data_rights.run_pending()
            finally:
                self._running.release()
                # Whichever channel's loop ran the jobs, the messages they made may be for a
                # patient on another channel.
                self.replies_queued()
        return done

    def _run_file_jobs(self, openers: Mapping[str, FileOpener]) -> int:
        """Store and check the files conversations accepted, one conversation at a time, and
        report each upload session (an upload-page session, an album, a message) back to its
        conversation in ONE report, once the session is complete."""
        done = 0
        # Conversations left for later in this run: their files are for another process,
        # wait for a passing fault, or belong to an album still arriving.
        skip: set[tuple[str, str]] = set()
        wake_in: float | None = None
        try:
            while True:
                lease = timedelta(seconds=self.job_lease_seconds)
                kinds = ("ingest_file",)
                claimed = self.jobs.claim_conversation(self.clock(), lease, kinds, skip)
                if not claimed:
                    return done
                conversation = (claimed[0].channel, claimed[0].user_key)
                pending = [job for job in claimed if self._opener(job, openers)]
                ready: list[list[PendingJob]] = []
                now = self.clock()
                for session, group in _by_session(pending).items():
                    wait = _still_arriving(session, group, now)
                    if wait > 0:
                        wake_in = wait if wake_in is None else min(wake_in, wait)
                    else:
                        ready.append(group)
                taken = {job.id for group in ready for job in group}
                self.jobs.release([job.id for job in claimed if job.id not in taken])
                finished = 0
                try:
                    for group in ready:
                        finished += self._run_batch(group, openers)
                except Exception:
                    # The database failed (a full disk, a lost connection): what was not
                    # done is free again for the next try, not held for the whole lease.
                    with contextlib.suppress(Exception):
                        self.jobs.release(sorted(taken))
                    raise
                done += finished
                if finished == 0 or len(taken) < len(claimed):
                    # Only passing faults (tried again on the next round), or files this
                    # run is not to check yet: the next conversation.
                    skip.add(conversation)
        finally:
            if wake_in is not None:
                # Nobody else asks again when an album's last part has come: a timer does.
                timer = threading.Timer(wake_in + 0.1, self.jobs_queued)
                timer.daemon = True
                timer.start()

    def _opener(self, job: PendingJob, openers: Mapping[str, FileOpener]) -> FileOpener | None:
        effect = IngestFile.model_validate_json(job.payload_json)
        if effect.file.source.startswith(UPLOAD_SOURCE):
            return self.uploads
        return openers.get(job.channel)

    def _run_batch(self, group: list[PendingJob], openers: Mapping[str, FileOpener]) -> int:
        assert self.ingestor is not None
        first = group[0]
        state = self.store.load(ConversationKey(first.channel, first.user_key))
        progress = _ProgressMessage(self, first, state, total=len(group))
        batch = Batch()
        finished: list[PendingJob] = []
        case_id = ""
        for start, chunk in _chunks(group):
            items: list[tuple[IngestFile, Callable[[IngestFile], BinaryIO]]] = []
            for job in chunk:
                effect = IngestFile.model_validate_json(job.payload_json)
                case_id = effect.case_id
                opener = self._opener(job, openers)
                assert opener is not None

                def open_file(effect: IngestFile, opener: FileOpener = opener) -> BinaryIO:
                    return opener.open(effect.file.source)

                items.append((effect, open_file))

            def on_progress(index: int, done: int, total: int, start: int = start) -> None:
                progress.update(start + index, done, total)

            outcomes = self.ingestor.store_and_check(items, on_progress, batch)
            for job, (effect, _), outcome in zip(chunk, items, outcomes, strict=True):
                if outcome == "store_full":
                    # Kept in the upload spool, taken again once there is room; no attempt
                    # counted.
                    self.jobs.release([job.id])
                    continue
                if outcome == "passing":
                    self.jobs.mark_attempt(job.id)
                    if job.attempts + 1 < MAX_ATTEMPTS:
                        continue
                    batch.checks.append(
                        FileCheck(
                            file_id=effect.file_id,
                            name=effect.file.name,
                            problem="unreachable",
                            kept=False,
                        )
                    )
                finished.append(job)
            progress.update(start + len(chunk), 0, 0)
        if not finished:
            return 0
        report = self.ingestor.report(case_id, state, batch, lambda done, total: None)
        self.handle(
            Inbound(
                channel=first.channel,
                user_key=first.user_key,
                chat_key=first.chat_key,
                update_key=f"files:{finished[0].id}:{finished[-1].id}",
                kind=InboundKind.SYSTEM,
                system={"event": "files_checked", "report": report.model_dump_json()},
            ),
            # Done in the report's own transaction: a crash in between used to leave the jobs
            # open, and a rerun batch with a later file (another update key) reported the
            # same files to the patient again.
            settles=[job.id for job in finished],
        )
        progress.finish(sum(check.members or 1 for check in batch.checks))
        if self.uploads is not None:
            # Only now that the report is committed: a crash before it runs the jobs again,
            # and they read their files from the spool again.
            for job in finished:
                source = IngestFile.model_validate_json(job.payload_json).file.source
                if source.startswith(UPLOAD_SOURCE):
                    self.uploads.discard(source)
        return len(finished)


def _chunks(group: list[PendingJob]) -> Iterator[tuple[int, list[PendingJob]]]:
    """A session's files in chunks stored and checked together (see Ingestor.store_and_check),
    each with the number of its first file in the session."""
    start = 0
    while start < len(group):
        chunk: list[PendingJob] = []
        size = 0
        for job in group[start : start + CHUNK_FILES]:
            file = IngestFile.model_validate_json(job.payload_json).file
            if chunk and size + (file.size or 0) > CHUNK_BYTES:
                break
            chunk.append(job)
            size += file.size or 0
        yield start, chunk
        start += len(chunk)


def _by_session(jobs: list[PendingJob]) -> dict[str, list[PendingJob]]:
    """One conversation's jobs by upload session, the oldest session first."""
    groups: dict[str, list[PendingJob]] = {}
    for job in jobs:
        session = IngestFile.model_validate_json(job.payload_json).session
        groups.setdefault(session, []).append(job)
    return groups


def _still_arriving(session: str, group: list[PendingJob], now: datetime) -> float:
    """Seconds until the session counts as complete; 0 when it is complete now."""
    if not session.startswith(ALBUM_SESSION_PREFIX):
        return 0.0
    times = [_aware(job.created_at) for job in group if job.created_at is not None]
    if not times:
        return 0.0
    quiet = ALBUM_QUIET_SECONDS - (now - max(times)).total_seconds()
    cap = SESSION_MAX_WAIT_SECONDS - (now - min(times)).total_seconds()
    return max(0.0, min(quiet, cap))


def _aware(moment: datetime) -> datetime:
    """SQLite gives back times without their zone; they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class _ProgressMessage:
    """One message, edited in place, while a batch takes more than a moment."""

    def __init__(
        self, pipeline: Pipeline, job: PendingJob, state: ConversationState | None, total: int
    ) -> None:
        self.pipeline = pipeline
        self.job = job
        self.locale = state.locale if state else pipeline.default_locale
        self.total = total
        self.key = f"progress:{job.id}"
        self.started = time.monotonic()
        self.last_shown = 0.0
        self.shown = False

    def update(self, number: int, inner_done: int, inner_total: int) -> None:
        now = time.monotonic()
        if now - self.started < PROGRESS_AFTER_SECONDS:
            return
        if now - self.last_shown < PROGRESS_EVERY_SECONDS:
            return
        t = translator(self.locale)
        if self.total > 1:
            text = t.plural(
                "Checking {count} file… {done}/{count}",
                "Checking {count} files… {done}/{count}",
                self.total,
                done=number,
            )
        else:
            # One archive or disc: how many of its files are done (the total is not known
            # before it is read to the end).
            text = t("Checking your files… {done} so far", done=inner_done)
        self._show(text)
        self.last_shown = now

    def finish(self, count: int) -> None:
        if self.shown:
            t = translator(self.locale)
            self._show(t.plural("Checked {count} file.", "Checked {count} files.", count))

    def _show(self, text: str) -> None:
        message = Outbound(text=text, locale=self.locale, replace_key=self.key)
        self.pipeline.store.enqueue(
            self.job.channel, self.job.chat_key, message, self.pipeline.clock()
        )
        self.shown = True
        self.pipeline.replies_queued()

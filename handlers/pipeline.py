"""Routes an Inbound through the engine inside one transaction, then runs what follows."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from conversations import engine
from conversations.effects import IngestFile
from conversations.state import ConversationKey, ConversationState
from conversations.step import Context
from conversations.transition import Transition
from handlers.delivery import FileOpener
from handlers.events import Inbound, InboundKind
from storage.conversations import ConversationStore
from storage.files import FileStore, FileTooLarge
from storage.jobs import MAX_ATTEMPTS, JobStore

log = logging.getLogger(__name__)


def _new_id() -> str:
    return uuid.uuid4().hex


class Pipeline:
    def __init__(
        self,
        store: ConversationStore,
        jobs: JobStore,
        files: FileStore,
        default_locale: str = "en",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_id: Callable[[], str] = _new_id,
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.files = files
        self.default_locale = default_locale
        self.clock = clock
        self.new_id = new_id

    def handle(self, inbound: Inbound) -> Transition | None:
        """Apply one update exactly once. None for an update key seen before."""
        now = self.clock()
        context = Context(now=now, new_id=self.new_id)

        def apply(state: ConversationState | None) -> Transition:
            # The store has just read this state from the database: nobody else holds it.
            return engine.handle(state, inbound, context, self.default_locale, owned=True)

        return self.store.process(inbound, now, apply)

    def state_of(self, key: ConversationKey) -> ConversationState | None:
        return self.store.load(key)

    def run_jobs(self, openers: Mapping[str, FileOpener]) -> int:
        """Store files the conversations accepted; report each result back to its conversation."""
        done = 0
        for job in self.jobs.pending():
            opener = openers.get(job.channel)
            if opener is None:
                continue
            effect = IngestFile.model_validate_json(job.payload_json)
            event, reason = "file_stored", ""
            try:
                with opener.open(effect.file.source) as stream:
                    stored = self.files.put(stream)
                self.jobs.add_document(
                    file_id=effect.file_id,
                    case_id=effect.case_id,
                    item=effect.item,
                    sha256=stored.sha256,
                    size=stored.size,
                    original_name=effect.file.name,
                    at=self.clock(),
                )
            except FileTooLarge:
                event, reason = "file_failed", "too_large"
            except (OSError, ValueError) as error:
                # Never the file's name in a log line: it can say what the illness is.
                log.warning("job %s: file could not be stored (%s)", job.id, type(error).__name__)
                event, reason = "file_failed", "unreadable"
            except Exception as error:
                # A passing fault (the network): try again later, a few times.
                log.warning("job %s: fetching the file failed (%s)", job.id, type(error).__name__)
                self.jobs.mark_attempt(job.id)
                if job.attempts + 1 < MAX_ATTEMPTS:
                    continue
                event, reason = "file_failed", "unreachable"
            self.handle(
                Inbound(
                    channel=job.channel,
                    user_key=job.user_key,
                    chat_key=job.chat_key,
                    update_key=f"job:{job.id}",
                    kind=InboundKind.SYSTEM,
                    system={"event": event, "file_id": effect.file_id, "reason": reason},
                )
            )
            self.jobs.mark_done(job.id, self.clock())
            done += 1
        return done

"""Runs the copies (/export) and erasures (/delete) the conversations queued as jobs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from conversations.events import Outbound
from conversations.i18n import translator
from handlers.privacy.erasure import ERASED, Erasure
from handlers.privacy.export import Export
from handlers.privacy.person import Person, state_of, tell
from storage.data_rights import DataRightsTables
from storage.jobs import MAX_ATTEMPTS, JobStore, PendingJob

log = logging.getLogger(__name__)

RIGHTS_KINDS = ("export", "erase")


class RightsJobs:
    def __init__(
        self,
        tables: DataRightsTables,
        jobs: JobStore,
        export: Export,
        erasure: Erasure,
        clock: Callable[[], datetime],
        default_locale: str = "en",
    ) -> None:
        self.tables = tables
        self.jobs = jobs
        self.export = export
        self.erasure = erasure
        self.clock = clock
        self.default_locale = default_locale

    def run_pending(self) -> int:
        """Copies and erasures the conversations asked for. Returns the jobs finished."""
        done = 0
        for job in self.jobs.claim(self.clock(), timedelta(hours=1), RIGHTS_KINDS):
            person = Person(job.channel, job.user_key, job.chat_key)
            try:
                if job.kind == "export":
                    self.export.export(person)
                    self.jobs.mark_done(job.id, self.clock())
                else:
                    # The erasure removes the job's row with everything else.
                    self.erasure.erase(person, actor="patient", farewell=ERASED)
                done += 1
            except Exception as error:
                # Tried again on the next round; the patient hears if it keeps failing.
                log.error("a %s job failed (%s)", job.kind, type(error).__name__)
                self.jobs.mark_attempt(job.id)
                if job.attempts + 1 >= MAX_ATTEMPTS:
                    self._apologise(job)
        return done

    def _apologise(self, job: PendingJob) -> None:
        person = Person(job.channel, job.user_key, job.chat_key)
        state = state_of(self.tables, person)
        locale = state.locale if state else self.default_locale
        t = translator(locale)
        message = t(
            "I'm sorry: something went wrong on our side and I could not finish this. Please "
            "try again later; nothing you gave me was lost."
        )
        tell(self.tables, person, Outbound(text=message, locale=locale), self.clock())

"""Background jobs the conversation asked for (storing a file)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, not_, select, update

from storage.database import reader
from storage.models import Job

_job = Job.__table__  # type: ignore[attr-defined]

MAX_ATTEMPTS = 3
# At most this many of one conversation's jobs are taken at once: more than a case may hold
# (conversations/steps/records.py), so one upload session is always taken whole.
MAX_CONVERSATION_CLAIM = 25_000
_PENDING_COLUMNS = (
    _job.c.id,
    _job.c.kind,
    _job.c.channel,
    _job.c.user_key,
    _job.c.chat_key,
    _job.c.payload_json,
    _job.c.attempts,
    _job.c.created_at,
)


@dataclass(frozen=True)
class PendingJob:
    id: int
    kind: str
    channel: str
    user_key: str
    chat_key: str
    payload_json: str
    attempts: int
    created_at: datetime | None = None


class JobStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reader = reader(engine)  # built once: it is a new engine object per call

    def pending(self, limit: int = 50) -> list[PendingJob]:
        query = (
            select(*_PENDING_COLUMNS)
            .where(_job.c.done_at.is_(None), _job.c.attempts < MAX_ATTEMPTS)
            .order_by(_job.c.id)
            .limit(limit)
        )
        with self._reader.connect() as conn:
            return [PendingJob(*row) for row in conn.execute(query).all()]

    def claim(
        self, now: datetime, lease: timedelta, kinds: tuple[str, ...], limit: int = 50
    ) -> list[PendingJob]:
        """Take pending jobs of these kinds for this worker until `now + lease`; rows another
        worker is taking are skipped (SKIP LOCKED on PostgreSQL; SQLite serialises writers)."""
        free = (_job.c.claimed_until.is_(None)) | (_job.c.claimed_until < now)
        query = (
            select(*_PENDING_COLUMNS)
            .where(
                _job.c.done_at.is_(None),
                _job.c.attempts < MAX_ATTEMPTS,
                free,
                _job.c.kind.in_(kinds),
            )
            .order_by(_job.c.id)
            .limit(limit)
        )
        if self.engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        with self.engine.begin() as conn:
            jobs = [PendingJob(*row) for row in conn.execute(query).all()]
            if jobs:
                conn.execute(
                    update(_job)
                    .where(_job.c.id.in_([job.id for job in jobs]))
                    .values(claimed_until=now + lease)
                )
        return jobs

    def claim_conversation(
        self,
        now: datetime,
        lease: timedelta,
        kinds: tuple[str, ...],
        skip: Collection[tuple[str, str]] = (),
    ) -> list[PendingJob]:
        """Take every pending job of these kinds of one conversation (the one whose job waits
        longest, leaving out the (channel, user key) pairs in `skip`) until `now + lease`.
        Whole conversations, not a fixed number of jobs: a batch of 50 cut a hospital disc of
        500 files into ten reports, each with half a disc's worth of "missing" flags."""
        free = (_job.c.claimed_until.is_(None)) | (_job.c.claimed_until < now)
        waiting = and_(
            _job.c.done_at.is_(None),
            _job.c.attempts < MAX_ATTEMPTS,
            free,
            _job.c.kind.in_(kinds),
        )
        first = select(_job.c.channel, _job.c.user_key).where(waiting)
        for channel, user_key in skip:
            first = first.where(not_(and_(_job.c.channel == channel, _job.c.user_key == user_key)))
        with self.engine.begin() as conn:
            oldest = conn.execute(first.order_by(_job.c.id).limit(1)).first()
            if oldest is None:
                return []
            query = (
                select(*_PENDING_COLUMNS)
                .where(waiting, _job.c.channel == oldest[0], _job.c.user_key == oldest[1])
                .order_by(_job.c.id)
                .limit(MAX_CONVERSATION_CLAIM)
            )
            if self.engine.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            jobs = [PendingJob(*row) for row in conn.execute(query).all()]
            ids = [job.id for job in jobs]
            # In slices: SQLite takes at most 32,766 bound parameters in one statement.
            for start in range(0, len(ids), 5_000):
                conn.execute(
                    update(_job)
                    .where(_job.c.id.in_(ids[start : start + 5_000]))
                    .values(claimed_until=now + lease)
                )
        return jobs

    def release(self, ids: list[int]) -> None:
        """Jobs taken but not for this process (its channel runs elsewhere)."""
        if ids:
            with self.engine.begin() as conn:
                conn.execute(update(_job).where(_job.c.id.in_(ids)).values(claimed_until=None))

    def free_claims(self) -> None:
        """Unfinished jobs held by no one any more (see storage.database.serving)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(_job)
                .where(_job.c.done_at.is_(None), _job.c.claimed_until.is_not(None))
                .values(claimed_until=None)
            )

    def mark_done(self, job_id: int, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(_job).where(_job.c.id == job_id).values(done_at=at))

    def mark_attempt(self, job_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(_job)
                .where(_job.c.id == job_id)
                .values(attempts=_job.c.attempts + 1, claimed_until=None)
            )

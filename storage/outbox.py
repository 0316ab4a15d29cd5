"""Reading and settling the outbox."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BindParameter,
    Engine,
    Select,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)

from storage.database import reader
from storage.models import Outbox, ShownMessage

# The outbox rows meant for the coordinators' chat rather than a patient's.
COORDINATORS_AUDIENCE = "coordinators"

_outbox = Outbox.__table__  # type: ignore[attr-defined]
_earlier = _outbox.alias("earlier")
_shown = ShownMessage.__table__  # type: ignore[attr-defined]

# Attempts recorded for a row the platform refused for good; above any retry limit.
MAX_ATTEMPTS_MARK = 1_000
# How long a sender holds messages it took; one that dies lets them go after this.
LEASE = timedelta(minutes=2)
_PENDING_COLUMNS = (
    _outbox.c.id,
    _outbox.c.channel,
    _outbox.c.chat_key,
    _outbox.c.audience,
    _outbox.c.payload_json,
    _outbox.c.attempts,
)


@dataclass(frozen=True)
class PendingMessage:
    id: int
    channel: str
    chat_key: str
    audience: str
    payload_json: str
    attempts: int


class OutboxStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reader = reader(engine)  # built once: it is a new engine object per call
        self._pending = (
            select(
                _outbox.c.id,
                _outbox.c.channel,
                _outbox.c.chat_key,
                _outbox.c.audience,
                _outbox.c.payload_json,
                _outbox.c.attempts,
            )
            .where(_outbox.c.sent_at.is_(None))
            .order_by(_outbox.c.id)
            .limit(bindparam("limit"))
        )
        self._mark_sent = (
            update(_outbox)
            .where(_outbox.c.id.in_(bindparam("row_ids", expanding=True)))
            .values(sent_at=bindparam("at"))
        )
        self._give_up = (
            update(_outbox)
            .where(_outbox.c.id == bindparam("row_id"))
            .values(attempts=bindparam("attempts"))
        )
        self._mark_failed = (
            update(_outbox)
            .where(_outbox.c.id == bindparam("row_id"))
            .values(attempts=_outbox.c.attempts + 1, claimed_until=bindparam("retry_at"))
        )

        self._claims: dict[tuple[bool, bool], Select[Any]] = {}
        self._lease = (
            update(_outbox)
            .where(_outbox.c.id.in_(bindparam("row_ids", expanding=True)))
            .values(claimed_until=bindparam("until"))
        )

    def _claim_query(self, filtered: bool, coordinators: bool) -> Select[Any]:
        """The claim's SELECT, built once per kind of sender (whether it names its channels,
        whether it takes the coordinators' notices); values are bound at each call."""
        key = (filtered, coordinators)
        built = self._claims.get(key)
        if built is not None:
            return built
        max_attempts: BindParameter[int] = bindparam("max_attempts")
        # Rows given up on (the platform refused them for good) are neither sent nor waited on.
        live = _outbox.c.sent_at.is_(None) & (_outbox.c.attempts < max_attempts)
        free = _outbox.c.claimed_until.is_(None) | (_outbox.c.claimed_until < bindparam("now"))
        patients = _outbox.c.audience != COORDINATORS_AUDIENCE
        if filtered:
            patients = patients & _outbox.c.channel.in_(bindparam("channels", expanding=True))
        ours = (
            (patients | (_outbox.c.audience == COORDINATORS_AUDIENCE)) if coordinators else patients
        )
        # The chat's oldest live message, whoever holds it: read in the same statement (and so
        # the same snapshot) as the rows, instead of a second query over every unsent row.
        oldest = (
            select(func.min(_earlier.c.id))
            .where(
                _earlier.c.channel == _outbox.c.channel,
                _earlier.c.chat_key == _outbox.c.chat_key,
                _earlier.c.audience == _outbox.c.audience,
                _earlier.c.sent_at.is_(None),
                _earlier.c.attempts < max_attempts,
            )
            .scalar_subquery()
        )
        query: Select[Any] = (
            select(*_PENDING_COLUMNS, oldest)
            .where(live, free, ours)
            .order_by(_outbox.c.id)
            .limit(bindparam("limit"))
        )
        if self.engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        self._claims[key] = query
        return query

    def pending(self, limit: int = 200) -> list[PendingMessage]:
        with self._reader.connect() as conn:
            rows = conn.execute(self._pending, {"limit": limit}).all()
        return [PendingMessage(*row) for row in rows]

    def claim(
        self,
        now: datetime,
        max_attempts: int,
        limit: int = 200,
        channels: Collection[str] | None = None,
        coordinators: bool = True,
    ) -> list[PendingMessage]:
        """Take pending messages for this sender, in order, for LEASE.

        Only what the sender can deliver is taken: patients' messages on `channels` (every
        channel when None) and the coordinators' notices when `coordinators`. With Telegram and
        WeChat in one process, a round that took the other channel's rows only to let them go
        again hid them from that channel's own round, which then waited for its idle poll.

        Several workers may deliver at once. Rows another worker is taking are skipped
        (SKIP LOCKED on PostgreSQL; SQLite's writer lock serialises claims), and a chat is
        only taken from its oldest unsent message: a worker never sends a chat's later
        message while another still holds an earlier one, so each chat's order holds."""
        query = self._claim_query(channels is not None, coordinators)
        values: dict[str, object] = {"now": now, "max_attempts": max_attempts, "limit": limit}
        if channels is not None:
            values["channels"] = list(channels)
        taken: list[PendingMessage] = []
        first_taken: dict[tuple[str, str, str], int] = {}
        with self.engine.begin() as conn:
            for found in conn.execute(query, values):
                row, oldest = PendingMessage(*found[:-1]), found[-1]
                chat = (row.channel, row.chat_key, row.audience)
                # A chat is taken only from its oldest live message: not when another worker
                # holds (or is taking) an earlier one.
                if first_taken.setdefault(chat, row.id) == oldest:
                    taken.append(row)
            if taken:
                conn.execute(self._lease, {"row_ids": [r.id for r in taken], "until": now + LEASE})
        return taken

    def release(self, ids: list[int], until: datetime | None = None) -> None:
        """Messages taken but not sent this round: free for the next one at once, or held
        until `until` (the platform asked us to wait), so no worker sends them sooner."""
        if ids:
            with self.engine.begin() as conn:
                conn.execute(
                    update(_outbox).where(_outbox.c.id.in_(ids)).values(claimed_until=until)
                )

    def free_claims(self) -> None:
        """Unsent messages held by no one any more (see storage.database.serving): free for
        the next round. A wait the platform asked for ends too; if it still holds, the
        platform says so again."""
        with self.engine.begin() as conn:
            conn.execute(
                update(_outbox)
                .where(_outbox.c.sent_at.is_(None), _outbox.c.claimed_until.is_not(None))
                .values(claimed_until=None)
            )

    def take_for_chat(self, channel: str, chat_key: str, at: datetime) -> list[PendingMessage]:
        """Every reply still pending for one chat, marked sent in the same transaction: for a
        channel that answers in the HTTP response itself (WeChat's passive reply)."""
        query = (
            select(
                _outbox.c.id,
                _outbox.c.channel,
                _outbox.c.chat_key,
                _outbox.c.audience,
                _outbox.c.payload_json,
                _outbox.c.attempts,
            )
            .where(
                _outbox.c.sent_at.is_(None),
                _outbox.c.channel == channel,
                _outbox.c.chat_key == chat_key,
                _outbox.c.audience == "user",
            )
            .order_by(_outbox.c.id)
            .with_for_update()
        )
        with self.engine.begin() as conn:
            rows = [PendingMessage(*row) for row in conn.execute(query).all()]
            if rows:
                conn.execute(self._mark_sent, {"row_ids": [r.id for r in rows], "at": at})
        return rows

    def mark_sent(self, ids: list[int], at: datetime) -> None:
        if ids:
            with self.engine.begin() as conn:
                conn.execute(self._mark_sent, {"row_ids": ids, "at": at})

    def give_up(self, row_id: int) -> None:
        """Never try this row again (the platform refused it for good)."""
        with self.engine.begin() as conn:
            conn.execute(self._give_up, {"row_id": row_id, "attempts": MAX_ATTEMPTS_MARK})

    def mark_failed(self, row_id: int, retry_at: datetime) -> None:
        """A passing failure: the row (and so its chat) stays held until `retry_at`, for
        every worker."""
        with self.engine.begin() as conn:
            conn.execute(self._mark_failed, {"row_id": row_id, "retry_at": retry_at})

    def shown_message(self, channel: str, chat_key: str, replace_key: str) -> str | None:
        query = select(_shown.c.message_ref).where(
            _shown.c.channel == channel,
            _shown.c.chat_key == chat_key,
            _shown.c.replace_key == replace_key,
        )
        with self._reader.connect() as conn:
            return conn.execute(query).scalar_one_or_none()

    def remember_shown(self, channel: str, chat_key: str, replace_key: str, ref: str) -> None:
        where = (
            (_shown.c.channel == channel)
            & (_shown.c.chat_key == chat_key)
            & (_shown.c.replace_key == replace_key)
        )
        with self.engine.begin() as conn:
            conn.execute(delete(_shown).where(where))
            conn.execute(
                insert(_shown).values(
                    channel=channel, chat_key=chat_key, replace_key=replace_key, message_ref=ref
                )
            )

"""The rows a patient's copy reads and an erasure removes: plain table access. What a copy
holds and what an erasure means live in handlers/privacy/ (export.py, erasure.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, or_, select, text, update
from sqlmodel import SQLModel

from storage.database import reader
from storage.models import Case  # also registers every table in the metadata

# Every table an erasure touches, by name.
_t: dict[str, Any] = dict(SQLModel.metadata.tables)


@dataclass(frozen=True)
class CaseKey:
    id: str
    reference: str
    card_message_ref: str


class DataRightsTables:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reader = reader(engine)  # reads on SQLite take no write lock

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # --- reads ---------------------------------------------------------------------------

    def state_json(self, channel: str, user_key: str) -> str | None:
        table = _t["conversation"]
        query = select(table.c.state_json).where(
            table.c.channel == channel, table.c.user_key == user_key
        )
        with self._reader.connect() as conn:
            raw: str | None = conn.execute(query).scalar_one_or_none()
        return raw

    def consents(self, channel: str, user_key: str) -> list[dict[str, Any]]:
        table = _t["consent_record"]
        query = select(table).where(table.c.channel == channel, table.c.user_key == user_key)
        with self._reader.connect() as conn:
            rows = conn.execute(query.order_by(table.c.id)).mappings().all()
        return [dict(row) for row in rows]

    def cases(self, channel: str, user_key: str) -> list[Case]:
        table = _t["case"]
        query = select(table).where(table.c.channel == channel, table.c.user_key == user_key)
        with self._reader.connect() as conn:
            return [Case(**row) for row in conn.execute(query).mappings().all()]

    def case_keys(self, channel: str, user_key: str) -> list[CaseKey]:
        table = _t["case"]
        query = select(table.c.id, table.c.reference, table.c.card_message_ref).where(
            table.c.channel == channel, table.c.user_key == user_key
        )
        with self._reader.connect() as conn:
            return [
                CaseKey(row.id, row.reference, row.card_message_ref or "")
                for row in conn.execute(query).all()
            ]

    def held_elsewhere(self, sha256: str, holders: Sequence[str]) -> bool:
        """Whether a document outside `holders` names this stored content."""
        table = _t["document"]
        query = select(table.c.id).where(
            table.c.sha256 == sha256, table.c.case_id.not_in(list(holders))
        )
        with self._reader.connect() as conn:
            return conn.execute(query.limit(1)).first() is not None

    def upload_ids(self, case_ids: Sequence[str]) -> list[str]:
        table = _t["upload"]
        query = select(table.c.id).where(table.c.case_id.in_(list(case_ids)))
        with self._reader.connect() as conn:
            return [row[0] for row in conn.execute(query).all()]

    # --- the erasure's deletes, on the caller's transaction ------------------------------

    def delete_person(
        self,
        conn: Connection,
        channel: str,
        user_key: str,
        chat_key: str,
        holders: Sequence[str],
        references: Sequence[str],
        uploads: Sequence[str],
        windowed: bool = False,
    ) -> None:
        """Every row about the patient: their cases' rows (by case id and reference), their
        own rows, replies to their chat and coordinators' notices about their cases.
        `windowed`: the channel answers inside a reply window (WeChat), whose delivery
        bookkeeping is kept until the farewell is out."""
        tables = _t
        case_ids = list(holders)
        for name in (
            "document",
            "case_event",
            "section_translation",
            "upload_token",
            "pacs_study",
            "pacs_instance",
        ):
            table = tables[name]
            conn.execute(delete(table).where(table.c.case_id.in_(case_ids)))
        actions = tables["coordinator_action"]
        conn.execute(delete(actions).where(actions.c.case_reference.in_(list(references))))
        conn.execute(delete(tables["upload"]).where(tables["upload"].c.id.in_(list(uploads))))
        for name in ("case", "consent_record", "job", "conversation", "pacs_key"):
            table = tables[name]
            conn.execute(
                delete(table).where(table.c.channel == channel, table.c.user_key == user_key)
            )
        outbox = tables["outbox"]
        about_cases = [outbox.c.payload_json.contains(f'"{case_id}"') for case_id in case_ids]
        conn.execute(
            delete(outbox).where(
                outbox.c.channel == channel,
                or_(
                    (outbox.c.audience == "user") & (outbox.c.chat_key == chat_key),
                    (outbox.c.audience == "coordinators") & or_(False, *about_cases),
                ),
            )
        )
        shown = tables["shown_message"]
        conn.execute(delete(shown).where(shown.c.channel == channel, shown.c.chat_key == chat_key))
        if windowed:
            # The follower's delivery bookkeeping (the 48-hour window) stays until the
            # farewell is out, emptied of the rest; the retention rules remove it after.
            users = tables["wechat_user"]
            conn.execute(
                update(users)
                .where(users.c.openid == user_key)
                .values(language="", language_checked=False, options_json="[]")
            )
            # A follower's events are keyed by their openid (bot/channels/wechat.py).
            events = f"event:{user_key}:%"
            for name in ("processed_update", "wechat_reply"):
                conn.execute(delete(tables[name]).where(tables[name].c.update_key.like(events)))

    def add_outbox(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            conn.execute(_t["outbox"].insert(), list(rows))

    def enqueue(self, row: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            self.add_outbox(conn, [row])

    def scrub(self) -> None:
        """SQLite keeps deleted rows readable in free pages and in the write-ahead log until
        they are overwritten: with secure_delete the pages were zeroed as rows went, and a
        truncating checkpoint empties the log."""
        if self.engine.dialect.name != "sqlite":
            return
        with self._reader.connect() as conn:  # outside any transaction, as a checkpoint must be
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))

"""The audit log: append-only, hash-chained, pseudonymous.

Entries are written in the same transaction as what they record, so an action and its entry
exist together or not at all. They name cases by reference and patients by a pseudonym, and
hold no health data: the log outlives an erasure and says only that something happened.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, select, text

from storage.database import reader
from storage.models import AuditEntry

_audit = AuditEntry.__table__  # type: ignore[attr-defined]
PSEUDONYM_KEY_FILE = "audit-pseudonym.key"
GENESIS = "0" * 64
# One writer at a time extends the chain on PostgreSQL (SQLite's BEGIN IMMEDIATE already is).
_CHAIN_LOCK = int.from_bytes(hashlib.sha256(b"huizhen audit chain").digest()[:8], "big") >> 1


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    details: dict[str, object]


def _moment(at: datetime) -> str:
    """The same text whether the value comes from the caller or back from the database
    (SQLite hands back naive UTC)."""
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at.isoformat(timespec="microseconds")


def _hash(previous: str, at: datetime, actor: str, action: str, subject: str, details: str) -> str:
    body = json.dumps([previous, _moment(at), actor, action, subject, details], ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


class AuditLog:
    def __init__(self, engine: Engine, pseudonym_key: bytes) -> None:
        self.engine = engine
        self._reader = reader(engine)
        self._key = pseudonym_key

    def pseudonym(self, channel: str, user_key: str) -> str:
        """The same patient always gets the same pseudonym; it cannot be turned back into
        their account without this installation's key."""
        digest = hmac.new(self._key, f"{channel}\0{user_key}".encode(), hashlib.sha256)
        return "person:" + digest.hexdigest()[:20]

    def append(
        self,
        conn: Connection,
        *,
        at: datetime,
        actor: str,
        action: str,
        subject: str,
        details: Mapping[str, object] | None = None,
    ) -> None:
        """Add an entry inside the caller's transaction."""
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK})
        previous = conn.execute(
            select(_audit.c.entry_hash).order_by(_audit.c.id.desc()).limit(1)
        ).scalar_one_or_none()
        previous = previous or GENESIS
        details_json = json.dumps(dict(details or {}), ensure_ascii=False, sort_keys=True)
        conn.execute(
            _audit.insert(),
            {
                "at": at,
                "actor": actor,
                "action": action,
                "subject": subject,
                "details_json": details_json,
                "previous_hash": previous,
                "entry_hash": _hash(previous, at, actor, action, subject, details_json),
            },
        )

    def entries(
        self, subject: str | None = None, since: datetime | None = None, limit: int = 200
    ) -> list[AuditRecord]:
        """The newest `limit` entries, oldest first."""
        query = select(_audit).order_by(_audit.c.id.desc()).limit(limit)
        if subject is not None:
            query = query.where(_audit.c.subject == subject)
        if since is not None:
            query = query.where(_audit.c.at >= since)
        with self._reader.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            AuditRecord(
                id=row["id"],
                at=row["at"],
                actor=row["actor"],
                action=row["action"],
                subject=row["subject"],
                details=json.loads(row["details_json"]),
            )
            for row in reversed(rows)
        ]

    def verify(self) -> tuple[int, int | None]:
        """Walk the chain: (entries checked, id of the first entry that does not fit)."""
        previous = GENESIS
        count = 0
        with self._reader.connect() as conn:
            for row in conn.execute(select(_audit).order_by(_audit.c.id)).mappings():
                expected = _hash(
                    previous,
                    row["at"],
                    row["actor"],
                    row["action"],
                    row["subject"],
                    row["details_json"],
                )
                if row["previous_hash"] != previous or row["entry_hash"] != expected:
                    return count, int(row["id"])
                previous = row["entry_hash"]
                count += 1
        return count, None

"""What the WeChat channel keeps: followers (language, the 48-hour window and its quota, the
options last shown), the shared access token, recent webhook nonces and the passive replies
given, so a retried message is answered the same way.

Every worker shares these rows, so the platform's rules hold across processes. Besides the
pipeline's own, a message costs a few short transactions: `arrive` (the nonce, the window, the
options shown), `take_replies`, `show_options`, `remember_reply` and `replied`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from storage.database import reader
from storage.models import Outbox, WeChatNonce, WeChatReply, WeChatToken, WeChatUser

_user = WeChatUser.__table__  # type: ignore[attr-defined]
_token = WeChatToken.__table__  # type: ignore[attr-defined]
_nonce = WeChatNonce.__table__  # type: ignore[attr-defined]
_reply = WeChatReply.__table__  # type: ignore[attr-defined]
_outbox = Outbox.__table__  # type: ignore[attr-defined]
CHANNEL = "wechat"

# Webhook calls older than this are refused, so nonces need keeping only this long.
NONCE_LIFETIME = timedelta(minutes=10)
# WeChat retries a message for about 15 seconds; its reply is kept a little longer.
REPLY_LIFETIME = timedelta(minutes=10)
PURGE_EVERY = timedelta(minutes=1)
# Longer than any customer-service send takes; a sender that dies lets go after it.
SENDING = timedelta(minutes=2)
# A token is renewed this long before WeChat says it expires.
TOKEN_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class ShownOption:
    """One numbered option on the follower's screen."""

    id: str
    label: str
    prompt_ref: str


@dataclass(frozen=True)
class Follower:
    """A follower as a message of theirs arrives."""

    openid: str
    language: str
    language_checked: bool
    options: tuple[ShownOption, ...]  # in the order of their numbers


class ServiceSlot(StrEnum):
    """Whether a customer-service message may go to a follower now."""

    TAKEN = "taken"  # yes: it is counted, and marked being sent
    REPLYING = "replying"  # not now: a passive reply to their message takes their replies
    WAIT = "wait"  # not until they write again (window closed, quota used, unfollowed)


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite may hand datetimes back without a zone; they are UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


class WeChatStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reader = reader(engine)
        self._dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
        self._purged_at: datetime | None = None

    # --- a message arrives -----------------------------------------------------------------

    def arrive(
        self,
        timestamp: str,
        nonce: str,
        openid: str,
        now: datetime,
        replying_until: datetime,
        subscribed: bool | None = True,
        interaction: bool = True,
    ) -> Follower | None:
        """Record the webhook call and the follower's message in one transaction: None when
        this timestamp and nonce were seen before (a replay). An `interaction` (a message, a
        follow, a menu press; not a location report) opens their 48-hour window; `subscribed`
        is what the update says of their following (None: nothing)."""
        seen = (
            self._dialect.insert(_nonce)
            .values(timestamp=timestamp, nonce=nonce, seen_at=now)
            .on_conflict_do_nothing()
            .returning(_nonce.c.nonce)
        )
        upsert = self._dialect.insert(_user).values(
            openid=openid,
            language="",
            language_checked=False,
            subscribed=subscribed is not False,
            last_message_at=now if interaction else None,
            service_sent=0,
            replying_until=replying_until,
            options_json="[]",
        )
        upsert = upsert.on_conflict_do_update(
            index_elements=[_user.c.openid],
            set_={
                **({"subscribed": subscribed} if subscribed is not None else {}),
                "replying_until": replying_until,
                **({"last_message_at": now, "service_sent": 0} if interaction else {}),
            },
        )
        with self.engine.begin() as conn:
            if conn.execute(seen).first() is None:
                return None
            conn.execute(upsert)
            row = conn.execute(
                select(
                    _user.c.language,
                    _user.c.language_checked,
                    _user.c.options_json,
                ).where(_user.c.openid == openid)
            ).one()
        self._purge(now)
        options = tuple(ShownOption(*item) for item in json.loads(row.options_json))
        return Follower(openid, row.language, row.language_checked, options)

    def replied(self, openid: str, replying_until: datetime) -> None:
        """The passive reply is made (or given up): customer-service delivery may go on. Only
        this message's mark is cleared; a later message of theirs keeps its own."""
        with self.engine.begin() as conn:
            conn.execute(
                update(_user)
                .where(_user.c.openid == openid, _user.c.replying_until == replying_until)
                .values(replying_until=None)
            )

    def set_language(self, openid: str, language: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(_user)
                .where(_user.c.openid == openid)
                .values(language=language, language_checked=True)
            )

    def set_subscribed(self, openid: str, subscribed: bool) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(_user).where(_user.c.openid == openid).values(subscribed=subscribed)
            )

    def show_options(self, openid: str, options: list[ShownOption]) -> None:
        """The numbered options now on the follower's screen."""
        shown = json.dumps([[o.id, o.label, o.prompt_ref] for o in options], ensure_ascii=False)
        with self.engine.begin() as conn:
            conn.execute(update(_user).where(_user.c.openid == openid).values(options_json=shown))

    # --- passive replies, for WeChat's retries ---------------------------------------------

    def remember_reply(self, update_key: str, text: str, now: datetime) -> None:
        row = self._dialect.insert(_reply).values(update_key=update_key, text=text, created_at=now)
        with self.engine.begin() as conn:
            conn.execute(row.on_conflict_do_nothing())

    def forget_reply(self, update_key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(_reply).where(_reply.c.update_key == update_key))

    def reply_for(self, update_key: str) -> str | None:
        query = select(_reply.c.text).where(_reply.c.update_key == update_key)
        with self._reader.connect() as conn:
            return conn.execute(query).scalar_one_or_none()

    # --- passive replies and customer-service messages never take the same reply ---------

    def take_replies(self, openid: str, now: datetime) -> list[str]:
        """Every reply pending for the follower (payloads, oldest first), marked sent: for
        the passive reply. Replies a customer-service sender is sending right now are left to
        it, so nothing goes out twice."""
        # The follower's row is locked first: start_sending (which marks a customer-service
        # message being sent) and this take then run one after the other.
        sending = select(_user.c.sending_until).where(_user.c.openid == openid).with_for_update()
        query = (
            select(_outbox.c.id, _outbox.c.payload_json, _outbox.c.claimed_until)
            .where(
                _outbox.c.sent_at.is_(None),
                _outbox.c.channel == CHANNEL,
                _outbox.c.chat_key == openid,
                _outbox.c.audience == "user",
            )
            .order_by(_outbox.c.id)
            .with_for_update()
        )
        with self.engine.begin() as conn:
            busy = _aware(conn.execute(sending).scalar_one_or_none())
            rows = conn.execute(query).all()
            # When the rows are ours (the locks held): a delivery round that read the outbox
            # before this must read it again (see start_sending).
            now = max(now, datetime.now(UTC))
            if busy is not None and busy > now:
                rows = [row for row in rows if not _later(row.claimed_until, now)]
            if rows:
                conn.execute(
                    update(_outbox)
                    .where(_outbox.c.id.in_([row.id for row in rows]))
                    .values(sent_at=now)
                )
                conn.execute(update(_user).where(_user.c.openid == openid).values(replied_at=now))
        return [row.payload_json for row in rows]

    def start_sending(
        self,
        openid: str,
        count: int,
        now: datetime,
        round_started: datetime,
        window: timedelta,
        quota: int,
    ) -> tuple[ServiceSlot, float]:
        """Count `count` customer-service messages against the follower's quota and mark them
        being sent, if the window is open and no passive reply is taking their replies (or
        took them since this delivery round read the outbox). Returns the slot and, when the
        slot is REPLYING, the seconds to wait."""
        free = (
            (_user.c.openid == openid)
            & _user.c.subscribed
            & (_user.c.last_message_at > now - window)
            & (_user.c.service_sent + count <= quota)
            & (_user.c.replying_until.is_(None) | (_user.c.replying_until <= now))
            & (_user.c.replied_at.is_(None) | (_user.c.replied_at < round_started))
        )
        with self.engine.begin() as conn:
            taken = conn.execute(
                update(_user)
                .where(free)
                .values(service_sent=_user.c.service_sent + count, sending_until=now + SENDING)
            ).rowcount
            if taken:
                return ServiceSlot.TAKEN, 0.0
            row = conn.execute(
                select(_user.c.replying_until, _user.c.replied_at).where(_user.c.openid == openid)
            ).first()
        if row is None:
            return ServiceSlot.WAIT, 0.0
        replying = _aware(row.replying_until)
        if replying is not None and replying > now:
            return ServiceSlot.REPLYING, (replying - now).total_seconds()
        replied = _aware(row.replied_at)
        if replied is not None and replied >= round_started:
            return ServiceSlot.REPLYING, 0.0  # read the outbox afresh: some may be taken
        return ServiceSlot.WAIT, 0.0

    def done_sending(self, openid: str, unsent: int = 0) -> None:
        """The customer-service message went out (or failed: `unsent` messages count no
        more)."""
        values: dict[str, Any] = {"sending_until": None}
        if unsent:
            values["service_sent"] = case(
                (_user.c.service_sent >= unsent, _user.c.service_sent - unsent), else_=0
            )
        with self.engine.begin() as conn:
            conn.execute(update(_user).where(_user.c.openid == openid).values(**values))

    def close_window(self, openid: str, quota: int) -> None:
        """WeChat refused a customer-service message (45015, 45047): nothing more until the
        follower writes again."""
        with self.engine.begin() as conn:
            conn.execute(
                update(_user)
                .where(_user.c.openid == openid)
                .values(service_sent=quota, sending_until=None)
            )

    # --- the access token ------------------------------------------------------------------

    def access_token(self, app_id: str, now: datetime, fetch: Callable[[], tuple[str, int]]) -> str:
        """The account's current token; renewed by one worker at a time, under a lock (FOR
        UPDATE on PostgreSQL, SQLite's BEGIN IMMEDIATE), so every worker shares one token."""
        query = select(_token.c.access_token, _token.c.expires_at).where(_token.c.app_id == app_id)
        with self._reader.connect() as conn:
            row = conn.execute(query).first()
        if row is not None and _fresh(row.access_token, row.expires_at, now):
            return str(row.access_token)
        placeholder = self._dialect.insert(_token).values(
            app_id=app_id, access_token="", expires_at=None
        )
        with self.engine.begin() as conn:
            conn.execute(placeholder.on_conflict_do_nothing())
            row = conn.execute(query.with_for_update()).one()
            if _fresh(row.access_token, row.expires_at, now):
                return str(row.access_token)  # another worker renewed it while we waited
            token, expires_in = fetch()
            conn.execute(
                update(_token)
                .where(_token.c.app_id == app_id)
                .values(access_token=token, expires_at=now + timedelta(seconds=expires_in))
            )
        return token

    def discard_token(self, app_id: str, token: str) -> None:
        """WeChat said the token is no longer valid (40001, 42001): the next call renews it,
        unless another worker already has."""
        with self.engine.begin() as conn:
            conn.execute(
                update(_token)
                .where(_token.c.app_id == app_id, _token.c.access_token == token)
                .values(access_token="", expires_at=None)
            )

    # --- housekeeping ----------------------------------------------------------------------

    def _purge(self, now: datetime) -> None:
        if self._purged_at is not None and now - self._purged_at < PURGE_EVERY:
            return
        self._purged_at = now
        with self.engine.begin() as conn:
            conn.execute(delete(_nonce).where(_nonce.c.seen_at < now - NONCE_LIFETIME))
            conn.execute(delete(_reply).where(_reply.c.created_at < now - REPLY_LIFETIME))


def _later(moment: datetime | None, now: datetime) -> bool:
    aware = _aware(moment)
    return aware is not None and aware > now


def _fresh(token: str, expires_at: datetime | None, now: datetime) -> bool:
    moment = _aware(expires_at)
    return bool(token) and moment is not None and moment - TOKEN_MARGIN > now

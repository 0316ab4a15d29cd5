"""How long Huizhen keeps what patients gave it, applied by the scheduled work.

- An unfinished case untouched for `draft_days` is erased, after a warning `warning_days`
  before: any message from the patient (any activity at all) keeps it.
- A patient whose cases all ended (closed, declined, withdrawn) more than `closed_days` ago,
  and who has not written since, is erased.
- A conversation that never held health information is forgotten after `draft_days`.
- Delivered messages (they quote answers) are dropped after a month; patients' copies of
  their data after a week.

Everything is read from the rows themselves, so a restart loses nothing and nothing is done
twice; an erasure is the same one /delete runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, select, update

from conversations.case_status import ENDED
from conversations.channels import windowed_channels
from conversations.events import Outbound
from conversations.i18n import translator
from conversations.state import ConversationState
from handlers.privacy.erasure import ERASED_BY_RETENTION, Erasure
from handlers.privacy.export import EXPORT_KEPT
from handlers.privacy.person import Person
from storage.database import reader
from storage.models import Case, Conversation, Document, Outbox, WeChatUser

_conversation: Any = Conversation.__table__  # type: ignore[attr-defined]
_case: Any = Case.__table__  # type: ignore[attr-defined]
_outbox: Any = Outbox.__table__  # type: ignore[attr-defined]
_document: Any = Document.__table__  # type: ignore[attr-defined]
_wechat_user: Any = WeChatUser.__table__  # type: ignore[attr-defined]

SENT_MESSAGES_KEPT = timedelta(days=30)
# WeChat's window for messages to a follower is 48 hours: an erased follower's delivery
# bookkeeping is not needed after it.
FOLLOWER_WINDOW = timedelta(days=3)


@dataclass
class RetentionReport:
    warned: list[Person] = field(default_factory=list)
    erased: list[Person] = field(default_factory=list)


def _naive(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes (UTC); compare everything that way."""
    return moment.replace(tzinfo=None)


class Retention:
    def __init__(
        self,
        engine: Engine,
        erasure: Erasure,
        clock: Callable[[], datetime],
        draft_days: int,
        warning_days: int,
        closed_days: int,
    ) -> None:
        self.engine = engine
        self._reader = reader(engine)
        self.erasure = erasure
        self.clock = clock
        self.draft_age = timedelta(days=draft_days)
        # The warning comes at least a day before, and never before the case is a day old.
        self.warning = timedelta(days=max(1, min(warning_days, draft_days - 1)))
        self.closed_age = timedelta(days=closed_days)

    def run(self) -> RetentionReport:
        now = self.clock()
        report = RetentionReport()
        self._drafts(now, report)
        self._ended(now, report)
        self._forget_sent_messages(now)
        self._forget_old_exports(now)
        self._forget_erased_followers(now)
        return report

    # --- unfinished cases ------------------------------------------------------------------

    def _drafts(self, now: datetime, report: RetentionReport) -> None:
        quiet_since = now - (self.draft_age - self.warning)
        query = select(
            _conversation.c.channel,
            _conversation.c.user_key,
            _conversation.c.chat_key,
            _conversation.c.state_json,
            _conversation.c.updated_at,
        ).where(_conversation.c.updated_at < quiet_since)
        with self._reader.connect() as conn:
            rows = conn.execute(query).all()
        for row in rows:
            state = ConversationState.model_validate_json(row.state_json)
            if state.submitted:
                continue  # their cases follow the rule for cases (below)
            person = Person(row.channel, row.user_key, row.chat_key)
            holds_health_data = (
                state.consented or state.draft.has_health_data() or bool(state.earlier_drafts)
            )
            if not holds_health_data:
                if _naive(row.updated_at) < _naive(now - self.draft_age):
                    self.erasure.erase(person, actor="retention", farewell=None)
                    report.erased.append(person)
                continue
            warned = state.retention_warned_at
            if warned is None or _naive(row.updated_at) > _naive(warned):
                if self._warn(person, state, row.state_json, now):
                    report.warned.append(person)
            elif _naive(now) >= _naive(warned + self.warning):
                self.erasure.erase(person, actor="retention", farewell=ERASED_BY_RETENTION)
                report.erased.append(person)

    def _warn(self, person: Person, state: ConversationState, seen: str, now: datetime) -> bool:
        """Tell the patient when their unfinished case will be erased. The conversation's
        time is left as it was (the warning is not activity); if the patient wrote meanwhile,
        nothing happens."""
        t = translator(state.locale)
        text = t(
            "Your unfinished case has had no news for a while. To protect your privacy, I will "
            "erase it, with everything you sent, on {date}. If you would like to keep it, just "
            "send me any message.",
            date=t.date((now + self.warning).date()),
        )
        state.retention_warned_at = now
        mine = (
            (_conversation.c.channel == person.channel)
            & (_conversation.c.user_key == person.user_key)
            & (_conversation.c.state_json == seen)
        )
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(_conversation).where(mine).values(state_json=state.model_dump_json())
            ).rowcount
            if not changed:
                return False
            message = Outbound(text=text, locale=state.locale)
            conn.execute(
                _outbox.insert(),
                {
                    "channel": person.channel,
                    "chat_key": person.chat_key,
                    "audience": "user",
                    "payload_json": message.model_dump_json(exclude_defaults=True),
                    "created_at": now,
                    "attempts": 0,
                },
            )
        return True

    # --- cases that ended long ago -------------------------------------------------------

    def _ended(self, now: datetime, report: RetentionReport) -> None:
        long_ago = now - self.closed_age
        query = select(
            _case.c.channel,
            _case.c.user_key,
            _case.c.chat_key,
            _case.c.status,
            _case.c.status_changed_at,
        )
        people: dict[tuple[str, str], tuple[str, bool]] = {}
        with self._reader.connect() as conn:
            for row in conn.execute(query).all():
                ended = row.status in ENDED and (
                    row.status_changed_at is not None
                    and _naive(row.status_changed_at) < _naive(long_ago)
                )
                key = (row.channel, row.user_key)
                _, all_ended = people.get(key, (row.chat_key, True))
                people[key] = (row.chat_key, all_ended and ended)
            active = {
                (row.channel, row.user_key)
                for row in conn.execute(
                    select(_conversation.c.channel, _conversation.c.user_key).where(
                        _conversation.c.updated_at >= long_ago
                    )
                ).all()
            }
        for (channel, user_key), (chat_key, all_ended) in people.items():
            if all_ended and (channel, user_key) not in active:
                person = Person(channel, user_key, chat_key)
                self.erasure.erase(person, actor="retention", farewell=None)
                report.erased.append(person)

    # --- copies that need not stay -------------------------------------------------------

    def _forget_sent_messages(self, now: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(_outbox).where(
                    _outbox.c.sent_at.is_not(None), _outbox.c.sent_at < now - SENT_MESSAGES_KEPT
                )
            )

    def _forget_erased_followers(self, now: datetime) -> None:
        """A follower with no conversation (erased, or who never wrote) whose last message is
        older than WeChat's window."""
        windowed = _conversation.c.channel.in_(windowed_channels())
        talking = select(_conversation.c.user_key).where(windowed)
        quiet = _wechat_user.c.last_message_at.is_(None) | (
            _wechat_user.c.last_message_at < now - FOLLOWER_WINDOW
        )
        with self.engine.begin() as conn:
            conn.execute(delete(_wechat_user).where(quiet, _wechat_user.c.openid.not_in(talking)))

    def _forget_old_exports(self, now: datetime) -> None:
        query = select(_document.c.file_id, _document.c.sha256).where(
            _document.c.kind == "export", _document.c.stored_at < now - EXPORT_KEPT
        )
        with self._reader.connect() as conn:
            old = conn.execute(query).all()
        for file_id, sha256 in old:
            with self.engine.begin() as conn:
                conn.execute(delete(_document).where(_document.c.file_id == file_id))
                still_used = conn.execute(
                    select(_document.c.id).where(_document.c.sha256 == sha256).limit(1)
                ).first()
            if still_used is None:
                self.erasure.files.delete(sha256)

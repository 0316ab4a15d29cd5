"""A patient's copy of everything (/export) and the erasure of everything (/delete, and the
retention rules), run as background jobs the conversation queued.

An erasure removes the stored files first (a crash then leaves rows that name missing files,
and the job, still pending, runs again), then every row that concerns the patient in one
transaction, with the audit entry and the last message. On SQLite the pages that held the rows
are zeroed (secure_delete) and the write-ahead log is emptied, so nothing stays readable in the
data folder.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, delete, or_, select, text, update
from sqlmodel import SQLModel

from conversations.channels import capabilities
from conversations.events import STORE_SOURCE, CoordinatorNotice, FileRef, Outbound
from conversations.i18n import bilingual, translator
from conversations.state import ConversationState, IntakeDraft
from handlers.documents.case_package import (
    case_document,
    copy_stored,
    json_bytes,
    package_names,
    put_bytes,
    zip_time,
)
from handlers.documents.summary import build_summary
from handlers.documents.summary_html import render_html
from records.markers import N_
from storage.audit import AuditLog
from storage.database import reader
from storage.documents import DocumentRow, DocumentStore
from storage.files import FileStore
from storage.jobs import MAX_ATTEMPTS, JobStore, PendingJob
from storage.models import Case  # also registers every table in the metadata
from storage.uploads import UploadGrant, UploadStore, UploadTokens

log = logging.getLogger(__name__)

RIGHTS_KINDS = ("export", "erase")
# A patient's copy is kept in the store this long after it was made (and erased with them).
EXPORT_KEPT = timedelta(days=7)

# Every table an erasure touches, by name.
_t: dict[str, Any] = dict(SQLModel.metadata.tables)

ERASED = N_(
    "Everything you gave me is now erased: your answers, your files and your cases. All that "
    "remains is a record that an erasure took place, without your name or any health "
    "details. If you write to me again, we will start afresh."
)
ERASED_BY_RETENTION = N_(
    "As I told you earlier, your unfinished case had no news for a long time, so I have now "
    "erased it with everything you sent. If you need us again, just send a message and we "
    "will start afresh."
)


EXPORT_PREFIX = "export:"


def export_holder(channel: str, user_key: str) -> str:
    """The case id under which a patient's copy of their data is stored (and found again when
    they are erased); a download link for the copy is bound to it."""
    return f"{EXPORT_PREFIX}{channel}:{user_key}"


class LinkIssuer(Protocol):
    def __call__(self, holder: str, person: Person, locale: str) -> tuple[str, int] | None: ...


@dataclass(frozen=True)
class Person:
    channel: str
    user_key: str
    chat_key: str


class DataRights:
    def __init__(
        self,
        engine: Engine,
        jobs: JobStore,
        files: FileStore,
        documents: DocumentStore,
        uploads: UploadStore,
        audit: AuditLog,
        clock: Callable[[], datetime],
        work_dir: Path,
        tokens: UploadTokens,
        default_locale: str = "en",
    ) -> None:
        self.engine = engine
        self._reader = reader(engine)  # reads on SQLite take no write lock
        self.jobs = jobs
        self.files = files
        self.documents = documents
        self.uploads = uploads
        self.audit = audit
        self.clock = clock
        self.work_dir = work_dir
        self.default_locale = default_locale
        self.tokens = tokens
        # Makes a download link for a copy too large for the chat (None: no web app set up).
        self.download_link: LinkIssuer | None = None
        self._cards: dict[str, str] = {}

    # --- the jobs ----------------------------------------------------------------------------

    def run_pending(self) -> int:
        """Copies and erasures the conversations asked for. Returns the jobs finished."""
        done = 0
        for job in self.jobs.claim(self.clock(), timedelta(hours=1), RIGHTS_KINDS):
            person = Person(job.channel, job.user_key, job.chat_key)
            try:
                if job.kind == "export":
                    self.export(person)
                    self.jobs.mark_done(job.id, self.clock())
                else:
                    self.erase(person, actor="patient", farewell=ERASED)
                done += 1
            except Exception as error:
                # Tried again on the next round; the patient hears if it keeps failing.
                log.error("a %s job failed (%s)", job.kind, type(error).__name__)
                self.jobs.mark_attempt(job.id)
                if job.attempts + 1 >= MAX_ATTEMPTS:
                    self._apologise(job)
        return done

    def _apologise(self, job: PendingJob) -> None:
        state = self._state(Person(job.channel, job.user_key, job.chat_key))
        locale = state.locale if state else self.default_locale
        t = translator(locale)
        message = t(
            "I'm sorry: something went wrong on our side and I could not finish this. Please "
            "try again later; nothing you gave me was lost."
        )
        self._send(job.channel, job.chat_key, Outbound(text=message, locale=locale))

    # --- a copy of everything ------------------------------------------------------------

    def export(self, person: Person) -> None:
        """One zip: the conversation as stored, the consents, and per case its case.json, a
        readable summary and every file (decrypted), sent to the patient in the chat."""
        now = self.clock()
        state = self._state(person)
        locale = state.locale if state else self.default_locale
        t = translator(locale)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(prefix=".export-", suffix=".zip", dir=self.work_dir)
        try:
            with os.fdopen(handle, "w+b") as raw:
                with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
                    self._write_export(archive, person, state, now)
                raw.flush()
                raw.seek(0)
                stored = self.files.put(raw)
        finally:
            Path(temp_name).unlink(missing_ok=True)
        name = f"huizhen-{now:%Y-%m-%d}.zip"
        holder = export_holder(person.channel, person.user_key)
        row = DocumentRow(
            file_id=f"{holder}:{stored.sha256[:16]}:{now:%Y%m%d%H%M%S}",
            case_id=holder,
            item="export",
            sha256=stored.sha256,
            size=stored.size,
            original_name=name,
            stored_at=now,
            kind="export",
        )
        self.documents.add([row])
        if capabilities(person.channel).can_send_document(stored.size):
            message = Outbound(
                text=t("Here is your copy: everything you gave me, and everything made from it."),
                locale=locale,
                files=(FileRef(source=f"{STORE_SOURCE}{stored.sha256}", name=name),),
            )
        else:
            link = self.download_link(holder, person, locale) if self.download_link else None
            if link is not None:
                url, hours = link
                text_ = t.plural(
                    "Your copy is ready. It is too large to send in this chat, so here is a "
                    "private link to download it. It works for {hours} hour: {link}",
                    "Your copy is ready. It is too large to send in this chat, so here is a "
                    "private link to download it. It works for {hours} hours: {link}",
                    hours,
                    hours=hours,
                    link=url,
                )
            else:
                text_ = t(
                    "Your copy is ready, but it is too large to send in this chat and no "
                    "download page is set up here. Please ask the service that runs Huizhen "
                    "for it."
                )
            message = Outbound(text=text_, locale=locale)
        with self.engine.begin() as conn:
            self.audit.append(
                conn,
                at=now,
                actor="patient",
                action="export_sent",
                subject=self.audit.pseudonym(person.channel, person.user_key),
                details={"bytes": stored.size},
            )
        self._send(person.channel, person.chat_key, message)

    def latest_copy(self, holder: str) -> DocumentRow | None:
        copies = [row for row in self.documents.for_case(holder) if row.kind == "export"]
        return copies[-1] if copies else None

    def downloaded(self, grant: UploadGrant) -> None:
        with self.engine.begin() as conn:
            self.audit.append(
                conn,
                at=self.clock(),
                actor="patient",
                action="export_downloaded",
                subject=self.audit.pseudonym(grant.channel, grant.user_key),
            )

    def _write_export(
        self,
        archive: zipfile.ZipFile,
        person: Person,
        state: ConversationState | None,
        now: datetime,
    ) -> None:
        moment = zip_time(now)
        conversation = json.loads(state.model_dump_json()) if state else {}
        put_bytes(archive, "conversation.json", json_bytes(conversation), moment)
        put_bytes(
            archive, "consents.json", json_bytes({"consents": self._consents(person)}), moment
        )
        for case in self._cases(person, state):
            documents = self.documents.for_case(case.id)
            summary = build_summary(case, documents, {}, now)
            names = package_names(documents)
            folder = f"cases/{case.reference}"
            document = case_document(case, documents, summary, names, {}, now)
            put_bytes(archive, f"{folder}/case.json", json_bytes(document), moment)
            put_bytes(archive, f"{folder}/summary.html", render_html(summary).encode(), moment)
            for row in documents:
                if row.file_id in names:
                    copy_stored(archive, self.files, row, f"{folder}/{names[row.file_id]}")

    def _consents(self, person: Person) -> list[dict[str, object]]:
        table = _t["consent_record"]
        query = select(table).where(
            table.c.channel == person.channel, table.c.user_key == person.user_key
        )
        with self._reader.connect() as conn:
            rows = conn.execute(query.order_by(table.c.id)).mappings().all()
        return [
            {
                "scope": row["scope"],
                "version": row["version"],
                "given_at": row["given_at"].isoformat(),
                "withdrawn_at": row["withdrawn_at"].isoformat() if row["withdrawn_at"] else None,
            }
            for row in rows
        ]

    def _cases(self, person: Person, state: ConversationState | None) -> list[Case]:
        """The submitted cases, then the case being prepared (as a case "draft")."""
        table = _t["case"]
        query = select(table).where(
            table.c.channel == person.channel, table.c.user_key == person.user_key
        )
        with self._reader.connect() as conn:
            cases = [Case(**row) for row in conn.execute(query).mappings().all()]
        if state is None:
            return cases
        submitted = {case.id for case in cases}
        drafts = [(state.draft, "draft")] if state.draft.has_health_data() else []
        # Cases started again from: their answers are gone, their files are kept.
        drafts += [
            (IntakeDraft(case_id=case_id), f"earlier-draft-{number}")
            for number, case_id in enumerate(state.earlier_drafts, 1)
        ]
        for draft, name in drafts:
            if draft.case_id and draft.case_id not in submitted:
                cases.append(self._unsubmitted(person, state.locale, draft, name))
        return cases

    def _unsubmitted(self, person: Person, locale: str, draft: IntakeDraft, name: str) -> Case:
        """A case not submitted, shaped as one for the copy."""
        return Case(
            id=draft.case_id or "",
            reference=name,
            channel=person.channel,
            user_key=person.user_key,
            chat_key=person.chat_key,
            status="draft",
            locale=locale,
            area=draft.area or "",
            verdict="",
            readiness=0,
            answers_json=draft.model_dump_json(),
            submitted_at=self.clock(),
            updated_at=self.clock(),
        )

    # --- erasure -------------------------------------------------------------------------------

    def erase(self, person: Person, *, actor: str, farewell: str | None) -> None:
        """Remove every trace of the patient; only a pseudonymous audit entry remains."""
        now = self.clock()
        state = self._state(person)
        locale = state.locale if state else self.default_locale
        case_ids, references = self._case_ids(person, state)
        holders = [*case_ids, export_holder(person.channel, person.user_key)]
        documents = [row for case_id in holders for row in self.documents.for_case(case_id)]
        self._remove_files(documents, holders)
        uploads = self._upload_ids(case_ids)
        for upload_id in uploads:
            self.uploads.spool_path(upload_id).unlink(missing_ok=True)
        with self.engine.begin() as conn:
            self._delete_rows(conn, person, holders, references, uploads)
            self.audit.append(
                conn,
                at=now,
                actor=actor,
                action="erased",
                subject=self.audit.pseudonym(person.channel, person.user_key),
                details={"cases": sorted(references), "files": len(documents)},
            )
            rows: list[dict[str, Any]] = []
            if farewell is not None:
                message = Outbound(text=translator(locale)(farewell), locale=locale)
                rows.append(self._outbox_row(person.channel, person.chat_key, "user", message, now))
            for case_id, reference in references.items():
                text_ = bilingual(
                    N_(
                        "Case {reference} was erased: the patient asked for it, or its keeping "
                        "period ended. Please delete any copy you hold outside Huizhen."
                    ),
                    reference=reference,
                )
                notice = CoordinatorNotice(
                    case_id=case_id,
                    case_ref=reference,
                    text=text_,
                    card_ref=self._cards.get(reference, ""),
                )
                rows.append(self._outbox_row(person.channel, "", "coordinators", notice, now))
            if rows:
                conn.execute(_t["outbox"].insert(), rows)
        self._scrub_database()

    def _case_ids(
        self, person: Person, state: ConversationState | None
    ) -> tuple[list[str], dict[str, str]]:
        """Every case of the patient (id list) and the submitted ones' references."""
        table = _t["case"]
        query = select(table.c.id, table.c.reference, table.c.card_message_ref).where(
            table.c.channel == person.channel, table.c.user_key == person.user_key
        )
        with self._reader.connect() as conn:
            rows = conn.execute(query).all()
        references = {row.id: row.reference for row in rows}
        self._cards = {row.reference: row.card_message_ref or "" for row in rows}
        ids = set(references)
        if state is not None:
            ids |= {case.case_id for case in state.submitted}
            ids |= set(state.earlier_drafts)
            if state.draft.case_id:
                ids.add(state.draft.case_id)
        return sorted(ids), references

    def _remove_files(self, documents: Sequence[DocumentRow], holders: Sequence[str]) -> None:
        """A stored file is content-addressed: it goes unless another patient's document holds
        the same content."""
        table = _t["document"]
        for sha256 in sorted({row.sha256 for row in documents}):
            query = select(table.c.id).where(
                table.c.sha256 == sha256, table.c.case_id.not_in(list(holders))
            )
            with self._reader.connect() as conn:
                shared = conn.execute(query.limit(1)).first() is not None
            if not shared:
                self.files.delete(sha256)

    def _upload_ids(self, case_ids: Sequence[str]) -> list[str]:
        table = _t["upload"]
        with self._reader.connect() as conn:
            query = select(table.c.id).where(table.c.case_id.in_(list(case_ids)))
            return [row[0] for row in conn.execute(query).all()]

    def _delete_rows(
        self,
        conn: Connection,
        person: Person,
        holders: Sequence[str],
        references: dict[str, str],
        uploads: Sequence[str],
    ) -> None:
        tables = _t
        mine = {"channel": person.channel, "user_key": person.user_key}
        case_ids = list(holders)
        conn.execute(delete(tables["document"]).where(tables["document"].c.case_id.in_(case_ids)))
        conn.execute(
            delete(tables["case_event"]).where(tables["case_event"].c.case_id.in_(case_ids))
        )
        conn.execute(
            delete(tables["section_translation"]).where(
                tables["section_translation"].c.case_id.in_(case_ids)
            )
        )
        conn.execute(
            delete(tables["coordinator_action"]).where(
                tables["coordinator_action"].c.case_reference.in_(list(references.values()))
            )
        )
        conn.execute(delete(tables["upload"]).where(tables["upload"].c.id.in_(list(uploads))))
        conn.execute(
            delete(tables["upload_token"]).where(tables["upload_token"].c.case_id.in_(case_ids))
        )
        for name in ("case", "consent_record", "job", "conversation"):
            table = tables[name]
            conn.execute(
                delete(table).where(
                    table.c.channel == mine["channel"], table.c.user_key == mine["user_key"]
                )
            )
        outbox = tables["outbox"]
        # Replies to the patient (sent or not), and coordinators' notices about their cases.
        about_cases = [outbox.c.payload_json.contains(f'"{case_id}"') for case_id in case_ids]
        conn.execute(
            delete(outbox).where(
                outbox.c.channel == person.channel,
                or_(
                    (outbox.c.audience == "user") & (outbox.c.chat_key == person.chat_key),
                    (outbox.c.audience == "coordinators") & or_(False, *about_cases),
                ),
            )
        )
        shown = tables["shown_message"]
        conn.execute(
            delete(shown).where(
                shown.c.channel == person.channel, shown.c.chat_key == person.chat_key
            )
        )
        if capabilities(person.channel).reply_window is not None:
            # The follower's delivery bookkeeping (the 48-hour window) stays until the
            # farewell is out, emptied of the rest; the retention rules remove it after.
            users = tables["wechat_user"]
            conn.execute(
                update(users)
                .where(users.c.openid == person.user_key)
                .values(language="", language_checked=False, options_json="[]")
            )
            # A follower's events are keyed by their openid (bot/channels/wechat.py).
            events = f"event:{person.user_key}:%"
            for name in ("processed_update", "wechat_reply"):
                conn.execute(delete(tables[name]).where(tables[name].c.update_key.like(events)))

    def _scrub_database(self) -> None:
        """SQLite keeps deleted rows readable in free pages and in the write-ahead log until
        they are overwritten: with secure_delete the pages were zeroed as rows went, and a
        truncating checkpoint empties the log."""
        if self.engine.dialect.name != "sqlite":
            return
        with self._reader.connect() as conn:  # outside any transaction, as a checkpoint must be
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))

    # --- helpers -------------------------------------------------------------------------------

    def _state(self, person: Person) -> ConversationState | None:
        table = _t["conversation"]
        query = select(table.c.state_json).where(
            table.c.channel == person.channel, table.c.user_key == person.user_key
        )
        with self._reader.connect() as conn:
            raw = conn.execute(query).scalar_one_or_none()
        return None if raw is None else ConversationState.model_validate_json(raw)

    def _outbox_row(
        self,
        channel: str,
        chat_key: str,
        audience: str,
        payload: Outbound | CoordinatorNotice,
        now: datetime,
    ) -> dict[str, Any]:
        dump = (
            payload.model_dump_json(exclude_defaults=True)
            if isinstance(payload, Outbound)
            else payload.model_dump_json()
        )
        return {
            "channel": channel,
            "chat_key": chat_key,
            "audience": audience,
            "payload_json": dump,
            "created_at": now,
            "attempts": 0,
        }

    def _send(self, channel: str, chat_key: str, message: Outbound) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                _t["outbox"].insert(),
                [self._outbox_row(channel, chat_key, "user", message, self.clock())],
            )

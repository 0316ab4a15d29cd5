"""The erasure of everything a patient gave (/delete, and the retention rules), run as a
background job the conversation queued.

An erasure removes the stored files first (a crash then leaves rows that name missing files,
and the job, still pending, runs again), with the upload page's spools and the copies handed
to the person at the console, then every row that concerns the patient in one transaction,
with the audit entry and the last message. On SQLite the pages that held the rows are zeroed
(secure_delete) and the write-ahead log is emptied, so nothing stays readable in the data
folder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from conversations.channels import CONSOLE, capabilities
from conversations.events import CoordinatorNotice, Outbound
from conversations.i18n import bilingual, translator
from conversations.state import ConversationState
from handlers.privacy.person import Person, export_holder, state_of
from handlers.updates.transaction import for_coordinators, for_user
from records.markers import N_
from storage.audit import AuditLog
from storage.data_rights import DataRightsTables
from storage.delivered import DeliveredCopies
from storage.documents import DocumentRow, DocumentStore
from storage.files import FileStore
from storage.uploads import UploadStore

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


class ImagingCopies(Protocol):
    """Where copies of the patient's studies live outside the file store (Orthanc:
    handlers/imaging/pacs.py); removed first, so a failure leaves the job to run again."""

    def erase(self, case_ids: Sequence[str]) -> None: ...


class Erasure:
    def __init__(
        self,
        tables: DataRightsTables,
        files: FileStore,
        documents: DocumentStore,
        uploads: UploadStore,
        audit: AuditLog,
        clock: Callable[[], datetime],
        delivered: DeliveredCopies | None = None,
        default_locale: str = "en",
        imaging: ImagingCopies | None = None,
    ) -> None:
        self.tables = tables
        self.files = files
        self.documents = documents
        self.uploads = uploads
        self.audit = audit
        self.clock = clock
        # Where the console channel left the files it showed (None: no such folder).
        self.delivered = delivered
        self.default_locale = default_locale
        self.imaging = imaging

    def erase(self, person: Person, *, actor: str, farewell: str | None) -> None:
        """Remove every trace of the patient; only a pseudonymous audit entry remains."""
        now = self.clock()
        state = state_of(self.tables, person)
        locale = state.locale if state else self.default_locale
        case_ids, references, cards = self._case_ids(person, state)
        holders = [*case_ids, export_holder(person.channel, person.user_key)]
        documents = [row for case_id in holders for row in self.documents.for_case(case_id)]
        if self.imaging is not None:
            self.imaging.erase(holders)
        self._remove_files(person, documents, holders)
        uploads = self.tables.upload_ids(case_ids)
        for upload_id in uploads:
            self.uploads.spool_path(upload_id).unlink(missing_ok=True)
        with self.tables.transaction() as conn:
            self.tables.delete_person(
                conn,
                person.channel,
                person.user_key,
                person.chat_key,
                holders,
                list(references.values()),
                uploads,
                windowed=capabilities(person.channel).reply_window is not None,
            )
            self.audit.append(
                conn,
                at=now,
                actor=actor,
                action="erased",
                subject=self.audit.pseudonym(person.channel, person.user_key),
                details={"cases": sorted(references), "files": len(documents)},
            )
            rows = []
            if farewell is not None:
                message = Outbound(text=translator(locale)(farewell), locale=locale)
                rows.append(for_user(person.channel, person.chat_key, message, now))
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
                    card_ref=cards.get(reference, ""),
                )
                rows.append(for_coordinators(person.channel, notice, now))
            self.tables.add_outbox(conn, rows)
        self.tables.scrub()

    def _case_ids(
        self, person: Person, state: ConversationState | None
    ) -> tuple[list[str], dict[str, str], dict[str, str]]:
        """Every case of the patient (id list), the submitted ones' references, and their
        coordinators' cards by reference."""
        keys = self.tables.case_keys(person.channel, person.user_key)
        references = {key.id: key.reference for key in keys}
        cards = {key.reference: key.card_message_ref for key in keys}
        ids = set(references)
        if state is not None:
            ids |= {case.case_id for case in state.submitted}
            ids |= set(state.earlier_drafts)
            if state.draft.case_id:
                ids.add(state.draft.case_id)
        return sorted(ids), references, cards

    def _remove_files(
        self, person: Person, documents: Sequence[DocumentRow], holders: Sequence[str]
    ) -> None:
        """A stored file is content-addressed: it goes unless another patient's document holds
        the same content. What the console showed of it goes in any case: it was this
        person's copy."""
        hashes = sorted({row.sha256 for row in documents})
        for sha256 in hashes:
            if not self.tables.held_elsewhere(sha256, holders):
                self.files.delete(sha256)
        # What the console saved for the patient to open is their copy too.
        if self.delivered is not None and person.channel == CONSOLE.name:
            self.delivered.remove(hashes)

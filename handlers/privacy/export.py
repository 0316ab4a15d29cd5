"""A patient's copy of everything (/export), run as a background job the conversation queued.

The zip is written straight into the encrypted file store as it is made: nothing decrypted
touches the disk, so a crash mid-copy leaves at most an encrypted partial file in the store's
incoming folder (swept at start), never a readable one.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from conversations.channels import capabilities
from conversations.events import STORE_SOURCE, FileRef, Outbound
from conversations.i18n import translator
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
from handlers.privacy.person import Person, export_holder, state_of, tell
from storage.audit import AuditLog
from storage.data_rights import DataRightsTables
from storage.documents import DocumentRow, DocumentStore
from storage.files import FileStore
from storage.models import Case
from storage.uploads import UploadGrant, UploadTokens

# A patient's copy is kept in the store this long after it was made (and erased with them).
EXPORT_KEPT = timedelta(days=7)


class LinkIssuer(Protocol):
    def __call__(self, holder: str, person: Person, locale: str) -> tuple[str, int] | None: ...


class Export:
    def __init__(
        self,
        tables: DataRightsTables,
        files: FileStore,
        documents: DocumentStore,
        audit: AuditLog,
        tokens: UploadTokens,
        clock: Callable[[], datetime],
        default_locale: str = "en",
    ) -> None:
        self.tables = tables
        self.files = files
        self.documents = documents
        self.audit = audit
        self.tokens = tokens
        self.clock = clock
        self.default_locale = default_locale
        # Makes a download link for a copy too large for the chat (None: no web app set up).
        self.download_link: LinkIssuer | None = None

    def export(self, person: Person) -> None:
        """One zip: the conversation as stored, the consents, and per case its case.json, a
        readable summary and every file (decrypted inside the zip only), sent to the patient
        in the chat."""
        now = self.clock()
        state = state_of(self.tables, person)
        locale = state.locale if state else self.default_locale
        t = translator(locale)
        with (
            self.files.writer() as out,
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive,  # type: ignore[call-overload]
        ):
            self._write_export(archive, person, state, now)
        stored = out.stored
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
        with self.tables.transaction() as conn:
            self.audit.append(
                conn,
                at=now,
                actor="patient",
                action="export_sent",
                subject=self.audit.pseudonym(person.channel, person.user_key),
                details={"bytes": stored.size},
            )
        tell(self.tables, person, message, self.clock())

    def latest_copy(self, holder: str) -> DocumentRow | None:
        copies = [row for row in self.documents.for_case(holder) if row.kind == "export"]
        return copies[-1] if copies else None

    def downloaded(self, grant: UploadGrant) -> None:
        with self.tables.transaction() as conn:
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
        return [
            {
                "scope": row["scope"],
                "version": row["version"],
                "given_at": row["given_at"].isoformat(),
                "withdrawn_at": row["withdrawn_at"].isoformat() if row["withdrawn_at"] else None,
            }
            for row in self.tables.consents(person.channel, person.user_key)
        ]

    def _cases(self, person: Person, state: ConversationState | None) -> list[Case]:
        """The submitted cases, then the case being prepared (as a case "draft")."""
        cases = self.tables.cases(person.channel, person.user_key)
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

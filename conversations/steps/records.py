"""The records checklist: for each item, upload now, later, or not applicable."""

from __future__ import annotations

from conversations.effects import IngestFile
from conversations.events import FileRef
from conversations.i18n import Translator, translator
from conversations.state import ConversationState, RecordFile, RecordItem
from conversations.step import Choice, Context, Outcome, Step
from records.checklist import (
    ChecklistItem,
    Readiness,
    checklist_for,
    critical_items,
    readiness,
)
from records.markers import N_

# /status anywhere in the checklist.
CHECKLIST_DESCRIPTION = N_("the records checklist")

# A safety limit only: a CT or MR disc holds 2,000-5,000 images. What a case may hold is
# limited by bytes (the case quota, enforced by the upload page and the file checks).
MAX_FILES_PER_CASE = 20_000
# Files past this many in one message are acknowledged as a count, not one line each.
LIST_RECEIVED_UP_TO = 8
UPLOAD_PAGE_NOTE = N_(
    "On the upload page you can send files of any size, several at once, or a whole folder "
    "such as a hospital disc. I'll tell you here what arrived. When you're done there, press "
    "Done here."
)


def current_item(state: ConversationState) -> ChecklistItem | None:
    items = checklist_for(state.draft.area)
    cursor = state.draft.record_cursor
    return items[cursor] if 0 <= cursor < len(items) else None


def item_title(item: ChecklistItem, t: Translator) -> str:
    """The item's name, with the Chinese term hospital staff use (unless read in Chinese)."""
    label = t(item.label)
    return label if t.locale.startswith("zh") else f"{label} ({item.term_zh})"


def _record(state: ConversationState, item_id: str) -> RecordItem:
    return state.draft.records.setdefault(item_id, RecordItem())


def _advance(state: ConversationState) -> Outcome:
    state.draft.record_cursor += 1
    if current_item(state) is None:
        return Outcome(goto="readiness")
    return Outcome(goto="records")


def _records_prompt(state: ConversationState, t: Translator) -> str:
    item = current_item(state)
    if item is None:
        return t("All record items are answered.")
    total = len(checklist_for(state.draft.area))
    lines = [
        t(
            "Records, item {number} of {total}:",
            number=state.draft.record_cursor + 1,
            total=total,
        ),
        item_title(item, t),
        t(item.hint),
    ]
    if item.id in critical_items(state.draft.area):
        lines.append(t("Specialists need this one to review your case."))
    lines += ["", t("Do you have it?")]
    return "\n".join(lines)


def _records_choices(state: ConversationState) -> tuple[Choice, ...]:
    if current_item(state) is None:
        return (Choice("next", N_("Continue")),)
    return (
        Choice("upload", N_("Send it now")),
        Choice("later", N_("I'll get it later")),
        Choice("not_applicable", N_("Doesn't apply")),
    )


def _records_choice(state: ConversationState, choice: str, ctx: Context) -> Outcome:
    item = current_item(state)
    if item is None:
        return Outcome(goto="readiness")
    if choice == "upload":
        return Outcome(goto="records_upload")
    if choice in ("later", "not_applicable"):
        _record(state, item.id).status = choice  # type: ignore[assignment]
    return _advance(state)


def accept_files(
    state: ConversationState, item_id: str, files: tuple[FileRef, ...], ctx: Context, t: Translator
) -> Outcome:
    """Attach files to a checklist item (or to the unsorted pile) and ask for them to be stored."""
    assert state.draft.case_id is not None  # only reachable after consent
    already = sum(len(r.files) for r in state.draft.records.values()) + len(
        state.draft.unsorted_files
    )
    notes: list[str] = []
    received: list[str] = []
    effects = []
    for file in files:
        if already >= MAX_FILES_PER_CASE:
            notes.append(
                t(
                    "This case already has {count} files, the most I can take here. A "
                    "coordinator will help with anything more.",
                    count=MAX_FILES_PER_CASE,
                )
            )
            break
        already += 1
        record_file = RecordFile(file_id=ctx.new_id(), name=file.name, size=file.size)
        if item_id:
            _record(state, item_id).files.append(record_file)
        else:
            state.draft.unsorted_files.append(record_file)
        effects.append(
            IngestFile(
                file_id=record_file.file_id, case_id=state.draft.case_id, item=item_id, file=file
            )
        )
        received.append(file.name or t("a file"))
    if state.album:
        # Another part of an album: its acknowledgement replaces the earlier one, so it
        # names every file the album brought.
        state.album_received += received
        received = list(state.album_received)
    if len(received) > LIST_RECEIVED_UP_TO:
        notes.insert(
            0, t.plural("Received {count} file.", "Received {count} files.", len(received))
        )
    else:
        notes[:0] = [t("Received: {name}", name=name) for name in received]
    return Outcome(notes=["\n".join(notes)], effects=list(effects), prompt=False)


def _upload_files(
    state: ConversationState, files: tuple[FileRef, ...], ctx: Context, t: Translator
) -> Outcome:
    item = current_item(state)
    outcome = accept_files(state, item.id if item else "", files, ctx, t)
    outcome.notes.append(t("Send more files, or press Done when this item is complete."))
    return outcome


def _upload_prompt(state: ConversationState, t: Translator) -> str:
    item = current_item(state)
    label = t(item.label) if item else ""
    return t(
        "Please send the files for: {item}\n\nYou can send several. Press Done when you have "
        "sent everything for this item.",
        item=label,
    )


def _upload_choice(state: ConversationState, choice: str, ctx: Context) -> Outcome:
    item = current_item(state)
    if item is None:
        return Outcome(goto="readiness")
    record = _record(state, item.id)
    if choice == "upload_page":
        note = translator(state.locale)(UPLOAD_PAGE_NOTE)
        return Outcome(notes=[note], upload_link=True, prompt=False)
    if choice == "done":
        record.status = "uploaded" if record.files else "later"
        return _advance(state)
    return Outcome(goto="records")


RECORDS = Step(
    id="records",
    description=CHECKLIST_DESCRIPTION,
    prompt=_records_prompt,
    choices=_records_choices,
    on_choice=_records_choice,
    edges=("records_upload", "records", "readiness"),
    section="records",
)

RECORDS_UPLOAD = Step(
    id="records_upload",
    description=CHECKLIST_DESCRIPTION,
    prompt=_upload_prompt,
    choices=(
        Choice("done", N_("Done")),
        Choice("upload_page", N_("Big files or a disc: get an upload link")),
        Choice("back_to_item", N_("Not now")),
    ),
    on_choice=_upload_choice,
    on_files=_upload_files,
    edges=("records", "readiness"),
    section="records",
)


def draft_readiness(state: ConversationState) -> Readiness:
    statuses = {
        item_id: _status(item_id, record) for item_id, record in state.draft.records.items()
    }
    return readiness(state.draft.area, statuses)


def _status(item_id: str, record: RecordItem) -> str:
    """Photos alone where scans are asked for: sent, but not yet what specialists need."""
    photos_only = record.files and all(file.kind == "image" for file in record.files)
    if item_id == "imaging" and record.status == "uploaded" and photos_only:
        return "partial"
    return record.status


def readiness_text(state: ConversationState, t: Translator) -> str:
    result = draft_readiness(state)
    lines = [t("Readiness of your records for review: {score}%", score=result.score)]
    if result.missing_critical:
        lines += ["", t("Still missing, and needed for a review:")]
        for item in result.missing_critical:
            lines += [
                f"• {item_title(item, t)}",
                "  " + t(item.how_to_get),
                "  " + t("You can show this sentence to hospital staff:"),
                f"  {item.request_zh}",
            ]
    if result.partial:
        lines += ["", t("You sent photos of these; specialists need the original files:")]
        lines += [f"• {t(item.label)}" for item in result.partial]
    if result.later:
        lines += ["", t("You said you'll get these later:")]
        lines += [f"• {t(item.label)}" for item in result.later]
    if not result.missing_critical and not result.later and not result.partial:
        lines += ["", t("Thank you, that's everything on the list.")]
    return "\n".join(lines)


READINESS = Step(
    id="readiness",
    description=CHECKLIST_DESCRIPTION,
    prompt=readiness_text,
    choices=(Choice("continue", N_("Continue to review"), goto="review"),),
    edges=("review",),
    section="records",
)

STEPS = (RECORDS, RECORDS_UPLOAD, READINESS)

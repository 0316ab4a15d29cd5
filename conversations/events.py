"""The contract between channels and the core.

An adapter turns one platform update into one `Inbound` and renders `Outbound` replies back.
Nothing here knows any platform. Options carry stable ids; translated labels are only for
display, so routing never depends on the words a user sees.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class InboundKind(StrEnum):
    TEXT = "text"
    COMMAND = "command"
    CHOICE = "choice"
    FILES = "files"
    # Produced by the core itself (for example when a background job finishes) and fed
    # back through the same engine, so every change of a conversation takes one path.
    SYSTEM = "system"
    # Something Huizhen does not read (a voice message, a sticker, a location, an edit):
    # `content` says what, so the patient hears why it was not used.
    OTHER = "other"


class Content(StrEnum):
    """What an OTHER inbound carried."""

    RECORDING = "recording"  # a voice message, a video message: made in the chat, not a record
    AUDIO = "audio"  # an audio file: could be a record
    VIDEO = "video"  # a video file: could be a record (a scan filmed on a screen)
    STICKER = "sticker"
    LOCATION = "location"
    CONTACT = "contact"
    EDITED = "edited"  # a message edited after it was sent


# The FileRef source of a file in Huizhen's own store (a preview, an opinion), whatever the
# channel. A file that arrived through the upload page is `storage.uploads.UPLOAD_SOURCE`.
STORE_SOURCE = "store:"


class FileRef(BaseModel):
    """A file the user sent, as the channel can fetch it again later.

    `source` is channel-specific (a path on the console, a file id on Telegram); only the
    channel's file opener interprets it.
    """

    model_config = ConfigDict(frozen=True)

    source: str
    name: str = ""
    size: int | None = None
    mime_type: str | None = None
    # More than this channel can hand over (Telegram's 20 MB): it needs the upload link.
    too_large: bool = False
    caption: str = ""
    # Where it sat in a folder the patient sent ("CD/DICOM/IM0001"), "" for a single file.
    path: str = ""


class Inbound(BaseModel):
    model_config = ConfigDict(frozen=True)

    channel: str
    user_key: str
    chat_key: str
    update_key: str
    kind: InboundKind
    text: str = ""
    command: str = ""
    args: str = ""
    choice_id: str = ""
    # The platform's id of the message a pressed button was on, so the reply can edit it.
    message_ref: str = ""
    # Which prompt a pressed option belonged to, so a stale button can be recognised.
    prompt_ref: str = ""
    files: tuple[FileRef, ...] = ()
    language_hint: str | None = None
    system: dict[str, str] = Field(default_factory=dict)
    content: Content | None = None
    # The files were sent together as one album (Telegram's media_group_id): by webhook its
    # parts arrive one by one, and are acknowledged as one message.
    album: str = ""


class Option(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    label: str


class UploadLinkRequest(BaseModel):
    """A secure upload link for the case, added to the message when it is delivered (so the
    link itself is never stored: only its hash is)."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    # Filled in by the pipeline from the update: whose conversation the uploads go to.
    user_key: str = ""


class Outbound(BaseModel):
    model_config = ConfigDict(frozen=True)

    text: str
    options: tuple[Option, ...] = ()
    # Identifies the prompt the options answer; channels echo it back as Inbound.prompt_ref.
    prompt_ref: str = ""
    files: tuple[FileRef, ...] = ()
    upload_link: UploadLinkRequest | None = None
    # The question waits for files: channels say how to send one (a path on the console).
    expects_files: bool = False
    # Replace an earlier message (by its outbox message key) instead of sending a new one.
    edit_of: str | None = None
    # Messages sharing this key are one message on screen, edited in place as it changes
    # (progress while files are checked); delivery sends only the newest pending one.
    replace_key: str | None = None
    # Right-to-left scripts and similar rendering hints travel with the text.
    locale: str = "en"


class CoordinatorNotice(BaseModel):
    """Something coordinators must see; rendered by whichever coordinator channel is set."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    case_ref: str
    text: str
    # The case's card, when the case itself is gone (erased): the card is replaced by `text`.
    card_ref: str = ""

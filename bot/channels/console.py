"""The console channel: the whole intake in a terminal, no account needed.

Options are numbered; typing a number presses that button. A line that is the path of an
existing file sends that file; the path of a folder sends every file under it, as one batch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import uuid
from pathlib import Path
from typing import BinaryIO, TextIO

from bot.app import App, read_stored
from conversations.channels import CONSOLE
from conversations.events import CoordinatorNotice, FileRef, Inbound, InboundKind, Option, Outbound
from conversations.i18n import translator
from conversations.state import ConversationKey
from handlers.updates.failure import apology

CHANNEL = CONSOLE.name
log = logging.getLogger(__name__)


def _as_path(line: str) -> Path | None:
    """A typed or dragged-in path (terminals quote paths with spaces), if it names a file or
    a folder."""
    text = line.strip()
    try:
        parts = shlex.split(text)
    except ValueError:
        parts = [text]
    if len(parts) != 1:
        return None
    candidate = Path(parts[0]).expanduser()
    try:
        return candidate.resolve() if candidate.is_file() or candidate.is_dir() else None
    except OSError:
        return None


def _folder_files(folder: Path) -> tuple[FileRef, ...]:
    """Every file under `folder` (a hospital disc copied to the computer), in path order,
    each with where it sat; links are not followed, hidden files (.DS_Store) left out."""
    refs = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_symlink() or not path.is_file():
            continue
        refs.append(
            FileRef(
                source=str(path),
                name=path.name,
                size=path.stat().st_size,
                path=f"{folder.name}/{relative.as_posix()}",
            )
        )
    return tuple(refs)


class ConsoleChannel:
    """Adapter between a terminal and the pipeline; it holds the core, it is not part of it."""

    def __init__(
        self,
        app: App,
        output: TextIO,
        user_key: str = "local",
        language_hint: str | None = None,
    ) -> None:
        self.app = app
        self.output = output
        self.user_key = user_key
        self.language_hint = language_hint
        self._options: tuple[Option, ...] = ()
        self._prompt_ref = ""

    # --- inbound ---------------------------------------------------------------------------

    def to_inbound(self, line: str) -> Inbound | None:
        text = line.strip()
        if not text:
            return None
        base = {
            "channel": CHANNEL,
            "user_key": self.user_key,
            "chat_key": self.user_key,
            "update_key": uuid.uuid4().hex,
            "language_hint": self.language_hint,
        }
        # A path first: "/home/me/scan.dcm" is a file, not a command.
        path = _as_path(text)
        if path is not None and path.is_dir():
            # A folder is sent whole, as one batch, like a disc's folder on the upload page.
            files = _folder_files(path)
            if files:
                return Inbound(**base, kind=InboundKind.FILES, files=files)
        elif path is not None:
            file = FileRef(source=str(path), name=path.name, size=path.stat().st_size)
            return Inbound(**base, kind=InboundKind.FILES, files=(file,))
        if text.startswith("/"):
            command, _, args = text[1:].partition(" ")
            return Inbound(**base, kind=InboundKind.COMMAND, command=command, args=args.strip())
        if text.isdigit() and 1 <= int(text) <= len(self._options):
            option = self._options[int(text) - 1]
            return Inbound(
                **base, kind=InboundKind.CHOICE, choice_id=option.id, prompt_ref=self._prompt_ref
            )
        return Inbound(**base, kind=InboundKind.TEXT, text=text)

    def submit(self, line: str) -> None:
        inbound = self.to_inbound(line)
        if inbound is None:
            return
        try:
            self.app.pipeline.handle(inbound)
            asyncio.run(self.app.after_update({CHANNEL: self}, {CHANNEL: self}, self))
        except Exception as error:
            # The transaction rolled back: nothing half-stored. Say so kindly; log no content.
            log.error("console update failed: %s", type(error).__name__)
            self.show(apology(self._locale()))

    def _locale(self) -> str:
        try:
            state = self.app.pipeline.state_of(ConversationKey(CHANNEL, self.user_key))
        except Exception:
            state = None
        return state.locale if state else self.app.settings.default_locale

    # --- outbound (ReplySender, CoordinatorSink, FileOpener) -------------------------------

    async def send(self, chat_key: str, message: Outbound) -> str | None:
        self.show(message)
        return None

    def show(self, message: Outbound) -> None:
        lines = [message.text]
        t = translator(message.locale)
        for picture in message.files:
            path = self._save_picture(picture.source, picture.name)
            lines.append(t("(A file, saved for you to open: {path})", path=str(path)))
        if message.options:
            self._options = message.options
            self._prompt_ref = message.prompt_ref
            lines += [f"  {i}) {option.label}" for i, option in enumerate(message.options, 1)]
        if message.expects_files:
            lines.append(t("(To send a file, type its full path and press Enter.)"))
        self.output.write("\n".join(lines) + "\n\n")
        self.output.flush()

    def _save_picture(self, source: str, name: str) -> Path:
        """The console cannot show a picture or a document: it is written where the person at
        the terminal can open it (their own machine; a platform channel sends it instead)."""
        sha256 = source.rsplit(":", 1)[-1]
        return self.app.delivered.save(sha256, name, read_stored(self.app, source))

    async def notify(self, notice: CoordinatorNotice) -> None:
        self.output.write(f"[coordinators] {notice.text}\n\n")
        self.output.flush()

    def open(self, source: str) -> BinaryIO:
        return open(source, "rb")

    # --- the loop --------------------------------------------------------------------------

    def run(self, input_stream: TextIO) -> None:
        self.submit("/start")
        self.output.write("> ")
        self.output.flush()
        for line in input_stream:
            if line.strip() in ("/quit", "/exit"):
                break
            self.submit(line)
            self.output.write("> ")
            self.output.flush()
        self.output.write("\n")


# What a system says when nobody chose a language (containers ship LANG=C.UTF-8): no hint,
# so DEFAULT_LOCALE decides. Babel reads "C" and "POSIX" as English.
GENERIC_LOCALES = frozenset({"C", "POSIX"})


def console_language_hint() -> str | None:
    """The terminal's language (LANG=zh_CN.UTF-8 -> zh_CN) as a first guess, the first of
    LC_ALL, LC_MESSAGES and LANG that is set, as the C library reads them."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name, "").strip()
        if value:
            language = value.split(".")[0].split("@")[0]
            return None if language in GENERIC_LOCALES or not language else language
    return None

"""The fuzzing targets and their checks: run by tests/test_fuzzing.py and tests/fuzz_atheris.py."""

from __future__ import annotations

import functools
import hashlib
import io
import stat
import tarfile
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import pytest
import xmltodict  # type: ignore[import-untyped]
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

from bot.channels.telegram import PtbClient
from bot.channels.telegram_aiogram import AiogramClient
from bot.channels.telegram_base import (
    CLOUD_DOWNLOAD_LIMIT,
    Incoming,
    TelegramClient,
    UnreadableUpdate,
    read_update,
)
from bot.channels.wechat import BadSignature, WebhookCodec, describe, parse, text_reply
from bot.channels.wechat import Incoming as WeChatIncoming
from conversations.events import Content, Inbound, InboundKind
from records.archives import ArchiveRejected, open_archive, safe_member_path
from records.classify import FileKind
from records.dicom import (
    DicomDirIndex,
    DicomInstance,
    DicomProblem,
    DicomUnreadable,
    read_dicomdir,
    read_instance,
)
from tests.dicom_factory import (
    uid,
    write_deep_sequence,
    write_dicomdir,
    write_instance,
    write_report,
)


def storable(inbound: Inbound) -> None:
    """What the core keeps of an update is JSON in UTF-8: every string must encode."""
    assert Inbound.model_validate_json(inbound.model_dump_json()) == inbound


TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
A_REAL_UPDATE = {
    "update_id": 10_000,
    "message": {
        "message_id": 7,
        "date": 1_700_000_000,
        "chat": {"id": 42, "type": "private"},
        "from": {"id": 42, "is_bot": False, "first_name": "Li", "language_code": "zh-hans"},
        "document": {
            "file_id": "BQACAgIAAxkBAAIB",
            "file_unique_id": "AgADBQ",
            "file_name": "CT.zip",
            "file_size": 1234,
            "mime_type": "application/zip",
        },
        "caption": "my scan",
    },
}


@functools.cache
def telegram_client(library: str) -> TelegramClient:
    # Neither library talks to the Bot API until asked to: reading updates is offline.
    if library == "ptb":
        return PtbClient(TOKEN, "http://127.0.0.1:9")
    return AiogramClient(TOKEN, "http://127.0.0.1:9")


def read_or_refuse(client: TelegramClient, body: bytes) -> Incoming | None:
    """What the webhook (bot/web.py) makes of a body: the update, or None when it answers 400
    (UnreadableUpdate). Anything else would be a 500, and Telegram would send the same body
    again and again: it escapes and fails the test."""
    try:
        return read_update(client, body)
    except UnreadableUpdate:
        return None


def check_incoming(incoming: Incoming | None) -> None:
    if incoming is None or incoming.inbound is None:
        return
    inbound = incoming.inbound
    assert inbound.channel == "telegram"
    assert inbound.update_key == str(incoming.update_id)
    assert inbound.kind in (
        InboundKind.TEXT,
        InboundKind.COMMAND,
        InboundKind.CHOICE,
        InboundKind.FILES,
        InboundKind.OTHER,  # what is not read: a voice message, a sticker, an edit...
    )
    assert (inbound.kind == InboundKind.OTHER) == (inbound.content is not None)
    # Files come with FILES, and with an audio or video file (kept at the records step).
    may_carry = inbound.kind == InboundKind.FILES or inbound.content in (
        Content.AUDIO,
        Content.VIDEO,
    )
    assert bool(inbound.files) <= may_carry
    assert (inbound.kind == InboundKind.FILES) <= bool(inbound.files)
    if incoming.callback_query_id is not None:
        assert inbound.kind == InboundKind.CHOICE
    for file in inbound.files:
        assert file.too_large == (file.size is not None and file.size > CLOUD_DOWNLOAD_LIMIT)
    storable(inbound)


def mutated(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    """`data` with each (position, byte) written over it (positions wrap around)."""
    out = bytearray(data)
    for position, value in flips:
        if out:
            out[position % len(out)] = value
    return bytes(out)


AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeChat issues
WECHAT_TOKEN = "huizhen-webhook-token"
APP_ID = "wx51d0c0ffee5eed01"
CODEC = WebhookCodec(WECHAT_TOKEN, APP_ID, AES_KEY)
# Plain mode: in safe mode a plain body is refused before it is read at all.
PLAIN_CODEC = WebhookCodec(WECHAT_TOKEN, APP_ID, None)
# What wechat_runtime.receive answers 403 or 400 for; anything else would be a 500.
UNREADABLE_MESSAGE = (BadSignature, ValueError, KeyError)


def read_message(body: bytes, query: dict[str, str]) -> WeChatIncoming | None:
    """What the webhook does with a body (wechat_runtime.receive): open, parse, describe, and
    render the passive reply; None when it is refused as unreadable."""
    try:
        message = parse(CODEC.open(body, query))
        incoming = describe(message)
    except UNREADABLE_MESSAGE:
        return None
    reply = text_reply(message, "好的 ]]> <b>&amp;</b>")
    assert xmltodict.parse(reply)["xml"]["Content"] == "好的 ]]> <b>&amp;</b>"
    return incoming


def check_wechat(incoming: WeChatIncoming | None) -> None:
    if incoming is None:
        return
    assert incoming.update_key.startswith(("msg:", "event:"))
    inbound = incoming.inbound
    if inbound is None:
        return
    assert inbound.channel == "wechat"
    assert inbound.user_key == inbound.chat_key == incoming.openid != ""
    assert inbound.kind in (InboundKind.TEXT, InboundKind.COMMAND, InboundKind.FILES)
    storable(inbound)


def wechat_xml(**fields: str) -> bytes:
    base = {"ToUserName": "gh_huizhen", "FromUserName": "o-li", "CreateTime": "1700000000"}
    return (
        "<xml>" + "".join(f"<{k}>{v}</{k}>" for k, v in {**base, **fields}.items()) + "</xml>"
    ).encode()


SPECIAL_KINDS = ("symlink", "hardlink", "fifo", "chardev")
KiB = 1024


@dataclass(frozen=True)
class Spec:
    """One member to write: a regular file, a folder, a link or a device."""

    name: str
    kind: str
    data: bytes = b""


@dataclass(frozen=True)
class ArchiveCase:
    members: tuple[Spec, ...]
    format: str
    flips: tuple[tuple[int, int], ...] = ()
    cut: int | None = None  # truncated at this position (wrapping around)

    @property
    def kind(self) -> FileKind:
        return FileKind.ZIP if self.format.startswith("zip") else FileKind.TAR

    @property
    def damaged(self) -> bool:
        return bool(self.flips) or self.cut is not None

    def intact(self) -> bytes:
        return _zip_bytes(self) if self.kind is FileKind.ZIP else _tar_bytes(self)

    def bytes(self) -> bytes:
        data = mutated(self.intact(), list(self.flips))
        return data[: self.cut % (len(data) + 1)] if self.cut is not None else data

    def is_file(self, spec: Spec) -> bool:
        # Zip readers take a name ending in "/" for a folder; tar readers go by the type.
        return spec.kind == "file" and not (self.kind is FileKind.ZIP and spec.name.endswith("/"))

    def must_be_refused(self) -> bool:
        """A link or a device, a file named to escape, or bzip2 (read without a bound)."""
        for spec in self.members:
            if spec.kind in SPECIAL_KINDS:
                return True
            if self.is_file(spec) and (
                safe_member_path(spec.name) is None or self.format == "zip-bzip2"
            ):
                return True
        return False

    def expected_files(self) -> list[tuple[str, str]] | None:
        """(path, sha256) of every file as it must come out, in order; None when that is not
        plain from the specs (anything refused, or a folder named to escape)."""
        folders = [spec.name + "/" for spec in self.members if not self.is_file(spec)]
        if self.must_be_refused() or any(
            safe_member_path(name) is None and not _is_archive_root(name) for name in folders
        ):
            return None
        return [
            (str(safe_member_path(spec.name)), hashlib.sha256(spec.data).hexdigest())
            for spec in self.members
            if self.is_file(spec)
        ]


def _is_archive_root(name: str) -> bool:
    return not name.startswith(("/", "\\")) and all(
        part in ("", ".") for part in name.replace("\\", "/").split("/")
    )


ZIP_MODES = {
    "file": stat.S_IFREG | 0o644,
    "dir": stat.S_IFDIR | 0o755,
    "symlink": stat.S_IFLNK | 0o777,
    "hardlink": stat.S_IFLNK | 0o777,  # zip has no hard links
    "fifo": stat.S_IFIFO | 0o644,
    "chardev": stat.S_IFCHR | 0o644,
}


ZIP_METHODS = {"zip": zipfile.ZIP_DEFLATED, "zip-stored": zipfile.ZIP_STORED}
TAR_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "fifo": tarfile.FIFOTYPE,
    "chardev": tarfile.CHRTYPE,
}


TAR_MODES: dict[str, Literal["w", "w:gz", "w:bz2", "w:xz"]] = {
    "tar": "w",
    "gnutar": "w",
    "tar.gz": "w:gz",
    "tar.bz2": "w:bz2",
    "tar.xz": "w:xz",
}


def _zip_bytes(case: ArchiveCase) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name": wanted here
        with zipfile.ZipFile(buffer, "w") as archive:
            for spec in case.members:
                folder = spec.kind == "dir" and not spec.name.endswith("/")
                name = spec.name + "/" if folder else spec.name
                info = zipfile.ZipInfo(name)
                info.create_system = 3  # Unix: the mode below is read
                info.external_attr = ZIP_MODES[spec.kind] << 16
                info.compress_type = ZIP_METHODS.get(case.format, zipfile.ZIP_BZIP2)
                data = b"../../etc/passwd" if spec.kind in ("symlink", "hardlink") else spec.data
                archive.writestr(info, data if spec.kind != "dir" else b"")
    return buffer.getvalue()


def _tar_bytes(case: ArchiveCase) -> bytes:
    buffer = io.BytesIO()
    form = tarfile.GNU_FORMAT if case.format == "gnutar" else tarfile.PAX_FORMAT
    with tarfile.open(fileobj=buffer, mode=TAR_MODES[case.format], format=form) as archive:
        for spec in case.members:
            info = tarfile.TarInfo(spec.name)
            info.type = TAR_TYPES[spec.kind]
            if spec.kind in ("symlink", "hardlink"):
                info.linkname = "../../etc/passwd"
            if spec.kind == "file":
                info.size = len(spec.data)
                archive.addfile(info, io.BytesIO(spec.data))
            else:
                archive.addfile(info)
    return buffer.getvalue()


@dataclass(frozen=True)
class Unpacked:
    files: list[tuple[str, str]]  # (path, sha256) as the members came out
    refused: ArchiveRejected | None = None


def unpack_all(data: bytes, kind: FileKind) -> Unpacked:
    """Every member read as the caller reads it (in chunks, one after the other); only
    ArchiveRejected is expected, from opening, iterating or reading."""
    files: list[tuple[str, str]] = []
    try:
        for member, stream in open_archive(io.BytesIO(data), kind, len(data)):
            digest = hashlib.sha256()
            while chunk := stream.read(64 * KiB):
                digest.update(chunk)
            files.append((member.path, digest.hexdigest()))
    except ArchiveRejected as refused:
        return Unpacked(files, refused)
    return Unpacked(files)


PYDICOM_FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_expb.dcm",
    "ExplVR_BigEndNoMeta.dcm",
    "ExplVR_LitEndNoMeta.dcm",
    "image_dfl.dcm",
    "rtplan.dcm",
    "rtstruct.dcm",
    "reportsi.dcm",
    "test-SR.dcm",
    "badVR.dcm",
    "JPEG2000-embedded-sequence-delimiter.dcm",
    "MR_small_RLE.dcm",
    "SC_rgb_small_odd_big_endian.dcm",
    "rtdose_1frame.dcm",
    "DICOMDIR",
]


FACTORY_FILES = ("ct", "ct-implicit-no-preamble", "ct-big-endian", "report", "dicomdir", "deep")
DICOM_SEEDS = PYDICOM_FILES + list(FACTORY_FILES)


@functools.cache
def dicom_seed(name: str) -> bytes:
    """The bytes of one file fuzzing starts from: pydicom's bundled test files (all local)
    and files written by tests/dicom_factory.py."""
    if name in PYDICOM_FILES:
        found = get_testdata_file(name)
        assert isinstance(found, str), f"{name} is not bundled with pydicom"
        return Path(found).read_bytes()
    with tempfile.TemporaryDirectory() as folder:
        return _factory_file(Path(folder), name).read_bytes()


def _factory_file(folder: Path, name: str) -> Path:
    study, series, sop = uid("fuzz:study"), uid("fuzz:series"), uid("fuzz:1")

    def ct(path: Path, **options: Any) -> Path:
        return write_instance(
            path, study_uid=study, series_uid=series, sop_uid=sop, rows=16, cols=16, **options
        )

    if name == "ct":
        return ct(folder / "ct")
    if name == "ct-implicit-no-preamble":
        return ct(folder / "ct", preamble=False, transfer_syntax=ImplicitVRLittleEndian)
    if name == "ct-big-endian":
        return ct(folder / "ct", transfer_syntax=ExplicitVRBigEndian)
    if name == "report":
        return write_report(folder / "sr", study_uid=study, series_uid=series, sop_uid=sop)
    if name == "dicomdir":
        (folder / "DICOM").mkdir()
        image = ct(folder / "DICOM" / "IM1")
        return write_dicomdir(folder, [image], extra_references=[("..", "etc", "passwd")])
    assert name == "deep"
    return write_deep_sequence(folder / "deep", 60)


def inspect_dicom(data: bytes, on_disk: bool) -> list[object]:
    """What the worker learns of a file (handlers/ingest/analysis.py): an instance, a DICOMDIR's
    index, or a problem code; nothing else may come out of it."""
    outcomes: list[object] = []
    for reader in (read_instance, read_dicomdir):
        with tempfile.TemporaryFile() if on_disk else io.BytesIO() as stream:
            stream.write(data)
            stream.seek(0)
            try:
                outcomes.append(reader(stream))
            except DicomUnreadable as error:
                outcomes.append(DicomProblem(error.problem))
    return outcomes


def check_dicom(outcome: object) -> None:
    if isinstance(outcome, DicomInstance):
        # A file with the DICM preamble and readable headers is a scan even without usable
        # UIDs (anonymised discs), so an instance may come with none.
        for value in (outcome.sop_uid, outcome.study_uid, outcome.series_uid):
            # Anonymisers write hex, letters or long UIDs: any printable one is kept.
            assert value == "" or (len(value) <= 256 and value.isprintable())
        assert outcome.frames >= 1
        for side in (outcome.rows, outcome.columns):
            assert side is None or 0 <= side <= 0xFFFF
        assert not outcome.is_image or (outcome.rows and outcome.columns)
    elif isinstance(outcome, DicomDirIndex):
        for path in outcome.referenced:  # inside the DICOMDIR's folder
            for part in path.split("/"):
                assert part not in ("", ".", "..") and not set(part) & set(":\\\x00"), path
        assert min(outcome.unsafe_references, outcome.studies, outcome.series) >= 0
    else:
        assert isinstance(outcome, DicomProblem)


def refused(reader: Callable[[BinaryIO], object], stream: BinaryIO) -> None:
    with pytest.raises(DicomUnreadable):
        reader(stream)

"""Fuzzing the four parsers that read what strangers send: Telegram updates, WeChat XML,
zip and tar archives, and DICOM headers.

Each target gets well-formed-ish inputs built from the real field names and formats (so the
fuzzing reaches past the first check) and plain garbage. For every input: only the errors the
callers expect, at most DEADLINE per input and at most MEMORY_CAP allocated (the peak
`tracemalloc` sees while the input is handled).

`HUIZHEN_FUZZ_EXAMPLES=5000` runs that many examples per test instead of the quick default;
`HUIZHEN_FUZZ_REPORT=path.json` writes the figures (inputs, slowest, largest) per target.
tests/fuzz_atheris.py runs the same targets and checks coverage-guided, for long runs by hand.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import socket
import struct
import tempfile
import time
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from xml.sax.saxutils import escape

import pytest
import xmltodict  # type: ignore[import-untyped]
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.channels.telegram_base import (
    CLOUD_DOWNLOAD_LIMIT,
    UnreadableUpdate,
    encode_callback,
    read_update,
)
from bot.channels.wechat import BadSignature, describe, parse
from bot.channels.wechat_runtime import MAX_BODY_BYTES
from handlers.ingest.analysis import AnalysisRequest, StoreAccess, analyse
from records.archives import ArchiveProblem, ArchiveRejected, open_archive, safe_member_path
from records.classify import FileKind
from records.dicom import (
    DicomDirIndex,
    DicomInstance,
    DicomProblem,
    DicomUnreadable,
    read_dicomdir,
    read_instance,
)
from storage.files import FileStore
from tests.support.fuzz_checks import (
    A_REAL_UPDATE,
    CODEC,
    DICOM_SEEDS,
    PLAIN_CODEC,
    SPECIAL_KINDS,
    WECHAT_TOKEN,
    ArchiveCase,
    KiB,
    Spec,
    check_dicom,
    check_incoming,
    check_wechat,
    dicom_seed,
    inspect_dicom,
    mutated,
    read_message,
    read_or_refuse,
    refused,
    storable,
    telegram_client,
    unpack_all,
    wechat_xml,
)

T = TypeVar("T")
MiB = 1024**2
EXAMPLES = int(os.environ.get("HUIZHEN_FUZZ_EXAMPLES", "0"))
DEADLINE = timedelta(seconds=2)  # generous: a loaded two-core CI machine
MEMORY_CAP = 64 * MiB

# Hangs are caught by the deadline only once an input finishes; this ends a real one.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300 + 4 * EXAMPLES)]


def fuzz(default_examples: int, deadline: timedelta = DEADLINE) -> settings:
    return settings(
        max_examples=EXAMPLES or default_examples,
        deadline=deadline,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


# --- time and memory per input ---------------------------------------------------------------


@dataclass
class Figures:
    inputs: int = 0
    slowest: float = 0.0  # seconds
    largest: int = 0  # bytes, tracemalloc's peak

    def as_dict(self) -> dict[str, float]:
        return {
            "inputs": self.inputs,
            "max_seconds": round(self.slowest, 4),
            "max_mib": round(self.largest / MiB, 2),
        }


FIGURES: dict[str, Figures] = {}


def measured(target: str, work: Callable[[], T]) -> T:
    """`work()`, with its time and peak allocation recorded for `target` and the memory cap
    enforced. Exceptions pass through (after recording): the test decides which are expected."""
    figures = FIGURES.setdefault(target, Figures())
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    baseline = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    try:
        return work()
    finally:
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] - baseline
        if not was_tracing:
            tracemalloc.stop()
        figures.inputs += 1
        figures.slowest = max(figures.slowest, elapsed)
        figures.largest = max(figures.largest, peak)
        assert peak <= MEMORY_CAP, f"{target}: {peak / MiB:.1f} MiB for one input"


@pytest.fixture(scope="module", autouse=True)
def _report_figures(request: pytest.FixtureRequest) -> Iterator[None]:
    """The figures per target, on the terminal and, with HUIZHEN_FUZZ_REPORT, in a file."""
    yield
    report = {target: figures.as_dict() for target, figures in sorted(FIGURES.items())}
    path = os.environ.get("HUIZHEN_FUZZ_REPORT")
    if path:
        Path(path).write_text(json.dumps(report, indent=2) + "\n")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.ensure_newline()
            for target, figures in report.items():
                reporter.write_line(f"fuzz {target}: {json.dumps(figures)}")


# --- 1. Telegram updates -----------------------------------------------------------------------


TELEGRAM_FIELDS = [
    "update_id",
    "message",
    "edited_message",
    "channel_post",
    "callback_query",
    "message_id",
    "from",
    "chat",
    "id",
    "is_bot",
    "first_name",
    "last_name",
    "username",
    "language_code",
    "type",
    "title",
    "date",
    "text",
    "caption",
    "document",
    "photo",
    "file_id",
    "file_unique_id",
    "file_size",
    "file_name",
    "mime_type",
    "width",
    "height",
    "media_group_id",
    "data",
    "chat_instance",
    "inline_message_id",
    "entities",
    "caption_entities",
    "offset",
    "length",
    "url",
    "reply_to_message",
    "sender_chat",
    "sticker",
    "voice",
    "video",
    "contact",
    "location",
]

lone_surrogates = st.integers(min_value=0xD800, max_value=0xDFFF).map(chr)
words = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["/start", "/start@HuizhenBot clinic-7", "/", "/@", " /help ", "|", "q|yes"]),
    # JSON can escape half of a surrogate pair ("\\ud83d"); json.loads keeps it as it is.
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=8), lone_surrogates, st.text(max_size=8)),
)
big_ints = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63),
    st.sampled_from([0, -1, 2**31, 2**53 + 1, 10**30, -(10**30)]),
)
json_leaves = st.one_of(
    st.none(), st.booleans(), big_ints, st.floats(allow_nan=True, allow_infinity=True), words
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(TELEGRAM_FIELDS) | st.text(max_size=6), inner, max_size=6),
    ),
    max_leaves=25,
)


languages = st.sampled_from(["en", "zh-hans", "ar", "pt-br", "", "xx-yy-zz"]) | st.text(max_size=8)
file_sizes = st.one_of(
    st.integers(min_value=-1, max_value=2**41),
    st.sampled_from([CLOUD_DOWNLOAD_LIMIT, CLOUD_DOWNLOAD_LIMIT + 1]),
)
callback_data = words | st.builds(encode_callback, st.text(max_size=30), st.text(max_size=30))


def telegram_updates(noisy: bool) -> st.SearchStrategy[dict[str, Any]]:
    """Updates shaped as the Bot API sends them; `noisy`: any field may hold any JSON value
    (one in four), and numbers may be out of range."""

    def obj(
        required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]]
    ) -> st.SearchStrategy[dict[str, Any]]:
        def value(right: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
            return st.one_of(right, right, right, json_values) if noisy else right

        return st.fixed_dictionaries(
            {name: value(right) for name, right in required.items()},
            optional={name: value(right) for name, right in optional.items()},
        )

    ids = big_ints if noisy else st.integers(min_value=-(10**13), max_value=10**13)
    dates = big_ints if noisy else st.integers(min_value=0, max_value=2**32)
    user = obj(
        {"id": ids, "is_bot": st.booleans(), "first_name": words},
        {"language_code": languages, "username": words, "last_name": words},
    )
    chat = obj(
        {"id": ids, "type": st.sampled_from(["private", "group", "supergroup", "channel"])},
        {"title": words, "username": words},
    )
    document = obj(
        {"file_id": words, "file_unique_id": words},
        {"file_name": words, "file_size": file_sizes, "mime_type": words},
    )
    photo_size = obj(
        {"file_id": words, "file_unique_id": words, "width": ids, "height": ids},
        {"file_size": file_sizes},
    )
    entity = obj(
        {"type": st.sampled_from(["bot_command", "mention", "url", "bold"]), "offset": ids},
        {"length": ids},
    )
    message = obj(
        {"message_id": ids, "date": dates, "chat": chat},
        {
            "from": user,
            "text": words,
            "caption": words,
            "document": document,
            "photo": st.lists(photo_size, max_size=3),
            "media_group_id": words,
            "entities": st.lists(entity, max_size=2),
            **({"reply_to_message": json_values} if noisy else {}),
        },
    )
    callback_query = obj(
        {"id": words, "from": user, "chat_instance": words},
        {"message": message, "data": callback_data, "inline_message_id": words},
    )
    return obj(
        {"update_id": ids},
        {
            "message": message,
            "edited_message": message,
            "channel_post": message,
            "callback_query": callback_query,
        },
    )


byte_flips = st.lists(
    st.tuples(st.integers(min_value=0, max_value=2**20), st.integers(0, 255)), max_size=8
)
update_bodies = st.one_of(
    telegram_updates(noisy=False).map(lambda update: json.dumps(update).encode()),
    telegram_updates(noisy=True).map(lambda update: json.dumps(update).encode()),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=512),
    byte_flips.map(lambda flips: mutated(json.dumps(A_REAL_UPDATE).encode(), flips)),
)


@pytest.mark.parametrize("library", ["ptb", "aiogram"])
@fuzz(500)
@given(body=update_bodies)
def test_any_webhook_body_is_read_or_refused_as_unreadable(library: str, body: bytes) -> None:
    client = telegram_client(library)
    incoming = measured(f"telegram/{library}", lambda: read_or_refuse(client, body))
    check_incoming(incoming)


def private_message(**fields: Any) -> dict[str, Any]:
    message = {
        "message_id": 1,
        "date": 1_700_000_000,
        "chat": {"id": 42, "type": "private"},
        "from": {"id": 42, "is_bot": False, "first_name": "Li"},
    }
    return {"update_id": 5, "message": {**message, **fields}}


@pytest.mark.parametrize("library", ["ptb", "aiogram"])
@pytest.mark.parametrize(
    "body",
    [
        b"null",
        b"[]",
        b"7",
        b'"update"',
        b"[" * 100_000,  # json.loads recurses: RecursionError, under the 1 MB body limit
        json.dumps(private_message(text=5)).encode(),
        json.dumps(private_message(date=10**30)).encode(),  # OverflowError
        json.dumps(private_message(date=67768036191676800)).encode(),  # OSError (EOVERFLOW)
        json.dumps(private_message(photo="not a list")).encode(),
        json.dumps({"update_id": 5, "callback_query": {"id": "1", "from": None}}).encode(),
    ],
)
def test_bodies_found_by_fuzzing_are_refused_as_unreadable(library: str, body: bytes) -> None:
    # Before: AttributeError, OverflowError, OSError or RecursionError, so a 500 and endless
    # resends from Telegram.
    with pytest.raises(UnreadableUpdate):
        read_update(telegram_client(library), body)


@pytest.mark.parametrize("library", ["ptb", "aiogram"])
def test_half_a_surrogate_pair_is_replaced_so_the_message_can_be_stored(library: str) -> None:
    body = json.dumps(private_message(text="cough \ud83d since May")).encode()
    assert b"\\ud83d" in body  # escaped in the JSON, as a sender may do
    incoming = read_update(telegram_client(library), body)
    assert incoming.inbound is not None
    assert incoming.inbound.text == "cough \ufffd since May"
    storable(incoming.inbound)


# --- 2. WeChat XML -----------------------------------------------------------------------------

WECHAT_TAGS = [
    "ToUserName",
    "FromUserName",
    "CreateTime",
    "MsgType",
    "Content",
    "MsgId",
    "MsgDataId",
    "Idx",
    "PicUrl",
    "MediaId",
    "Format",
    "Recognition",
    "ThumbMediaId",
    "Location_X",
    "Location_Y",
    "Scale",
    "Label",
    "Title",
    "Description",
    "Url",
    "Event",
    "EventKey",
    "Ticket",
    "Latitude",
    "Longitude",
    "Precision",
    "Encrypt",
]
MSG_TYPES = [
    "text",
    "image",
    "voice",
    "video",
    "shortvideo",
    "location",
    "link",
    "event",
    "file",
    "miniprogrampage",
    "device_text",
    "device_event",
    "TEXT",
    "Event",
    "",
]
EVENTS = [
    "subscribe",
    "unsubscribe",
    "SCAN",
    "scan",
    "CLICK",
    "click",
    "VIEW",
    "LOCATION",
    "TEMPLATESENDJOBFINISH",
    "view_miniprogram",
    "subscribe_msg_popup_event",
    "",
]
EVENT_KEYS = ["qrscene_clinic-7", "qrscene_", "scanbarcode|x", "scanimage|", "status", "/help"]
# Where an external entity would lead, filled in per test by the `trap` fixture.
TRAP_URL, TRAP_FILE = "{trap_url}", "{trap_file}"


@dataclass(frozen=True)
class Node:
    tag: str
    body: str | tuple[Node, ...]
    style: str = "escaped"  # "escaped", "cdata" or "raw" (as it is: may break the XML)

    def render(self) -> str:
        if isinstance(self.body, tuple):
            inner = "".join(child.render() for child in self.body)
        elif self.style == "cdata":
            inner = "<![CDATA[" + self.body.replace("]]>", "]]]]><![CDATA[>") + "]]>"
        elif self.style == "escaped":
            inner = escape(self.body)
        else:
            inner = self.body
        return f"<{self.tag}>{inner}</{self.tag}>"


xml_text = st.one_of(
    # What XML 1.0 can carry: no control characters but tab and newlines. (Byte flips and
    # the "raw" style below make the rest.)
    st.text(
        st.characters(exclude_categories=["Cs", "Cc"]) | st.sampled_from("\t\n\r"), max_size=40
    ),
    st.sampled_from(MSG_TYPES + EVENTS + EVENT_KEYS),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.sampled_from(["1700000000", "99999999999999999999", "-1", "1e9", " 7 ", "&amp;", "]]>"]),
)
styles = st.sampled_from(["escaped"] * 6 + ["cdata"] * 3 + ["raw"])
tags = st.sampled_from(WECHAT_TAGS) | st.sampled_from(["xml", "a", "x:y"])
xml_nodes = st.recursive(
    st.builds(Node, tags, xml_text, styles),
    lambda inner: st.builds(Node, tags, st.lists(inner, max_size=4).map(tuple), styles),
    max_leaves=12,
)


@st.composite
def wechat_messages(draw: st.DrawFn) -> str:
    """A message as WeChat writes it (every field plain text of its kind), or, half the time,
    one where any field may hold any text, elements inside, or markup written as it is."""
    noisy = draw(st.booleans())

    def field(tag: str, values: st.SearchStrategy[str]) -> Node:
        if not noisy:
            return Node(tag, draw(values), draw(st.sampled_from(["escaped", "cdata"])))
        if draw(st.integers(0, 7)) == 0:
            return Node(tag, tuple(draw(st.lists(xml_nodes, max_size=3))), "escaped")
        return Node(tag, draw(values | xml_text), draw(styles))

    numbers = st.integers(min_value=0, max_value=2**32).map(str)
    children = [
        field(
            "FromUserName",
            st.just("o-li") | st.from_regex(r"[A-Za-z0-9_-]{1,30}", fullmatch=True),
        ),
        field("MsgType", st.sampled_from(MSG_TYPES)),
    ]
    optional = [
        ("ToUserName", st.just("gh_huizhen")),
        ("CreateTime", numbers),
        ("MsgId", numbers),
        ("Content", xml_text),
        ("MediaId", xml_text),
        ("Recognition", xml_text),
        ("Event", st.sampled_from(EVENTS)),
        ("EventKey", st.sampled_from(EVENT_KEYS) | xml_text),
        ("Title", xml_text),
        ("Url", xml_text),
        ("Location_X", st.floats(allow_nan=False).map(str)),
    ]
    children += [field(tag, values) for tag, values in optional if draw(st.integers(0, 4))]
    if noisy:
        children += draw(st.lists(xml_nodes, max_size=2))
        children = draw(st.permutations(children))
    root = draw(st.sampled_from(["xml", "xml", "xml", "root"])) if noisy else "xml"
    prolog = draw(st.sampled_from(["", '<?xml version="1.0" encoding="UTF-8"?>', "<!-- hi -->"]))
    return prolog + Node(root, tuple(children)).render()


LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    + "]><xml><FromUserName>o-li</FromUserName><MsgType>text</MsgType><Content>&j;</Content>"
    "<MsgId>1</MsgId><CreateTime>1</CreateTime></xml>"
)
HOSTILE_XML = [
    LAUGHS,
    LAUGHS.replace("<!DOCTYPE", "<!doctype"),
    f'<!DOCTYPE xml [<!ENTITY e SYSTEM "{TRAP_FILE}">]><xml><FromUserName>o-li</FromUserName>'
    "<MsgType>text</MsgType><Content>&e;</Content><MsgId>1</MsgId></xml>",
    f'<!DOCTYPE xml [<!ENTITY e SYSTEM "{TRAP_URL}">]><xml><FromUserName>o-li</FromUserName>'
    "<MsgType>text</MsgType><Content>&e;</Content><MsgId>1</MsgId></xml>",
    f'<!DOCTYPE xml [<!ENTITY % p SYSTEM "{TRAP_URL}"> %p;]><xml><MsgType>text</MsgType></xml>',
    f'<!DOCTYPE xml SYSTEM "{TRAP_URL}"><xml><FromUserName>o</FromUserName></xml>',
    # Deep nesting, kept under the webhook's body limit.
    "<xml><FromUserName>o-li</FromUserName><MsgType>text</MsgType><MsgId>1</MsgId><Content>"
    + "<a>" * 7000
    + "</a>" * 7000
    + "</Content></xml>",
    "<xml><FromUserName>o-li</FromUserName><MsgType>event</MsgType><Event>CLICK</Event>"
    "<EventKey>" + "<k>" * 7000 + "</k>" * 7000 + "</EventKey><CreateTime>1</CreateTime></xml>",
    "<xml " + " ".join(f'a{i}="{i}"' for i in range(5000)) + "><MsgType>text</MsgType></xml>",
]


@dataclass(frozen=True)
class Hostile:
    """One of HOSTILE_XML, pointed at the test's trap, maybe in UTF-16 (a byte pattern for
    "<!DOCTYPE" misses it there) and maybe with bytes written over it."""

    index: int
    utf16: bool = False
    flips: tuple[tuple[int, int], ...] = ()

    def body(self, trap: Trap) -> bytes:
        text = HOSTILE_XML[self.index].replace(TRAP_URL, trap.url).replace(TRAP_FILE, trap.file)
        if self.utf16:
            return mutated(
                ('<?xml version="1.0" encoding="UTF-16"?>' + text).encode("utf-16"),
                list(self.flips),
            )
        return mutated(text.encode(), list(self.flips))


@dataclass
class Trap:
    """Where an external entity would point: a local port nobody should connect to and a
    local file nobody should read."""

    listener: socket.socket
    url: str
    file: str
    secret: str

    def check_untouched(self, result: object) -> None:
        try:
            connection, _ = self.listener.accept()
        except BlockingIOError:
            pass
        else:
            connection.close()
            raise AssertionError("the XML parser fetched an external entity")
        assert self.secret not in repr(result), "the XML parser read a local file"


@pytest.fixture(scope="module")
def trap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trap]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    secret = "SECRET-" + os.urandom(8).hex()
    path = tmp_path_factory.mktemp("trap") / "secret.txt"
    path.write_text(secret)
    port = listener.getsockname()[1]
    yield Trap(listener, f"http://127.0.0.1:{port}/dtd", path.as_uri(), secret)
    listener.close()


def sealed(xml: str) -> tuple[bytes, dict[str, str]]:
    """The body and query WeChat posts in safe mode: `xml` encrypted with the account's key."""
    timestamp, nonce = "1700000000", "5581"
    envelope = xmltodict.parse(CODEC.seal(xml, nonce, timestamp, encrypted=True))["xml"]
    body = f"<xml><ToUserName>gh</ToUserName><Encrypt>{envelope['Encrypt']}</Encrypt></xml>"
    query = {
        "encrypt_type": "aes",
        "timestamp": timestamp,
        "nonce": nonce,
        "msg_signature": envelope["MsgSignature"],
    }
    return body.encode(), query


def as_envelope(body: bytes) -> dict[str, str]:
    """The query for `body` posted as the safe-mode envelope itself, signed over its Encrypt
    element when it has a plain one, so the checks behind the signature are reached too."""
    try:
        encrypted = xmltodict.parse(body)["xml"]["Encrypt"]
    except Exception:  # not XML, no such element: the signature is then over ""
        encrypted = ""
    timestamp, nonce = "1700000000", "5581"
    parts = [WECHAT_TOKEN, timestamp, nonce, encrypted if isinstance(encrypted, str) else ""]
    signature = hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()
    return {
        "encrypt_type": "aes",
        "timestamp": timestamp,
        "nonce": nonce,
        "msg_signature": signature,
    }


base64ish = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", max_size=200
)
envelopes = st.builds(
    lambda encrypt: Node("xml", (Node("ToUserName", "gh"), encrypt)).render().encode(),
    st.builds(Node, st.just("Encrypt"), base64ish)
    | st.builds(Node, st.just("Encrypt"), st.lists(xml_nodes, max_size=3).map(tuple)),
)
xml_bodies = st.one_of(
    wechat_messages().map(str.encode),
    st.tuples(wechat_messages().map(str.encode), byte_flips).map(lambda t: mutated(*t)),
    st.binary(max_size=512),
    envelopes,
    st.builds(
        Hostile,
        st.integers(min_value=0, max_value=len(HOSTILE_XML) - 1),
        st.booleans(),
        byte_flips.map(tuple),
    ),
)


@fuzz(800)
@given(body=xml_bodies, mode=st.sampled_from(["plain", "sealed", "envelope"]))
def test_any_wechat_body_is_read_or_refused_and_fetches_nothing(
    trap: Trap, body: bytes | Hostile, mode: str
) -> None:
    """Plain: the body is the message. Sealed: it is the message, encrypted as WeChat does in
    safe mode. Envelope: it is what arrives in safe mode, before decryption."""
    if isinstance(body, Hostile):
        body = body.body(trap)
    query: dict[str, str] = {}
    if mode == "sealed":
        body, query = sealed(body.decode("utf-8", "replace"))
    elif mode == "envelope":
        query = as_envelope(body)
    if len(body) > MAX_BODY_BYTES:
        return  # the webhook refuses it unread (413)
    incoming = measured("wechat", lambda: read_message(body, query))
    trap.check_untouched(incoming)
    check_wechat(incoming)


def test_hostile_xml_is_refused_or_read_without_expansion(trap: Trap) -> None:
    for index in range(len(HOSTILE_XML)):
        for utf16 in (False, True):
            body = Hostile(index, utf16).body(trap)
            text = body.decode("utf-16" if utf16 else "utf-8")
            # As the message itself, as the encrypted message, and as the envelope around it.
            for case in ((body, {}), sealed(text), (body, as_envelope(body))):
                incoming = measured("wechat", functools.partial(read_message, *case))
                trap.check_untouched(incoming)
                check_wechat(incoming)


DEEP = "<a>" * 7000 + "</a>" * 7000


@pytest.mark.parametrize(
    "body",
    [
        # Before: RecursionError (str() of a dict nested 7000 deep), so a 500.
        wechat_xml(MsgType="text", MsgId="1", Content=DEEP),
        wechat_xml(MsgType="event", Event="CLICK", EventKey=DEEP),
        # Before: TypeError (wechatpy hands a dict, whose .strip is None).
        wechat_xml(MsgType="voice", MsgId="1", Recognition="<a>words</a>"),
        wechat_xml(MsgType="link", MsgId="1", Title="<a>t</a>", Url="u"),
        # Before: accepted, with "msg:{'a': '5'}" as its update key.
        wechat_xml(MsgType="text", MsgId="<a>5</a>", Content="hi"),
        # Before: accepted, and the passive reply's XML was broken by the sender's id.
        wechat_xml(MsgType="text", MsgId="1", Content="hi").replace(
            b"o-li", b"<![CDATA[o]]]]><![CDATA[><x/>]]>"
        ),
    ],
)
def test_wechat_messages_found_by_fuzzing_are_refused_as_unreadable(body: bytes) -> None:
    with pytest.raises(ValueError):
        describe(parse(PLAIN_CODEC.open(body, {})))


def test_an_envelope_nested_deep_is_refused_as_unsigned() -> None:
    # Before: RecursionError (str() of the Encrypt element), so a 500.
    body = f"<xml><ToUserName>gh</ToUserName><Encrypt>{DEEP}</Encrypt></xml>".encode()
    with pytest.raises(BadSignature):
        CODEC.open(body, as_envelope(body))


# --- 3. Archives -------------------------------------------------------------------------------

# Pieces of member names: ordinary ones, and what escapes a folder or breaks a path.
NAME_PIECES = ["a", "b", "DICOM", "IM0001", "é", "..", ".", "/", "\\", "C:", "~", "\x01", "\n", " "]
ARCHIVE_FORMATS = ("zip", "zip-stored", "zip-bzip2", "tar", "tar.gz", "tar.bz2", "tar.xz", "gnutar")


# Archives inside the archive (unpacked in turn by the worker), one with a member escaping.
NESTED = [
    ArchiveCase((Spec("DICOM/IM0001", "file", b"DICM" * 40),), "zip").intact(),
    ArchiveCase((Spec("../../outside", "file", b"owned"),), "zip").intact(),
    ArchiveCase((Spec("a", "file", b"x" * 5000), Spec("b", "symlink")), "tar.gz").intact(),
]
member_specs = st.builds(
    Spec,
    st.lists(st.sampled_from(NAME_PIECES), max_size=6).map("".join),
    st.sampled_from(["file"] * 6 + ["dir", *SPECIAL_KINDS]),
    st.binary(max_size=300) | st.sampled_from([b"\x00" * 300_000, b"DICM" * 5000, *NESTED]),
)
archive_cases = st.builds(
    ArchiveCase,
    st.lists(member_specs, min_size=1, max_size=5).map(tuple),
    st.sampled_from(ARCHIVE_FORMATS),
    st.one_of(st.just(()), byte_flips.map(tuple)),
    st.none() | st.none() | st.integers(min_value=0, max_value=2**20),
)


@fuzz(800)
@given(case=archive_cases)
def test_any_archive_unpacks_to_safe_paths_or_is_refused(case: ArchiveCase) -> None:
    data = case.bytes()
    unpacked = measured("archives/open_archive", lambda: unpack_all(data, case.kind))
    for path, _ in unpacked.files:
        assert safe_member_path(path) == path  # relative, normalised, no "..", no control
    if case.damaged:
        return  # anything may come of it, as long as it is one of the above
    if case.must_be_refused():
        assert unpacked.refused is not None, "an unsafe member was unpacked"
    expected = case.expected_files()
    if expected is not None:
        assert unpacked.refused is None
        assert unpacked.files == expected


STORE_KEY = bytes(range(32))


def files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*") if not path.is_dir()}


# Unpacking ends with os.sync(), which waits for every write on the machine to reach disk.
@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom, on members that look like DICOM
@fuzz(400, deadline=DEADLINE * 3)
@given(case=archive_cases, quota=st.sampled_from([64 * KiB, 64 * MiB]))
def test_an_archive_is_stored_whole_or_not_at_all_and_only_in_the_store(
    case: ArchiveCase, quota: int
) -> None:
    """What the worker does with an upload (handlers/ingest/analysis.py): each member into the
    encrypted store, and on any refusal every member it added removed again."""
    data = case.bytes()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "store"
        store = FileStore(root, STORE_KEY)
        original = store.put(io.BytesIO(data)).sha256
        request = AnalysisRequest(StoreAccess(str(root), STORE_KEY), original, len(data), quota)
        analysis = measured("archives/analyse", lambda: analyse(request, lambda done, of: None))
        written = files_under(Path(folder))
        kept = set(store.stored())
    # Only whole, named store files: nothing outside the store, no temporary file left.
    assert written == {store.path_of(sha256) for sha256 in kept}
    if analysis.kind in (FileKind.ZIP.value, FileKind.TAR.value) and analysis.problem:
        assert analysis.problem in {*ArchiveProblem, "quota"}
        assert kept == {original}, "a refused archive left members behind"
    else:
        assert kept == {original} | {entry.sha256 for entry in analysis.entries}
    for entry in analysis.entries:  # path "": the upload itself, when it is no archive
        assert entry.path == "" or safe_member_path(entry.path) == entry.path
    if not case.damaged and case.must_be_refused() and analysis.kind == case.kind.value:
        assert analysis.problem  # (a tar whose first name is empty is not taken for one)


# --- 4. DICOM headers --------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutation:
    op: str  # "flip" (xor), "put" (overwrite), "insert", "delete" or "cut"
    at: int  # wraps around the data
    data: bytes = b""
    length: int = 0

    def apply(self, data: bytes) -> bytes:
        at = self.at % (len(data) + 1)
        if self.op == "flip" and at < len(data):
            return data[:at] + bytes([data[at] ^ (self.data[0] or 1)]) + data[at + 1 :]
        if self.op == "put":
            return data[:at] + self.data + data[at + len(self.data) :]
        if self.op == "insert":
            return data[:at] + self.data + data[at:]
        if self.op == "delete":
            return data[:at] + data[at + self.length :]
        return data[:at] if self.op == "cut" else data


LONG_VRS = {
    b"OB",
    b"OD",
    b"OF",
    b"OL",
    b"OV",
    b"OW",
    b"SQ",
    b"SV",
    b"UC",
    b"UN",
    b"UR",
    b"UT",
    b"UV",
}
VRS = sorted(LONG_VRS | {b"AE", b"CS", b"DA", b"DS", b"IS", b"LO", b"PN", b"SH", b"UI", b"US"})


@st.composite
def dicom_elements(draw: st.DrawFn) -> bytes:
    """A random element header, and maybe a value: explicit or implicit VR, either byte order,
    any tag (mostly ones the inspector reads, items and delimiters), any length."""
    order = draw(st.sampled_from("<>"))
    group = draw(
        st.sampled_from([2, 4, 8, 0x10, 0x20, 0x28, 0x7FE0, 0xFFFE]) | st.integers(0, 0xFFFF)
    )
    element = draw(
        st.sampled_from([0, 0x10, 0x18, 0x60, 0x0D, 0x0E, 0x13, 0x1220, 0xE000, 0xE00D, 0xE0DD])
        | st.integers(0, 0xFFFF)
    )
    length = draw(
        st.sampled_from([0, 2, 8, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF]) | st.integers(0, 2**32 - 1)
    )
    vr = draw(st.sampled_from(VRS) | st.binary(min_size=2, max_size=2) | st.none())
    if vr is None:
        header = struct.pack(f"{order}HHI", group, element, length)
    elif vr in LONG_VRS:
        header = struct.pack(f"{order}HH2sHI", group, element, vr, 0, length)
    else:
        header = struct.pack(f"{order}HH2sH", group, element, vr, length & 0xFFFF)
    return header + draw(st.binary(max_size=16))


# Most of a file is pixel data; the header, where the parsing happens, is its first kilobytes.
positions = st.one_of(
    st.integers(min_value=0, max_value=1024),
    st.integers(min_value=0, max_value=8192),
    st.integers(min_value=0, max_value=2**20),
)
# Undefined and huge lengths, VRs with 4-byte lengths, item and delimiter tags, pixel data.
INTERESTING_BYTES = [b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\xff\xff", b"SQ", b"UN", b"OB"]
INTERESTING_BYTES += [b"DICM", b"\xfe\xff\x00\xe0", b"\xfe\xff\xdd\xe0", b"\xe0\x7f\x10\x00"]
mutations = st.one_of(
    st.builds(Mutation, st.just("flip"), positions, st.binary(min_size=1, max_size=1)),
    st.builds(
        Mutation,
        st.just("put"),
        positions,
        st.sampled_from(INTERESTING_BYTES) | st.binary(min_size=1, max_size=8),
    ),
    st.builds(
        Mutation,
        st.just("insert"),
        positions,
        dicom_elements() | st.sampled_from(VRS) | st.binary(max_size=16),
    ),
    st.builds(Mutation, st.just("delete"), positions, st.just(b""), st.integers(1, 64)),
    st.builds(Mutation, st.just("cut"), positions),
)


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on damaged values: the point here
@fuzz(1000)
@given(
    seed=st.sampled_from(DICOM_SEEDS),
    changes=st.lists(mutations, min_size=1, max_size=6),
    on_disk=st.booleans(),
)
def test_any_damaged_dicom_file_is_read_or_reported_as_a_problem(
    seed: str, changes: list[Mutation], on_disk: bool
) -> None:
    data = dicom_seed(seed)
    for change in changes:
        data = change.apply(data)
    for outcome in measured("dicom", lambda: inspect_dicom(data, on_disk)):
        check_dicom(outcome)


@pytest.mark.parametrize("seed", DICOM_SEEDS)
def test_every_seed_reads_as_dicom_when_intact(seed: str) -> None:
    """The seeds are real DICOM: damaged, they start from files the inspector reads."""
    instance, index = inspect_dicom(dicom_seed(seed), on_disk=False)
    assert isinstance(instance, DicomInstance) or isinstance(index, DicomDirIndex), seed


def peak_allocation(work: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        work()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("reader", [read_instance, read_dicomdir])
def test_a_damaged_length_inside_a_sequence_item_is_not_allocated(
    tmp_path: Path, reader: Callable[[BinaryIO], object]
) -> None:
    """Found by fuzzing: two bytes taken out of a 2.5 KB RT structure set leave an element in
    a sequence item declaring 515 MB. pydicom asked the stream for all of it, and a buffered
    file (the store's decrypting reader too) allocated that much before reading."""
    data = Mutation("delete", 861, length=2).apply(dicom_seed("rtstruct.dcm"))
    path = tmp_path / "rtstruct.dcm"
    path.write_bytes(data)
    store = FileStore(tmp_path / "store", STORE_KEY)
    sha256 = store.put(io.BytesIO(data)).sha256
    for stream in (path.open("rb"), store.open(sha256)):
        with stream:
            assert peak_allocation(functools.partial(refused, reader, stream)) < 8 * MiB


@pytest.mark.parametrize("name", ["", "\x00IM0001"])
def test_a_zip_member_without_a_name_is_refused(name: str) -> None:
    """Found by fuzzing (atheris): zipfile's is_dir() raised IndexError on an empty name
    (zipfile cuts a name at its first NUL byte), so the upload failed instead of being
    refused."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo(name), b"x")
    data = buffer.getvalue()
    with pytest.raises(ArchiveRejected) as refused:
        list(open_archive(io.BytesIO(data), FileKind.ZIP, len(data)))
    assert refused.value.problem is ArchiveProblem.UNSAFE_PATH


def zip_with_header_offset(offset: int) -> bytes:
    """A one-member zip whose central directory puts the member's header at `offset`, in a
    zip64 extra field (the 32-bit field says 0xFFFFFFFF: "see the extra field")."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("IM0001", b"x")
    data = bytearray(buffer.getvalue())
    central = data.find(b"PK\x01\x02")
    name_length, extra_length = struct.unpack_from("<HH", data, central + 28)
    extra = struct.pack("<HHQ", 1, 8, offset)
    data[central + 42 : central + 46] = b"\xff\xff\xff\xff"
    struct.pack_into("<H", data, central + 30, extra_length + len(extra))
    at = central + 46 + name_length + extra_length
    data[at:at] = extra
    end = data.find(b"PK\x05\x06")
    directory_size = struct.unpack_from("<I", data, end + 12)[0]
    struct.pack_into("<I", data, end + 12, directory_size + len(extra))
    return bytes(data)


def test_a_zip_member_header_beyond_any_file_is_refused_as_corrupt() -> None:
    """Found by fuzzing (atheris): seeking to it raised OverflowError instead of a refusal."""
    data = zip_with_header_offset(2**64 - 1)
    with pytest.raises(ArchiveRejected) as refused:
        list(open_archive(io.BytesIO(data), FileKind.ZIP, len(data)))
    assert refused.value.problem is ArchiveProblem.CORRUPT


def test_a_dicomdir_whose_records_are_not_a_sequence_is_unreadable() -> None:
    """Found by fuzzing (atheris): with a VR ("DA") put in front of the record sequence's, its
    value read as text, and each character was taken for a record: AttributeError."""
    index = dicom_seed("dicomdir")
    at = index.find(b"\x04\x00\x20\x12SQ") + 4  # (0004,1220) Directory Record Sequence
    damaged = index[:at] + b"DA" + index[at:]
    with pytest.raises(DicomUnreadable) as refused:
        read_dicomdir(io.BytesIO(damaged))
    assert refused.value.problem is DicomProblem.UNREADABLE

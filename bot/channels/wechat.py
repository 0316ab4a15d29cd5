"""The WeChat Official Account adapter on wechatpy: the webhook's signatures and encryption,
message parsing, and the few API calls Huizhen makes. No database and no event loop here:
`wechat_runtime.py` drives it, and calls the API from worker threads (wechatpy is blocking).

Every call names its own address under WECHAT_API_BASE_URL and passes the access token
itself: wechatpy hard-codes api.weixin.qq.com for the token, and the token is shared by every
worker (storage/wechat.py), not kept in wechatpy's memory session.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol, TypeVar

import requests
import xmltodict  # type: ignore[import-untyped]
from wechatpy import parse_message  # type: ignore[import-untyped]
from wechatpy.client import WeChatClient  # type: ignore[import-untyped]
from wechatpy.crypto import WeChatCrypto  # type: ignore[import-untyped]
from wechatpy.exceptions import (  # type: ignore[import-untyped]
    InvalidAppIdException,
    InvalidSignatureException,
    WeChatClientException,
)
from wechatpy.replies import create_reply  # type: ignore[import-untyped]

from conversations.channels import WECHAT
from conversations.events import FileRef, Inbound, InboundKind
from handlers.updates.delivery import RetryLater, Undeliverable
from storage.files import FileTooLarge

CHANNEL = WECHAT.name
T = TypeVar("T")

# WeChat's error codes that Huizhen acts on.
TOKEN_ERRORS = frozenset({40001, 40014, 42001})  # invalid or expired access token
WINDOW_ERRORS = frozenset({45015, 45047})  # 48 hours passed; customer-service quota used
NOT_FOLLOWING = 43004
INVALID_OPENID = 40003
INVALID_MEDIA = 40007
RATE_LIMITED = frozenset({45009, 45011})
RATE_LIMIT_PAUSE = 60.0

# The language user info writes place names in; the profile language comes back as it is.
INFO_LANGUAGE = "zh_CN"
MAX_MEDIA_BYTES = 20 * 1024 * 1024
DOWNLOAD_CHUNK = 64 * 1024
_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class BadSignature(Exception):
    """The webhook call is not signed with our token (or its encrypted part is not ours)."""


class ServiceWindowClosed(Exception):
    """WeChat refused a customer-service message: 48 hours passed, or the quota is used."""


class NotFollowing(Exception):
    """The user has unfollowed the account: nothing can be sent to them."""


class MediaUnavailable(ValueError):
    """The media id is unknown or expired (WeChat keeps media three days)."""


class TokenStore(Protocol):
    """Where the account's access token lives, shared by every worker."""

    def current(self, fetch: Callable[[], tuple[str, int]]) -> str: ...

    def discard(self, token: str) -> None: ...


# --- the webhook: signatures, encryption, parsing ------------------------------------------


def _sha1_signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class WebhookCodec:
    """Checks and opens what WeChat posts, and seals what we answer (safe mode encrypts)."""

    def __init__(self, token: str, app_id: str, encoding_aes_key: str | None) -> None:
        self.token = token
        self.crypto = WeChatCrypto(token, encoding_aes_key, app_id) if encoding_aes_key else None

    def signed(self, signature: str, timestamp: str, nonce: str) -> bool:
        """The plain signature every call carries: sha1 of our token, timestamp and nonce."""
        expected = _sha1_signature(self.token, timestamp, nonce)
        return bool(signature) and _same(signature, expected)

    def open(self, body: bytes, query: dict[str, str]) -> bytes:
        """The message XML; decrypted when the call says `encrypt_type=aes`. Raises
        BadSignature, or ValueError for a body that is not a readable message."""
        refuse_doctype(body)
        if query.get("encrypt_type", "raw") != "aes":
            if self.crypto is not None:
                # Safe mode: only the encrypted envelope with its msg_signature is WeChat's. A
                # plain body carries no proof of its own (the query's signature covers no byte
                # of it), so accepting one would undo the encryption's protection.
                raise BadSignature("safe mode, but the message is not encrypted")
            return body
        if self.crypto is None:
            raise BadSignature("an encrypted message, but no WECHAT_ENCODING_AES_KEY")
        envelope = _parse_xml(body)
        encrypted = envelope.get("Encrypt")
        if not isinstance(encrypted, str):  # absent, or elements inside (str() might recurse)
            encrypted = ""
        expected = _sha1_signature(self.token, query["timestamp"], query["nonce"], encrypted)
        if not encrypted or not _same(query.get("msg_signature", ""), expected):
            raise BadSignature("msg_signature does not match")
        try:
            plain = self.crypto.decrypt_message(body, expected, query["timestamp"], query["nonce"])
        except (InvalidSignatureException, InvalidAppIdException) as error:
            raise BadSignature(type(error).__name__) from error
        except Exception as error:  # a broken cipher text: padding, base64, length
            raise ValueError(type(error).__name__) from error
        data = plain.encode() if isinstance(plain, str) else bytes(plain)
        refuse_doctype(data)
        return data

    def seal(self, xml: str, nonce: str, timestamp: str, encrypted: bool) -> str:
        if encrypted and self.crypto is not None:
            return str(self.crypto.encrypt_message(xml, nonce, timestamp))
        return xml


def refuse_doctype(body: bytes) -> None:
    """WeChat never sends a DTD: one in a body is an attack on the XML parser (entities)."""
    if _DOCTYPE.search(body):
        raise ValueError("a DTD in a webhook body")


def _parse_xml(body: bytes) -> dict[str, Any]:
    # xmltodict refuses entity declarations (disable_entities, its default) and never
    # fetches anything external; wechatpy parses messages with it the same way.
    try:
        data = xmltodict.parse(body).get("xml")
    except Exception as error:  # expat's errors
        raise ValueError(type(error).__name__) from error
    if not isinstance(data, dict):
        raise ValueError("not a WeChat message")
    return data


# The fields Huizhen reads or answers with. WeChat writes each as plain text; elements inside
# one (or the same tag twice) would reach str() as a dict or a list, and when nested a few
# thousand deep, str() exhausts the recursion limit.
_TEXT_FIELDS = (
    "ToUserName",
    "FromUserName",
    "CreateTime",
    "MsgType",
    "MsgId",
    "Content",
    "MediaId",
    "Recognition",
    "Title",
    "Url",
    "Event",
    "EventKey",
)
# An openid, or the account's own id ("gh_…").
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def parse(xml: bytes) -> Any:
    """The wechatpy message or event object for a (decrypted) message body."""
    refuse_doctype(xml)
    try:
        message = parse_message(xml)
    except Exception as error:  # expat's errors, a missing MsgType, …
        raise ValueError(type(error).__name__) from error
    if message is None or not getattr(message, "source", ""):
        raise ValueError("not a WeChat message")
    fields = message._data
    if not all(isinstance(fields.get(name) or "", str) for name in _TEXT_FIELDS):
        raise ValueError("a field that is not text")
    # The passive reply puts both ids in CDATA sections as they are: only ids as WeChat
    # writes them keep its XML whole.
    ids = (fields.get("FromUserName"), fields.get("ToUserName"))
    if not all(_ID.fullmatch(value) for value in ids if value):
        raise ValueError("not a WeChat id")
    return message


def text_reply(message: Any, text: str) -> str:
    """The passive reply XML: a text message back to the sender of `message`. wechatpy puts
    the text in a CDATA section as it is; a "]]>" in it (the patient's own words can hold
    anything) is split across two sections, so it cannot end the section early."""
    return str(create_reply(text.replace("]]>", "]]]]><![CDATA[>"), message, render=True))


# --- one update, in neutral terms ----------------------------------------------------------


@dataclass(frozen=True)
class Incoming:
    """One webhook message as the runtime needs it."""

    openid: str
    update_key: str
    # What the conversation gets; None when the update is not for it (an unfollow, a menu
    # link, a location report) or cannot be used (`unsupported`).
    inbound: Inbound | None
    # A kind of message the chat cannot take (voice without recognised words, video, a
    # location, a sticker): the follower is told what works instead.
    unsupported: bool = False
    # The follow state this update shows (a follow or a message: True, an unfollow: False;
    # None when it says nothing of it).
    following: bool | None = None


def describe(message: Any) -> Incoming:
    openid = str(message.source)
    if message.type == "event":
        return _event(message, openid)
    if message.type == "unknown" and message._data.get("MsgType") == "event":
        return Incoming(openid, f"event:{openid}:{message.time}", None)  # one we skip
    update_key = f"msg:{message.id}"
    inbound = _message_inbound(message, openid, update_key)
    # Only a follower can write to the account.
    return Incoming(openid, update_key, inbound, unsupported=inbound is None, following=True)


def _message_inbound(message: Any, openid: str, update_key: str) -> Inbound | None:
    base: dict[str, Any] = {
        "channel": CHANNEL,
        "user_key": openid,
        "chat_key": openid,
        "update_key": update_key,
    }
    if message.type == "text":
        return text_inbound(base, str(message.content or ""))
    if message.type == "image":
        file = FileRef(
            source=str(message.media_id), name=f"photo-{message.id}.jpg", mime_type="image/jpeg"
        )
        return Inbound(**base, kind=InboundKind.FILES, files=(file,))
    if message.type == "voice" and (message.recognition or "").strip():
        # WeChat's speech recognition (when the account switched it on) gives the words.
        return text_inbound(base, str(message.recognition))
    if message.type == "link":
        words = "\n".join(part for part in (message.title, message.url) if part)
        return Inbound(**base, kind=InboundKind.TEXT, text=words)
    return None  # voice without words, video, location, …: the chat cannot use it


def text_inbound(base: dict[str, Any], text: str) -> Inbound:
    stripped = text.strip()
    if stripped.startswith("/"):
        command, _, args = stripped[1:].partition(" ")
        return Inbound(**base, kind=InboundKind.COMMAND, command=command, args=args.strip())
    return Inbound(**base, kind=InboundKind.TEXT, text=text)


def _event(message: Any, openid: str) -> Incoming:
    event = str(getattr(message, "event", "") or "").lower()
    update_key = f"event:{openid}:{message.time}:{event}"
    base: dict[str, Any] = {
        "channel": CHANNEL,
        "user_key": openid,
        "chat_key": openid,
        "update_key": update_key,
    }
    if event in ("subscribe", "subscribe_scan", "scan"):
        # A follow (through a clinic's QR code: its scene is the referral, as /start's payload
        # is on Telegram) greets the follower in their language.
        scene = str(getattr(message, "scene_id", "") or "")
        start = Inbound(**base, kind=InboundKind.COMMAND, command="start", args=scene)
        return Incoming(openid, update_key, start, following=True)
    if event == "unsubscribe":
        return Incoming(openid, update_key, None, following=False)
    if event == "click":
        # Menu buttons are configured with a command as their key ("status", "/help").
        key = str(message.key or "").strip().lstrip("/")
        command, _, args = key.partition(" ")
        inbound = Inbound(**base, kind=InboundKind.COMMAND, command=command, args=args.strip())
        return Incoming(openid, update_key, inbound if command else None)
    return Incoming(openid, update_key, None)


# --- the API -------------------------------------------------------------------------------


class WeChatApi:
    """The Official Account API calls Huizhen makes. Blocking: call from a worker thread.

    Raises RetryLater when WeChat asks us to slow down, Undeliverable for an unknown user,
    ServiceWindowClosed and NotFollowing for customer-service messages, MediaUnavailable for
    a media id WeChat no longer has, and anything else for a passing fault."""

    def __init__(
        self,
        app_id: str,
        secret: str,
        api_root: str,
        tokens: TokenStore,
        timeout: float = 10.0,
    ) -> None:
        self.app_id = app_id
        self.secret = secret
        self.api_root = api_root.rstrip("/")
        self.tokens = tokens
        self.timeout = timeout
        self.client = WeChatClient(app_id, secret, timeout=timeout, auto_retry=False)
        self.client.API_BASE_URL = f"{self.api_root}/cgi-bin/"
        self.http = requests.Session()

    def close(self) -> None:
        self.http.close()
        self.client._http.close()

    # --- token -----------------------------------------------------------------------------

    def fetch_token(self) -> tuple[str, int]:
        """A new access token and its lifetime in seconds (GET /cgi-bin/token)."""
        response = self.http.get(
            f"{self.api_root}/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": self.app_id, "secret": self.secret},
            timeout=self.timeout,
        )
        response.raise_for_status()
        result = response.json()
        if not isinstance(result, dict) or not result.get("access_token"):
            code = result.get("errcode") if isinstance(result, dict) else None
            raise WeChatClientException(code, "no access token")
        return str(result["access_token"]), int(result.get("expires_in", 7200))

    def _call(self, call: Callable[[str], T]) -> T:
        """Run `call(token)`; when WeChat says the token is invalid or expired, renew it
        once (for every worker) and try again."""
        token = self.tokens.current(self.fetch_token)
        try:
            return call(token)
        except WeChatClientException as error:
            if error.errcode not in TOKEN_ERRORS:
                raise _mapped(error) from error
        self.tokens.discard(token)
        token = self.tokens.current(self.fetch_token)
        try:
            return call(token)
        except WeChatClientException as error:
            raise _mapped(error) from error

    # --- calls -----------------------------------------------------------------------------

    def send_text(self, openid: str, text: str) -> None:
        """A customer-service text message (POST /cgi-bin/message/custom/send)."""
        data = {"touser": openid, "msgtype": "text", "text": {"content": text}}
        self._call(
            lambda token: self.client.post(
                "message/custom/send", params={"access_token": token}, data=data
            )
        )

    def send_image(self, openid: str, image: bytes, filename: str) -> None:
        """Upload a picture as temporary media, then send it as a customer-service message."""

        def upload(token: str) -> str:
            result = self.client.post(
                "media/upload",
                params={"access_token": token, "type": "image"},
                files={"media": (filename, image)},
            )
            return str(result["media_id"])

        media_id = self._call(upload)
        data = {"touser": openid, "msgtype": "image", "image": {"media_id": media_id}}
        self._call(
            lambda token: self.client.post(
                "message/custom/send", params={"access_token": token}, data=data
            )
        )

    def user_language(self, openid: str, timeout: float | None = None) -> str:
        """The follower's profile language ("zh_CN", "en"), "" when WeChat gives none."""
        result = self._call(
            lambda token: self.client.get(
                "user/info",
                params={"access_token": token, "openid": openid, "lang": INFO_LANGUAGE},
                timeout=timeout or self.timeout,
            )
        )
        return str(result.get("language") or "") if isinstance(result, dict) else ""

    def download(self, media_id: str, destination: BinaryIO) -> None:
        """Stream a temporary media file (GET /cgi-bin/media/get) into `destination`."""

        def fetch(token: str) -> None:
            with self.http.get(
                f"{self.api_root}/cgi-bin/media/get",
                params={"access_token": token, "media_id": media_id},
                timeout=self.timeout,
                stream=True,
            ) as response:
                response.raise_for_status()
                kind = response.headers.get("Content-Type", "")
                if kind.startswith(("application/json", "text/")):
                    # An error comes back as JSON instead of the file.
                    result = response.json()
                    raise WeChatClientException(result.get("errcode"), result.get("errmsg"))
                written = 0
                for chunk in response.iter_content(DOWNLOAD_CHUNK):
                    written += len(chunk)
                    if written > MAX_MEDIA_BYTES:
                        raise FileTooLarge("media larger than WeChat sends")
                    destination.write(chunk)

        self._call(fetch)


def _mapped(error: WeChatClientException) -> Exception:
    """WeChat's error codes in the terms delivery and the file store understand."""
    code = error.errcode
    if code in WINDOW_ERRORS:
        return ServiceWindowClosed(str(code))
    if code == NOT_FOLLOWING:
        return NotFollowing(str(code))
    if code == INVALID_OPENID:
        return Undeliverable(str(code))
    if code == INVALID_MEDIA:
        return MediaUnavailable(str(code))
    if code in RATE_LIMITED:
        return RetryLater(RATE_LIMIT_PAUSE)
    # Only the code: WeChat's message can quote what was sent.
    return RuntimeError(f"WeChat API error {code}")

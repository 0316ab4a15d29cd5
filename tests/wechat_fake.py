"""A local fake of WeChat: both sides of an Official Account, over real HTTP on 127.0.0.1.

* `FakeWeChatApi` is the API (an aiohttp server) that wechatpy and requests call through
  WECHAT_API_BASE_URL: the access token, temporary media (download and upload), the
  customer-service message, user info. Errors come back as WeChat sends them: HTTP 200 with
  `{"errcode": …, "errmsg": …}`; a stale token is refused with 40001.
* `WeChatServer` is what WeChat's servers do with a follower's message: build the XML, sign
  it with the account's token and, in safe mode, encrypt it with wechatpy's own WeChatCrypto,
  post it to the webhook, and open the passive reply.

    async with FakeWeChatApi(APP_ID, SECRET) as api:
        ...  # WECHAT_API_BASE_URL=api.base_url
        server = WeChatServer(webhook_url, TOKEN, APP_ID, AES_KEY, http)
        reply = await server.post(server.text("o-li", "你好"))
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
import xmltodict  # type: ignore[import-untyped]
from aiohttp import web
from wechatpy.crypto import WeChatCrypto  # type: ignore[import-untyped]

T = TypeVar("T")
JSONDict = dict[str, Any]
ACCOUNT = "gh_huizhen_test"  # the Official Account's own id (ToUserName)

ERRORS = {
    40001: "invalid credential, access_token is invalid or not latest",
    40003: "invalid openid",
    40007: "invalid media_id",
    40125: "invalid appsecret",
    42001: "access_token expired",
    43004: "require subscribe",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
}


@dataclass(frozen=True)
class ServiceMessage:
    """One customer-service message the account sent."""

    openid: str
    msgtype: str
    text: str = ""
    image: bytes = b""


@dataclass
class ApiCall:
    path: str
    errcode: int


@dataclass
class FakeWeChatApi:
    app_id: str
    secret: str
    token_lifetime: int = 7200
    media: dict[str, bytes] = field(default_factory=dict)
    uploaded: dict[str, bytes] = field(default_factory=dict)
    languages: dict[str, str] = field(default_factory=dict)
    sent: list[ServiceMessage] = field(default_factory=list)
    calls: list[ApiCall] = field(default_factory=list)
    tokens_issued: list[str] = field(default_factory=list)
    _valid_tokens: set[str] = field(default_factory=set)
    _faults: dict[str, deque[int]] = field(default_factory=dict)
    _delays: dict[str, float] = field(default_factory=dict)
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    _port: int = 0

    # --- life cycle ------------------------------------------------------------------------

    async def __aenter__(self) -> FakeWeChatApi:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_get("/cgi-bin/token", self._token)
        app.router.add_get("/cgi-bin/media/get", self._media_get)
        app.router.add_post("/cgi-bin/media/upload", self._media_upload)
        app.router.add_post("/cgi-bin/message/custom/send", self._custom_send)
        app.router.add_get("/cgi-bin/user/info", self._user_info)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # --- test controls ---------------------------------------------------------------------

    def add_media(self, data: bytes) -> str:
        media_id = f"media-{next(self._counter)}-{secrets.token_hex(4)}"
        self.media[media_id] = data
        return media_id

    def expire_tokens(self) -> None:
        """Every token issued so far stops working (as when another client renewed it)."""
        self._valid_tokens.clear()

    def fail_next(self, path: str, errcode: int, times: int = 1) -> None:
        """The next `times` calls to `path` ("message/custom/send") answer `errcode`."""
        self._faults.setdefault(path, deque()).extend([errcode] * times)

    def delay(self, path: str, seconds: float) -> None:
        self._delays[path] = seconds

    def texts_to(self, openid: str) -> list[str]:
        return [m.text for m in self.sent if m.openid == openid and m.msgtype == "text"]

    def calls_to(self, path: str) -> list[ApiCall]:
        return [call for call in self.calls if call.path == path]

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0) -> T:
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                recent = [(c.path, c.errcode) for c in self.calls[-8:]]
                raise AssertionError(f"timed out after {timeout}s; last API calls: {recent}")
            await asyncio.sleep(0.02)

    # --- the API ---------------------------------------------------------------------------

    def _answer(self, path: str, errcode: int, body: JSONDict | None = None) -> web.Response:
        self.calls.append(ApiCall(path, errcode))
        if errcode:
            return web.json_response({"errcode": errcode, "errmsg": ERRORS.get(errcode, "")})
        return web.json_response(body if body is not None else {"errcode": 0, "errmsg": "ok"})

    async def _checked(self, request: web.Request, path: str) -> int:
        """0, or the error this call gets: an injected fault, or a stale token."""
        if path in self._delays:
            await asyncio.sleep(self._delays[path])
        if request.query.get("access_token", "") not in self._valid_tokens:
            return 40001
        faults = self._faults.get(path)
        return faults.popleft() if faults else 0

    async def _token(self, request: web.Request) -> web.Response:
        query = request.query
        if query.get("appid") != self.app_id or query.get("secret") != self.secret:
            return self._answer("token", 40125)
        token = f"TOKEN-{next(self._counter)}-{secrets.token_hex(8)}"
        self._valid_tokens.add(token)
        self.tokens_issued.append(token)
        body = {"access_token": token, "expires_in": self.token_lifetime}
        return self._answer("token", 0, body)

    async def _media_get(self, request: web.Request) -> web.StreamResponse:
        errcode = await self._checked(request, "media/get")
        data = self.media.get(request.query.get("media_id", ""))
        if errcode or data is None:
            return self._answer("media/get", errcode or 40007)
        self.calls.append(ApiCall("media/get", 0))
        return web.Response(
            body=data,
            content_type="image/jpeg",
            headers={"Content-Disposition": 'attachment; filename="image.jpg"'},
        )

    async def _media_upload(self, request: web.Request) -> web.Response:
        errcode = await self._checked(request, "media/upload")
        if errcode:
            return self._answer("media/upload", errcode)
        form = await request.post()
        upload = form.get("media")
        assert isinstance(upload, web.FileField), "media/upload takes a file part named media"
        media_id = f"upload-{next(self._counter)}"
        self.uploaded[media_id] = upload.file.read()
        body = {"type": request.query.get("type"), "media_id": media_id, "created_at": 0}
        return self._answer("media/upload", 0, body)

    async def _custom_send(self, request: web.Request) -> web.Response:
        errcode = await self._checked(request, "message/custom/send")
        if errcode:
            return self._answer("message/custom/send", errcode)
        data = json.loads(await request.read())
        kind = data["msgtype"]
        if kind == "text":
            content = data["text"]["content"]
            assert len(content.encode()) <= 2048, "a customer-service text over 2048 bytes"
            message = ServiceMessage(data["touser"], kind, text=content)
        else:
            media_id = data[kind]["media_id"]
            message = ServiceMessage(data["touser"], kind, image=self.uploaded[media_id])
        self.sent.append(message)
        return self._answer("message/custom/send", 0)

    async def _user_info(self, request: web.Request) -> web.Response:
        errcode = await self._checked(request, "user/info")
        if errcode:
            return self._answer("user/info", errcode)
        openid = request.query.get("openid", "")
        body = {"subscribe": 1, "openid": openid, "language": self.languages.get(openid, "")}
        return self._answer("user/info", 0, body)


# --- WeChat's side of the webhook ----------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    text: str  # the passive reply's Content, "" for "success"
    raw: str
    seconds: float

    @property
    def success(self) -> bool:
        return self.status == 200 and self.raw == "success"


def signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


class WeChatServer:
    def __init__(
        self,
        url: str,
        token: str,
        app_id: str,
        aes_key: str | None,
        http: aiohttp.ClientSession,
    ) -> None:
        self.url = url
        self.token = token
        self.crypto = WeChatCrypto(token, aes_key, app_id) if aes_key else None
        self.http = http
        self._msg_ids = itertools.count(24_000_000_000_000_000)

    # --- messages --------------------------------------------------------------------------

    def next_msg_id(self) -> int:
        return next(self._msg_ids)

    def message(self, openid: str, kind: str, msg_id: int | None = None, **fields: str) -> str:
        body = {
            "ToUserName": ACCOUNT,
            "FromUserName": openid,
            "CreateTime": str(int(time.time())),
            "MsgType": kind,
            **fields,
        }
        if kind != "event":
            body["MsgId"] = str(msg_id if msg_id is not None else self.next_msg_id())
        return str(xmltodict.unparse({"xml": body}, full_document=False))

    def text(self, openid: str, content: str, msg_id: int | None = None) -> str:
        return self.message(openid, "text", msg_id, Content=content)

    def image(self, openid: str, media_id: str) -> str:
        return self.message(openid, "image", PicUrl="http://mmbiz.example/p.jpg", MediaId=media_id)

    def voice(self, openid: str, recognition: str = "") -> str:
        return self.message(
            openid, "voice", MediaId="voice-1", Format="amr", Recognition=recognition
        )

    def event(self, openid: str, event: str, key: str = "", at: int | None = None) -> str:
        body = {
            "ToUserName": ACCOUNT,
            "FromUserName": openid,
            "CreateTime": str(at if at is not None else int(time.time())),
            "MsgType": "event",
            "Event": event,
            "EventKey": key,
        }
        return str(xmltodict.unparse({"xml": body}, full_document=False))

    # --- posting ---------------------------------------------------------------------------

    def signed_query(
        self, timestamp: str | None = None, nonce: str | None = None
    ) -> dict[str, str]:
        timestamp = timestamp or str(int(time.time()))
        nonce = nonce or str(secrets.randbelow(10**10))
        return {
            "signature": signature(self.token, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "openid": "ignored-by-huizhen",
        }

    def envelope(self, xml: str, query: dict[str, str]) -> tuple[str, dict[str, str]]:
        """The body and query WeChat posts: in safe mode the message is encrypted."""
        if self.crypto is None:
            return xml, query
        sealed = xmltodict.parse(
            self.crypto.encrypt_message(xml, query["nonce"], query["timestamp"])
        )["xml"]
        body = xmltodict.unparse(
            {"xml": {"ToUserName": ACCOUNT, "Encrypt": sealed["Encrypt"]}}, full_document=False
        )
        query = {**query, "encrypt_type": "aes", "msg_signature": sealed["MsgSignature"]}
        return str(body), query

    async def post(
        self,
        xml: str,
        query: dict[str, str] | None = None,
        body: bytes | str | None = None,
    ) -> Reply:
        query = query or self.signed_query()
        data, query = self.envelope(xml, query)
        started = time.monotonic()
        async with self.http.post(
            self.url,
            params=query,
            data=body if body is not None else data.encode(),
            headers={"Content-Type": "text/xml"},
        ) as response:
            raw = await response.text()
            status = response.status
        return Reply(
            status, self.open(raw) if status == 200 else "", raw, time.monotonic() - started
        )

    def open(self, raw: str) -> str:
        """The Content of a passive reply (decrypted in safe mode); "" for "success"."""
        if raw in ("", "success"):
            return ""
        reply = xmltodict.parse(raw)["xml"]
        if "Encrypt" in reply:
            assert self.crypto is not None, "an encrypted reply in plain mode"
            reply_sig = signature(self.token, reply["TimeStamp"], reply["Nonce"], reply["Encrypt"])
            assert reply_sig == reply["MsgSignature"], "the reply is not signed with our token"
            plain = self.crypto.decrypt_message(
                raw, reply["MsgSignature"], reply["TimeStamp"], reply["Nonce"]
            )
            reply = xmltodict.parse(plain)["xml"]
        assert reply["MsgType"] == "text"
        assert reply["FromUserName"] == ACCOUNT
        return str(reply["Content"])

    async def verify(self, echostr: str, query: dict[str, str] | None = None) -> tuple[int, str]:
        query = {**(query or self.signed_query()), "echostr": echostr}
        async with self.http.get(self.url, params=query) as response:
            return response.status, await response.text()


def random_aes_key() -> str:
    """An EncodingAESKey as the admin console makes one: 43 characters of base64."""
    return base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")

"""The WeChat channel over the local fake of WeChat's API."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from bot.app import App, build_app
from bot.channels.wechat_runtime import WEBHOOK_PATH, WeChatChannel
from bot.config import Settings, load_settings
from bot.web import make_web_app
from tests.wechat_fake import FakeWeChatApi, Reply, WeChatServer, random_aes_key

APP_ID = "wx51d0c0ffee5eed01"
SECRET = "app-secret-for-tests"
TOKEN = "huizhen-webhook-token"


@dataclass
class World:
    api: FakeWeChatApi
    app: App
    channel: WeChatChannel
    server: WeChatServer
    settings: Settings

    def follower(self, openid: str, language: str = "en") -> Follower:
        self.api.languages[openid] = language
        return Follower(self, openid)


def wechat_settings(
    base: Settings, api: FakeWeChatApi, aes_key: str | None, **extra: str
) -> Settings:
    env = {
        "DATA_DIR": str(base.data_dir),
        "DATABASE_URL": base.database_url,
        "WECHAT_APP_ID": APP_ID,
        "WECHAT_APP_SECRET": SECRET,
        "WECHAT_TOKEN": TOKEN,
        "WECHAT_API_BASE_URL": api.base_url,
        **({"WECHAT_ENCODING_AES_KEY": aes_key} if aes_key else {}),
        **extra,
    }
    return load_settings(env)


@asynccontextmanager
async def wechat(base: Settings, safe_mode: bool = True, **extra: str) -> AsyncIterator[World]:
    """The app, the WeChat channel and the web app on a free port, with both fakes."""
    aes_key = random_aes_key() if safe_mode else None
    async with FakeWeChatApi(APP_ID, SECRET) as api:
        settings = wechat_settings(base, api, aes_key, **extra)
        app = build_app(settings)
        channel = WeChatChannel(app)
        await channel.start()
        runner = web.AppRunner(make_web_app(None, wechat=channel))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}{WEBHOOK_PATH}"
        try:
            async with aiohttp.ClientSession() as http:
                server = WeChatServer(url, TOKEN, APP_ID, aes_key, http)
                yield World(api, app, channel, server, settings)
        finally:
            await runner.cleanup()
            await channel.stop()
            app.close()


class Follower:
    """A WeChat user: sends messages through WeChat's side, reads the passive replies, and
    answers the numbered options as a person would (with the digit)."""

    def __init__(self, world: World, openid: str) -> None:
        self.world = world
        self.openid = openid
        self.options: list[str] = []
        self.replies: list[str] = []

    async def post(self, xml: str) -> Reply:
        reply = await self.world.server.post(xml)
        assert reply.status == 200, reply
        assert reply.seconds < 5, f"answered after {reply.seconds:.1f} s"
        assert len(reply.text.encode()) <= 2048
        self.read(reply.text)
        return reply

    def read(self, reply: str) -> None:
        self.replies.append(reply)
        numbered = list(re.finditer(r"^(\d+)\. (.+)$", reply, re.MULTILINE))
        firsts = [i for i, match in enumerate(numbered) if match.group(1) == "1"]
        if firsts:
            self.options = [match.group(2) for match in numbered[firsts[-1] :]]

    async def say(self, words: str) -> str:
        return (await self.post(self.world.server.text(self.openid, words))).text

    async def press(self, label: str) -> str:
        matches = [i for i, option in enumerate(self.options, 1) if label in option]
        assert matches, f"no option {label!r} among {self.options}"
        return await self.say(str(matches[0]))

    async def follow(self, scene: str = "", at: int | None = None) -> str:
        key = f"qrscene_{scene}" if scene else ""
        event = self.world.server.event(self.openid, "subscribe", key, at=at)
        return (await self.post(event)).text

    async def consent(self) -> None:
        await self.say("/start")
        for _ in range(4):  # not an emergency, continue, agree, agree
            await self.say("1")

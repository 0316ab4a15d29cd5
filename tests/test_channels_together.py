"""Telegram and WeChat configured at once, in one process, as `huizhen run` starts them: each
channel hears about the background work done for its own patients (a copy, an erasure) at
once, whichever channel's loop happened to run it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.app import build_app
from bot.channels.runtime import DELIVERY_IDLE_SECONDS
from bot.channels.wechat_runtime import WEBHOOK_PATH
from bot.config import Settings, load_settings
from bot.runner import start_channels
from bot.web import make_web_app
from tests.support.telegram import COORDINATOR_CHAT, Patient, consent, fast
from tests.support.wechat import APP_ID, SECRET, TOKEN, World
from tests.telegram_fake import FakeBotApi
from tests.wechat_fake import FakeWeChatApi, WeChatServer, random_aes_key

# What "promptly" means here: well inside the fallback poll that catches a missed wake-up, so
# a result that waited for that poll fails the test.
# (A third of it: making the encrypted copy itself takes seconds on a loaded machine.)
PROMPT_SECONDS = DELIVERY_IDLE_SECONDS / 3


@dataclass
class Both:
    telegram: FakeBotApi
    wechat: World


@asynccontextmanager
async def both_channels(base: Settings, library: str) -> AsyncIterator[Both]:
    """One app with both channels started the way the runner starts them, and the web app
    that carries WeChat's webhook."""
    aes_key = random_aes_key()
    async with FakeBotApi() as fake, FakeWeChatApi(APP_ID, SECRET) as api:
        fake.add_chat(COORDINATOR_CHAT, "supergroup", "Coordinators")
        settings = load_settings(
            {
                "DATA_DIR": str(base.data_dir),
                "DATABASE_URL": base.database_url,
                "TELEGRAM_BOT_TOKEN": fake.token,
                "TELEGRAM_API_BASE_URL": fake.base_url,
                "TELEGRAM_LIBRARY": library,
                "COORDINATOR_CHAT_ID": str(COORDINATOR_CHAT),
                "WECHAT_APP_ID": APP_ID,
                "WECHAT_APP_SECRET": SECRET,
                "WECHAT_TOKEN": TOKEN,
                "WECHAT_API_BASE_URL": api.base_url,
                "WECHAT_ENCODING_AES_KEY": aes_key,
            }
        )
        assert settings.channels == ("telegram", "wechat")
        app = build_app(settings)
        channels = await start_channels(app, telegram_limiter=fast())
        assert channels.telegram is not None and channels.wechat is not None
        runner = web.AppRunner(make_web_app(channels.telegram, wechat=channels.wechat))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}{WEBHOOK_PATH}"
        try:
            async with aiohttp.ClientSession() as http:
                server = WeChatServer(url, TOKEN, APP_ID, aes_key, http)
                yield Both(fake, World(api, app, channels.wechat, server, settings))
        finally:
            await runner.cleanup()
            await channels.stop()
            app.close()


@pytest.fixture
def base(tmp_path: Path) -> Settings:
    return load_settings({"DATA_DIR": str(tmp_path / "data")})


@pytest.mark.parametrize("library", ["ptb", "aiogram"])
def test_with_both_channels_a_telegram_copy_and_a_wechat_copy_arrive_promptly(
    base: Settings, library: str
) -> None:
    async def scenario() -> None:
        async with both_channels(base, library) as world:
            fake = world.telegram
            patient = Patient(fake, 701)
            await consent(patient)
            await patient.command("/export")
            asked = time.monotonic()
            reply = await patient.press("Yes, send me a copy")
            assert "It will arrive here as one zip file" in reply
            # The copy is made by a background job; it used to be handed to the channel
            # started last (WeChat), whose wake-up never reached Telegram's sender, so the
            # copy waited for Telegram's fallback poll.
            await fake.wait_for(
                lambda: any(s.method == "sendDocument" for s in fake.sent(701)),
                timeout=DELIVERY_IDLE_SECONDS + 5,
            )
            waited = time.monotonic() - asked
            assert waited < PROMPT_SECONDS, f"the copy took {waited:.1f} s"

            # And the other way round: a WeChat follower's copy comes as promptly.
            follower = world.wechat.follower("o-both-0001")
            await follower.consent()
            await follower.press("For me")
            await follower.say("/export")
            asked = time.monotonic()
            reply = await follower.press("Yes, send me a copy")
            api = world.wechat.api
            await api.wait_for(
                lambda: "Your copy is ready" in "\n".join([reply, *api.texts_to("o-both-0001")]),
                timeout=DELIVERY_IDLE_SECONDS + 5,
            )
            waited = time.monotonic() - asked
            assert waited < PROMPT_SECONDS, f"the WeChat copy took {waited:.1f} s"

    asyncio.run(scenario())

"""The shipped deployment (deploy/): the proxy in the compose file routes every public path of
the web app to the workers, and none of its private ones."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from bot.app import App, build_app
from bot.channels.telegram import PtbClient
from bot.channels.telegram_runtime import TelegramChannel
from bot.channels.wechat_runtime import WeChatChannel
from bot.config import load_settings
from bot.runner import public_web_app
from bot.web import PRIVATE_PATHS
from storage.uploads import UploadGrant

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def proxy_config() -> str:
    """The Caddyfile the compose file's proxy service mounts as /etc/caddy/Caddyfile."""
    compose = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    services = compose.split("\nservices:\n", 1)[1]
    blocks = re.split(r"\n  (?=[\w-]+:\n)", "\n" + services)
    proxy = next(block for block in blocks if block.startswith("proxy:"))
    assert re.search(r"image:\s*caddy", proxy), "the proxy is not Caddy"
    mount = re.search(r"-\s*(\S+):/etc/caddy/Caddyfile", proxy)
    assert mount is not None, "the proxy mounts no Caddyfile"
    return (DEPLOY / mount.group(1)).read_text(encoding="utf-8")


def routed_patterns(caddyfile: str) -> list[str]:
    """The path patterns of the named matcher whose `handle` block proxies to the workers;
    every other request gets the catch-all `handle` (a 404)."""
    matchers = {
        name: patterns.split()
        for name, patterns in re.findall(r"^\s*@(\w+)\s+path\s+([^\n{]+)$", caddyfile, re.M)
    }
    handles = re.findall(r"^\s*handle\s+@(\w+)\s*\{(.*?)^\s*\}", caddyfile, re.M | re.S)
    routed = [name for name, body in handles if "reverse_proxy worker:" in body]
    assert routed, "nothing is proxied to the workers"
    assert not re.search(
        r"^\s*reverse_proxy",
        re.sub(r"handle\s+@\w+\s*\{.*?\n\t\}", "", caddyfile, flags=re.S),
        re.M,
    )
    return [pattern for name in routed for pattern in matchers[name]]


def caddy_matches(pattern: str, path: str) -> bool:
    """Caddy's path matcher: exact, or `*` standing for any run of characters."""
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), path) is not None


@pytest.fixture
def everything(tmp_path: Path) -> Iterator[App]:
    """An app with every channel and page configured, so the web app has all its routes."""
    env = {
        "DATA_DIR": str(tmp_path),
        "TELEGRAM_BOT_TOKEN": "123:token",
        "WECHAT_APP_ID": "wx-app",
        "WECHAT_TOKEN": "wechat-token",
        "METRICS_TOKEN": "a-long-random-scrape-token",
        "PUBLIC_BASE_URL": "https://huizhen.example",
        "ORTHANC_URL": "http://127.0.0.1:9",
    }
    app = build_app(load_settings(env))
    yield app
    app.close()


def web_app_paths(app: App) -> set[str]:
    async def files_arrived(grant: UploadGrant) -> None:
        return None

    telegram = TelegramChannel(app, PtbClient("123:token", "http://127.0.0.1:9"))
    web_app = public_web_app(app, files_arrived, telegram=telegram, wechat=WeChatChannel(app))
    paths = set()
    for resource in web_app.router.resources():
        assert isinstance(resource, web.Resource)
        # A sample path for each route: "/u/{token}/files" -> "/u/sample/files".
        paths.add(re.sub(r"\{[^}]+\}", "sample", resource.canonical))
    return paths


def test_the_proxy_routes_every_public_path_and_no_private_one(everything: App) -> None:
    patterns = routed_patterns(proxy_config())
    paths = web_app_paths(everything)
    assert {"/x/sample", "/u/sample", "/telegram/webhook", "/wechat", "/metrics"} <= paths
    assert {"/v/sample", "/v/sample/", "/v/sample/sample"} <= paths
    for path in paths:
        routed = any(caddy_matches(pattern, path) for pattern in patterns)
        if path in PRIVATE_PATHS:
            assert not routed, f"{path} is private but the proxy routes it"
        else:
            assert routed, f"{path} is a public route of the web app but the proxy answers 404"


def test_orthanc_runs_with_its_plugins_and_is_not_published() -> None:
    """The workers reach Orthanc on the compose network; no port of it is published, so the
    only way in from outside is a worker's signed link to one de-identified study."""
    compose = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    services = compose.split("\nservices:\n", 1)[1].split("\nvolumes:\n", 1)[0]
    blocks = re.split(r"\n  (?=[\w-]+:\n)", "\n" + services)
    orthanc = next(block for block in blocks if block.startswith("orthanc:"))
    assert re.search(r"image:\s*orthancteam/orthanc:", orthanc)
    assert re.search(r'DICOM_WEB_PLUGIN_ENABLED:\s*"true"', orthanc)
    assert re.search(r'ORTHANC_WEB_VIEWER_PLUGIN_ENABLED:\s*"true"', orthanc)
    assert re.search(r'ORTHANC__AUTHENTICATION_ENABLED:\s*"true"', orthanc)
    assert not re.search(r"^\s*(ports|expose):", orthanc, re.M)
    assert "ORTHANC_URL: http://orthanc:8042" in compose

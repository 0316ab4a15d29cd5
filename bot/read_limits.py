"""How long the web app waits for a client: it faces the internet, and a client that sends a
request a byte at a time (slowloris) must not hold a connection for ever."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True)
class ReadLimits:
    # From the connection's start (or the end of the previous response) to the last header
    # line of the next request.
    header_seconds: float = 10.0
    # A whole body that is not streamed: webhooks and the upload page's JSON.
    body_seconds: float = 30.0
    # An upload chunk streams to disk: each piece must come within piece_seconds, the whole
    # chunk within chunk_seconds. What arrived is kept, and the page goes on from there.
    piece_seconds: float = 30.0
    chunk_seconds: float = 300.0


LIMITS_KEY: web.AppKey[ReadLimits] = web.AppKey("read_limits", ReadLimits)


def limits_of(app: web.Application) -> ReadLimits:
    return app.get(LIMITS_KEY) or ReadLimits()

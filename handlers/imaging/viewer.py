"""Short-lived signed links to one study's de-identified copy, served by the web app
(bot/viewer_page.py), which proxies only that study's part of Orthanc. The link names the
study's row and its expiry, signed with a key of this installation: nothing is stored, and a
changed or expired link opens nothing."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import datetime, timedelta

LINK_LIFETIME = timedelta(hours=1)


class ViewerLinks:
    def __init__(self, key: bytes, base_url: str | None, clock: Callable[[], datetime]) -> None:
        # A key of its own, derived from the file key: a link's signature says nothing of it.
        self._key = hmac.new(key, b"huizhen viewer links", hashlib.sha256).digest()
        self.base_url = base_url
        self.clock = clock

    def token(self, study_id: int, lifetime: timedelta = LINK_LIFETIME) -> str:
        expires = int((self.clock() + lifetime).timestamp())
        body = f"{study_id}.{expires}"
        return f"{body}.{self._sign(body)}"

    def link(self, study_id: int) -> str | None:
        """The viewer's address, or None where the web app has no public address."""
        if self.base_url is None:
            return None
        return f"{self.base_url}/v/{self.token(study_id)}/"

    def study_of(self, token: str) -> int | None:
        """The study row a valid, unexpired token opens."""
        parts = token.split(".")
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
            return None
        if not hmac.compare_digest(parts[2], self._sign(f"{parts[0]}.{parts[1]}")):
            return None
        if int(parts[1]) < self.clock().timestamp():
            return None
        return int(parts[0])

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:40]

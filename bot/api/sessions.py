"""Signed cookies: `base64url(payload).base64url(HMAC-SHA256(key, purpose | payload))`.

The expiry is inside the signed payload, so a copied cookie stops working on time whatever the
browser does with Max-Age. The purpose is part of the MAC input, so a login-state cookie can
never pass for a session.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from services.clock import Clock

MAX_COOKIE_CHARS: Final = 4096


@dataclass(frozen=True, slots=True)
class OpenedCookie:
    data: dict[str, Any]
    expired: bool


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CookieSigner:
    def __init__(self, secret: str, clock: Clock) -> None:
        if not secret:
            raise ValueError("security.session_secret is required to sign cookies")
        # Derive a dedicated key so the configured secret is never used directly as a MAC key.
        self._key = hashlib.sha256(b"rallypoint-cookie|" + secret.encode()).digest()
        self.clock = clock

    def sign(self, purpose: str, data: dict[str, Any], ttl: timedelta) -> str:
        """Return a cookie value carrying `data` for `purpose`, valid for `ttl`."""
        expires = int((self.clock.now() + ttl).timestamp())
        payload = _b64encode(
            json.dumps({"d": data, "exp": expires}, separators=(",", ":"), sort_keys=True).encode()
        )
        return f"{payload}.{self._mac(purpose, payload)}"

    def open(self, purpose: str, value: str, max_age: timedelta) -> OpenedCookie | None:
        """Read a genuine cookie for `purpose`, expired or not; None if it was not signed here.

        A cookie that claims to live longer than `max_age` from now was not signed by this server
        with its current settings (or was signed with a secret someone guessed): None too.
        """
        if not value or len(value) > MAX_COOKIE_CHARS or not value.isascii() or value.count(".") != 1:
            return None
        payload, mac = value.split(".")
        if not hmac.compare_digest(mac, self._mac(purpose, payload)):
            return None
        try:
            decoded = json.loads(_b64decode(payload))
        except (ValueError, binascii.Error):
            return None
        if not isinstance(decoded, dict) or not isinstance(decoded.get("d"), dict):
            return None
        expires = decoded.get("exp")
        now = self.clock.now().timestamp()
        if not isinstance(expires, int) or expires > now + max_age.total_seconds():
            return None
        return OpenedCookie(decoded["d"], expired=expires <= now)

    def verify(self, purpose: str, value: str, max_age: timedelta) -> dict[str, Any] | None:
        """Return the data of a genuine, unexpired cookie for `purpose`, else None."""
        opened = self.open(purpose, value, max_age)
        return opened.data if opened is not None and not opened.expired else None

    def _mac(self, purpose: str, payload: str) -> str:
        digest = hmac.new(self._key, f"{purpose}|{payload}".encode(), hashlib.sha256).digest()
        return _b64encode(digest)

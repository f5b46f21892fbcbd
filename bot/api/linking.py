"""What the API needs from the Telegram / Signal linking service (implemented by that work).

Refusals come back as `services.errors.RallypointError` subclasses: `InvalidInput` (bad number or
code), `TooManyRequests` (with `retry_after`), `Unavailable` (the channel is not configured), …
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from services.permissions import Actor


class LinkingApi(Protocol):
    async def request_telegram_link(self, actor: Actor) -> tuple[str, str, datetime]:
        """Return (token, deep link to the bot, expiry) for the actor to open in Telegram."""
        ...

    async def request_signal_link(self, actor: Actor, address: str) -> datetime:
        """Send a verification code to the E.164 `address`; return when the code expires."""
        ...

    async def confirm_signal_link(self, actor: Actor, code: str) -> None:
        """Verify the code sent to the actor's pending Signal number and store the link."""
        ...

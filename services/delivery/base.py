"""The one protocol every delivery channel implements, and the value types it exchanges.

The dispatcher owns idempotency, retries and fallback; a sender only performs one attempt and
classifies its outcome. Senders never log contact addresses (chat ids, phone numbers).
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from services.models import Channel


class Outcome(enum.StrEnum):
    SENT = "sent"
    RETRYABLE = "retryable"  # 429, 5xx, timeout: try the same channel again later
    PERMANENT = "permanent"  # blocked, DMs closed, unregistered: move to the next channel


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    reason: str = ""
    provider_message_id: str | None = None
    retry_after: float | None = None  # seconds, when the platform said how long to wait

    @classmethod
    def sent(cls, provider_message_id: str | None, reason: str = "") -> SendResult:
        return cls(Outcome.SENT, reason, provider_message_id)

    @classmethod
    def retryable(cls, reason: str, retry_after: float | None = None) -> SendResult:
        return cls(Outcome.RETRYABLE, reason, None, retry_after)

    @classmethod
    def permanent(cls, reason: str) -> SendResult:
        return cls(Outcome.PERMANENT, reason)


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message to one address on one channel.

    `address` is the Discord user id, the Telegram chat id or the Signal number (E.164), already
    decrypted; `nonce` is deterministic per (campaign, ledger key, player) and at most 25 characters,
    so a resend after a crash can be deduplicated by platforms that support it (Discord).

    `on_wire`, when set, must be awaited by a sender without dedup right before the request that
    could deliver the message (after any pacing wait): the dispatcher records that moment, so a
    crash before it is resent and only a crash after it is written off as `unknown`.

    `rsvp_campaign_id`, when set, makes the message offer the answers to that campaign (I'm in,
    running late, can't tonight) the channel's own way: Discord buttons, a Telegram inline keyboard
    (Signal's text already asks for a digit). A resend carries them too.
    """

    channel: Channel
    address: str
    text: str
    nonce: str
    player_id: int | None = None
    on_wire: Callable[[], Awaitable[None]] | None = None
    rsvp_campaign_id: int | None = None


class Sender(Protocol):
    """Deliver one message on one channel; never raise for a platform answer, classify it."""

    @property
    def channel(self) -> Channel: ...

    @property
    def supports_dedup(self) -> bool:
        """True when resending with the same nonce cannot create a second message."""
        ...

    async def send(self, message: OutgoingMessage) -> SendResult: ...


class VoiceProbe(Protocol):
    """Tell who is connected to the community's voice channels right now."""

    async def discord_ids_in_voice(self) -> frozenset[int]: ...

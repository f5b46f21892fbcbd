"""Discord delivery: DMs and channel posts via discord.py's HTTP client; voice presence from its cache.

Every post carries the caller's deterministic nonce with `enforce_nonce` (discord.py's
`handle_message_parameters(nonce=...)` sets both), so Discord answers a resend within its dedup window
with the original message instead of a second one: the sender reports `supports_dedup = True`.

Every request of the client passes the global limiter of the bot's `DiscordLimits`
(services/delivery/discord_limits.py, the client's `http_trace`); the senders take the same limits to
pace new DM channels and to give way while the invalid-request budget pauses Discord sends.

discord.py already retries 429s (sleeping `retry_after`) and 500/502/504 (five tries) inside one call.
`max_rate_limit_wait` bounds how long one attempt may spend in there; past it the attempt is RETRYABLE
and the dispatcher's own backoff takes over. Build the client with
`max_ratelimit_timeout=max_rate_limit_wait` (discord.py's minimum is 30 s) so that a longer rate limit
raises `RateLimited` at once and its `retry_after` reaches the dispatcher.
"""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING

import aiohttp
import discord
from discord.http import handle_message_parameters

from services.clock import Clock
from services.delivery.base import OutgoingMessage, SendResult
from services.delivery.discord_limits import DiscordLimits
from services.delivery.discord_rsvp import rsvp_row
from services.models import Channel
from storage.discord_dms import DiscordDMStore

if TYPE_CHECKING:
    from discord.types.message import Message as MessagePayload  # typing-only module in discord.py

log = logging.getLogger(__name__)

MAX_MESSAGE_LENGTH = 2000  # Discord counts code points
_ELLIPSIS = "…"
_CANNOT_DM = 50007
_CUT_LOOKBACK = 200  # how far back a cut may move to land on whitespace


def fit_message(text: str, limit: int = MAX_MESSAGE_LENGTH) -> str:
    """Return text cut to `limit` code points with a trailing "…", at whitespace when one is near.

    The cut never splits a character from the combining marks, variation selectors or zero-width
    joiners that follow it, so an emoji or accented letter is kept whole or dropped whole.
    """
    if len(text) <= limit:
        return text
    end = limit - len(_ELLIPSIS)
    space = max(text.rfind(" ", end - _CUT_LOOKBACK, end + 1), text.rfind("\n", end - _CUT_LOOKBACK, end + 1))
    if space > 0:
        end = space
    else:
        # No whitespace nearby: back off until the next character starts a new grapheme.
        while end > 0 and _continues_grapheme(text, end):
            end -= 1
    return text[:end].rstrip() + _ELLIPSIS


def _continues_grapheme(text: str, index: int) -> bool:
    """Whether text[index] belongs to the character before it (mark, joiner, selector, modifier)."""
    char = text[index]
    previous = text[index - 1]
    return (
        unicodedata.category(char) in ("Mn", "Me", "Mc")
        or char == "\u200d"
        or previous == "\u200d"
        or "\ufe00" <= char <= "\ufe0f"
        or "\U0001f3fb" <= char <= "\U0001f3ff"  # skin-tone modifiers
        or "\U000e0020" <= char <= "\U000e007f"  # tag characters (flag sequences)
        or (
            "\U0001f1e6" <= char <= "\U0001f1ff"
            and "\U0001f1e6" <= previous <= "\U0001f1ff"
            and _regional_run(text, index) % 2 == 1
        )
    )


def _regional_run(text: str, index: int) -> int:
    """Count regional-indicator letters immediately before index (flags are pairs of them)."""
    count = 0
    while index - count - 1 >= 0 and "\U0001f1e6" <= text[index - count - 1] <= "\U0001f1ff":
        count += 1
    return count


def _error_code(exc: discord.HTTPException) -> int:
    return int(getattr(exc, "code", 0) or 0)


def is_dm_closed(exc: BaseException) -> bool:
    """Whether Discord refused a DM because the user does not accept them (403, code 50007)."""
    return isinstance(exc, discord.Forbidden) and _error_code(exc) == _CANNOT_DM


def classify_failure(exc: BaseException, *, max_wait: float) -> SendResult:
    """Map what discord.py raised for one post to RETRYABLE or PERMANENT (never SENT)."""
    if isinstance(exc, discord.RateLimited):
        return SendResult.retryable(
            f"discord: rate limited for {exc.retry_after:.1f} s (longer than we wait)", exc.retry_after
        )
    if isinstance(exc, discord.Forbidden):
        if is_dm_closed(exc):
            return SendResult.permanent("discord: cannot send messages to this user (50007)")
        return SendResult.permanent(f"discord: forbidden (403, code {_error_code(exc)})")
    if isinstance(exc, discord.NotFound):
        return SendResult.permanent(f"discord: unknown user or channel (404, code {_error_code(exc)})")
    if isinstance(exc, discord.DiscordServerError):
        return SendResult.retryable(f"discord: server error ({exc.status})")
    if isinstance(exc, discord.HTTPException):
        if exc.status == 429:  # without Discord's headers: Cloudflare is throttling us
            return SendResult.retryable("discord: throttled (429 without rate-limit headers)")
        if exc.status >= 500:
            return SendResult.retryable(f"discord: server error ({exc.status})")
        return SendResult.permanent(f"discord: rejected ({exc.status}, code {_error_code(exc)})")
    if isinstance(exc, TimeoutError):
        return SendResult.retryable(f"discord: no answer within {max_wait:g} s")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return SendResult.retryable(f"discord: connection failed ({type(exc).__name__})")
    raise TypeError(f"not a Discord delivery failure: {exc!r}")


_FAILURES: tuple[type[BaseException], ...] = (
    discord.RateLimited,
    discord.HTTPException,
    TimeoutError,
    aiohttp.ClientError,
    OSError,
)


_NO_PINGS = discord.AllowedMentions.none()


async def _post(
    client: discord.Client, channel_id: int, text: str, nonce: str, rsvp_campaign_id: int | None = None
) -> MessagePayload:
    # The client's default allowed_mentions does not reach this low-level call: say it here. A resend
    # after a crash carries the same nonce and the same buttons.
    view = rsvp_row(rsvp_campaign_id) if rsvp_campaign_id is not None else discord.utils.MISSING
    params = handle_message_parameters(content=fit_message(text), nonce=nonce, allowed_mentions=_NO_PINGS, view=view)
    return await client.http.send_message(channel_id, params=params)


class _DiscordSender:
    """What both Discord senders share: one client, its limits, a bound on one attempt, dedup by nonce."""

    def __init__(self, client: discord.Client, limits: DiscordLimits, *, max_rate_limit_wait: float = 30.0) -> None:
        if max_rate_limit_wait <= 0:
            raise ValueError("max_rate_limit_wait must be positive")
        if client.http.http_trace is not limits.trace_config:
            # The senders' own requests must count toward the same global limit as the client's.
            raise ValueError("the client must be built with http_trace=limits.trace_config")
        self._client = client
        self._limits = limits
        self._max_wait = max_rate_limit_wait

    @property
    def channel(self) -> Channel:
        return Channel.DISCORD

    @property
    def supports_dedup(self) -> bool:
        return True

    def _paused(self) -> SendResult | None:
        """RETRYABLE while the invalid-request budget pauses Discord sends, else None."""
        remaining = self._limits.send_pause()
        if remaining <= 0:
            return None
        budget = self._limits.budget
        return SendResult.retryable(
            f"discord: sends paused for {remaining:.0f} s ({budget.recent()} invalid requests in 10 minutes)",
            remaining,
        )


class DiscordDMSender(_DiscordSender):
    """Send direct messages to Discord users, deduplicated by nonce.

    DM channels are stable on Discord: each is opened once (at the limits' gentle pace for new DM
    channels) and stored, so a restart or the next campaign opens none again. A 50007 marks the
    user's DMs closed in storage; the fan-out then skips Discord for them until they interact.
    """

    def __init__(
        self,
        client: discord.Client,
        limits: DiscordLimits,
        dms: DiscordDMStore,
        clock: Clock,
        *,
        max_rate_limit_wait: float = 30.0,
    ) -> None:
        super().__init__(client, limits, max_rate_limit_wait=max_rate_limit_wait)
        self._dms = dms
        self._clock = clock
        self._dm_channels: dict[int, int] = {}  # user id -> DM channel id: what storage holds, read once
        self._loaded = asyncio.Lock()  # held while the stored channels are read, at the first send
        self._stored_read = False
        if client.http.max_ratelimit_timeout is None:
            log.warning(
                "discord client has no max_ratelimit_timeout: long rate limits will surface as timeouts "
                "after %g s, without Discord's retry_after",
                max_rate_limit_wait,
            )

    async def send(self, message: OutgoingMessage) -> SendResult:
        """Open (or reuse) the DM channel and post the text with the message's nonce."""
        try:
            user_id = int(message.address)
        except ValueError:
            return SendResult.permanent("discord: the address is not a Discord user id")
        paused = self._paused()
        if paused is not None:
            log.info("discord DM for player %s: %s: %s", message.player_id, paused.outcome, paused.reason)
            return paused
        try:
            async with asyncio.timeout(self._max_wait):
                channel_id = await self._dm_channel(user_id)
                data = await _post(self._client, channel_id, message.text, message.nonce, message.rsvp_campaign_id)
        except _FAILURES as exc:
            result = classify_failure(exc, max_wait=self._max_wait)
            if isinstance(exc, discord.NotFound) and self._dm_channels.pop(user_id, None) is not None:
                await self._dms.forget_channel(user_id)  # Discord no longer knows it: open anew next time
            elif is_dm_closed(exc):
                await self._dms.mark_closed(user_id, self._clock.now())
            log.info("discord DM for player %s: %s: %s", message.player_id, result.outcome, result.reason)
            return result
        log.debug("discord DM for player %s sent as message %s", message.player_id, data["id"])
        return SendResult.sent(str(data["id"]))

    async def _dm_channel(self, user_id: int) -> int:
        if not self._stored_read:
            async with self._loaded:  # one query for all, not one per recipient
                if not self._stored_read:
                    self._dm_channels.update(await self._dms.channels())
                    self._stored_read = True
        channel_id = self._dm_channels.get(user_id)
        if channel_id is None:
            await self._limits.before_dm_open()
            data = await self._client.http.start_private_message(user_id)
            channel_id = int(data["id"])
            await self._dms.remember_channel(user_id, channel_id)
        self._dm_channels[user_id] = channel_id
        return channel_id


class DiscordChannelPoster(_DiscordSender):
    """Post to a guild text channel (the voice-check summary), deduplicated by nonce.

    A sender like the others, whose addresses are text channel ids instead of user ids.
    """

    async def send(self, message: OutgoingMessage) -> SendResult:
        """Post the text to the channel id in `message.address` with its nonce; classify any failure."""
        try:
            channel_id = int(message.address)
        except ValueError:
            return SendResult.permanent("discord: the address is not a channel id")
        paused = self._paused()
        if paused is not None:
            return paused
        try:
            async with asyncio.timeout(self._max_wait):
                data = await _post(self._client, channel_id, message.text, message.nonce)
        except _FAILURES as exc:
            result = classify_failure(exc, max_wait=self._max_wait)
            log.info("discord post to channel %s: %s: %s", channel_id, result.outcome, result.reason)
            return result
        return SendResult.sent(str(data["id"]))


class VoiceStateUnavailable(RuntimeError):
    """The gateway cache cannot tell who is in voice (guild not received or unavailable)."""


class GatewayVoiceProbe:
    """Read who is in the community's voice channels from discord.py's gateway cache (no REST calls).

    Needs the `voice_states` intent (and `guilds`). Members come from the cache, which holds members
    in voice even without the privileged members intent, so bots can be told apart.
    """

    def __init__(self, client: discord.Client, guild_id: int, voice_channel_ids: Sequence[int] = ()) -> None:
        self._client = client
        self._guild_id = guild_id
        self._channel_ids = frozenset(voice_channel_ids)

    async def discord_ids_in_voice(self) -> frozenset[int]:
        """Return the ids of the non-bot users connected to the watched voice/stage channels now."""
        guild = self._client.get_guild(self._guild_id)
        if guild is None or guild.unavailable:
            # An empty answer would send everybody a "you're missing" follow-up; fail the job instead.
            raise VoiceStateUnavailable(f"guild {self._guild_id} is not in the gateway cache")
        present: set[int] = set()
        vocal: list[discord.VoiceChannel | discord.StageChannel] = [*guild.voice_channels]
        vocal.extend(guild.stage_channels)
        for channel in vocal:
            if self._channel_ids and channel.id not in self._channel_ids:
                continue
            for user_id in channel.voice_states:
                user = guild.get_member(user_id) or self._client.get_user(user_id)
                if user is not None and user.bot:
                    continue
                present.add(user_id)
        return frozenset(present)

"""Linking a player's Telegram chat or Signal number, and keeping those addresses encrypted.

Telegram: the player asks for a one-time deep link (`https://t.me/<bot>?start=<token>`); opening it
sends `/start <token>` to the bot, which proves that the chat belongs to whoever holds the token.
Signal: the player gives a number, we send a 6-digit code there, the player types it back.

Tokens and codes are stored only as hashes, numbers and chat ids only encrypted (ContactCipher),
and none of them is ever logged in the clear.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import secrets
from datetime import datetime, timedelta
from typing import Final

from services.clock import Clock
from services.contacts import ContactCipher, mask_chat_id
from services.delivery.base import Outcome, OutgoingMessage, Sender, SendResult
from services.errors import (
    CodeExpired,
    CodeLocked,
    InvalidInput,
    NoCodePending,
    TooManyRequests,
    Unavailable,
    WrongCode,
)
from services.models import Actor, Channel, Player, Throttle, Throttled
from services.phone import mask_number, normalize_e164
from services.players import PlayerService
from storage.link_requests import LinkRequestStore
from storage.links import LinkStore

log = logging.getLogger(__name__)

# Telegram's deep-link start parameter: up to 64 characters of A-Za-z0-9_- (Bot API, "Deep linking").
_START_PARAMETER: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TOKEN_BYTES: Final = 32  # 43 characters of urlsafe base64, inside the 64 allowed
_CODE_DIGITS: Final = 6
# What a player may type for a Signal code: its six ASCII digits, with spaces, tabs or dashes anywhere.
# The API document publishes this very pattern.
CODE_INPUT_PATTERN: Final = r"^[ \t-]*(?:[0-9][ \t-]*){6}$"
MAX_CODE_INPUT: Final = 32
_CODE_INPUT: Final = re.compile(CODE_INPUT_PATTERN)
_CODE_SEPARATORS: Final = re.compile(r"[ \t-]")

DEFAULT_TOKEN_TTL: Final = timedelta(minutes=30)
DEFAULT_CODE_TTL: Final = timedelta(minutes=15)
DEFAULT_THROTTLE: Final = Throttle(limit=5, window=timedelta(hours=1))

NO_KEY_MESSAGE: Final = (
    "Telegram and Signal linking is off: the contact encryption key is not set on this server."
)


def token_hash(token: str) -> str:
    """The SHA-256 under which a Telegram link token is stored (the token carries 256 random bits)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _code_material(salt: str, code: str) -> str:
    # The domain prefix keeps code hashes apart from address hashes made with the same keys.
    return f"signal-code|{salt}|{code}"


def _retry_after(refused: Throttled, now: datetime) -> float:
    return float(max(1, math.ceil((refused.retry_at - now).total_seconds())))


def _too_many(refused: Throttled, now: datetime, what: str) -> TooManyRequests:
    seconds = _retry_after(refused, now)
    minutes = max(1, math.ceil(seconds / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return TooManyRequests(f"Too many {what}; try again in {minutes} {unit}.", seconds)


class LinkingService:
    def __init__(
        self,
        *,
        players: PlayerService,
        link_store: LinkStore,
        link_request_store: LinkRequestStore,
        cipher: ContactCipher | None,
        clock: Clock,
        telegram_bot_username: str | None,
        signal: Sender | None,
        token_ttl: timedelta = DEFAULT_TOKEN_TTL,
        code_ttl: timedelta = DEFAULT_CODE_TTL,
        max_code_attempts: int = 5,
        throttle: Throttle = DEFAULT_THROTTLE,
    ) -> None:
        if token_ttl <= timedelta(0) or code_ttl <= timedelta(0) or max_code_attempts < 1:
            raise ValueError("token_ttl and code_ttl must be positive and max_code_attempts >= 1")
        self.players = players
        self.link_store = link_store
        self.link_request_store = link_request_store
        self.cipher = cipher
        self.clock = clock
        self.telegram_bot_username = (telegram_bot_username or "").strip().lstrip("@") or None
        self.signal = signal
        self.token_ttl = token_ttl
        self.code_ttl = code_ttl
        self.max_code_attempts = max_code_attempts
        self.throttle = throttle
        # Requests older than this are no use to the throttle nor to anyone linking: forget them.
        self._retention = max(token_ttl, code_ttl, throttle.window)

    # -- Telegram ------------------------------------------------------------------------------

    async def request_telegram_link(self, actor: Actor) -> tuple[str, str, datetime]:
        """Return (token, deep link, expiry) of a new single-use Telegram link for the actor."""
        player = await self.players.player_for(actor)
        if self.telegram_bot_username is None:
            raise Unavailable("Telegram is not set up on this server.")
        self._require_cipher()
        now = self.clock.now()
        await self.link_request_store.purge(now - self._retention)
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        expires_at = now + self.token_ttl
        created = await self.link_request_store.create_telegram_token(
            player.id, token_hash(token), now=now, expires_at=expires_at, throttle=self.throttle
        )
        if isinstance(created, Throttled):
            log.info("player %d: Telegram link request throttled", player.id)
            raise _too_many(created, now, "Telegram link requests")
        log.info("player %d: Telegram link issued, valid until %s", player.id, expires_at.isoformat())
        deep_link = f"https://t.me/{self.telegram_bot_username}?start={token}"
        return token, deep_link, expires_at

    async def complete_telegram_link(self, token: str, chat_id: int) -> Player | None:
        """Link `chat_id` to the player who holds `token`; None if the token is unknown, used or expired."""
        masked = mask_chat_id(chat_id)
        if self.cipher is None:
            log.warning("Telegram /start in chat %s ignored: no contact encryption key", masked)
            return None
        if not isinstance(token, str) or _START_PARAMETER.fullmatch(token) is None:
            log.info("Telegram /start in chat %s with a malformed token", masked)
            return None
        now = self.clock.now()
        player_id = await self.link_request_store.use_telegram_token(token_hash(token), now)
        if player_id is None:
            log.info("Telegram /start in chat %s with an unknown, used or expired token", masked)
            return None
        player = await self.players.player(player_id)
        if player is None:
            return None
        address = str(chat_id)
        await self.link_store.save(
            player.id, Channel.TELEGRAM, self.cipher.encrypt(address), self.cipher.address_hash(address), now
        )
        log.info("player %d linked Telegram chat %s", player.id, masked)
        return player

    async def unlink_telegram_chat(self, chat_id: int) -> bool:
        """Forget the link of `chat_id` (Telegram `/stop`); False if the chat was not linked."""
        masked = mask_chat_id(chat_id)
        if self.cipher is None:
            return False
        player_id = await self.link_store.player_for_address(
            Channel.TELEGRAM, self.cipher.address_hashes(str(chat_id))
        )
        if player_id is None:
            return False
        removed = await self.link_store.remove(player_id, Channel.TELEGRAM)
        if removed:
            log.info("player %d unlinked Telegram chat %s from Telegram", player_id, masked)
        return removed

    # -- Signal --------------------------------------------------------------------------------

    async def request_signal_link(self, actor: Actor, address: str) -> datetime:
        """Send a 6-digit code to the E.164 number `address`; return when the code expires."""
        player = await self.players.player_for(actor)
        if self.signal is None:
            raise Unavailable("Signal is not set up on this server.")
        cipher = self._require_cipher()
        try:
            number = normalize_e164(address)
        except ValueError as exc:
            raise InvalidInput(f"That is not a phone number we can use: {exc}.") from None
        masked = mask_number(number)
        now = self.clock.now()
        await self.link_request_store.purge(now - self._retention)
        code = f"{secrets.randbelow(10**_CODE_DIGITS):0{_CODE_DIGITS}d}"
        salt = secrets.token_hex(16)
        expires_at = now + self.code_ttl
        created = await self.link_request_store.create_signal_verification(
            player.id,
            number_encrypted=cipher.encrypt(number),
            number_hashes=cipher.address_hashes(number),
            code_salt=salt,
            code_hash=cipher.address_hash(_code_material(salt, code)),
            now=now,
            expires_at=expires_at,
            throttle=self.throttle,
        )
        if isinstance(created, Throttled):
            log.info("player %d: Signal code request for %s throttled", player.id, masked)
            raise _too_many(created, now, "code requests")
        minutes = max(1, round(self.code_ttl.total_seconds() / 60))
        text = (
            f"Your Rallypoint code is {code}. It expires in {minutes} minutes; "
            "if you did not ask for it, ignore this message."
        )
        try:
            # One attempt, no fallback: a code that did not leave is withdrawn below.
            result = await self.signal.send(
                OutgoingMessage(Channel.SIGNAL, number, text, nonce=f"code-{created.id}", player_id=player.id)
            )
        except Exception as exc:  # a sender bug must still leave no usable code behind
            log.error("player %d: Signal code to %s raised %s", player.id, masked, type(exc).__name__)
            result = SendResult.permanent(f"sender error: {type(exc).__name__}")
        if result.outcome is not Outcome.SENT:
            await self.link_request_store.cancel_signal_verification(created.id, self.clock.now())
            log.info("player %d: Signal code to %s not sent (%s)", player.id, masked, result.reason)
            raise Unavailable("could not send a code to that number")
        log.info("player %d: Signal code sent to %s", player.id, masked)
        return expires_at

    async def confirm_signal_link(self, actor: Actor, code: str) -> None:
        """Check `code` against the actor's newest Signal code; on a match, link the number."""
        player = await self.players.player_for(actor)
        if self.signal is None:
            raise Unavailable("Signal is not set up on this server.")
        cipher = self._require_cipher()
        if not (isinstance(code, str) and len(code) <= MAX_CODE_INPUT and _CODE_INPUT.fullmatch(code)):
            raise InvalidInput(f"The code is the {_CODE_DIGITS} digits we sent you on Signal.")
        digits = _CODE_SEPARATORS.sub("", code)
        attempt = await self.link_request_store.latest_signal_verification(player.id)
        if attempt is None or attempt.used_at is not None or attempt.cancelled_at is not None:
            raise NoCodePending()
        if attempt.locked:
            raise CodeLocked()
        now = self.clock.now()
        if attempt.expired(now):
            raise CodeExpired()
        candidates = cipher.address_hashes(_code_material(attempt.code_salt, digits))
        matched = False
        for candidate in candidates:  # every key: a rotation must not void codes already sent
            matched |= hmac.compare_digest(candidate, attempt.code_hash)
        if not matched:
            counted = await self.link_request_store.record_wrong_code(attempt.id, self.max_code_attempts)
            log.info("player %d: wrong Signal code", player.id)
            if counted is None or counted.locked:
                raise CodeLocked("Wrong code: too many wrong codes; request a new code.")
            left = self.max_code_attempts - counted.failed_attempts
            raise WrongCode(f"Wrong code; {left} {'try' if left == 1 else 'tries'} left.")
        if not await self.link_request_store.use_signal_verification(attempt.id, now):
            # Locked, used or expired by a concurrent confirmation in between.
            raise NoCodePending("That code can no longer be used; request a new code.")
        number = cipher.decrypt(attempt.number_encrypted)
        await self.link_store.save(
            player.id, Channel.SIGNAL, cipher.encrypt(number), cipher.address_hash(number), now
        )
        log.info("player %d linked Signal number %s", player.id, mask_number(number))

    # -- both ----------------------------------------------------------------------------------

    async def unlink(self, actor: Actor, channel: Channel) -> bool:
        """Remove the actor's Telegram or Signal link; False if there was none."""
        player = await self.players.player_for(actor)
        if channel not in (Channel.TELEGRAM, Channel.SIGNAL):
            raise InvalidInput("Only Telegram and Signal can be unlinked.")
        removed = await self.link_store.remove(player.id, channel)
        if removed:
            log.info("player %d unlinked %s", player.id, channel.value)
        return removed

    async def rotate_keys(self) -> int:
        """Re-encrypt every stored address with the primary key and rehash it; return the links rewritten.

        All or nothing: if any address cannot be decrypted with the configured keys (an old key
        was dropped too early), nothing is rewritten and ValueError says which players are affected.
        """
        cipher = self._require_cipher()
        now = self.clock.now()
        await self.link_request_store.purge(now - self._retention)
        rows: list[tuple[int, Channel, str, str, str]] = []
        broken: list[str] = []
        for player_id, channel, encrypted in await self.link_store.all_links():
            try:
                address = cipher.decrypt(encrypted)
            except ValueError:
                broken.append(f"player {player_id} ({channel.value})")
                continue
            rows.append(
                (player_id, channel, encrypted, cipher.encrypt(address), cipher.address_hash(address))
            )
        pending: list[tuple[int, str, str]] = []
        for verification_id, encrypted in await self.link_request_store.signal_numbers():
            try:
                number = cipher.decrypt(encrypted)
            except ValueError:
                broken.append(f"Signal code request {verification_id}")
                continue
            pending.append((verification_id, cipher.encrypt(number), cipher.address_hash(number)))
        if broken:
            shown = ", ".join(broken[:10]) + (f" and {len(broken) - 10} more" if len(broken) > 10 else "")
            raise ValueError(
                f"{len(broken)} stored address(es) cannot be decrypted with the configured keys "
                f"({shown}); keep the old key in security.contact_encryption_key until rotation succeeds"
            )
        await self.link_store.rewrite(rows)
        await self.link_request_store.rewrite_signal_numbers(pending)
        log.info("re-encrypted %d contact link(s) and %d pending code request(s)", len(rows), len(pending))
        return len(rows)

    def _require_cipher(self) -> ContactCipher:
        if self.cipher is None:
            raise Unavailable(NO_KEY_MESSAGE)
        return self.cipher


__all__ = ["LinkingService", "token_hash"]

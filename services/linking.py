"""Linking a player's Telegram chat or Signal number, and keeping those addresses encrypted.

Telegram: the player asks for a one-time deep link (`https://t.me/<bot>?start=<token>`); opening it
sends `/start <token>` to the bot, which links the chat to whoever holds the token. A link can be
handed to someone else, so a chat already linked to another player is not moved silently: the
chat is asked first (`TelegramMoveAsked`), and moves only when it answers yes; the player who had
it is told by Discord DM.
Signal: the player gives a number, we send a 6-digit code there, the player types it back. The
code message says which Discord user asked, on which server; codes are limited per number per day
(whoever asks) and, below that, per player and number, so that one member can neither flood a phone
nor use up its allowance to lock the owner out. Whether the number is on Signal at all is never
told: an unregistered number gets the same answer as any other (and no code it could use).

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
from collections.abc import Callable
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
from services.messages import moved_away_text, signal_code_text
from services.models import (
    Actor,
    Channel,
    Player,
    SignalCodeLimits,
    TelegramLinked,
    TelegramMoveAsked,
    Throttle,
    Throttled,
)
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
DEFAULT_SIGNAL_LIMITS: Final = SignalCodeLimits()

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
        discord: Sender | None = None,
        community_name: Callable[[], str | None] = lambda: None,
        token_ttl: timedelta = DEFAULT_TOKEN_TTL,
        code_ttl: timedelta = DEFAULT_CODE_TTL,
        max_code_attempts: int = 5,
        throttle: Throttle = DEFAULT_THROTTLE,
        signal_limits: SignalCodeLimits = DEFAULT_SIGNAL_LIMITS,
    ) -> None:
        """`throttle` bounds Telegram link requests per player; `signal_limits` the Signal codes.

        `community_name` names the Discord server in the code message (None while it is not known).
        """
        if token_ttl <= timedelta(0) or code_ttl <= timedelta(0) or max_code_attempts < 1:
            raise ValueError("token_ttl and code_ttl must be positive and max_code_attempts >= 1")
        self.players = players
        self.link_store = link_store
        self.link_request_store = link_request_store
        self.cipher = cipher
        self.clock = clock
        self.telegram_bot_username = (telegram_bot_username or "").strip().lstrip("@") or None
        self.signal = signal
        self.discord = discord  # tells a player their Telegram chat or Signal number moved to someone else
        self.token_ttl = token_ttl
        self.code_ttl = code_ttl
        self.max_code_attempts = max_code_attempts
        self.throttle = throttle
        self.signal_limits = signal_limits
        self.community_name = community_name
        # Requests older than this are no use to the limits nor to anyone linking: forget them.
        self._retention = max(token_ttl, code_ttl, throttle.window, signal_limits.longest_window)

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

    async def complete_telegram_link(self, token: str, chat_id: int) -> TelegramLinked | TelegramMoveAsked | None:
        """Link `chat_id` to the player who holds `token` (Telegram `/start <token>`).

        None if the token is unknown, used or expired. A chat linked to another player is not moved
        yet: the answer says whom to ask about (`TelegramMoveAsked`), and the token waits for the chat.
        """
        masked = mask_chat_id(chat_id)
        if self.cipher is None:
            log.warning("Telegram /start in chat %s ignored: no contact encryption key", masked)
            return None
        if not isinstance(token, str) or _START_PARAMETER.fullmatch(token) is None:
            log.info("Telegram /start in chat %s with a malformed token", masked)
            return None
        now = self.clock.now()
        hashes = self.cipher.address_hashes(str(chat_id))
        pending = await self.link_request_store.open_telegram_token(token_hash(token), now)
        player = await self.players.player(pending.player_id) if pending is not None else None
        if pending is None or player is None:
            log.info("Telegram /start in chat %s with an unknown, used or expired token", masked)
            return None
        current_id = await self.link_store.player_for_address(Channel.TELEGRAM, hashes)
        current = await self.players.player(current_id) if current_id not in (None, player.id) else None
        if current is not None:
            if not await self.link_request_store.ask_telegram_confirmation(pending.id, hashes[0], now):
                return None
            log.info(
                "Telegram chat %s is linked to player %d: asking it before moving it to player %d",
                masked, current.id, player.id,
            )
            return TelegramMoveAsked(player, current, pending.id)
        if await self.link_request_store.use_telegram_token(token_hash(token), now) is None:
            return None  # used by a concurrent /start in between
        await self._save_telegram(player, chat_id, now)
        return TelegramLinked(player)

    async def move_telegram_chat(self, token_id: int, chat_id: int) -> TelegramLinked | None:
        """The chat said yes: move its link to the token's player and tell the player who had it.

        None if the question is no longer open (answered, expired) or was not asked of this chat.
        """
        if self.cipher is None:
            return None
        now = self.clock.now()
        hashes = self.cipher.address_hashes(str(chat_id))
        player_id = await self.link_request_store.use_confirmed_telegram_token(token_id, hashes, now)
        player = await self.players.player(player_id) if player_id is not None else None
        if player is None:
            log.info("Telegram chat %s answered a question that is no longer open", mask_chat_id(chat_id))
            return None
        previous_id = await self.link_store.player_for_address(Channel.TELEGRAM, hashes)
        previous = await self.players.player(previous_id) if previous_id not in (None, player.id) else None
        await self._save_telegram(player, chat_id, now)
        if previous is not None:
            await self._tell_previous_owner(previous, player, Channel.TELEGRAM, f"tg-moved-{token_id}")
        return TelegramLinked(player, previous)

    async def keep_telegram_chat(self, token_id: int, chat_id: int) -> bool:
        """The chat said no: spend the token, change nothing; False if the question was no longer open."""
        if self.cipher is None:
            return False
        hashes = self.cipher.address_hashes(str(chat_id))
        kept = await self.link_request_store.use_confirmed_telegram_token(token_id, hashes, self.clock.now())
        if kept is not None:
            log.info("Telegram chat %s kept its link; player %d's token is spent", mask_chat_id(chat_id), kept)
        return kept is not None

    async def _save_telegram(self, player: Player, chat_id: int, now: datetime) -> None:
        cipher = self._require_cipher()
        address = str(chat_id)
        await self.link_store.save(
            player.id, Channel.TELEGRAM, cipher.encrypt(address), cipher.address_hash(address), now
        )
        log.info("player %d linked Telegram chat %s", player.id, mask_chat_id(chat_id))

    async def _tell_previous_owner(self, previous: Player, player: Player, channel: Channel, nonce: str) -> None:
        """Tell `previous` by Discord DM that their chat or number now belongs to `player` (best effort)."""
        if self.discord is None:
            return
        notice = OutgoingMessage(
            Channel.DISCORD, str(previous.discord_user_id), moved_away_text(channel, player.display_name), nonce,
            previous.id,
        )
        try:
            result = await self.discord.send(notice)
        except Exception as exc:  # a notice must never undo the link it reports
            result = SendResult.permanent(f"sender error: {type(exc).__name__}")
        if result.outcome is not Outcome.SENT:
            log.info("player %d: the notice that their %s moved failed (%s)", previous.id, channel.value, result.reason)

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
            limits=self.signal_limits,
        )
        if isinstance(created, Throttled):
            log.info("player %d: Signal code request for %s throttled", player.id, masked)
            raise _too_many(created, now, "code requests")
        minutes = max(1, round(self.code_ttl.total_seconds() / 60))
        text = signal_code_text(code, player.display_name, self.community_name(), minutes)
        try:
            # One attempt, no fallback: a code that did not leave is withdrawn below.
            result = await self.signal.send(
                OutgoingMessage(Channel.SIGNAL, number, text, nonce=f"code-{created.id}", player_id=player.id)
            )
        except Exception as exc:  # a sender bug must still leave no usable code behind
            log.error("player %d: Signal code to %s raised %s", player.id, masked, type(exc).__name__)
            result = SendResult.retryable(f"sender error: {type(exc).__name__}")
        if result.outcome is Outcome.SENT:
            log.info("player %d: Signal code sent to %s", player.id, masked)
            return expires_at
        await self.link_request_store.cancel_signal_verification(created.id, self.clock.now())
        log.info("player %d: Signal code to %s not sent (%s)", player.id, masked, result.reason)
        if result.outcome is Outcome.RETRYABLE:
            raise Unavailable("Signal could not take the code just now; try again in a few minutes.")
        # Refused for good (the number is not on Signal, most likely): answered as if sent, so that
        # nobody can use this to learn who has Signal; the withdrawn code matches nothing.
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
        if attempt is None or attempt.used_at is not None:
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
        # A withdrawn code (it never left) answers like any code typed wrong: that reveals nothing.
        matched &= attempt.cancelled_at is None
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
        previous_id = await self.link_store.player_for_address(Channel.SIGNAL, cipher.address_hashes(number))
        previous = await self.players.player(previous_id) if previous_id not in (None, player.id) else None
        await self.link_store.save(
            player.id, Channel.SIGNAL, cipher.encrypt(number), cipher.address_hash(number), now
        )
        log.info("player %d linked Signal number %s", player.id, mask_number(number))
        if previous is not None:
            await self._tell_previous_owner(previous, player, Channel.SIGNAL, f"sig-moved-{attempt.id}")

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

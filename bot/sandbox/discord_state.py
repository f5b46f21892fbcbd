"""The world the Discord emulator serves: users, guilds, channels, messages and application commands.

Plain data plus the JSON payload builders Discord's API v10 uses for them. Nothing here speaks HTTP
or WebSocket; `discord_rest` and `discord_gateway` do, on top of one `DiscordWorld`.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

T = TypeVar("T")

DISCORD_EPOCH_MS = 1_420_070_400_000

# Channel types (https://discord.com/developers/docs/resources/channel#channel-object-channel-types).
TEXT_CHANNEL = 0
DM_CHANNEL = 1
VOICE_CHANNEL = 2
STAGE_CHANNEL = 13
VOCAL_CHANNEL_TYPES = frozenset({VOICE_CHANNEL, STAGE_CHANNEL})

# Message flags.
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
FLAG_COMPONENTS_V2 = 1 << 15

# Component types (https://discord.com/developers/docs/components/reference).
ACTION_ROW = 1
BUTTON = 2
SELECT_TYPES = frozenset({3, 5, 6, 7, 8})
LINK_BUTTON_STYLE = 5
PREMIUM_BUTTON_STYLE = 6
MAX_ACTION_ROWS = 5
MAX_ROW_WIDTH = 5
MAX_CUSTOM_ID_LENGTH = 100
MAX_BUTTON_LABEL_LENGTH = 80

# Permission bits the emulator reasons about.
ADMINISTRATOR = 1 << 3
ALL_PERMISSIONS = (1 << 50) - 1
DEFAULT_EVERYONE_PERMISSIONS = (
    (1 << 6)  # add reactions
    | (1 << 10)  # view channel
    | (1 << 11)  # send messages
    | (1 << 14)  # embed links
    | (1 << 15)  # attach files
    | (1 << 16)  # read message history
    | (1 << 18)  # use external emojis
    | (1 << 20)  # connect
    | (1 << 21)  # speak
    | (1 << 25)  # use voice activity
    | (1 << 31)  # use application commands
)

MAX_CONTENT_LENGTH = 2000  # counted in code points, as Discord's (Python) API does
MAX_NONCE_LENGTH = 25
MAX_EMBEDS = 10

_COMMAND_NAME = re.compile(r"^[-_\w]{1,32}$")


class ApiError(Exception):
    """A Discord-shaped error answer: HTTP status, JSON error code and message."""

    def __init__(self, status: int, code: int, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        """Return the JSON body Discord would send."""
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return body


def invalid_form_body(field_name: str, error_code: str, message: str) -> ApiError:
    """Build Discord's 50035 "Invalid Form Body" error for one field."""
    return ApiError(
        400, 50035, "Invalid Form Body", {field_name: {"_errors": [{"code": error_code, "message": message}]}}
    )


def utc_iso(moment: datetime | None = None) -> str:
    """Return an ISO 8601 UTC timestamp as Discord writes them."""
    return (moment or datetime.now(UTC)).isoformat()


class Snowflakes:
    """Generate unique, time-ordered Discord snowflakes (so discord.py's snowflake_time works)."""

    def __init__(self, worker_id: int = 1) -> None:
        self._worker = (worker_id & 0x1F) << 17
        self._last_ms = 0
        self._increment = 0

    def next(self) -> int:
        """Return a fresh snowflake."""
        now_ms = int(time.time() * 1000)
        if now_ms <= self._last_ms:
            self._increment += 1
            if self._increment > 0xFFF:
                self._last_ms += 1
                self._increment = 0
        else:
            self._last_ms = now_ms
            self._increment = 0
        return ((self._last_ms - DISCORD_EPOCH_MS) << 22) | self._worker | self._increment


class Notifier:
    """Wake waiters whenever the emulator's state changes; callable from sync code."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        """Wake every current waiter."""
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait_until(
        self,
        predicate: Callable[[], T | None],
        timeout: float,  # noqa: ASYNC109 - a bounded wait is what the test helpers expose
        what: str,
    ) -> T:
        """Return predicate()'s first value other than None; raise TimeoutError naming `what`."""
        try:
            async with asyncio.timeout(timeout):
                while (result := predicate()) is None:
                    await self._event.wait()
        except TimeoutError:
            raise TimeoutError(f"discord emulator: {what} did not happen within {timeout:g} s") from None
        return result


@dataclass
class UserRecord:
    id: int
    username: str
    global_name: str | None = None
    bot: bool = False

    def payload(self) -> dict[str, Any]:
        """Return the user object."""
        return {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "bot": self.bot,
            "system": False,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
        }


@dataclass
class RoleRecord:
    id: int
    name: str
    permissions: int
    position: int

    def payload(self) -> dict[str, Any]:
        """Return the role object."""
        return {
            "id": str(self.id),
            "name": self.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }


@dataclass
class MemberRecord:
    user_id: int
    nick: str | None
    roles: list[int]
    joined_at: str


@dataclass
class ChannelRecord:
    id: int
    type: int
    name: str | None
    guild_id: int | None = None
    position: int = 0
    recipient_id: int | None = None  # DM channels only

    def payload(self, world: DiscordWorld) -> dict[str, Any]:
        """Return the channel object."""
        if self.type == DM_CHANNEL:
            recipient = world.users.get(self.recipient_id or 0)
            return {
                "id": str(self.id),
                "type": DM_CHANNEL,
                "last_message_id": world.last_message_id(self.id),
                "flags": 0,
                "recipients": [recipient.payload()] if recipient else [],
            }
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
            "rate_limit_per_user": 0,
            "flags": 0,
            "last_message_id": world.last_message_id(self.id),
        }
        if self.type == TEXT_CHANNEL:
            data["topic"] = None
        else:
            data.update(bitrate=64000, user_limit=0, rtc_region=None, video_quality_mode=1)
        return data


@dataclass
class VoiceStateRecord:
    user_id: int
    channel_id: int
    session_id: str
    self_mute: bool = False
    self_deaf: bool = False


@dataclass
class GuildRecord:
    id: int
    name: str
    owner_id: int | None
    roles: dict[int, RoleRecord] = field(default_factory=dict)
    members: dict[int, MemberRecord] = field(default_factory=dict)
    channel_ids: list[int] = field(default_factory=list)
    voice_states: dict[int, VoiceStateRecord] = field(default_factory=dict)


@dataclass
class NonceEntry:
    message_id: int
    seen_at: float


class DiscordWorld:
    """Everything the emulated Discord knows, with the rules Discord applies to it."""

    def __init__(
        self,
        *,
        token: str,
        application_id: int,
        bot_user_id: int,
        bot_username: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token
        self.application_id = application_id
        self.clock = clock
        self.snowflakes = Snowflakes()
        self.users: dict[int, UserRecord] = {}
        self.guilds: dict[int, GuildRecord] = {}
        self.channels: dict[int, ChannelRecord] = {}
        self.dm_channel_by_user: dict[int, int] = {}
        self.bot_user = self.add_user(bot_user_id, bot_username, bot=True)
        self.owner_user = self.add_user(self.snowflakes.next(), "sandbox-owner")
        # Messages: current state by id; ids per channel in creation order; nonce index for dedup.
        self.messages: dict[int, dict[str, Any]] = {}
        self.channel_message_ids: dict[int, list[int]] = {}
        self.nonces: dict[tuple[int, int, str], NonceEntry] = {}
        self.nonce_window = 180.0  # "the past few minutes"; Discord publishes no exact figure
        self.message_posts_total = 0
        # What each create and edit of a message said about pings (None: the body had no allowed_mentions).
        self.allowed_mentions: dict[int, list[Any]] = {}
        self.global_commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}
        self.command_syncs: Counter[int | None] = Counter()

    # ---- building the world -------------------------------------------------------------------

    def add_user(
        self, user_id: int, username: str, *, global_name: str | None = None, bot: bool = False
    ) -> UserRecord:
        """Create or replace a Discord user."""
        user = UserRecord(user_id, username, global_name, bot)
        self.users[user_id] = user
        return user

    def add_guild(self, guild_id: int, name: str, *, owner_id: int | None = None) -> GuildRecord:
        """Create a guild with its @everyone role, the bot already a member."""
        guild = GuildRecord(guild_id, name, owner_id)
        guild.roles[guild_id] = RoleRecord(guild_id, "@everyone", DEFAULT_EVERYONE_PERMISSIONS, 0)
        self.guilds[guild_id] = guild
        self.add_member(guild_id, self.bot_user.id)
        return guild

    def guild(self, guild_id: int) -> GuildRecord:
        """Return a guild or raise KeyError with a readable message."""
        try:
            return self.guilds[guild_id]
        except KeyError:
            raise KeyError(f"unknown guild {guild_id}") from None

    def add_role(self, guild_id: int, role_id: int, name: str, *, permissions: int = 0) -> RoleRecord:
        """Create a role in a guild."""
        guild = self.guild(guild_id)
        role = RoleRecord(role_id, name, permissions, len(guild.roles))
        guild.roles[role_id] = role
        return role

    def add_member(
        self, guild_id: int, user_id: int, *, nick: str | None = None, roles: Iterable[int] = ()
    ) -> MemberRecord:
        """Make an existing user a member of a guild."""
        guild = self.guild(guild_id)
        if user_id not in self.users:
            raise KeyError(f"unknown user {user_id}; add_user first")
        role_ids = [int(r) for r in roles]
        unknown = [r for r in role_ids if r not in guild.roles]
        if unknown:
            raise KeyError(f"unknown role(s) {unknown} in guild {guild_id}")
        member = MemberRecord(user_id, nick, role_ids, utc_iso())
        guild.members[user_id] = member
        return member

    def add_channel(self, guild_id: int, channel_id: int, name: str, channel_type: int) -> ChannelRecord:
        """Create a guild channel."""
        guild = self.guild(guild_id)
        channel = ChannelRecord(channel_id, channel_type, name, guild_id, position=len(guild.channel_ids))
        self.channels[channel_id] = channel
        guild.channel_ids.append(channel_id)
        return channel

    def dm_channel(self, user_id: int) -> ChannelRecord:
        """Return the bot's DM channel with a user, creating it once (same id every time)."""
        if user_id not in self.users:
            raise ApiError(404, 10013, "Unknown User")
        channel_id = self.dm_channel_by_user.get(user_id)
        if channel_id is None:
            channel_id = self.snowflakes.next()
            self.channels[channel_id] = ChannelRecord(channel_id, DM_CHANNEL, None, recipient_id=user_id)
            self.dm_channel_by_user[user_id] = channel_id
        return self.channels[channel_id]

    # ---- permissions and payloads -------------------------------------------------------------

    def member_permissions(self, guild: GuildRecord, user_id: int) -> int:
        """Compute a member's guild-level permissions from @everyone and their roles."""
        if guild.owner_id == user_id:
            return ALL_PERMISSIONS
        perms = guild.roles[guild.id].permissions
        member = guild.members.get(user_id)
        for role_id in member.roles if member else ():
            role = guild.roles.get(role_id)
            if role is not None:
                perms |= role.permissions
        return ALL_PERMISSIONS if perms & ADMINISTRATOR else perms

    def member_payload(
        self, guild: GuildRecord, user_id: int, *, with_user: bool = True, with_permissions: bool = False
    ) -> dict[str, Any]:
        """Return the guild member object."""
        member = guild.members[user_id]
        data: dict[str, Any] = {
            "nick": member.nick,
            "roles": [str(r) for r in member.roles],
            "joined_at": member.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "avatar": None,
            "banner": None,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.users[user_id].payload()
        if with_permissions:
            data["permissions"] = str(self.member_permissions(guild, user_id))
        return data

    def voice_state_payload(self, guild: GuildRecord, state: VoiceStateRecord) -> dict[str, Any]:
        """Return the voice state object (as in VOICE_STATE_UPDATE, with guild_id and member)."""
        return {
            "guild_id": str(guild.id),
            "channel_id": str(state.channel_id),
            "user_id": str(state.user_id),
            "member": self.member_payload(guild, state.user_id),
            "session_id": state.session_id,
            "deaf": False,
            "mute": False,
            "self_deaf": state.self_deaf,
            "self_mute": state.self_mute,
            "self_stream": False,
            "self_video": False,
            "suppress": False,
            "request_to_speak_timestamp": None,
        }

    def guild_payload(
        self,
        guild: GuildRecord,
        *,
        gateway: bool = False,
        all_members: bool = True,
        voice_states: bool = True,
    ) -> dict[str, Any]:
        """Return the guild object; with `gateway`, the GUILD_CREATE extras.

        Discord only lists every member in GUILD_CREATE when the bot has the presences intent;
        otherwise it sends the bot itself and the members in voice channels.
        """
        data: dict[str, Any] = {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(guild.owner_id) if guild.owner_id else None,
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 1,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "vanity_url_code": None,
            "features": [],
            "emojis": [],
            "stickers": [],
            "roles": [role.payload() for role in guild.roles.values()],
            "premium_progress_bar_enabled": False,
        }
        if not gateway:
            return data
        listed = [
            uid
            for uid in guild.members
            if all_members or uid == self.bot_user.id or (voice_states and uid in guild.voice_states)
        ]
        data.update(
            unavailable=False,
            joined_at=guild.members[self.bot_user.id].joined_at,
            large=len(guild.members) >= 250,
            member_count=len(guild.members),
            members=[self.member_payload(guild, uid) for uid in listed],
            channels=[self.channels[cid].payload(self) for cid in guild.channel_ids],
            threads=[],
            presences=[],
            stage_instances=[],
            guild_scheduled_events=[],
            soundboard_sounds=[],
            voice_states=[],
        )
        if voice_states:
            for state in guild.voice_states.values():
                entry = self.voice_state_payload(guild, state)
                del entry["guild_id"], entry["member"]  # GUILD_CREATE's voice states carry neither
                data["voice_states"].append(entry)
        return data

    def application_payload(self, flags: int) -> dict[str, Any]:
        """Return the application object answered by GET /oauth2/applications/@me."""
        return {
            "id": str(self.application_id),
            "name": self.bot_user.username,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": self.owner_user.payload(),
            "team": None,
            "flags": flags,
            "hook": True,
            "interactions_endpoint_url": None,
            "redirect_uris": [],
            "approximate_guild_count": len(self.guilds),
            "bot": self.bot_user.payload(),
        }

    # ---- messages -----------------------------------------------------------------------------

    def last_message_id(self, channel_id: int) -> str | None:
        """Return the id of the newest message in a channel, if any."""
        ids = self.channel_message_ids.get(channel_id)
        return str(ids[-1]) if ids else None

    def _expire_nonces(self) -> None:
        horizon = self.clock() - self.nonce_window
        for key in [k for k, entry in self.nonces.items() if entry.seen_at < horizon]:
            del self.nonces[key]

    def find_deduplicated(
        self, author_id: int, channel_id: int, body: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Return the original message when `enforce_nonce` repeats a recent nonce, else None."""
        nonce = body.get("nonce")
        if nonce is None or not body.get("enforce_nonce"):
            return None
        self._expire_nonces()
        entry = self.nonces.get((author_id, channel_id, str(nonce)))
        if entry is None:
            return None
        return self.messages.get(entry.message_id)

    def create_message(
        self,
        channel: ChannelRecord,
        body: dict[str, Any],
        *,
        author: UserRecord | None = None,
        message_type: int = 0,
        extra_flags: int = 0,
        interaction: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Validate a message body, store the new message and index its nonce."""
        validate_message_body(body, require_content=not (extra_flags & FLAG_LOADING))
        author = author or self.bot_user
        message_id = self.snowflakes.next()
        flags = int(body.get("flags") or 0) | extra_flags
        message: dict[str, Any] = {
            "id": str(message_id),
            "channel_id": str(channel.id),
            "type": message_type,
            "author": author.payload(),
            "content": body.get("content") or "",
            "timestamp": utc_iso(),
            "edited_timestamp": None,
            "tts": bool(body.get("tts", False)),
            **self._mentions(body.get("content") or "", body.get("allowed_mentions")),
            "attachments": [
                {
                    "id": str(self.snowflakes.next()),
                    "filename": a.get("filename", "file"),
                    "size": 0,
                    "url": "",
                    "proxy_url": "",
                }
                for a in body.get("attachments") or []
                if isinstance(a, dict)
            ],
            "embeds": list(body.get("embeds") or []),
            "components": list(body.get("components") or []),
            "pinned": False,
            "flags": flags,
        }
        if body.get("nonce") is not None:
            message["nonce"] = body["nonce"]
        if interaction is not None:
            message["webhook_id"] = str(self.application_id)
            message["application_id"] = str(self.application_id)
            message["interaction_metadata"] = interaction
        self.messages[message_id] = message
        self.allowed_mentions[message_id] = [body.get("allowed_mentions")]
        self.channel_message_ids.setdefault(channel.id, []).append(message_id)
        if body.get("nonce") is not None and body.get("enforce_nonce"):
            self.nonces[(author.id, channel.id, str(body["nonce"]))] = NonceEntry(message_id, self.clock())
        return message

    def _mentions(self, content: str, allowed: Any) -> dict[str, Any]:
        """Who a message pings, as Discord decides it: from the content, limited by allowed_mentions.

        Without allowed_mentions Discord parses everything: "@everyone" pings the whole server.
        """
        parse = {"everyone", "users", "roles"}
        users: set[str] = set()
        roles: set[str] = set()
        if isinstance(allowed, dict):
            parse = {p for p in allowed.get("parse") or [] if isinstance(p, str)}
            users = {str(u) for u in allowed.get("users") or []}
            roles = {str(r) for r in allowed.get("roles") or []}
        named_users = re.findall(r"<@!?([0-9]{17,20})>", content)
        named_roles = re.findall(r"<@&([0-9]{17,20})>", content)
        pinged = [u for u in named_users if "users" in parse or u in users]
        return {
            "mention_everyone": "everyone" in parse and re.search(r"@(everyone|here)\b", content) is not None,
            "mentions": [self.users[int(u)].payload() for u in dict.fromkeys(pinged) if int(u) in self.users],
            "mention_roles": [r for r in dict.fromkeys(named_roles) if "roles" in parse or r in roles],
        }

    def edit_message(self, message_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """Apply an edit (content, embeds, components, flags) to a stored message."""
        message = self.messages.get(message_id)
        if message is None:
            raise ApiError(404, 10008, "Unknown Message")
        validate_message_body(body, require_content=False)
        self.allowed_mentions.setdefault(message_id, []).append(body.get("allowed_mentions"))
        if "content" in body:
            message["content"] = body["content"] or ""
            message.update(self._mentions(message["content"], body.get("allowed_mentions")))
        for key in ("embeds", "components"):
            if key in body:
                message[key] = list(body[key] or [])
        if body.get("flags") is not None:
            # Only SUPPRESS_EMBEDS (and, for interactions, IS_COMPONENTS_V2) may change; keep ephemeral.
            message["flags"] = (message["flags"] & FLAG_EPHEMERAL) | int(body["flags"])
        message["flags"] &= ~FLAG_LOADING
        message["edited_timestamp"] = utc_iso()
        return message

    def delete_message(self, message_id: int) -> None:
        """Delete a stored message."""
        message = self.messages.pop(message_id, None)
        if message is None:
            raise ApiError(404, 10008, "Unknown Message")
        ids = self.channel_message_ids.get(int(message["channel_id"]), [])
        if message_id in ids:
            ids.remove(message_id)

    def channel_messages(self, channel_id: int, *, include_ephemeral: bool = False) -> list[dict[str, Any]]:
        """Return the messages of a channel in creation order."""
        out = [
            self.messages[mid] for mid in self.channel_message_ids.get(channel_id, []) if mid in self.messages
        ]
        if include_ephemeral:
            return out
        return [m for m in out if not int(m.get("flags", 0)) & FLAG_EPHEMERAL]

    # ---- application commands -----------------------------------------------------------------

    def overwrite_commands(self, guild_id: int | None, payload: Any) -> list[dict[str, Any]]:
        """Bulk-overwrite commands: same (name, type) keeps its id, the rest is replaced."""
        if not isinstance(payload, list):
            raise ApiError(400, 50035, "Invalid Form Body")
        if len(payload) > 100:
            raise invalid_form_body("_", "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
        existing = self.global_commands if guild_id is None else self.guild_commands.get(guild_id, [])
        ids = {(c["name"], c["type"]): c["id"] for c in existing}
        seen: set[tuple[str, int]] = set()
        result: list[dict[str, Any]] = []
        for index, raw in enumerate(payload):
            command = validate_command(raw, index)
            key = (command["name"], command["type"])
            if key in seen:
                raise invalid_form_body(
                    str(index),
                    "APPLICATION_COMMANDS_DUPLICATE_NAME",
                    "Application command names must be unique",
                )
            seen.add(key)
            command.update(
                id=ids.get(key) or str(self.snowflakes.next()),
                application_id=str(self.application_id),
                version=str(self.snowflakes.next()),
            )
            if guild_id is not None:
                command["guild_id"] = str(guild_id)
            result.append(command)
        if guild_id is None:
            self.global_commands = result
        else:
            self.guild_commands[guild_id] = result
        self.command_syncs[guild_id] += 1
        return result

    def find_command(self, guild_id: int | None, name: str, command_type: int = 1) -> dict[str, Any] | None:
        """Return the synced command a user would see in a guild (guild commands first)."""
        scopes = ([self.guild_commands.get(guild_id, [])] if guild_id is not None else []) + [
            self.global_commands
        ]
        for commands in scopes:
            for command in commands:
                if command["name"] == name and command["type"] == command_type:
                    return command
        return None


def validate_message_body(body: dict[str, Any], *, require_content: bool) -> None:
    """Apply Discord's message checks: length, nonce, embeds, non-empty."""
    content = body.get("content")
    if content is not None and not isinstance(content, str):
        raise invalid_form_body("content", "BASE_TYPE_STRING", "Must be a string.")
    if content and len(content) > MAX_CONTENT_LENGTH:
        raise invalid_form_body(
            "content", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT_LENGTH} or fewer in length."
        )
    nonce = body.get("nonce")
    if nonce is not None and len(str(nonce)) > MAX_NONCE_LENGTH:
        raise invalid_form_body(
            "nonce", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_NONCE_LENGTH} or fewer in length."
        )
    embeds = body.get("embeds") or []
    if len(embeds) > MAX_EMBEDS:
        raise invalid_form_body("embeds", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_EMBEDS} or fewer in length.")
    components = body.get("components") or []
    if not isinstance(components, list):
        raise invalid_form_body("components", "BASE_TYPE_ARRAY", "Must be an array.")
    validate_components(components, v2=bool(int(body.get("flags") or 0) & FLAG_COMPONENTS_V2))
    if require_content and not (
        content or embeds or body.get("components") or body.get("attachments") or body.get("sticker_ids")
    ):
        raise ApiError(400, 50006, "Cannot send an empty message")


def validate_components(components: list[Any], *, v2: bool) -> None:
    """Apply Discord's component checks to a message's `components` (legacy action rows unless `v2`).

    Legacy messages hold at most 5 action rows, each with 1-5 buttons or exactly one select menu;
    buttons other than link/premium ones need a custom_id; custom ids are at most 100 characters and
    unique within the message; labels at most 80 characters.
    """
    if not v2 and len(components) > MAX_ACTION_ROWS:
        raise invalid_form_body(
            "components", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_ACTION_ROWS} or fewer in length."
        )
    for index, row in enumerate(components):
        where = f"components.{index}"
        if not isinstance(row, dict):
            raise invalid_form_body(where, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
        if v2:
            continue
        if row.get("type") != ACTION_ROW:
            raise invalid_form_body(f"{where}.type", "UNION_TYPE_CHOICES", 'Value of field "type" must be one of (1,).')
        children = row.get("components") or []
        kinds = [c.get("type") if isinstance(c, dict) else None for c in children]
        one_select = len(kinds) == 1 and kinds[0] in SELECT_TYPES
        buttons_only = 0 < len(kinds) <= MAX_ROW_WIDTH and all(k == BUTTON for k in kinds)
        if not (one_select or buttons_only):
            raise invalid_form_body(
                f"{where}.components",
                "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                "The specified component exceeds the maximum width",
            )
        for position, button in enumerate(children if not one_select else []):
            _validate_button(button, f"{where}.components.{position}")
    seen: set[str] = set()
    for component in iter_components(c for c in components if isinstance(c, dict)):
        custom_id = component.get("custom_id")
        if custom_id is None:
            continue
        if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= MAX_CUSTOM_ID_LENGTH:
            raise invalid_form_body(
                "components", "BASE_TYPE_BAD_LENGTH", f"Must be between 1 and {MAX_CUSTOM_ID_LENGTH} in length."
            )
        if custom_id in seen:
            raise invalid_form_body(
                "components", "COMPONENT_CUSTOM_ID_DUPLICATED", "Component custom id cannot be duplicated"
            )
        seen.add(custom_id)


def _validate_button(button: dict[str, Any], where: str) -> None:
    style = button.get("style")
    if style not in range(1, 7):
        raise invalid_form_body(f"{where}.style", "BASE_TYPE_CHOICES", "Value must be one of (1, 2, 3, 4, 5, 6).")
    if style == LINK_BUTTON_STYLE:
        if not button.get("url") or "custom_id" in button:
            raise invalid_form_body(where, "BUTTON_COMPONENT_INVALID", "A link button needs a url and no custom_id")
    elif style != PREMIUM_BUTTON_STYLE and not button.get("custom_id"):
        raise invalid_form_body(f"{where}.custom_id", "BASE_TYPE_REQUIRED", "This field is required")
    label = button.get("label")
    if label is not None and len(str(label)) > MAX_BUTTON_LABEL_LENGTH:
        raise invalid_form_body(
            f"{where}.label", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_BUTTON_LABEL_LENGTH} or fewer in length."
        )


def iter_components(components: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    """Yield every component in a (possibly nested, components v2) component tree."""
    for component in components:
        yield component
        yield from iter_components(component.get("components") or [])
        accessory = component.get("accessory")
        if isinstance(accessory, dict):
            yield accessory
        inner = component.get("component")
        if isinstance(inner, dict):
            yield inner


def validate_command(raw: Any, index: int) -> dict[str, Any]:
    """Check one application command the way Discord's bulk overwrite does; return a normalised copy."""
    if not isinstance(raw, dict):
        raise invalid_form_body(
            str(index), "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType"
        )
    command = dict(raw)
    command.setdefault("type", 1)
    name = command.get("name")
    if (
        not isinstance(name, str)
        or not _COMMAND_NAME.match(name)
        or (command["type"] == 1 and name != name.lower())
    ):
        raise invalid_form_body(
            f"{index}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
        )
    if command["type"] == 1:
        description = command.get("description")
        if not isinstance(description, str) or not 1 <= len(description) <= 100:
            raise invalid_form_body(
                f"{index}.description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
            )
        _validate_options(command.get("options") or [], f"{index}.options")
    command.setdefault("description", "")
    command.setdefault("options", [])
    command.setdefault("default_member_permissions", None)
    command.setdefault("nsfw", False)
    command.setdefault("name_localizations", None)
    command.setdefault("description_localizations", None)
    command.setdefault("contexts", None)
    command.setdefault("integration_types", [0])
    return command


def _validate_options(options: list[dict[str, Any]], where: str) -> None:
    if len(options) > 25:
        raise invalid_form_body(where, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    names: set[str] = set()
    optional_seen = False
    for i, option in enumerate(options):
        name = option.get("name")
        if not isinstance(name, str) or not _COMMAND_NAME.match(name) or name != name.lower():
            raise invalid_form_body(
                f"{where}.{i}.name", "APPLICATION_COMMAND_INVALID_NAME", "Option name is invalid"
            )
        if name in names:
            raise invalid_form_body(
                f"{where}.{i}.name",
                "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                "Option names must be unique",
            )
        names.add(name)
        description = option.get("description")
        if not isinstance(description, str) or not 1 <= len(description) <= 100:
            raise invalid_form_body(
                f"{where}.{i}.description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
            )
        if option.get("type") in (1, 2):
            _validate_options(option.get("options") or [], f"{where}.{i}.options")
            continue
        if len(option.get("choices") or []) > 25:
            raise invalid_form_body(
                f"{where}.{i}.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
            )
        if option.get("required"):
            if optional_seen:
                raise invalid_form_body(
                    f"{where}.{i}",
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                )
        else:
            optional_seen = True

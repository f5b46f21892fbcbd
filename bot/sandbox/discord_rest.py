"""The Discord emulator's REST API v10: the routes discord.py calls, with Discord's answers and errors.

Every answer is JSON with Content-Type exactly `application/json`: discord.py parses nothing else, not
even `application/json; charset=utf-8` (what aiohttp's json_response sends).
Fault injection (latency, 429s, 5xx, closed DMs) lives in `Faults` and takes effect on the next request.
What Discord enforces on all routes together (the global rate limit, the invalid-request ban) lives in
`discord_limits.RestLimits`; the middleware applies it and `Traffic` counts who was asked for what.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

from bot.sandbox import discord_interactions as interactions
from bot.sandbox.discord_gateway import (
    DIRECT_MESSAGES,
    GUILD_MEMBERS,
    GUILD_MESSAGES,
    GatewayHub,
    application_flags,
)
from bot.sandbox.discord_limits import RestLimits
from bot.sandbox.discord_oauth import AUTHORIZE_PATH, OAuthServer
from bot.sandbox.discord_state import (
    DM_CHANNEL,
    FLAG_EPHEMERAL,
    TEXT_CHANNEL,
    VOCAL_CHANNEL_TYPES,
    ApiError,
    ChannelRecord,
    DiscordWorld,
    Notifier,
)

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Routes an OAuth2 access token (Authorization: Bearer) may call, with scope `identify`.
_BEARER_ROUTES = frozenset({"GET /users/@me"})


@dataclass
class Faults:
    """Failures the emulator injects; mutate them at any time, they apply from the next request."""

    latency: float = 0.0  # seconds added before every REST answer
    rate_limits: deque[float] = field(default_factory=deque)  # retry_after of the next 429s (message POSTs)
    server_errors: deque[int] = field(default_factory=deque)  # statuses of the next 5xx (message POSTs)
    dm_closed_user_ids: set[int] = field(default_factory=set)  # DMs to them answer 403 / 50007


@dataclass
class Traffic:
    """What the bot asked for, counted per route and per addressee (requests refused on arrival included)."""

    routes: Counter[str] = field(default_factory=Counter)  # "POST /channels/{channel_id}/messages" → n
    channels: Counter[int] = field(default_factory=Counter)  # requests naming a channel in their path
    users: Counter[int] = field(default_factory=Counter)  # requests naming a user (path, or DM recipient_id)
    dm_channel_opens: Counter[int] = field(default_factory=Counter)  # answered POST /users/@me/channels
    dm_closed_refusals: Counter[int] = field(default_factory=Counter)  # 403 / 50007 answers, per recipient
    arrivals: list[tuple[float, str]] = field(default_factory=list)  # (clock time, route) of every request


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Exactly "application/json": discord.py's json_or_text compares the header verbatim, and
    # web.json_response would append "; charset=utf-8".
    body = json.dumps(data, separators=(",", ":")).encode()
    all_headers = {**(headers or {}), "Content-Type": "application/json"}
    return web.Response(body=body, status=status, headers=all_headers)


def _snowflake(request: web.Request, key: str) -> int:
    try:
        value = int(request.match_info[key])
    except ValueError:
        raise ApiError(
            400,
            50035,
            "Invalid Form Body",
            {key: {"_errors": [{"code": "NUMBER_TYPE_COERCE", "message": "Value is not snowflake."}]}},
        ) from None
    return value


async def _body(request: web.Request) -> Any:
    """Read a JSON body, or the payload_json part of a multipart upload."""
    if request.content_type == "multipart/form-data":
        payload: dict[str, Any] = {}
        files: list[dict[str, Any]] = []
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "payload_json":
                payload = json.loads(await part.text())
            elif part.filename:
                await part.read()
                files.append({"filename": part.filename})
        if files and "attachments" not in payload:
            payload["attachments"] = files
        return payload
    raw = await request.read()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, 50109, "The request body contains invalid JSON.") from None


async def _object_body(request: web.Request) -> dict[str, Any]:
    body = await _body(request)
    if not isinstance(body, dict):
        raise ApiError(400, 50109, "The request body contains invalid JSON.")
    return body


async def _body_or_none(request: web.Request) -> Any:
    try:
        return await _body(request)  # aiohttp keeps the bytes: the handler reads them again
    except ApiError:
        return None


def _recipient_id(body: Any) -> int | None:
    """Return the user a DM-channel request names, if the body names one."""
    try:
        return int(body["recipient_id"])
    except (TypeError, KeyError, ValueError):
        return None


def _global_rate_limited(retry_after: float) -> web.Response:
    headers = {
        "Retry-After": str(math.ceil(retry_after)),
        "X-RateLimit-Global": "true",
        "X-RateLimit-Scope": "global",
        "Via": "1.1 google",  # every answer from Discord itself has it (see `_rate_limited`)
    }
    body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": True}
    return _json(body, status=429, headers=headers)


def _cloudflare_ban() -> web.Response:
    # Cloudflare answers for Discord here: plain text, no Via, no rate-limit headers (discord.py
    # recognises exactly that as a ban and raises instead of retrying).
    return web.Response(status=429, text="error code: 1015", content_type="text/plain")


class RestApi:
    """Route handlers over one DiscordWorld; `install` adds them to an aiohttp application."""

    def __init__(
        self,
        world: DiscordWorld,
        notifier: Notifier,
        hub: GatewayHub,
        registry: interactions.InteractionRegistry,
        faults: Faults,
        limits: RestLimits,
        oauth: OAuthServer,
        *,
        prefix: str,
        clock: Callable[[], float],
        gateway_url: Callable[[], str],
        interaction_deadline: Callable[[], float],
    ) -> None:
        self._world = world
        self._notifier = notifier
        self._hub = hub
        self._registry = registry
        self._faults = faults
        self._limits = limits
        self._oauth = oauth
        self._prefix = prefix
        self._clock = clock
        self._gateway_url = gateway_url
        self._interaction_deadline = interaction_deadline
        self.traffic = Traffic()
        self._no_auth: set[str] = set()

    # ---- wiring -------------------------------------------------------------------------------

    def install(self, app: web.Application) -> None:
        """Add the middleware and every route under the API prefix."""
        app.middlewares.append(self._middleware)
        routes: list[tuple[str, str, Handler, bool]] = [
            ("GET", "/users/@me", self.get_me, True),
            ("GET", "/users/{user_id}", self.get_user, True),
            ("POST", "/users/@me/channels", self.open_dm, True),
            ("GET", "/oauth2/applications/@me", self.get_application, True),
            ("GET", "/applications/@me", self.get_application, True),
            ("GET", "/gateway", self.get_gateway, False),
            ("GET", "/gateway/bot", self.get_gateway_bot, True),
            ("GET", "/applications/{app_id}/commands", self.get_global_commands, True),
            ("PUT", "/applications/{app_id}/commands", self.put_global_commands, True),
            ("GET", "/applications/{app_id}/guilds/{guild_id}/commands", self.get_guild_commands, True),
            ("PUT", "/applications/{app_id}/guilds/{guild_id}/commands", self.put_guild_commands, True),
            ("GET", "/channels/{channel_id}", self.get_channel, True),
            ("POST", "/channels/{channel_id}/messages", self.post_message, True),
            ("GET", "/channels/{channel_id}/messages", self.list_messages, True),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self.get_message, True),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self.patch_message, True),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}", self.delete_message, True),
            ("GET", "/guilds/{guild_id}", self.get_guild, True),
            ("GET", "/guilds/{guild_id}/channels", self.get_guild_channels, True),
            ("GET", "/guilds/{guild_id}/roles", self.get_guild_roles, True),
            ("GET", "/guilds/{guild_id}/members", self.list_members, True),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self.get_member, True),
            ("POST", "/oauth2/token", self._oauth.token, False),
            ("POST", "/interactions/{interaction_id}/{token}/callback", self.interaction_callback, False),
            ("POST", "/webhooks/{app_id}/{token}", self.webhook_execute, False),
            ("GET", "/webhooks/{app_id}/{token}/messages/{ref}", self.webhook_get_message, False),
            ("PATCH", "/webhooks/{app_id}/{token}/messages/{ref}", self.webhook_edit_message, False),
            ("DELETE", "/webhooks/{app_id}/{token}/messages/{ref}", self.webhook_delete_message, False),
        ]
        for method, path, handler, needs_auth in routes:
            app.router.add_route(method, self._prefix + path, handler)
            if not needs_auth:
                self._no_auth.add(f"{method} {path}")
        app.router.add_get(AUTHORIZE_PATH, self._oauth.authorize)  # a page of discord.com, not of the API

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(self._prefix + "/"):
            return await handler(request)  # the gateway WebSocket
        resource = request.match_info.route.resource
        canonical = resource.canonical[len(self._prefix) :] if resource is not None else "<unknown>"
        key = f"{request.method} {canonical}"
        await self._count(request, key)
        if self._limits.refuse_banned():
            return _cloudflare_ban()
        if self._faults.latency > 0:
            await asyncio.sleep(self._faults.latency)
        response = await self._answer(request, handler, key, known=resource is not None)
        self._limits.record_answer(
            response.status, shared_scope=response.headers.get("X-RateLimit-Scope") == "shared"
        )
        self._notifier.notify()
        return response

    async def _answer(self, request: web.Request, handler: Handler, key: str, *, known: bool) -> web.StreamResponse:
        try:
            if key not in self._no_auth and known:
                if self._bot_authorized(request):
                    # The bot token's global limit; interaction callbacks and webhooks (no-auth routes)
                    # and OAuth users (their own limit) are not bound by it.
                    retry_after = self._limits.admit()
                    if retry_after is not None:
                        return _global_rate_limited(retry_after)
                elif key not in _BEARER_ROUTES or self._bearer_user(request) is None:
                    raise ApiError(401, 0, "401: Unauthorized")
            return await handler(request)
        except ApiError as exc:
            return _json(exc.body(), status=exc.status)
        except web.HTTPNotFound:
            return _json({"message": "404: Not Found", "code": 0}, status=404)
        except web.HTTPMethodNotAllowed:
            return _json({"message": "405: Method Not Allowed", "code": 0}, status=405)

    async def _count(self, request: web.Request, key: str) -> None:
        traffic = self.traffic
        traffic.routes[key] += 1
        traffic.arrivals.append((self._clock(), key))
        info = request.match_info
        if "channel_id" in info and info["channel_id"].isdigit():
            traffic.channels[int(info["channel_id"])] += 1
        if "user_id" in info and info["user_id"].isdigit():
            traffic.users[int(info["user_id"])] += 1
        if key == "POST /users/@me/channels":
            recipient = _recipient_id(await _body_or_none(request))
            if recipient is not None:
                traffic.users[recipient] += 1

    def _bot_authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bot ") and secrets.compare_digest(header[4:], self._world.token)

    def _bearer_user(self, request: web.Request) -> int | None:
        return self._oauth.bearer_user(request.headers.get("Authorization", ""))

    def _check_app(self, request: web.Request) -> None:
        if request.match_info["app_id"] != str(self._world.application_id):
            raise ApiError(403, 20012, "You are not authorized to perform this action on this application")

    # ---- users, application, gateway ------------------------------------------------------------

    async def get_me(self, request: web.Request) -> web.Response:
        bearer = self._bearer_user(request)
        if bearer is not None:  # a user signed in with OAuth2 (scope identify)
            return _json(self._world.users[bearer].payload())
        user = {
            **self._world.bot_user.payload(),
            "verified": True,
            "mfa_enabled": False,
            "locale": "en-US",
            "email": None,
        }
        return _json(user)

    async def get_user(self, request: web.Request) -> web.Response:
        user = self._world.users.get(_snowflake(request, "user_id"))
        if user is None:
            raise ApiError(404, 10013, "Unknown User")
        return _json(user.payload())

    async def get_application(self, request: web.Request) -> web.Response:
        return _json(self._world.application_payload(application_flags(self._hub.allowed_privileged_intents)))

    async def get_gateway(self, request: web.Request) -> web.Response:
        return _json({"url": self._gateway_url()})

    async def get_gateway_bot(self, request: web.Request) -> web.Response:
        return _json(
            {
                "url": self._gateway_url(),
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 86_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    async def open_dm(self, request: web.Request) -> web.Response:
        recipient = _recipient_id(await _object_body(request))
        if recipient is None:
            raise ApiError(400, 50035, "Invalid Form Body")
        channel = self._world.dm_channel(recipient)
        self.traffic.dm_channel_opens[recipient] += 1
        return _json(channel.payload(self._world))

    # ---- application commands -----------------------------------------------------------------

    def _guild_for_commands(self, request: web.Request) -> int:
        self._check_app(request)
        guild_id = _snowflake(request, "guild_id")
        guild = self._world.guilds.get(guild_id)
        if guild is None or self._world.bot_user.id not in guild.members:
            raise ApiError(403, 50001, "Missing Access")
        return guild_id

    async def get_global_commands(self, request: web.Request) -> web.Response:
        self._check_app(request)
        return _json(self._world.global_commands)

    async def put_global_commands(self, request: web.Request) -> web.Response:
        self._check_app(request)
        result = self._world.overwrite_commands(None, await _body(request))
        self._notifier.notify()
        return _json(result)

    async def get_guild_commands(self, request: web.Request) -> web.Response:
        guild_id = self._guild_for_commands(request)
        return _json(self._world.guild_commands.get(guild_id, []))

    async def put_guild_commands(self, request: web.Request) -> web.Response:
        guild_id = self._guild_for_commands(request)
        result = self._world.overwrite_commands(guild_id, await _body(request))
        self._notifier.notify()
        return _json(result)

    # ---- channels and messages ----------------------------------------------------------------

    def _channel(self, request: web.Request) -> ChannelRecord:
        channel = self._world.channels.get(_snowflake(request, "channel_id"))
        if channel is None:
            raise ApiError(404, 10003, "Unknown Channel")
        return channel

    def _channel_message(self, request: web.Request) -> tuple[ChannelRecord, dict[str, Any]]:
        channel = self._channel(request)
        message = self._world.messages.get(_snowflake(request, "message_id"))
        if message is None or message["channel_id"] != str(channel.id) or message["flags"] & FLAG_EPHEMERAL:
            raise ApiError(404, 10008, "Unknown Message")
        return channel, message

    async def get_channel(self, request: web.Request) -> web.Response:
        return _json(self._channel(request).payload(self._world))

    async def post_message(self, request: web.Request) -> web.Response:
        self._world.message_posts_total += 1
        self._notifier.notify()
        if self._faults.rate_limits:
            return self._rate_limited(self._faults.rate_limits.popleft())
        if self._faults.server_errors:
            status = self._faults.server_errors.popleft()
            return _json({"message": f"{status}: Server Error", "code": 0}, status=status)
        channel = self._channel(request)
        if channel.type == DM_CHANNEL:
            recipient = self._world.users.get(channel.recipient_id or 0)
            if channel.recipient_id in self._faults.dm_closed_user_ids or (
                recipient is not None and recipient.bot
            ):
                self.traffic.dm_closed_refusals[channel.recipient_id or 0] += 1
                raise ApiError(403, 50007, "Cannot send messages to this user")
        elif channel.type != TEXT_CHANNEL and channel.type not in VOCAL_CHANNEL_TYPES:
            raise ApiError(400, 50008, "Cannot send messages in a non-text channel")
        body = await _object_body(request)
        original = self._world.find_deduplicated(self._world.bot_user.id, channel.id, body)
        if original is not None:
            return _json(original)
        message = self._world.create_message(channel, body)
        await self.announce("MESSAGE_CREATE", channel, message)
        return _json(message)

    def _rate_limited(self, retry_after: float) -> web.Response:
        headers = {
            "Retry-After": str(math.ceil(retry_after)),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Bucket": "emulator-messages",
            "X-RateLimit-Scope": "user",
            # discord.py treats a 429 without Via as a Cloudflare ban and does not retry it.
            "Via": "1.1 google",
        }
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": False}
        return _json(body, status=429, headers=headers)

    async def list_messages(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        limit = max(1, min(100, int(request.query.get("limit", "50"))))
        messages = list(reversed(self._world.channel_messages(channel.id)))  # newest first, as Discord
        return _json(messages[:limit])

    async def get_message(self, request: web.Request) -> web.Response:
        return _json(self._channel_message(request)[1])

    async def patch_message(self, request: web.Request) -> web.Response:
        channel, message = self._channel_message(request)
        edited = self._world.edit_message(int(message["id"]), await _object_body(request))
        await self.announce("MESSAGE_UPDATE", channel, edited)
        return _json(edited)

    async def delete_message(self, request: web.Request) -> web.Response:
        channel, message = self._channel_message(request)
        self._world.delete_message(int(message["id"]))
        await self.announce("MESSAGE_DELETE", channel, message)
        return web.Response(status=204)

    async def announce(self, event: str, channel: ChannelRecord, message: dict[str, Any]) -> None:
        """Tell connected sessions about a created/edited/deleted (non-ephemeral) message."""
        self._notifier.notify()
        if int(message.get("flags", 0)) & FLAG_EPHEMERAL:
            return
        if event == "MESSAGE_DELETE":
            data: dict[str, Any] = {"id": message["id"], "channel_id": message["channel_id"]}
        else:
            data = dict(message)
        if channel.guild_id is not None:
            data["guild_id"] = str(channel.guild_id)
            guild = self._world.guilds[channel.guild_id]
            if event == "MESSAGE_CREATE" and self._world.bot_user.id in guild.members:
                data["member"] = self._world.member_payload(guild, self._world.bot_user.id, with_user=False)
        intent = GUILD_MESSAGES if channel.guild_id is not None else DIRECT_MESSAGES
        await self._hub.broadcast(event, data, intent=intent, guild_id=channel.guild_id)

    # ---- guilds -------------------------------------------------------------------------------

    def _guild(self, request: web.Request) -> Any:
        guild = self._world.guilds.get(_snowflake(request, "guild_id"))
        if guild is None or self._world.bot_user.id not in guild.members:
            raise ApiError(404, 10004, "Unknown Guild")
        return guild

    async def get_guild(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        data = self._world.guild_payload(guild)
        if request.query.get("with_counts") in ("true", "1"):
            data.update(approximate_member_count=len(guild.members), approximate_presence_count=0)
        return _json(data)

    async def get_guild_channels(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        return _json([self._world.channels[cid].payload(self._world) for cid in guild.channel_ids])

    async def get_guild_roles(self, request: web.Request) -> web.Response:
        return _json([role.payload() for role in self._guild(request).roles.values()])

    async def list_members(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        if not self._hub.allowed_privileged_intents & GUILD_MEMBERS:
            raise ApiError(403, 50001, "Missing Access")  # listing members needs the members intent
        limit = max(1, min(1000, int(request.query.get("limit", "1"))))
        after = int(request.query.get("after", "0"))
        ids = sorted(uid for uid in guild.members if uid > after)[:limit]
        return _json([self._world.member_payload(guild, uid) for uid in ids])

    async def get_member(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        user_id = _snowflake(request, "user_id")
        if user_id not in guild.members:
            raise ApiError(404, 10007, "Unknown Member")
        return _json(self._world.member_payload(guild, user_id))

    # ---- interactions and their webhooks ------------------------------------------------------

    async def interaction_callback(self, request: web.Request) -> web.Response:
        record = self._registry.by_id_and_token(
            request.match_info["interaction_id"], request.match_info["token"]
        )
        body = await _object_body(request)
        applied = interactions.apply_callback(self._world, record, body, self._interaction_deadline())
        await self._announce_applied(record, applied)
        if request.query.get("with_response") in ("1", "true", "True"):
            return _json(applied.body)
        return web.Response(status=204)

    def _webhook_record(self, request: web.Request) -> interactions.InteractionRecord:
        if request.match_info["app_id"] != str(self._world.application_id):
            raise ApiError(404, 10015, "Unknown Webhook")
        return self._registry.by_token(request.match_info["token"])

    async def webhook_execute(self, request: web.Request) -> web.Response:
        record = self._webhook_record(request)
        applied = interactions.execute_followup(self._world, record, await _object_body(request))
        await self._announce_applied(record, applied)
        if request.query.get("wait") in ("1", "true", "True"):
            return _json(applied.body)
        return web.Response(status=204)

    async def webhook_get_message(self, request: web.Request) -> web.Response:
        record = self._webhook_record(request)
        record.check_token_alive()
        return _json(self._world.messages[record.resolve_message_ref(request.match_info["ref"])])

    async def webhook_edit_message(self, request: web.Request) -> web.Response:
        record = self._webhook_record(request)
        body = await _object_body(request)
        applied = interactions.edit_response(self._world, record, request.match_info["ref"], body)
        await self._announce_applied(record, applied)
        return _json(applied.body)

    async def webhook_delete_message(self, request: web.Request) -> web.Response:
        record = self._webhook_record(request)
        message = interactions.delete_response(self._world, record, request.match_info["ref"])
        await self.announce("MESSAGE_DELETE", self._world.channels[record.channel_id], message)
        return web.Response(status=204)

    async def _announce_applied(
        self, record: interactions.InteractionRecord, applied: interactions.Applied
    ) -> None:
        self._notifier.notify()
        channel = self._world.channels[record.channel_id]
        if applied.created is not None:
            await self.announce("MESSAGE_CREATE", channel, applied.created)
        if applied.edited is not None:
            await self.announce("MESSAGE_UPDATE", channel, applied.edited)

"""A loopback Discord (REST API v10 + gateway v10) that an unmodified discord.py client connects to.

Build a world, start the server, point discord.py at it with `bot.discord_endpoints.apply_discord_endpoints`
(`emulator.api_base_url`, `emulator.gateway_url`), then drive it like a user would:

    emulator = DiscordEmulator()
    emulator.add_guild(GUILD, "Night Owls")
    emulator.add_member(GUILD, ALICE, "alice")
    emulator.add_text_channel(GUILD, GENERAL, "general")
    await emulator.start()
    ...  # start the bot
    await emulator.wait_for_commands(GUILD)
    record = await emulator.invoke_slash(GUILD, ALICE, "promote schedule", {"dry_run": True})
    await record.wait_message()

Like Discord, it enforces a global limit of 50 requests/s per bot token (`global_rate_limit`, None
lifts it) and bans a bot that gets more than 10,000 401/403/429 answers in 10 minutes; DM channel
ids are stable per user, and every request is counted per route and per addressee
(`requests_to_user`, `dm_channel_opens`, `dm_closed_refusals`) and noted with its arrival time
(`arrivals`). Users press buttons on their DMs
(`press_dm_button`) and sign in with OAuth2 on `oauth_authorize_url`.

Everything is in-process and async; nothing runs at import time. The pieces: `discord_state` (the
world and its payloads), `discord_rest` (routes, faults), `discord_limits` (the global limit and the
invalid-request ban), `discord_gateway` (WebSocket sessions), `discord_interactions` (what users
send, what the bot answers), `discord_oauth` (the authorize page and token endpoint).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from aiohttp import web

from bot.sandbox.discord_gateway import (
    GUILD_VOICE_STATES,
    PRIVILEGED_INTENTS,
    GatewayHub,
    SessionInfo,
)
from bot.sandbox.discord_interactions import (
    InteractionEvent,
    InteractionRecord,
    InteractionRegistry,
    build_command_interaction,
    build_component_interaction,
    build_modal_submit,
)
from bot.sandbox.discord_limits import RestLimits
from bot.sandbox.discord_oauth import AUTHORIZE_PATH, OAuthServer
from bot.sandbox.discord_rest import Faults, RestApi
from bot.sandbox.discord_state import (
    BUTTON,
    STAGE_CHANNEL,
    TEXT_CHANNEL,
    VOCAL_CHANNEL_TYPES,
    VOICE_CHANNEL,
    DiscordWorld,
    Notifier,
    VoiceStateRecord,
    iter_components,
)

__all__ = ["DiscordEmulator", "InteractionEvent", "InteractionRecord", "SessionInfo"]

log = logging.getLogger(__name__)

T = TypeVar("T")

API_PREFIX = "/api/v10"
GATEWAY_PATH = "/gateway"


class DiscordEmulator:
    """A fake Discord for one bot application: world building, lifecycle, user actions, faults, inspection.

    World changes made after the bot identified are served by REST and by the next GUILD_CREATE (a
    reconnect); only `set_voice_state` and message/interaction traffic are dispatched live.
    """

    def __init__(
        self,
        token: str = "sandbox-token",  # noqa: S107 - the sandbox's well-known fake token
        *,
        application_id: int = 1_200_000_000_000_000_001,
        bot_user_id: int | None = None,
        bot_username: str = "Rallypoint",
        heartbeat_interval_ms: int = 41_250,
        allowed_privileged_intents: int = PRIVILEGED_INTENTS,
        clock: Callable[[], float] = time.monotonic,
        global_rate_limit: int | None = 50,
        invalid_request_limit: int = 10_000,
        ban_seconds: float = 3600.0,
        oauth_client_secret: str = "sandbox-oauth-secret",  # noqa: S107 - the sandbox's well-known fake secret
    ) -> None:
        """Create an emulator; `allowed_privileged_intents` is what the developer portal would allow.

        `global_rate_limit` is Discord's 50 requests/s per bot token (None lifts it, for a test or a
        benchmark that measures something else); more than `invalid_request_limit` 401/403/429 answers
        within 10 minutes ban the bot for `ban_seconds`. The OAuth2 client id is the application id.
        """
        self._world = DiscordWorld(
            token=token,
            application_id=application_id,
            bot_user_id=bot_user_id if bot_user_id is not None else application_id,
            bot_username=bot_username,
            clock=clock,
        )
        self._notifier = Notifier()
        self._faults = Faults()
        self._limits = RestLimits(
            clock,
            global_per_second=global_rate_limit,
            invalid_request_limit=invalid_request_limit,
            ban_seconds=ban_seconds,
        )
        self._oauth = OAuthServer(self._world, clock, oauth_client_secret)
        self._registry = InteractionRegistry()
        self._hub = GatewayHub(
            self._world,
            self._notifier,
            heartbeat_interval_ms=heartbeat_interval_ms,
            allowed_privileged_intents=allowed_privileged_intents,
        )
        # Discord answers "Unknown interaction" when the callback comes later than this.
        self.interaction_response_deadline = 3.0
        self._rest = RestApi(
            self._world,
            self._notifier,
            self._hub,
            self._registry,
            self._faults,
            self._limits,
            self._oauth,
            prefix=API_PREFIX,
            clock=clock,
            gateway_url=lambda: self.gateway_url,
            interaction_deadline=lambda: self.interaction_response_deadline,
        )
        self._runner: web.AppRunner | None = None
        self._host = ""
        self._port = 0

    # ---- world building (before or while the bot runs) -----------------------------------------

    @property
    def application_id(self) -> int:
        return self._world.application_id

    @property
    def bot_user_id(self) -> int:
        return self._world.bot_user.id

    @property
    def token(self) -> str:
        return self._world.token

    def add_guild(self, guild_id: int, name: str, *, owner_id: int | None = None) -> None:
        """Create a guild (with its @everyone role); the bot is a member of it."""
        self._world.add_guild(guild_id, name, owner_id=owner_id)

    def add_role(self, guild_id: int, role_id: int, name: str, *, permissions: int = 0) -> None:
        """Create a role in a guild."""
        self._world.add_role(guild_id, role_id, name, permissions=permissions)

    def add_user(
        self, user_id: int, username: str, *, global_name: str | None = None, bot: bool = False
    ) -> None:
        """Create a Discord user who is not (yet) a member of any guild."""
        self._world.add_user(user_id, username, global_name=global_name, bot=bot)

    def add_member(
        self,
        guild_id: int,
        user_id: int,
        username: str,
        *,
        global_name: str | None = None,
        nick: str | None = None,
        roles: Iterable[int] = (),
        bot: bool = False,
    ) -> None:
        """Create a user (unless known) and make them a member of a guild."""
        if user_id not in self._world.users:
            self._world.add_user(user_id, username, global_name=global_name, bot=bot)
        self._world.add_member(guild_id, user_id, nick=nick, roles=roles)

    def add_text_channel(self, guild_id: int, channel_id: int, name: str) -> None:
        """Create a text channel (type 0)."""
        self._world.add_channel(guild_id, channel_id, name, TEXT_CHANNEL)

    def add_voice_channel(self, guild_id: int, channel_id: int, name: str) -> None:
        """Create a voice channel (type 2)."""
        self._world.add_channel(guild_id, channel_id, name, VOICE_CHANNEL)

    def add_stage_channel(self, guild_id: int, channel_id: int, name: str) -> None:
        """Create a stage channel (type 13)."""
        self._world.add_channel(guild_id, channel_id, name, STAGE_CHANNEL)

    async def set_voice_state(
        self,
        guild_id: int,
        user_id: int,
        channel_id: int | None,
        *,
        self_mute: bool = False,
        self_deaf: bool = False,
    ) -> None:
        """Move a member into a voice/stage channel (None: disconnect) and dispatch VOICE_STATE_UPDATE."""
        guild = self._world.guild(guild_id)
        if user_id not in guild.members:
            raise ValueError(f"user {user_id} is not a member of guild {guild_id}")
        if channel_id is not None:
            channel = self._world.channels.get(channel_id)
            if channel is None or channel.guild_id != guild_id or channel.type not in VOCAL_CHANNEL_TYPES:
                raise ValueError(f"channel {channel_id} is not a voice channel of guild {guild_id}")
            previous = guild.voice_states.get(user_id)
            state = VoiceStateRecord(
                user_id,
                channel_id,
                previous.session_id if previous else secrets.token_hex(16),
                self_mute=self_mute,
                self_deaf=self_deaf,
            )
            guild.voice_states[user_id] = state
            payload = self._world.voice_state_payload(guild, state)
        else:
            leaving = guild.voice_states.pop(user_id, None)
            if leaving is None:
                return
            payload = self._world.voice_state_payload(guild, leaving)
            payload["channel_id"] = None
        self._notifier.notify()
        await self._hub.broadcast("VOICE_STATE_UPDATE", payload, intent=GUILD_VOICE_STATES, guild_id=guild_id)

    # ---- lifecycle -----------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Serve REST and gateway on host:port (port 0: any free port, read back into `port`)."""
        if self._runner is not None:
            raise RuntimeError("discord emulator already started")
        app = web.Application()
        self._rest.install(app)
        app.router.add_get(GATEWAY_PATH, self._hub.handle)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._host = host
        self._port = int(runner.addresses[0][1])
        self._hub.resume_gateway_url = self.gateway_url
        log.info("discord emulator listening on %s", self.api_base_url)

    async def stop(self) -> None:
        """Close gateway sessions (code 1001) and stop serving."""
        if self._runner is None:
            return
        await self._hub.close_all(1001, "Going away")
        await self._runner.cleanup()
        self._runner = None

    async def __aenter__(self) -> DiscordEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("discord emulator not started")
        return self._port

    @property
    def api_base_url(self) -> str:
        """The value for discord.api_base_url, e.g. http://127.0.0.1:PORT/api/v10."""
        return f"http://{self._host}:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        """The value for discord.gateway_url, e.g. ws://127.0.0.1:PORT/gateway."""
        return f"ws://{self._host}:{self.port}{GATEWAY_PATH}"

    # ---- OAuth2 (browser sign-in) ---------------------------------------------------------------

    @property
    def oauth_client_id(self) -> str:
        """The value for discord.oauth_client_id (the application id, as on Discord)."""
        return self._oauth.client_id

    @property
    def oauth_client_secret(self) -> str:
        """The value for discord.oauth_client_secret."""
        return self._oauth.client_secret

    @property
    def oauth_authorize_url(self) -> str:
        """The sign-in page, e.g. http://127.0.0.1:PORT/oauth2/authorize (beside the API, as on discord.com)."""
        return f"http://{self._host}:{self.port}{AUTHORIZE_PATH}"

    def add_oauth_redirect_uri(self, uri: str) -> None:
        """Register a redirect URI; once one is registered, only registered ones are accepted.

        With none registered the emulator accepts any loopback http(s) URI (the bot's API port is
        often chosen at start-up).
        """
        self._oauth.redirect_uris.add(uri)

    def oauth_code_for(self, user_id: int, redirect_uri: str, scope: str = "identify") -> str:
        """Sign a user in without the page: return a code the token endpoint exchanges for them."""
        return self._oauth.issue_code(user_id, redirect_uri, scope)

    @property
    def oauth_sign_ins(self) -> list[int]:
        """Users who signed in (got a code), in order."""
        return list(self._oauth.sign_ins)

    async def wait_for_bot(
        self,
        timeout: float = 10.0,  # noqa: ASYNC109 - a bounded wait is the point of this test helper
        *,
        other_than: str | None = None,
    ) -> SessionInfo:
        """Return the newest live identified session (one whose id is not `other_than`, after a restart)."""

        def newest() -> SessionInfo | None:
            live = [s for s in self._hub.sessions() if s.session_id != other_than]
            return live[-1] if live else None

        return await self._notifier.wait_until(newest, timeout, "a bot identifying on the gateway")

    async def wait_for_commands(
        self,
        guild_id: int | None,
        timeout: float = 10.0,  # noqa: ASYNC109 - a bounded wait is the point of this test helper
        *,
        min_syncs: int = 1,
    ) -> list[dict[str, Any]]:
        """Return the guild's (None: global) commands once the bot has bulk-synced them min_syncs times."""

        def synced() -> list[dict[str, Any]] | None:
            if self._world.command_syncs[guild_id] < min_syncs:
                return None
            return list(self.commands(guild_id))

        return await self._notifier.wait_until(synced, timeout, f"command sync #{min_syncs} for {guild_id}")

    async def disconnect_sessions(self, code: int = 4000, reason: str = "Gateway restarting") -> None:
        """Close every gateway connection (a gateway restart: discord.py resumes, then identifies again)."""
        await self._hub.close_all(code, reason)

    # ---- what users do -------------------------------------------------------------------------

    async def invoke_slash(
        self,
        guild_id: int | None,
        user_id: int,
        command: str,
        options: Mapping[str, Any] | None = None,
        *,
        channel_id: int | None = None,
        locale: str = "en-US",
        validate: bool = True,
    ) -> InteractionRecord:
        """Run a synced slash command ("promote schedule") as a user; return the interaction record.

        Options are typed per the synced command (string 3, integer 4, boolean 5, user 6, channel 7,
        role 8, mentionable 9, number 10). With `validate`, what the Discord client itself refuses
        (missing required options, values outside choices/min/max/length) raises ValueError; pass
        validate=False to send such hostile values anyway. guild_id None runs it in the bot's DM.
        """
        payload = build_command_interaction(
            self._world,
            guild_id,
            user_id,
            command,
            options or {},
            channel_id=channel_id,
            locale=locale,
            validate=validate,
        )
        return await self._dispatch_interaction(payload, guild_id)

    async def autocomplete(
        self,
        guild_id: int | None,
        user_id: int,
        command: str,
        options: Mapping[str, Any],
        focused: str,
        *,
        channel_id: int | None = None,
        locale: str = "en-US",
    ) -> InteractionRecord:
        """Send an autocomplete interaction (type 4) while the user types option `focused`."""
        payload = build_command_interaction(
            self._world,
            guild_id,
            user_id,
            command,
            options,
            channel_id=channel_id,
            locale=locale,
            validate=False,
            focused=focused,
        )
        return await self._dispatch_interaction(payload, guild_id)

    async def click_button(
        self,
        guild_id: int | None,
        user_id: int,
        message: Mapping[str, Any] | tuple[int, int],
        custom_id: str,
        *,
        locale: str = "en-US",
        validate: bool = True,
    ) -> InteractionRecord:
        """Click a button on a stored message (a message dict, or (message_id, channel_id))."""
        stored = self._stored_message(message)
        payload = build_component_interaction(
            self._world, guild_id, user_id, stored, custom_id, values=None, locale=locale, validate=validate
        )
        return await self._dispatch_interaction(payload, guild_id, component_message_id=int(stored["id"]))

    async def press_dm_button(
        self,
        user_id: int,
        custom_id: str,
        *,
        message_id: int | None = None,
        locale: str = "en-US",
        validate: bool = True,
    ) -> InteractionRecord:
        """Press a button on a message the bot sent to the user's DM (default: the newest one carrying it).

        The bot receives INTERACTION_CREATE type 3 with `user` (no `member`, no `guild_id`), the DM
        channel and the message with its components; its answer must come within
        `interaction_response_deadline` (3 s), or the callback gets 404 / 10062 "Unknown interaction".
        Read the answer from the record (`ephemeral_texts()`, `wait_response()`) and the message's
        buttons now with `buttons(message_id)`.
        """
        channel_id = self._world.dm_channel_by_user.get(user_id)
        if channel_id is None:
            raise ValueError(f"the bot never opened a DM channel with user {user_id}")
        if message_id is None:
            carrying = [
                m
                for m in self._world.channel_messages(channel_id)
                if any(c.get("custom_id") == custom_id for c in iter_components(m.get("components") or []))
            ]
            if not carrying:
                raise ValueError(f"no message in user {user_id}'s DM carries a component {custom_id!r}")
            message_id = int(carrying[-1]["id"])
        return await self.click_button(
            None, user_id, (message_id, channel_id), custom_id, locale=locale, validate=validate
        )

    async def choose(
        self,
        guild_id: int | None,
        user_id: int,
        message: Mapping[str, Any] | tuple[int, int],
        custom_id: str,
        values: list[str],
        *,
        locale: str = "en-US",
        validate: bool = True,
    ) -> InteractionRecord:
        """Pick `values` in a select menu on a stored message."""
        stored = self._stored_message(message)
        payload = build_component_interaction(
            self._world, guild_id, user_id, stored, custom_id, values=values, locale=locale, validate=validate
        )
        return await self._dispatch_interaction(payload, guild_id, component_message_id=int(stored["id"]))

    async def submit_modal(
        self, record: InteractionRecord, user_id: int, values: Mapping[str, str]
    ) -> InteractionRecord:
        """Submit the modal the bot opened in answer to `record`, filling text inputs by custom id."""
        payload = build_modal_submit(self._world, record, user_id, values)
        guild_id = int(payload["guild_id"]) if payload.get("guild_id") else None
        return await self._dispatch_interaction(
            payload, guild_id, component_message_id=record.component_message_id
        )

    def _stored_message(self, message: Mapping[str, Any] | tuple[int, int]) -> dict[str, Any]:
        message_id = int(message[0]) if isinstance(message, tuple) else int(message["id"])
        stored = self._world.messages.get(message_id)
        if stored is None:
            raise ValueError(f"message {message_id} does not exist (deleted, or never created by the bot)")
        if isinstance(message, tuple) and stored["channel_id"] != str(message[1]):
            raise ValueError(f"message {message_id} is in channel {stored['channel_id']}, not {message[1]}")
        return stored

    async def _dispatch_interaction(
        self, payload: dict[str, Any], guild_id: int | None, *, component_message_id: int | None = None
    ) -> InteractionRecord:
        record = InteractionRecord(
            self._world, self._notifier, payload, component_message_id=component_message_id
        )
        self._registry.add(record)
        await self._hub.dispatch_to_bot("INTERACTION_CREATE", payload, guild_id)
        return record

    # ---- faults --------------------------------------------------------------------------------

    @property
    def latency(self) -> float:
        """Seconds added before every REST answer."""
        return self._faults.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._faults.latency = max(0.0, float(seconds))

    @property
    def dm_closed_user_ids(self) -> set[int]:
        """Users whose DMs are closed: message POSTs to their DM channel answer 403 / 50007."""
        return self._faults.dm_closed_user_ids

    @dm_closed_user_ids.setter
    def dm_closed_user_ids(self, user_ids: Iterable[int]) -> None:
        self._faults.dm_closed_user_ids.clear()
        self._faults.dm_closed_user_ids.update(user_ids)

    @property
    def nonce_window(self) -> float:
        """Seconds during which an enforce_nonce repeat returns the original message."""
        return self._world.nonce_window

    @nonce_window.setter
    def nonce_window(self, seconds: float) -> None:
        self._world.nonce_window = float(seconds)

    def rate_limit_next(self, n: int, retry_after: float) -> None:
        """Answer the next n message POSTs with 429 (retry_after seconds, Discord's headers)."""
        self._faults.rate_limits.extend([float(retry_after)] * n)

    def server_error_next(self, n: int, status: int = 500) -> None:
        """Answer the next n message POSTs with a 5xx (500/502/504 are retried by discord.py, 503 not)."""
        if not 500 <= status <= 599:
            raise ValueError("status must be a 5xx")
        self._faults.server_errors.extend([status] * n)

    def clear_faults(self) -> None:
        """Drop pending 429/5xx injections, latency and closed DMs."""
        self._faults.rate_limits.clear()
        self._faults.server_errors.clear()
        self._faults.dm_closed_user_ids.clear()
        self._faults.latency = 0.0

    # ---- inspection ----------------------------------------------------------------------------

    def dm_channel_id(self, user_id: int) -> int | None:
        """Return the id of the bot's DM channel with a user, if the bot ever opened it."""
        return self._world.dm_channel_by_user.get(user_id)

    def dm_messages(self, user_id: int) -> list[dict[str, Any]]:
        """Return the messages the user really received from the bot by DM (after nonce dedup)."""
        channel_id = self._world.dm_channel_by_user.get(user_id)
        return [] if channel_id is None else self._world.channel_messages(channel_id)

    def channel_messages(self, channel_id: int, *, include_ephemeral: bool = False) -> list[dict[str, Any]]:
        """Return the messages in a channel, oldest first (ephemeral answers only on request)."""
        return self._world.channel_messages(channel_id, include_ephemeral=include_ephemeral)

    def message(self, message_id: int) -> dict[str, Any] | None:
        """Return the current state of a stored message."""
        return self._world.messages.get(message_id)

    def bot_messages(self) -> list[dict[str, Any]]:
        """Every message the bot created and still stands, in any channel, ephemeral ones included."""
        bot_id = str(self._world.bot_user.id)
        return [m for m in self._world.messages.values() if m["author"]["id"] == bot_id]

    def allowed_mentions(self, message_id: int) -> list[Any]:
        """The `allowed_mentions` of each body that created or edited a message, in order (None: absent)."""
        return list(self._world.allowed_mentions.get(message_id, ()))

    def buttons(self, message_id: int) -> list[dict[str, Any]]:
        """Return the buttons a stored message shows now (after edits), in reading order.

        Each is the component as the bot last sent it: `custom_id`, `label`, `style`, `disabled`, ...
        """
        message = self._world.messages.get(message_id)
        if message is None:
            raise ValueError(f"message {message_id} does not exist")
        return [dict(c) for c in iter_components(message.get("components") or []) if c.get("type") == BUTTON]

    @property
    def message_posts_total(self) -> int:
        """Message POST attempts, including deduplicated, rate-limited and failed ones."""
        return self._world.message_posts_total

    @property
    def requests(self) -> Counter[str]:
        """REST requests by route template, e.g. requests["POST /channels/{channel_id}/messages"]."""
        return self._rest.traffic.routes

    @property
    def arrivals(self) -> list[tuple[float, str]]:
        """Every REST request as it arrived, in order: (time on the emulator's clock, route template).

        Refused ones included (a global 429, a ban); time how a client paces itself from it.
        """
        return self._rest.traffic.arrivals

    def requests_to_user(self, user_id: int) -> int:
        """Count the requests that concerned a user: opening their DM channel, anything on it, their profile.

        Every request that arrived counts, also those refused by a limit, a ban or a closed DM.
        """
        traffic = self._rest.traffic
        dm = self._world.dm_channel_by_user.get(user_id)
        return traffic.users[user_id] + (traffic.channels[dm] if dm is not None else 0)

    def requests_to_channel(self, channel_id: int) -> int:
        """Count the requests whose path named a channel (every arrival, refused ones too)."""
        return self._rest.traffic.channels[channel_id]

    @property
    def dm_channel_opens(self) -> Counter[int]:
        """Answered POST /users/@me/channels per recipient (the id is the same every time)."""
        return self._rest.traffic.dm_channel_opens

    @property
    def dm_closed_refusals(self) -> Counter[int]:
        """403 / 50007 "Cannot send messages to this user" answers, per recipient."""
        return self._rest.traffic.dm_closed_refusals

    # ---- what Discord enforces on all routes together ---------------------------------------

    @property
    def global_rate_limit(self) -> int | None:
        """Requests per second a bot may make across all routes (None: no global limit)."""
        return self._limits.global_per_second

    @global_rate_limit.setter
    def global_rate_limit(self, per_second: int | None) -> None:
        if per_second is not None and per_second < 1:
            raise ValueError("the global rate limit is at least 1 request per second (None lifts it)")
        self._limits.global_per_second = per_second

    @property
    def global_rate_limited(self) -> int:
        """Requests answered 429 with "global": true."""
        return self._limits.global_rate_limited

    @property
    def global_rate_limited_at(self) -> list[float]:
        """When each request answered with a global 429 arrived (the emulator's clock), in order."""
        return self._limits.global_rate_limited_at

    @property
    def invalid_request_limit(self) -> int:
        """How many 401/403/429 answers within 10 minutes are tolerated; one more bans the bot."""
        return self._limits.invalid_request_limit

    @invalid_request_limit.setter
    def invalid_request_limit(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the invalid-request limit is at least 1")
        self._limits.invalid_request_limit = limit

    @property
    def ban_seconds(self) -> float:
        """How long a ban for invalid requests lasts."""
        return self._limits.ban_seconds

    @ban_seconds.setter
    def ban_seconds(self, seconds: float) -> None:
        self._limits.ban_seconds = max(0.0, float(seconds))

    @property
    def invalid_requests(self) -> int:
        """401, 403 and 429 answers since the start (50007s and global 429s included)."""
        return self._limits.invalid_requests

    def invalid_requests_recent(self) -> int:
        """401, 403 and 429 answers within the last 10 minutes (what the ban threshold counts)."""
        return self._limits.invalid_requests_recent()

    @property
    def banned(self) -> bool:
        """Whether the bot is banned for invalid requests right now."""
        return self._limits.ban_remaining() > 0

    @property
    def bans(self) -> int:
        """How many times the bot was banned for invalid requests."""
        return self._limits.bans

    @property
    def banned_requests(self) -> int:
        """Requests refused by a ban (answered 429 by "Cloudflare", counted in `requests` too)."""
        return self._limits.banned_requests

    def lift_ban(self) -> None:
        """End a ban now and forget the invalid requests that led to it."""
        self._limits.lift_ban()

    async def wait_until(
        self,
        predicate: Callable[[], T | None],
        timeout: float = 5.0,  # noqa: ASYNC109 - a bounded wait is the point of this test helper
        what: str = "the condition",
    ) -> T:
        """Return predicate()'s first value other than None/False, re-checked whenever the emulator changes."""

        def check() -> T | None:
            value = predicate()
            return None if value is False else value

        return await self._notifier.wait_until(check, timeout, what)

    def commands(self, guild_id: int | None) -> list[dict[str, Any]]:
        """Return the application commands synced to a guild (None: global)."""
        if guild_id is None:
            return list(self._world.global_commands)
        return list(self._world.guild_commands.get(guild_id, []))

    def voice_channel_of(self, guild_id: int, user_id: int) -> int | None:
        """Return the voice channel a member is in, per the emulator."""
        state = self._world.guild(guild_id).voice_states.get(user_id)
        return None if state is None else state.channel_id

    def sessions(self) -> list[SessionInfo]:
        """Return the live identified gateway sessions, oldest first."""
        return self._hub.sessions()

    @property
    def identify_count(self) -> int:
        """How many times a client identified (a restarted bot identifies again)."""
        return self._hub.identify_count

    @property
    def resume_count(self) -> int:
        """How many RESUME attempts were answered with INVALID_SESSION."""
        return self._hub.resume_count

"""The Discord emulator's gateway: one WebSocket endpoint speaking gateway v10 (JSON, zlib-stream).

Implements what discord.py's `DiscordWebSocket` needs: HELLO → HEARTBEAT/ACK → IDENTIFY → READY and one
GUILD_CREATE per guild, REQUEST_GUILD_MEMBERS → GUILD_MEMBERS_CHUNK, and dispatches (VOICE_STATE_UPDATE,
INTERACTION_CREATE, MESSAGE_*) to identified sessions. RESUME is answered with INVALID_SESSION (d=false):
the client identifies again, which keeps session bookkeeping out of the emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import zlib
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from bot.sandbox.discord_state import DiscordWorld, Notifier

log = logging.getLogger(__name__)

# Opcodes.
DISPATCH, HEARTBEAT, IDENTIFY, PRESENCE_UPDATE, VOICE_STATE_UPDATE = 0, 1, 2, 3, 4
RESUME, RECONNECT, REQUEST_GUILD_MEMBERS, INVALID_SESSION, HELLO, HEARTBEAT_ACK = 6, 7, 8, 9, 10, 11

# Intents.
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_VOICE_STATES = 1 << 7
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
DIRECT_MESSAGES = 1 << 12
MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT

# Application flags telling the client which privileged intents the portal allows.
_INTENT_FLAGS = {GUILD_PRESENCES: 1 << 13, GUILD_MEMBERS: 1 << 15, MESSAGE_CONTENT: 1 << 19}


def application_flags(allowed_privileged_intents: int) -> int:
    """Return the application flags matching the privileged intents enabled "in the portal"."""
    return sum(flag for intent, flag in _INTENT_FLAGS.items() if allowed_privileged_intents & intent)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A public snapshot of one identified gateway session."""

    session_id: str
    intents: int
    shard: tuple[int, int] | None


class GatewayConnection:
    """One WebSocket connection; becomes a session once it has identified."""

    def __init__(self, ws: web.WebSocketResponse, *, zlib_stream: bool) -> None:
        self.ws = ws
        self._compressor = zlib.compressobj() if zlib_stream else None
        self._send_lock = asyncio.Lock()
        self.seq = 0
        self.session_id: str | None = None
        self.intents = 0
        self.shard: tuple[int, int] | None = None

    @property
    def identified(self) -> bool:
        return self.session_id is not None

    def info(self) -> SessionInfo:
        if self.session_id is None:
            raise RuntimeError("connection has not identified")
        return SessionInfo(self.session_id, self.intents, self.shard)

    def wants_guild(self, guild_id: int) -> bool:
        """Whether this session's shard receives events of `guild_id`."""
        if self.shard is None:
            return True
        shard_id, shard_count = self.shard
        return (guild_id >> 22) % shard_count == shard_id

    async def send(self, op: int, d: Any, t: str | None = None) -> None:
        """Send one gateway payload; dispatches get the next sequence number."""
        async with self._send_lock:  # one zlib stream: compress and write in sequence order
            seq = None
            if op == DISPATCH:
                self.seq += 1
                seq = self.seq
            text = json.dumps({"op": op, "d": d, "s": seq, "t": t}, separators=(",", ":"))
            if self._compressor is None:
                await self.ws.send_str(text)
            else:
                frame = self._compressor.compress(text.encode()) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
                await self.ws.send_bytes(frame)

    async def close(self, code: int, reason: str) -> None:
        """Close the socket with a gateway close code."""
        await self.ws.close(code=code, message=reason.encode())


class GatewayHub:
    """Accept gateway connections and route events to identified sessions."""

    def __init__(
        self,
        world: DiscordWorld,
        notifier: Notifier,
        *,
        heartbeat_interval_ms: int,
        allowed_privileged_intents: int,
    ) -> None:
        self._world = world
        self._notifier = notifier
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.allowed_privileged_intents = allowed_privileged_intents
        self.resume_gateway_url = ""
        self._connections: set[GatewayConnection] = set()
        self._sessions: dict[
            str, GatewayConnection
        ] = {}  # identified, open; insertion order = identify order
        self.identify_count = 0
        self.resume_count = 0

    # ---- inspection ---------------------------------------------------------------------------

    def sessions(self) -> list[SessionInfo]:
        """Return the live identified sessions, oldest first."""
        return [c.info() for c in self._sessions.values() if not c.ws.closed]

    def _target_for_guild(self, guild_id: int | None) -> GatewayConnection | None:
        live = [
            c
            for c in self._sessions.values()
            if not c.ws.closed and (guild_id is None or c.wants_guild(guild_id))
        ]
        return live[-1] if live else None

    # ---- dispatching --------------------------------------------------------------------------

    async def dispatch_to_bot(self, event: str, data: dict[str, Any], guild_id: int | None) -> None:
        """Send one event to the newest session serving the guild (as Discord does for interactions)."""
        target = self._target_for_guild(guild_id)
        if target is None:
            raise RuntimeError("discord emulator: no bot is connected to the gateway")
        await target.send(DISPATCH, data, event)

    async def broadcast(self, event: str, data: dict[str, Any], *, intent: int, guild_id: int | None) -> None:
        """Send one event to every live session that asked for `intent` and serves the guild."""
        for conn in list(self._sessions.values()):
            if conn.ws.closed or not conn.intents & intent:
                continue
            if guild_id is not None and not conn.wants_guild(guild_id):
                continue
            try:
                await conn.send(DISPATCH, data, event)
            except (ConnectionError, RuntimeError) as exc:
                log.debug("gateway: dropping %s to a closing session: %s", event, exc)

    async def close_all(self, code: int = 1001, reason: str = "Going away") -> None:
        """Close every connection (used by stop(), and to simulate a gateway restart)."""
        await asyncio.gather(
            *(conn.close(code, reason) for conn in list(self._connections) if not conn.ws.closed),
            return_exceptions=True,
        )

    # ---- the WebSocket endpoint ---------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """Serve one gateway connection until it closes."""
        ws = web.WebSocketResponse(autoping=True, timeout=2.0, max_msg_size=1 << 20)
        await ws.prepare(request)
        compress = request.query.get("compress")
        if compress and compress != "zlib-stream":
            # discord.py asks for zstd-stream when a zstd module is importable; answer uncompressed
            # text frames, which it reads without its decompressor.
            log.warning("gateway: compress=%s is not emulated; sending uncompressed frames", compress)
        conn = GatewayConnection(ws, zlib_stream=compress == "zlib-stream")
        self._connections.add(conn)
        try:
            if request.query.get("v", "10") != "10":
                await conn.close(4012, "Invalid API version.")
                return ws
            if request.query.get("encoding", "json") != "json":
                await conn.close(4002, "Error while decoding payload.")
                return ws
            await conn.send(HELLO, {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": ["emulator"]})
            await self._serve(conn)
        except (ConnectionError, RuntimeError) as exc:  # the client went away mid-send
            log.debug("gateway: connection lost: %s", exc)
        finally:
            self._connections.discard(conn)
            if conn.session_id is not None:
                self._sessions.pop(conn.session_id, None)
            self._notifier.notify()
        return ws

    async def _serve(self, conn: GatewayConnection) -> None:
        # Discord drops a connection that misses heartbeats; allow one and a half intervals.
        silence_limit = self.heartbeat_interval_ms / 1000 * 1.5
        while True:
            try:
                msg = await conn.ws.receive(timeout=silence_limit)
            except TimeoutError:
                await conn.close(4009, "Session timed out.")
                return
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return
            if msg.type is aiohttp.WSMsgType.ERROR:
                log.debug("gateway: connection error: %s", conn.ws.exception())
                return
            if msg.type is not aiohttp.WSMsgType.TEXT:
                await conn.close(4002, "Error while decoding payload.")
                return
            try:
                payload = json.loads(msg.data)
                op = payload["op"]
            except (ValueError, KeyError, TypeError):
                await conn.close(4002, "Error while decoding payload.")
                return
            if not await self._on_payload(conn, op, payload.get("d")):
                return

    async def _on_payload(self, conn: GatewayConnection, op: int, d: Any) -> bool:
        """Handle one client payload; return False once the connection has been closed."""
        if op == HEARTBEAT:
            await conn.send(HEARTBEAT_ACK, None)
            return True
        if op == IDENTIFY:
            return await self._identify(conn, d)
        if op == RESUME:
            self.resume_count += 1
            await conn.send(INVALID_SESSION, False)
            return True
        if not conn.identified:
            await conn.close(4003, "Not authenticated.")
            return False
        if op in (PRESENCE_UPDATE, VOICE_STATE_UPDATE):
            return True  # accepted; the bot never joins voice in the sandbox
        if op == REQUEST_GUILD_MEMBERS:
            await self._members_chunk(conn, d or {})
            return True
        await conn.close(4001, "Unknown opcode.")
        return False

    async def _identify(self, conn: GatewayConnection, d: Any) -> bool:
        if conn.identified:
            await conn.close(4005, "Already authenticated.")
            return False
        if not isinstance(d, dict):
            await conn.close(4002, "Error while decoding payload.")
            return False
        token = str(d.get("token", ""))
        token = token.removeprefix("Bot ")
        if not secrets.compare_digest(token, self._world.token):
            await conn.close(4004, "Authentication failed.")
            return False
        intents = d.get("intents")
        if not isinstance(intents, int) or isinstance(intents, bool) or intents < 0:
            await conn.close(4013, "Invalid intent(s).")
            return False
        if intents & PRIVILEGED_INTENTS & ~self.allowed_privileged_intents:
            await conn.close(4014, "Disallowed intent(s).")
            return False
        shard = d.get("shard")
        if shard is not None:
            if not (isinstance(shard, list) and len(shard) == 2 and 0 <= shard[0] < shard[1]):
                await conn.close(4010, "Invalid shard.")
                return False
            conn.shard = (int(shard[0]), int(shard[1]))
        conn.intents = intents
        conn.session_id = secrets.token_hex(16)
        world = self._world
        guild_ids = [
            gid for gid, g in world.guilds.items() if world.bot_user.id in g.members and conn.wants_guild(gid)
        ]
        ready = {
            "v": 10,
            "user": {**world.bot_user.payload(), "verified": True, "mfa_enabled": False, "email": None},
            "guilds": [{"id": str(gid), "unavailable": True} for gid in guild_ids],
            "session_id": conn.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_gateway_url,
            "application": {
                "id": str(world.application_id),
                "flags": application_flags(self.allowed_privileged_intents),
            },
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["emulator"],
            "user_settings": {},
            "auth": {},
            "_trace": ["emulator"],
        }
        if conn.shard is not None:
            ready["shard"] = list(conn.shard)
        await conn.send(DISPATCH, ready, "READY")
        for gid in guild_ids:
            data = world.guild_payload(
                world.guilds[gid],
                gateway=True,
                all_members=bool(intents & GUILD_PRESENCES),
                voice_states=bool(intents & GUILD_VOICE_STATES),
            )
            await conn.send(DISPATCH, data, "GUILD_CREATE")
        self._sessions[conn.session_id] = conn
        self.identify_count += 1
        self._notifier.notify()
        return True

    async def _members_chunk(self, conn: GatewayConnection, d: dict[str, Any]) -> None:
        world = self._world
        try:
            guild = world.guilds[int(d.get("guild_id", 0))]
        except (KeyError, TypeError, ValueError):
            return
        user_ids = [int(u) for u in d.get("user_ids") or []]
        query = str(d.get("query") or "").lower()
        limit = int(d.get("limit") or 0)
        not_found: list[str] = []
        if user_ids:
            found = [u for u in user_ids if u in guild.members]
            not_found = [str(u) for u in user_ids if u not in guild.members]
        elif not conn.intents & GUILD_MEMBERS:
            log.warning("gateway: full member list requested without the GUILD_MEMBERS intent; sending none")
            found = []
        else:
            found = [u for u in guild.members if world.users[u].username.lower().startswith(query)]
            if limit:
                found = found[:limit]
        chunk: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": [world.member_payload(guild, u) for u in found],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": not_found,
        }
        if d.get("nonce") is not None:
            chunk["nonce"] = d["nonce"]
        with contextlib.suppress(ConnectionError, RuntimeError):
            await conn.send(DISPATCH, chunk, "GUILD_MEMBERS_CHUNK")

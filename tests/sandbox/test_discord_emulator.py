"""The Discord emulator against the real, unmodified discord.py client (REST + gateway over loopback)."""

from __future__ import annotations

import asyncio
import io
import json
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from bot.discord_endpoints import apply_discord_endpoints
from bot.sandbox.discord_emulator import DiscordEmulator
from tests.sandbox.discord_fixtures import (
    AFK,
    ALICE,
    ANNOUNCEMENTS,
    BOB,
    CAROL,
    DAVE,
    GENERAL,
    GUILD,
    LOUNGE,
    MUSIC_BOT,
    PROMOTER_ROLE,
    STAGE,
    STEP,
    TOKEN,
    client_options,
    connected,
    intents,
    logged_in,
    running_emulator,
)


@pytest.fixture
async def emulator() -> AsyncIterator[DiscordEmulator]:
    async with running_emulator() as emu:
        await emu.set_voice_state(GUILD, BOB, LOUNGE)
        await emu.set_voice_state(GUILD, MUSIC_BOT, LOUNGE)
        await emu.set_voice_state(GUILD, CAROL, STAGE)
        yield emu


def _params(**kwargs: Any) -> Any:
    return discord.http.handle_message_parameters(**kwargs)


# ---- a bot with one app command group and a persistent view -----------------------------------


class BoardView(discord.ui.View):
    """A persistent view: no timeout, fixed custom ids, so clicks work after a restart."""

    def __init__(self, clicks: list[int]) -> None:
        super().__init__(timeout=None)
        self.clicks = clicks

    @discord.ui.button(label="I'm in", custom_id="board:join", style=discord.ButtonStyle.success)
    async def join(self, interaction: discord.Interaction, button: discord.ui.Button[BoardView]) -> None:
        self.clicks.append(interaction.user.id)
        await interaction.response.edit_message(content=f"{len(self.clicks)} in")


class SandboxBot(commands.Bot):
    def __init__(self) -> None:
        super().__init__(command_prefix="!", intents=intents(), **client_options())
        self.clicks: list[int] = []
        self.seen_options: list[dict[str, Any]] = []
        self.errors: list[app_commands.AppCommandError] = []

        @self.tree.error
        async def on_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
            self.errors.append(error)

        promote = app_commands.Group(name="promote", description="Get tonight's session started")

        @promote.command(name="schedule", description="Schedule tonight's pings")
        @app_commands.describe(dry_run="Only ping yourself", slots="How many players", who="Who to ping")
        @app_commands.choices(slots=[app_commands.Choice(name=str(n), value=n) for n in (4, 5)])
        async def schedule(
            interaction: discord.Interaction,
            dry_run: bool,
            slots: int = 5,
            who: discord.Member | None = None,
            where: discord.TextChannel | None = None,
        ) -> None:
            self.seen_options.append(
                {"dry_run": dry_run, "slots": slots, "who": who, "where": where, "user": interaction.user}
            )
            await interaction.response.send_message(f"scheduled (dry run: {dry_run})", ephemeral=True)

        @promote.command(name="status", description="How is tonight going")
        async def status(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True)
            await interaction.followup.send("3 looking, 1 maybe")

        @promote.command(name="board", description="Post the sign-up board")
        async def board(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("posting", ephemeral=True)
            channel = interaction.client.get_channel(ANNOUNCEMENTS)
            assert isinstance(channel, discord.TextChannel)
            await channel.send("Who's in tonight?", view=BoardView(self.clicks))

        self.tree.add_command(promote, guild=discord.Object(GUILD))

    async def setup_hook(self) -> None:
        self.add_view(BoardView(self.clicks))
        await self.tree.sync(guild=discord.Object(GUILD))


# ---- gateway: login, READY, GUILD_CREATE, voice -----------------------------------------------


async def test_client_sees_guild_channels_and_voice_states(emulator: DiscordEmulator) -> None:
    async with connected(discord.Client(intents=intents(), **client_options())) as client:
        guild = client.get_guild(GUILD)
        assert guild is not None and guild.name == "Night Owls"
        assert client.user is not None and client.user.id == emulator.bot_user_id
        assert client.application_id == emulator.application_id
        assert {c.id for c in guild.text_channels} == {GENERAL, ANNOUNCEMENTS}
        assert {c.id for c in guild.voice_channels} == {LOUNGE, AFK}
        assert [c.id for c in guild.stage_channels] == [STAGE]
        lounge = guild.get_channel(LOUNGE)
        assert isinstance(lounge, discord.VoiceChannel)
        assert set(lounge.voice_states) == {BOB, MUSIC_BOT}
        assert guild.get_role(PROMOTER_ROLE) is not None
        # Without the presences intent Discord lists only the bot and members in voice.
        bob = guild.get_member(BOB)
        assert bob is not None and bob.global_name == "Bob"
        assert guild.get_member(ALICE) is None
        assert guild.get_member(MUSIC_BOT) is not None and guild.get_member(MUSIC_BOT).bot  # type: ignore[union-attr]
        # HEARTBEAT was acknowledged.
        async with asyncio.timeout(STEP):
            while client.latency == float("inf"):
                await asyncio.sleep(0.01)


async def test_members_intent_chunks_the_full_member_list(emulator: DiscordEmulator) -> None:
    async with connected(discord.Client(intents=intents(members=True), **client_options())) as client:
        guild = client.get_guild(GUILD)
        assert guild is not None
        async with asyncio.timeout(STEP):
            while not guild.chunked:
                await asyncio.sleep(0.01)
        alice = guild.get_member(ALICE)
        assert alice is not None
        assert alice.nick == "Ali" and alice.display_name == "Ali"
        assert [r.id for r in alice.roles if not r.is_default()] == [PROMOTER_ROLE]
        assert guild.owner_id == ALICE
        assert guild.member_count == 5


async def test_voice_state_update_reaches_the_cache(emulator: DiscordEmulator) -> None:
    async with connected(discord.Client(intents=intents(), **client_options())) as client:
        updates: asyncio.Queue[tuple[int, int | None]] = asyncio.Queue()

        async def on_voice_state_update(
            member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
        ) -> None:
            updates.put_nowait((member.id, after.channel.id if after.channel else None))

        client.event(on_voice_state_update)
        await emulator.set_voice_state(GUILD, ALICE, AFK)
        async with asyncio.timeout(STEP):
            assert await updates.get() == (ALICE, AFK)
        guild = client.get_guild(GUILD)
        assert guild is not None
        afk = guild.get_channel(AFK)
        assert isinstance(afk, discord.VoiceChannel) and set(afk.voice_states) == {ALICE}
        member = guild.get_member(ALICE)  # cached from the event's member payload
        assert member is not None and member.nick == "Ali"

        await emulator.set_voice_state(GUILD, BOB, None)
        async with asyncio.timeout(STEP):
            assert await updates.get() == (BOB, None)
        lounge = guild.get_channel(LOUNGE)
        assert isinstance(lounge, discord.VoiceChannel) and set(lounge.voice_states) == {MUSIC_BOT}


async def test_gateway_speaks_zlib_stream_and_rejects_a_bad_token(emulator: DiscordEmulator) -> None:
    url = emulator.gateway_url + "?v=10&encoding=json&compress=zlib-stream"
    inflate = zlib.decompressobj()
    async with aiohttp.ClientSession() as session, asyncio.timeout(STEP):
        async with session.ws_connect(url) as ws:
            frame = await ws.receive_bytes()
            assert frame.endswith(b"\x00\x00\xff\xff")
            hello = json.loads(inflate.decompress(frame))
            assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] == 41_250
            await ws.send_json({"op": 1, "d": None})
            ack = json.loads(inflate.decompress(await ws.receive_bytes()))
            assert ack["op"] == 11
            await ws.send_json({"op": 2, "d": {"token": "wrong", "intents": 1, "properties": {}}})
            closing = await ws.receive()
            assert closing.type is aiohttp.WSMsgType.CLOSE
            assert ws.close_code == 4004
        async with session.ws_connect(emulator.gateway_url + "?v=10&encoding=json") as ws:
            assert (await ws.receive_json())["op"] == 10  # uncompressed text frames when not asked
            await ws.send_json({"op": 8, "d": {"guild_id": GUILD}})
            await ws.receive()
            assert ws.close_code == 4003  # nothing but heartbeat/identify/resume before identifying


async def test_disallowed_privileged_intent_is_refused() -> None:
    async with running_emulator(allowed_privileged_intents=0):
        client = discord.Client(intents=intents(members=True), **client_options())
        await client.login(TOKEN)
        try:
            with pytest.raises(discord.PrivilegedIntentsRequired):
                async with asyncio.timeout(STEP):
                    await client.connect()  # PrivilegedIntentsRequired is raised on the reconnecting path
        finally:
            await client.close()


# ---- REST ---------------------------------------------------------------------------------------


async def test_wrong_token_fails_login(emulator: DiscordEmulator) -> None:
    client = discord.Client(intents=intents())
    try:
        with pytest.raises(discord.LoginFailure):
            await client.login("not-the-token")
    finally:
        await client.close()


async def test_rest_answers_are_discord_shaped(emulator: DiscordEmulator) -> None:
    headers = {"Authorization": f"Bot {TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session, asyncio.timeout(STEP):
        async with session.get(f"{emulator.api_base_url}/guilds/{GUILD}/members/{DAVE}") as resp:
            assert resp.status == 404 and resp.headers["Content-Type"] == "application/json"
            assert (await resp.json())["code"] == 10007
        async with session.get(f"{emulator.api_base_url}/guilds/{GUILD}/members/{ALICE}") as resp:
            member = await resp.json()
            assert member["nick"] == "Ali" and member["roles"] == [str(PROMOTER_ROLE)]
        async with session.get(f"{emulator.api_base_url}/no/such/route") as resp:
            assert resp.status == 404 and await resp.json() == {"message": "404: Not Found", "code": 0}
        wrong = {"Authorization": "Bot x"}
        async with session.get(f"{emulator.api_base_url}/users/@me", headers=wrong) as resp:
            assert resp.status == 401
        async with session.post(
            f"{emulator.api_base_url}/channels/{GENERAL}/messages", json={"content": "x" * 2001}
        ) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == 50035
    assert emulator.channel_messages(GENERAL) == []


async def test_enforce_nonce_returns_the_original_message(emulator: DiscordEmulator) -> None:
    async with logged_in(discord.Client(intents=intents(), **client_options())) as client:
        text = "kick-off at 21:00"
        first = await client.http.send_message(GENERAL, params=_params(content=text, nonce="n-1"))
        again = await client.http.send_message(GENERAL, params=_params(content=text, nonce="n-1"))
        other = await client.http.send_message(GENERAL, params=_params(content=text, nonce="n-2"))
    assert again["id"] == first["id"] and other["id"] != first["id"]
    assert [m["id"] for m in emulator.channel_messages(GENERAL)] == [first["id"], other["id"]]
    assert emulator.message_posts_total == 3
    # Without enforce_nonce Discord only echoes the nonce: a repeat is a second message.
    headers = {"Authorization": f"Bot {TOKEN}"}
    body = {"content": "plain", "nonce": "n-3"}
    url = f"{emulator.api_base_url}/channels/{GENERAL}/messages"
    async with aiohttp.ClientSession(headers=headers) as session, asyncio.timeout(STEP):
        for _ in range(2):
            async with session.post(url, json=body) as resp:
                assert resp.status == 200
    assert len(emulator.channel_messages(GENERAL)) == 4


async def test_file_uploads_are_read_from_multipart(emulator: DiscordEmulator) -> None:
    async with logged_in(discord.Client(intents=intents(), **client_options())) as client:
        upload = discord.File(io.BytesIO(b"\x89PNG"), filename="board.png")
        sent = await client.http.send_message(GENERAL, params=_params(content="tonight", file=upload))
    assert sent["content"] == "tonight"
    assert [a["filename"] for a in sent["attachments"]] == ["board.png"]


async def test_dedup_window_expires() -> None:
    now = [1000.0]
    client = discord.Client(intents=intents(), **client_options())
    async with running_emulator(clock=lambda: now[0]) as emulator, logged_in(client):
        first = await client.http.send_message(GENERAL, params=_params(content="hi", nonce="n"))
        now[0] += emulator.nonce_window + 1
        later = await client.http.send_message(GENERAL, params=_params(content="hi", nonce="n"))
    assert later["id"] != first["id"]


async def test_429_is_honoured_by_discord_py(emulator: DiscordEmulator) -> None:
    async with logged_in(discord.Client(intents=intents(), **client_options())) as client:
        emulator.rate_limit_next(1, 0.2)
        started = time.monotonic()
        sent = await client.http.send_message(GENERAL, params=_params(content="after a pause"))
        assert time.monotonic() - started >= 0.2
        assert emulator.requests["POST /channels/{channel_id}/messages"] == 2
        assert [m["id"] for m in emulator.channel_messages(GENERAL)] == [sent["id"]]
        # Longer than the client's max_ratelimit_timeout: discord.py raises instead of sleeping.
        emulator.rate_limit_next(1, 120.0)
        with pytest.raises(discord.RateLimited) as raised:
            await client.http.send_message(GENERAL, params=_params(content="later"))
        assert raised.value.retry_after == pytest.approx(120.0)
    assert len(emulator.channel_messages(GENERAL)) == 1


# ---- application commands and interactions -----------------------------------------------------


async def test_slash_command_syncs_and_answers_ephemerally(emulator: DiscordEmulator) -> None:
    async with connected(SandboxBot()) as bot:
        synced = await emulator.wait_for_commands(GUILD, STEP)
        assert [c["name"] for c in synced] == ["promote"]
        subcommands = {o["name"]: o for o in synced[0]["options"]}
        assert set(subcommands) == {"schedule", "status", "board"}
        assert [o["name"] for o in subcommands["schedule"]["options"]] == ["dry_run", "slots", "who", "where"]

        record = await emulator.invoke_slash(
            GUILD, ALICE, "promote schedule", {"dry_run": True, "slots": 4, "who": BOB, "where": GENERAL}
        )
        await record.wait_response(STEP)
        assert record.last_content() == "scheduled (dry run: True)"
        assert record.is_ephemeral()
        assert emulator.channel_messages(GENERAL) == []  # nobody else sees it
        seen = bot.seen_options[-1]
        assert seen["dry_run"] is True and seen["slots"] == 4
        assert isinstance(seen["who"], discord.Member) and seen["who"].id == BOB
        assert seen["where"].id == GENERAL
        assert isinstance(seen["user"], discord.Member) and seen["user"].nick == "Ali"
        assert seen["user"].guild_permissions.administrator  # alice owns the guild

        with pytest.raises(ValueError, match="one of"):
            await emulator.invoke_slash(GUILD, ALICE, "promote schedule", {"dry_run": True, "slots": 7})
        with pytest.raises(ValueError, match="required"):
            await emulator.invoke_slash(GUILD, ALICE, "promote schedule", {})
        with pytest.raises(ValueError, match="not a member"):
            await emulator.invoke_slash(GUILD, DAVE, "promote schedule", {"dry_run": True})


async def test_deferred_answer_is_replaced_by_the_followup(emulator: DiscordEmulator) -> None:
    async with connected(SandboxBot()):
        await emulator.wait_for_commands(GUILD, STEP)
        record = await emulator.invoke_slash(GUILD, BOB, "promote status")
        first = await record.wait_response(STEP)
        assert first.callback_type == 5
        message = await record.wait_message(STEP)
        assert message["content"] == "3 looking, 1 maybe"
        assert [m["id"] for m in emulator.channel_messages(GENERAL)] == [message["id"]]
        assert [e.kind for e in record.responses] == ["callback", "followup"]


async def test_persistent_button_works_across_a_bot_restart(emulator: DiscordEmulator) -> None:
    async with connected(SandboxBot()) as bot:
        first_session = await emulator.wait_for_bot(STEP)
        await emulator.wait_for_commands(GUILD, STEP)
        record = await emulator.invoke_slash(GUILD, ALICE, "promote board")
        await record.wait_response(STEP)
        async with asyncio.timeout(STEP):
            while not emulator.channel_messages(ANNOUNCEMENTS):
                await asyncio.sleep(0.01)
        board = emulator.channel_messages(ANNOUNCEMENTS)[0]
        click = await emulator.click_button(GUILD, BOB, board, "board:join")
        event = await click.wait_response(STEP)
        assert event.callback_type == 7 and bot.clicks == [BOB]
        assert emulator.channel_messages(ANNOUNCEMENTS)[0]["content"] == "1 in"

    async with asyncio.timeout(STEP):
        while emulator.sessions():
            await asyncio.sleep(0.01)
    with pytest.raises(RuntimeError, match="no bot is connected"):
        await emulator.click_button(GUILD, BOB, board, "board:join")

    # The bot process is gone; a new one connects with a new session and the board still works.
    async with connected(SandboxBot()) as restarted:
        second_session = await emulator.wait_for_bot(STEP, other_than=first_session.session_id)
        assert second_session.session_id != first_session.session_id
        await emulator.wait_for_commands(GUILD, STEP, min_syncs=2)
        assert len(emulator.commands(GUILD)) == 1
        click = await emulator.click_button(GUILD, CAROL, (int(board["id"]), ANNOUNCEMENTS), "board:join")
        await click.wait_response(STEP)
        assert restarted.clicks == [CAROL]
        assert emulator.message(int(board["id"]))["content"] == "1 in"  # type: ignore[index]
        with pytest.raises(ValueError, match="no component"):
            await emulator.click_button(GUILD, CAROL, board, "board:leave")
    assert emulator.identify_count == 2


async def test_late_and_double_answers_get_discords_errors(emulator: DiscordEmulator) -> None:
    async with connected(SandboxBot()) as bot:
        await emulator.wait_for_commands(GUILD, STEP)
        record = await emulator.invoke_slash(GUILD, ALICE, "promote schedule", {"dry_run": False})
        await record.wait_response(STEP)
        callback = f"{emulator.api_base_url}/interactions/{record.id}/{record.token}/callback"
        async with (
            aiohttp.ClientSession() as session,
            asyncio.timeout(STEP),
            session.post(callback, json={"type": 4, "data": {"content": "again"}}) as resp,
        ):
            assert resp.status == 400 and (await resp.json())["code"] == 40060

        emulator.interaction_response_deadline = 0.0  # every answer is now too late
        late = await emulator.invoke_slash(GUILD, ALICE, "promote schedule", {"dry_run": False})
        async with asyncio.timeout(STEP):
            while not bot.errors:
                await asyncio.sleep(0.01)
        error = bot.errors[0]
        assert isinstance(error, app_commands.CommandInvokeError)
        assert isinstance(error.original, discord.NotFound) and error.original.code == 10062
        assert late.responses == []


async def test_unsynced_command_is_a_clear_error(emulator: DiscordEmulator) -> None:
    with pytest.raises(LookupError, match="not been synced"):
        await emulator.invoke_slash(GUILD, ALICE, "promote schedule", {"dry_run": True})


def test_endpoints_are_validated_and_empty_means_default() -> None:
    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    try:
        apply_discord_endpoints("", "")
        assert saved[0] == discord.http.Route.BASE
        assert saved[1] == discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        apply_discord_endpoints("http://127.0.0.1:9/api/v10/", "ws://127.0.0.1:9/gateway")
        assert discord.http.Route.BASE == "http://127.0.0.1:9/api/v10"
        assert str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY) == "ws://127.0.0.1:9/gateway"
        with pytest.raises(ValueError):
            apply_discord_endpoints("ws://127.0.0.1:9/api", "")
        with pytest.raises(ValueError):
            apply_discord_endpoints("", "http://127.0.0.1:9/gateway")
    finally:
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved


# ---- modals, autocomplete, select menus -------------------------------------------------------

ZONES = ["Europe/Ljubljana", "Europe/London", "America/New_York"]


class SignalCodeModal(discord.ui.Modal, title="Link Signal"):
    code: discord.ui.TextInput[SignalCodeModal] = discord.ui.TextInput(label="Code", custom_id="link:code")

    def __init__(self, received: list[str]) -> None:
        super().__init__(custom_id="link:modal")
        self.received = received

    async def on_submit(self, interaction: discord.Interaction) -> None:
        self.received.append(self.code.value)
        await interaction.response.send_message("linked", ephemeral=True)


class ChannelPicker(discord.ui.View):
    @discord.ui.select(
        custom_id="prefs:channel",
        options=[discord.SelectOption(label=name, value=name) for name in ("discord", "telegram", "signal")],
    )
    async def pick(self, interaction: discord.Interaction, select: discord.ui.Select[ChannelPicker]) -> None:
        await interaction.response.edit_message(content=f"preferred: {select.values[0]}", view=None)


class FormsBot(commands.Bot):
    def __init__(self) -> None:
        super().__init__(command_prefix="!", intents=intents(), **client_options())
        self.codes: list[str] = []
        notify = app_commands.Group(name="notify", description="Notification settings")

        @notify.command(name="link", description="Link your Signal number")
        async def link(interaction: discord.Interaction) -> None:
            await interaction.response.send_modal(SignalCodeModal(self.codes))

        @notify.command(name="prefs", description="Set your preferences")
        @app_commands.describe(timezone="Your timezone")
        async def prefs(interaction: discord.Interaction, timezone: str) -> None:
            view = ChannelPicker()
            await interaction.response.send_message(f"timezone: {timezone}", view=view, ephemeral=True)

        @prefs.autocomplete("timezone")
        async def zones(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            return [app_commands.Choice(name=z, value=z) for z in ZONES if current.lower() in z.lower()]

        self.tree.add_command(notify, guild=discord.Object(GUILD))

    async def setup_hook(self) -> None:
        await self.tree.sync(guild=discord.Object(GUILD))


async def test_modal_autocomplete_and_select_menu(emulator: DiscordEmulator) -> None:
    async with connected(FormsBot()) as bot:
        await emulator.wait_for_commands(GUILD, STEP)

        typed = {"timezone": "europe"}
        suggest = await emulator.autocomplete(GUILD, ALICE, "notify prefs", typed, focused="timezone")
        assert (await suggest.wait_response(STEP)).callback_type == 8
        assert [c["value"] for c in suggest.choices or []] == ["Europe/Ljubljana", "Europe/London"]

        prefs = await emulator.invoke_slash(GUILD, ALICE, "notify prefs", {"timezone": "Europe/Ljubljana"})
        await prefs.wait_response(STEP)
        assert prefs.components() == ["prefs:channel"] and prefs.is_ephemeral()
        menu = prefs.last_message() or {}
        with pytest.raises(ValueError, match="accepts"):
            await emulator.choose(GUILD, ALICE, menu, "prefs:channel", ["sms"])
        picked = await emulator.choose(GUILD, ALICE, menu, "prefs:channel", ["telegram"])
        assert (await picked.wait_response(STEP)).callback_type == 7
        assert prefs.last_content() == "preferred: telegram" and prefs.components() == []

        opened = await emulator.invoke_slash(GUILD, BOB, "notify link")
        assert (await opened.wait_response(STEP)).callback_type == 9
        submitted = await emulator.submit_modal(opened, BOB, {"link:code": "123456"})
        await submitted.wait_response(STEP)
        assert bot.codes == ["123456"] and submitted.last_content() == "linked"


@pytest.mark.parametrize(
    ("content", "allowed", "everyone", "users", "roles"),
    [
        ("@everyone kick-off", None, True, [], []),  # Discord's default parses everything
        ("@here kick-off", None, True, [], []),
        ("@everyone kick-off", {"parse": []}, False, [], []),
        ("@everyone kick-off", {"parse": ["users"]}, False, [], []),
        (f"<@{ALICE}> and <@!{BOB}>", None, False, [ALICE, BOB], []),
        (f"<@{ALICE}> and <@{BOB}>", {"parse": []}, False, [], []),
        (f"<@{ALICE}> and <@{BOB}>", {"parse": [], "users": [str(BOB)]}, False, [BOB], []),
        (f"<@&{PROMOTER_ROLE}>", None, False, [], [PROMOTER_ROLE]),
        (f"<@&{PROMOTER_ROLE}>", {"parse": []}, False, [], []),
        ("kick-off at 21:00", None, False, [], []),
    ],
)
async def test_mentions_are_decided_as_discord_decides_them(
    emulator: DiscordEmulator, content: str, allowed: Any, everyone: bool, users: list[int], roles: list[int]
) -> None:
    body: dict[str, Any] = {"content": content}
    if allowed is not None:
        body["allowed_mentions"] = allowed
    headers = {"Authorization": f"Bot {TOKEN}"}
    url = f"{emulator.api_base_url}/channels/{GENERAL}/messages"
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        asyncio.timeout(STEP),
        session.post(url, json=body) as resp,
    ):
        message = await resp.json()
    assert message["mention_everyone"] is everyone
    assert [int(u["id"]) for u in message["mentions"]] == users
    assert [int(r) for r in message["mention_roles"]] == roles
    assert emulator.allowed_mentions(int(message["id"])) == [allowed]

"""Discord delivery (DMs, channel posts, voice probe) with a real discord.py client against the emulator.

The senders keep their DM state in a real SQLite file and send through the bot's `DiscordLimits`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.sandbox.discord_emulator import DiscordEmulator
from services.clock import SystemClock
from services.delivery.base import Outcome, OutgoingMessage
from services.delivery.discord_dm import (
    DiscordChannelPoster,
    DiscordDMSender,
    GatewayVoiceProbe,
    VoiceStateUnavailable,
    fit_message,
)
from services.delivery.discord_limits import DiscordLimits
from services.metrics import Metrics
from services.models import Channel
from storage.db import Database
from storage.discord_dms import DiscordDMStore
from storage.players import PlayerStore
from tests.sandbox.discord_fixtures import (
    AFK,
    ALICE,
    BOB,
    CAROL,
    DAVE,
    GENERAL,
    GUILD,
    LOUNGE,
    MUSIC_BOT,
    OTHER_GUILD,
    STAGE,
    STEP,
    client_options,
    connected,
    intents,
    logged_in,
    running_emulator,
)
from tests.support import sample

MESSAGES_ROUTE = "POST /channels/{channel_id}/messages"
OPEN_DM_ROUTE = "POST /users/@me/channels"
NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)

MakeSender = Callable[..., DiscordDMSender]


@pytest.fixture
async def emulator() -> AsyncIterator[DiscordEmulator]:
    async with running_emulator() as emu:
        yield emu


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def limits(metrics: Metrics) -> DiscordLimits:
    return DiscordLimits(SystemClock(), metrics, dm_opens_per_second=50.0)


@pytest.fixture
async def client(emulator: DiscordEmulator, limits: DiscordLimits) -> AsyncIterator[discord.Client]:
    options = client_options()
    async with logged_in(discord.Client(intents=intents(), http_trace=limits.trace_config, **options)) as logged:
        yield logged


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """Alice, Bob and Carol are players (Dave, no member, is not)."""
    database = await Database.open(tmp_path / "rp.sqlite3")
    players = PlayerStore(database)
    for user_id, name in ((ALICE, "Alice"), (BOB, "Bob"), (CAROL, "Carol")):
        await players.upsert(user_id, name, NOW)
    yield database
    await database.close()


@pytest.fixture
def dms(db: Database) -> DiscordDMStore:
    return DiscordDMStore(db)


@pytest.fixture
def make(client: discord.Client, limits: DiscordLimits, dms: DiscordDMStore) -> MakeSender:
    """A DM sender as the bot builds it; each call is a fresh one (a restarted process)."""

    def build(**options: Any) -> DiscordDMSender:
        return DiscordDMSender(client, limits, dms, SystemClock(), **options)

    return build


def dm(user_id: int, text: str = "Kick-off in 15 minutes", nonce: str = "c1:T-15:7") -> OutgoingMessage:
    return OutgoingMessage(Channel.DISCORD, str(user_id), text, nonce, player_id=7)


async def send(sender: DiscordDMSender, message: OutgoingMessage) -> Outcome:
    async with asyncio.timeout(STEP):
        result = await sender.send(message)
    return result.outcome


# ---- DMs --------------------------------------------------------------------------------------


async def test_dm_is_sent_with_the_provider_message_id(
    emulator: DiscordEmulator, make: MakeSender
) -> None:
    sender = make()
    assert sender.channel is Channel.DISCORD and sender.supports_dedup
    async with asyncio.timeout(STEP):
        first = await sender.send(dm(ALICE, "Kick-off in 15 minutes", "n-1"))
        second = await sender.send(dm(ALICE, "We are starting now", "n-2"))
    assert first.outcome is Outcome.SENT and second.outcome is Outcome.SENT
    received = emulator.dm_messages(ALICE)
    assert [m["id"] for m in received] == [first.provider_message_id, second.provider_message_id]
    assert [m["content"] for m in received] == ["Kick-off in 15 minutes", "We are starting now"]
    assert emulator.requests["POST /users/@me/channels"] == 1  # the DM channel is opened once


async def test_same_nonce_twice_is_one_message(emulator: DiscordEmulator, make: MakeSender) -> None:
    sender = make()
    async with asyncio.timeout(STEP):
        first = await sender.send(dm(BOB))
        # A fresh sender (a restarted process) resends the ambiguous attempt with the same nonce.
        again = await make().send(dm(BOB))
    assert first.outcome is Outcome.SENT and again.outcome is Outcome.SENT
    assert again.provider_message_id == first.provider_message_id
    assert len(emulator.dm_messages(BOB)) == 1
    assert emulator.message_posts_total == 2


async def test_closed_dms_are_permanent(emulator: DiscordEmulator, make: MakeSender) -> None:
    emulator.dm_closed_user_ids.add(CAROL)
    result = await make().send(dm(CAROL))
    assert result.outcome is Outcome.PERMANENT
    assert result.reason == "discord: cannot send messages to this user (50007)"
    assert emulator.dm_messages(CAROL) == []


async def test_unknown_user_and_bad_address_are_permanent(
    emulator: DiscordEmulator, make: MakeSender
) -> None:
    sender = make()
    unknown = await sender.send(dm(1_999_999_999_999_999_999))
    assert unknown.outcome is Outcome.PERMANENT and "10013" in unknown.reason
    garbage = await sender.send(OutgoingMessage(Channel.DISCORD, "+38640123456", "hi", "n"))
    assert garbage.outcome is Outcome.PERMANENT
    assert emulator.message_posts_total == 0


async def test_non_member_users_can_still_be_messaged(
    emulator: DiscordEmulator, make: MakeSender
) -> None:
    assert await send(make(), dm(DAVE)) is Outcome.SENT


async def test_a_503_is_retryable_at_once(emulator: DiscordEmulator, make: MakeSender) -> None:
    emulator.server_error_next(1, status=503)
    result = await make().send(dm(ALICE))
    assert result.outcome is Outcome.RETRYABLE and "503" in result.reason
    assert emulator.dm_messages(ALICE) == []


async def test_5xx_past_the_wait_bound_is_retryable_and_a_resend_delivers_once(
    emulator: DiscordEmulator, make: MakeSender
) -> None:
    sender = make(max_rate_limit_wait=0.3)
    emulator.server_error_next(5, status=500)  # discord.py would retry for 25 s; we stop at 0.3 s
    result = await sender.send(dm(ALICE))
    assert result.outcome is Outcome.RETRYABLE and "0.3" in result.reason
    emulator.clear_faults()
    assert await send(sender, dm(ALICE)) is Outcome.SENT
    assert len(emulator.dm_messages(ALICE)) == 1


async def test_rate_limit_beyond_the_bound_is_retryable_with_retry_after(
    emulator: DiscordEmulator, make: MakeSender
) -> None:
    sender = make()
    await sender.send(dm(ALICE, nonce="warm-up"))  # the DM channel is open; the next POST is the message
    emulator.rate_limit_next(1, 90.0)
    result = await sender.send(dm(ALICE))
    assert result.outcome is Outcome.RETRYABLE
    assert result.retry_after == pytest.approx(90.0)
    assert len(emulator.dm_messages(ALICE)) == 1


async def test_short_rate_limit_is_waited_out(emulator: DiscordEmulator, make: MakeSender) -> None:
    emulator.rate_limit_next(1, 0.1)
    assert await send(make(), dm(BOB)) is Outcome.SENT
    assert emulator.requests[MESSAGES_ROUTE] == 2
    assert len(emulator.dm_messages(BOB)) == 1


async def test_slow_discord_is_retryable(emulator: DiscordEmulator, make: MakeSender) -> None:
    emulator.latency = 1.0
    result = await make(max_rate_limit_wait=0.2).send(dm(ALICE))
    assert result.outcome is Outcome.RETRYABLE


async def test_unreachable_discord_is_retryable(emulator: DiscordEmulator, make: MakeSender) -> None:
    await emulator.stop()
    result = await make(max_rate_limit_wait=2.0).send(dm(ALICE))
    assert result.outcome is Outcome.RETRYABLE and "connection" in result.reason


async def test_overlong_text_is_cut_to_discords_limit(
    emulator: DiscordEmulator, make: MakeSender
) -> None:
    text = "Waiting on: " + ", ".join(f"player{i}" for i in range(400))
    assert len(text) > 2000
    assert await send(make(), dm(ALICE, text)) is Outcome.SENT
    content = emulator.dm_messages(ALICE)[0]["content"]
    assert len(content) <= 2000 and content.endswith("…")
    assert text.startswith(content[:-1])
    assert content[-2] != " " and "player" in content[-12:]  # cut after a whole name


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("exactly10!", 10, "exactly10!"),
        ("one two three four", 10, "one two…"),
        ("abcdefghijkl", 10, "abcdefghi…"),
        ("abcdefgh\u0301ij", 10, "abcdefgh\u0301…"),
        ("abcdefgh\u0301ij", 9, "abcdefg…"),  # h and its accent are kept or dropped together
        ("abcdef👍🏽xyz", 10, "abcdef👍🏽x…"),
        ("abcdef👍🏽xyz", 8, "abcdef…"),  # emoji + skin tone stay together
        ("abcdef🇸🇮🇩🇪x", 10, "abcdef🇸🇮…"),  # flags are pairs of regional indicators
        ("abcde👩\u200d💻zz", 8, "abcde…"),  # ZWJ sequences are not split
    ],
)
def test_fit_message(text: str, limit: int, expected: str) -> None:
    assert fit_message(text, limit) == expected
    assert len(fit_message(text, limit)) <= limit


# ---- stored DM channels, closed DMs, the limits ------------------------------------------------


async def test_the_dm_channel_is_stored_so_a_restarted_sender_opens_none_again(
    emulator: DiscordEmulator, make: MakeSender, dms: DiscordDMStore
) -> None:
    async with asyncio.timeout(STEP):
        assert (await make().send(dm(ALICE, nonce="n-1"))).outcome is Outcome.SENT
        assert await dms.channel_id(ALICE) == emulator.dm_channel_id(ALICE)
        assert (await make().send(dm(ALICE, nonce="n-2"))).outcome is Outcome.SENT  # a fresh process
    assert emulator.dm_channel_opens[ALICE] == 1
    assert [m["content"] for m in emulator.dm_messages(ALICE)] == ["Kick-off in 15 minutes"] * 2


async def test_a_user_who_is_no_player_keeps_the_channel_in_memory(
    emulator: DiscordEmulator, make: MakeSender, dms: DiscordDMStore
) -> None:
    sender = make()
    async with asyncio.timeout(STEP):
        assert (await sender.send(dm(DAVE, nonce="n-1"))).outcome is Outcome.SENT
        assert (await sender.send(dm(DAVE, nonce="n-2"))).outcome is Outcome.SENT
    assert emulator.dm_channel_opens[DAVE] == 1
    assert await dms.channel_id(DAVE) is None


async def test_a_stored_channel_discord_no_longer_knows_is_forgotten_then_opened_anew(
    emulator: DiscordEmulator, make: MakeSender, dms: DiscordDMStore
) -> None:
    await dms.remember_channel(BOB, 1_600_000_000_000_009_999)
    async with asyncio.timeout(STEP):
        stale = await make().send(dm(BOB, nonce="n-1"))
        assert stale.outcome is Outcome.PERMANENT and "10003" in stale.reason
        assert await dms.channel_id(BOB) is None
        assert (await make().send(dm(BOB, nonce="n-2"))).outcome is Outcome.SENT
    assert await dms.channel_id(BOB) == emulator.dm_channel_id(BOB)
    assert emulator.dm_channel_opens[BOB] == 1


async def test_closed_dms_are_remembered_on_the_player(
    emulator: DiscordEmulator, make: MakeSender, db: Database
) -> None:
    emulator.dm_closed_user_ids.add(CAROL)
    async with asyncio.timeout(STEP):
        assert (await make().send(dm(CAROL))).outcome is Outcome.PERMANENT
        assert (await make().send(dm(ALICE))).outcome is Outcome.SENT
    players = PlayerStore(db)
    carol, alice = await players.profile(CAROL), await players.profile(ALICE)
    assert carol is not None and carol.discord_dms_closed_at is not None
    assert alice is not None and alice.discord_dms_closed_at is None
    assert emulator.dm_closed_refusals[CAROL] == 1


async def test_every_request_of_the_client_passes_the_one_limiter(
    emulator: DiscordEmulator, client: discord.Client, metrics: Metrics, make: MakeSender
) -> None:
    """discord.py's own calls, each of its retries and the sender's direct posts all take a place.

    This fails if discord.py stops handing `http_trace` to its HTTP session (why it is pinned).
    """
    emulator.rate_limit_next(1, 0.1)  # discord.py retries this one inside its own request()
    async with asyncio.timeout(STEP):
        assert (await make().send(dm(ALICE))).outcome is Outcome.SENT
        await client.fetch_user(BOB)
    assert emulator.requests[MESSAGES_ROUTE] == 2 and emulator.requests["GET /users/{user_id}"] == 1
    # The login's requests included:
    assert sample(metrics, "rallypoint_discord_requests_total") == sum(emulator.requests.values())
    # The 429 was seen, not only the answer discord.py returned in the end.
    assert sample(metrics, "rallypoint_discord_invalid_requests_total", status="429") == 1


async def test_discord_sends_pause_while_the_invalid_request_budget_is_spent(
    emulator: DiscordEmulator, dms: DiscordDMStore
) -> None:
    metrics = Metrics()
    limits = DiscordLimits(SystemClock(), metrics, invalid_requests_pause_at=2)
    bot = discord.Client(intents=intents(), http_trace=limits.trace_config, **client_options())
    async with logged_in(bot) as client, asyncio.timeout(STEP):
        sender = DiscordDMSender(client, limits, dms, SystemClock())
        emulator.dm_closed_user_ids.update({BOB, CAROL})
        assert (await sender.send(dm(BOB))).outcome is Outcome.PERMANENT
        assert not limits.budget.paused
        assert (await sender.send(dm(CAROL))).outcome is Outcome.PERMANENT
        assert limits.budget.paused and sample(metrics, "rallypoint_discord_sends_paused") == 1
        before = sum(emulator.requests.values())
        paused = await sender.send(dm(ALICE))
        posted = await DiscordChannelPoster(client, limits).send(
            OutgoingMessage(Channel.DISCORD, str(GENERAL), "summary", "c1:SUMMARY")
        )
    for result in (paused, posted):
        assert result.outcome is Outcome.RETRYABLE and "paused" in result.reason
        # Until the first of the two invalid answers leaves the 10-minute window.
        assert result.retry_after == pytest.approx(600.0, abs=STEP)
    assert sum(emulator.requests.values()) == before  # nothing reached Discord
    assert emulator.dm_messages(ALICE) == []


async def test_a_client_without_the_limits_is_refused(emulator: DiscordEmulator, dms: DiscordDMStore) -> None:
    limits = DiscordLimits(SystemClock(), Metrics())
    unlimited = discord.Client(intents=intents(), **client_options())
    with pytest.raises(ValueError, match="http_trace"):
        DiscordDMSender(unlimited, limits, dms, SystemClock())
    with pytest.raises(ValueError, match="http_trace"):
        DiscordChannelPoster(unlimited, limits)


# ---- channel posts ----------------------------------------------------------------------------


async def test_channel_post_is_sent_once_per_nonce(
    emulator: DiscordEmulator, client: discord.Client, limits: DiscordLimits
) -> None:
    poster = DiscordChannelPoster(client, limits)
    assert (poster.channel, poster.supports_dedup) == (Channel.DISCORD, True)

    def post(channel_id: int | str, text: str) -> OutgoingMessage:
        return OutgoingMessage(Channel.DISCORD, str(channel_id), text, "c1:SUMMARY")

    async with asyncio.timeout(STEP):
        first = await poster.send(post(GENERAL, "In voice: Bob. Waiting on: Alice."))
        again = await poster.send(post(GENERAL, "In voice: Bob. Waiting on: Alice."))
        missing = await poster.send(post(1_600_000_000_000_009_999, "lost"))
        not_an_id = await poster.send(post("#general", "lost"))
    assert not_an_id.outcome is Outcome.PERMANENT
    assert first.outcome is Outcome.SENT and again.provider_message_id == first.provider_message_id
    assert [m["content"] for m in emulator.channel_messages(GENERAL)] == ["In voice: Bob. Waiting on: Alice."]
    assert missing.outcome is Outcome.PERMANENT and "10003" in missing.reason


async def test_dms_and_posts_ping_nobody_whatever_they_say(
    emulator: DiscordEmulator, client: discord.Client, limits: DiscordLimits, make: MakeSender
) -> None:
    # A plain client, without Rallypoint's default allowed_mentions: the senders must say it themselves,
    # because they post through discord.py's low-level HTTP call, which never applies the default.
    text = f"@everyone <@{BOB}> is waiting"
    async with asyncio.timeout(STEP):
        dm_sent = await make().send(dm(ALICE, text, "n-ping"))
        posted = await DiscordChannelPoster(client, limits).send(
            OutgoingMessage(Channel.DISCORD, str(GENERAL), text, "p-1")
        )
    for result in (dm_sent, posted):
        assert result.outcome is Outcome.SENT and result.provider_message_id is not None
        message = emulator.message(int(result.provider_message_id))
        assert message is not None and message["content"] == text
        assert (message["mention_everyone"], message["mentions"]) == (False, [])
        assert emulator.allowed_mentions(int(result.provider_message_id)) == [{"parse": []}]


# ---- voice probe ------------------------------------------------------------------------------


async def test_voice_probe_reads_the_gateway_cache(emulator: DiscordEmulator) -> None:
    await emulator.set_voice_state(GUILD, BOB, LOUNGE)
    await emulator.set_voice_state(GUILD, MUSIC_BOT, LOUNGE)
    await emulator.set_voice_state(GUILD, CAROL, STAGE)
    async with connected(discord.Client(intents=intents(), **client_options())) as client:
        everywhere = GatewayVoiceProbe(client, GUILD, [])
        lounge_only = GatewayVoiceProbe(client, GUILD, [LOUNGE, AFK])
        assert await everywhere.discord_ids_in_voice() == {BOB, CAROL}  # the music bot does not count
        assert await lounge_only.discord_ids_in_voice() == {BOB}

        requests_before = sum(emulator.requests.values())
        await emulator.set_voice_state(GUILD, ALICE, AFK)
        await emulator.set_voice_state(GUILD, BOB, None)
        async with asyncio.timeout(STEP):
            while await lounge_only.discord_ids_in_voice() != {ALICE}:
                await asyncio.sleep(0.01)
        assert await everywhere.discord_ids_in_voice() == {ALICE, CAROL}
        assert sum(emulator.requests.values()) == requests_before  # no REST polling

        with pytest.raises(VoiceStateUnavailable):
            await GatewayVoiceProbe(client, OTHER_GUILD, []).discord_ids_in_voice()


async def test_an_invitation_carries_its_answer_buttons_and_a_resend_carries_them_too(
    emulator: DiscordEmulator, make: MakeSender
) -> None:
    invitation = OutgoingMessage(Channel.DISCORD, str(ALICE), "Kick-off", "n-rsvp", player_id=7, rsvp_campaign_id=42)
    first = await make().send(invitation)
    again = await make().send(invitation)  # a restarted process resends with the same nonce and buttons
    assert first.outcome is again.outcome is Outcome.SENT and again.provider_message_id == first.provider_message_id
    [sent] = emulator.dm_messages(ALICE)
    assert [(b["custom_id"], b["label"], b["style"]) for b in emulator.buttons(int(sent["id"]))] == [
        ("rp:rsvp:42:in", "I'm in", 3),
        ("rp:rsvp:42:late", "Running late", 1),
        ("rp:rsvp:42:out", "Can't tonight", 4),
    ]
    assert emulator.allowed_mentions(int(sent["id"])) == [{"parse": []}]
    plain = await make().send(dm(BOB))
    assert plain.outcome is Outcome.SENT and emulator.buttons(int(plain.provider_message_id or 0)) == []

"""Linking and delivery end to end: the real TelegramSide (python-telegram-bot, long polling) against the
Telegram emulator, the real SignalClient against the Signal emulator, all on 127.0.0.1, over a real
SQLite file and a fake clock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.sandbox.signal_emulator import SignalEmulator
from bot.sandbox.telegram_emulator import TelegramEmulator
from bot.telegram_side import (
    KEPT,
    LINK_FAILED,
    LINKED,
    MOVE_ASKED,
    MOVED,
    NOT_LINKED,
    START_HELP,
    UNLINKED,
    TelegramSide,
    deep_link_username,
)
from services.contacts import ContactCipher
from services.delivery.signal import SignalClient, SignalSender
from services.delivery.telegram import TelegramSender, build_telegram_bot
from services.errors import (
    CodeLocked,
    CodeRefused,
    InvalidInput,
    TooManyRequests,
    Unavailable,
    WrongCode,
)
from services.linking import LinkingService
from services.models import Actor, Channel, PreferredChannel, RsvpAnswer
from tests.emulators import bounded
from tests.support import PROMOTER_ID, TEST_KEY, Harness, local, make_harness, opted_in

TOKEN = "123456:sandbox"
BOT_NUMBER = "+15550000001"
DAY = date(2026, 11, 24)
ANA, BOR = 501, 502
ANA_LINKED = LINKED.format(name="Anastazija")
CHAT = 731955208  # Ana's Telegram chat
NUMBER = "+38640917263"  # Ana's Signal number
BOUND = 5  # seconds any single test (or fixture step) may take


@dataclass
class Rig:
    """The engine sends Telegram and Signal through the emulators (one Telegram Bot for both sides)."""

    h: Harness
    telegram: TelegramEmulator
    signal: SignalEmulator

    @property
    def linking(self) -> LinkingService:
        return self.h.engine.linking

    def actor(self, discord_id: int = ANA, name: str = "Anastazija") -> Actor:
        return self.h.actor(discord_id, name)

    async def say(self, chat_id: int, text: str) -> str:
        """Send `text` to the bot from `chat_id` and return the bot's reply."""
        before = len(self.telegram.messages_to(chat_id))
        self.telegram.queue_message(chat_id, text)
        while len(self.telegram.messages_to(chat_id)) == before:
            await asyncio.sleep(0.005)
        return str(self.telegram.messages_to(chat_id)[-1]["text"])

    async def link_telegram(self, chat_id: int = CHAT, actor: Actor | None = None) -> None:
        token, _, _ = await self.linking.request_telegram_link(actor or self.actor())
        name = (actor or self.actor()).display_name
        assert await self.say(chat_id, f"/start {token}") == LINKED.format(name=name)

    def last_code(self, number: str = NUMBER) -> str:
        found = re.search(r"Your Rallypoint code is (\d{6})\b", self.signal.messages_to(number)[-1])
        assert found
        return found.group(1)

    async def link_signal(self, number: str = NUMBER, actor: Actor | None = None) -> None:
        who = actor or self.actor()
        await self.linking.request_signal_link(who, number)
        await self.linking.confirm_signal_link(who, self.last_code(number))



@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    stack = contextlib.AsyncExitStack()
    try:
        async with asyncio.timeout(BOUND):
            telegram = await stack.enter_async_context(TelegramEmulator(token=TOKEN))
            signal = await stack.enter_async_context(SignalEmulator(number=BOT_NUMBER))
            http = await stack.enter_async_context(aiohttp.ClientSession())
            bot = await build_telegram_bot(TOKEN, telegram.base_url)
            stack.push_async_callback(bot.shutdown)
            senders = {
                Channel.TELEGRAM: TelegramSender(bot, pacer=None),
                Channel.SIGNAL: SignalSender(SignalClient(http, signal.api_url, BOT_NUMBER, timeout=BOUND)),
            }
            h = await make_harness(
                tmp_path / "rp.sqlite3",
                local(DAY, 18, 0),
                senders=senders,
                telegram_bot_username=deep_link_username("", bot),
            )
            stack.push_async_callback(h.engine.db.close)
            await stack.enter_async_context(TelegramSide(bot, h.engine.linking, h.engine.rsvp))
        yield Rig(h, telegram, signal)
    finally:
        async with asyncio.timeout(BOUND):
            await stack.aclose()


# -- Telegram ----------------------------------------------------------------------------------


@bounded
async def test_start_with_a_fresh_token_links_the_chat(rig: Rig) -> None:
    token, deep_link, _ = await rig.linking.request_telegram_link(rig.actor())
    assert deep_link == f"https://t.me/{rig.telegram.bot_username}?start={token}"
    assert await rig.say(CHAT, f"/start {token}") == ANA_LINKED
    player = await rig.h.engine.player_store.by_discord_id(ANA)
    assert player is not None
    [link] = await rig.h.engine.link_store.links(player.id)
    assert link.channel is Channel.TELEGRAM and rig.h.cipher.decrypt(link.address_encrypted) == str(CHAT)


@bounded
async def test_reused_token_is_refused(rig: Rig) -> None:
    token, _, _ = await rig.linking.request_telegram_link(rig.actor())
    assert await rig.say(CHAT, f"/start {token}") == ANA_LINKED
    assert await rig.say(CHAT + 1, f"/start {token}") == LINK_FAILED
    assert (
        await rig.h.engine.link_store.player_for_address(
            Channel.TELEGRAM, rig.h.cipher.address_hashes(str(CHAT + 1))
        )
        is None
    )


async def choose(rig: Rig, chat_id: int, data: str) -> tuple[str, dict[str, Any]]:
    """Press an inline button in `chat_id`; return the message's new text and the answer to the press."""
    update = rig.telegram.press_button(chat_id, data)
    message_id = update["callback_query"]["message"]["message_id"]
    query_id = update["callback_query"]["id"]
    while not rig.telegram.edits_of(chat_id, message_id) or rig.telegram.callback_answer(query_id) is None:
        await asyncio.sleep(0.005)
    message = rig.telegram.message(chat_id, message_id)
    answer = rig.telegram.callback_answer(query_id)
    assert message is not None and answer is not None
    assert not message.get("reply_markup")  # the buttons went with the question
    return str(message["text"]), answer


@bounded
async def test_a_deep_link_from_someone_else_asks_before_moving_the_chat(rig: Rig) -> None:
    await rig.link_telegram()
    mallory = rig.actor(BOR, "Mallory")
    token, _, _ = await rig.linking.request_telegram_link(mallory)
    question = await rig.say(CHAT, f"/start {token}")
    assert question == MOVE_ASKED.format(current="Anastazija", player="Mallory")
    [*_, asked] = rig.telegram.messages_to(CHAT)
    buttons = [b["text"] for row in asked["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons == ["Move to Mallory", "Keep Anastazija"]
    data = [b["callback_data"] for row in asked["reply_markup"]["inline_keyboard"] for b in row]

    text, _ = await choose(rig, CHAT, data[1])  # keep
    assert text == KEPT
    ana = await rig.h.engine.player_store.by_discord_id(ANA)
    assert ana is not None and len(await rig.h.engine.link_store.links(ana.id)) == 1
    assert rig.h.discord.sent == []
    assert await rig.say(CHAT, f"/start {token}") == LINK_FAILED  # the token is spent


@bounded
async def test_moving_the_chat_tells_its_previous_owner(rig: Rig) -> None:
    await rig.link_telegram()
    token, _, _ = await rig.linking.request_telegram_link(rig.actor(BOR, "Bor"))
    await rig.say(CHAT, f"/start {token}")
    [*_, asked] = rig.telegram.messages_to(CHAT)
    move = asked["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    text, _ = await choose(rig, CHAT, move)
    assert text == MOVED.format(player="Bor")
    bor = await rig.h.engine.player_store.by_discord_id(BOR)
    assert bor is not None and len(await rig.h.engine.link_store.links(bor.id)) == 1
    [notice] = rig.h.discord.to(str(ANA))
    assert "Telegram chat" in notice.text and "Bor" in notice.text


@bounded
async def test_expired_token_is_refused(rig: Rig) -> None:
    token, _, expires_at = await rig.linking.request_telegram_link(rig.actor())
    rig.h.clock.set(expires_at)
    assert await rig.say(CHAT, f"/start {token}") == LINK_FAILED
    assert await rig.say(CHAT, "/start not-a-token-we-issued") == LINK_FAILED
    assert await rig.h.engine.link_store.all_links() == []


@bounded
async def test_start_without_a_token_explains_and_stop_unlinks(rig: Rig) -> None:
    assert await rig.say(CHAT, "/start") == START_HELP
    await rig.link_telegram()
    assert await rig.say(CHAT, "/stop") == UNLINKED
    assert await rig.h.engine.link_store.all_links() == []
    assert await rig.say(CHAT, "/stop") == NOT_LINKED


@bounded
async def test_unlink_from_discord_side(rig: Rig) -> None:
    await rig.link_telegram()
    assert await rig.linking.unlink(rig.actor(), Channel.TELEGRAM) is True
    assert await rig.h.engine.link_store.all_links() == []
    assert await rig.say(CHAT, "/stop") == NOT_LINKED


@bounded
async def test_link_requests_are_throttled(rig: Rig) -> None:
    for _ in range(5):
        await rig.linking.request_telegram_link(rig.actor())
    with pytest.raises(TooManyRequests) as refused:
        await rig.linking.request_telegram_link(rig.actor())
    assert refused.value.retry_after == 3600


@bounded
async def test_without_a_key_nothing_is_linked(rig: Rig) -> None:
    # Restarted without the key: the app then starts neither Telegram nor Signal.
    with pytest.raises(ValueError, match="need the contact encryption key"):
        rig.h.engine_with(cipher=None)
    keyless = rig.h.engine_with(cipher=None, senders={Channel.DISCORD: rig.h.discord})
    with pytest.raises(Unavailable, match="Telegram is not set up"):
        await keyless.linking.request_telegram_link(rig.actor())
    with pytest.raises(Unavailable, match="Signal is not set up"):
        await keyless.linking.request_signal_link(rig.actor(), NUMBER)
    assert await keyless.linking.complete_telegram_link("sometoken", CHAT) is None
    assert rig.signal.requests_total == 0
    assert await rig.h.engine.link_store.all_links() == []


# -- Signal ------------------------------------------------------------------------------------


@bounded
async def test_signal_code_links_the_number(rig: Rig) -> None:
    await rig.linking.request_signal_link(rig.actor(), NUMBER)
    [text] = rig.signal.messages_to(NUMBER)
    assert text.startswith("Your Rallypoint code is ")
    await rig.linking.confirm_signal_link(rig.actor(), rig.last_code())
    [(_, channel, encrypted)] = await rig.h.engine.link_store.all_links()
    assert channel is Channel.SIGNAL and rig.h.cipher.decrypt(encrypted) == NUMBER


@bounded
async def test_wrong_codes_lock_until_a_new_code(rig: Rig) -> None:
    await rig.linking.request_signal_link(rig.actor(), NUMBER)
    right = rig.last_code()
    wrong = f"{(int(right) + 500_000) % 1_000_000:06d}"
    for _ in range(5):
        with pytest.raises(CodeRefused):
            await rig.linking.confirm_signal_link(rig.actor(), wrong)
    with pytest.raises(CodeLocked, match="Too many wrong codes; request a new code"):
        await rig.linking.confirm_signal_link(rig.actor(), right)
    assert await rig.h.engine.link_store.all_links() == []
    await rig.link_signal()
    assert len(await rig.h.engine.link_store.all_links()) == 1


@bounded
async def test_a_bad_number_sends_nothing(rig: Rig) -> None:
    for number in ("040917263", "+0038640917263", "+386 40 917 26x"):
        with pytest.raises(InvalidInput):
            await rig.linking.request_signal_link(rig.actor(), number)
    assert rig.signal.requests_total == 0


@bounded
async def test_unregistered_number_leaves_no_usable_code(rig: Rig) -> None:
    rig.signal.unregistered_numbers.add(NUMBER)
    # The same answer as for a number on Signal: nobody learns who has Signal from it.
    sent = await rig.linking.request_signal_link(rig.actor(BOR, "Bor"), "+38640111222")
    withheld = await rig.linking.request_signal_link(rig.actor(), NUMBER)
    assert sent == withheld
    assert rig.signal.requests_total == 2 and rig.signal.messages_to(NUMBER) == []
    with pytest.raises(WrongCode, match="Wrong code; 4 tries left"):
        await rig.linking.confirm_signal_link(rig.actor(), "123456")
    assert await rig.h.engine.link_store.all_links() == []


# -- contact data at rest ----------------------------------------------------------------------


def database_bytes(path: Path) -> bytes:
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


@bounded
async def test_addresses_are_not_stored_in_plaintext(rig: Rig) -> None:
    token, _, _ = await rig.linking.request_telegram_link(rig.actor())
    assert await rig.say(CHAT, f"/start {token}") == ANA_LINKED
    await rig.link_signal()
    raw = database_bytes(rig.h.path)
    assert b"Anastazija" in raw  # the right file, with the rows in it
    for secret in (str(CHAT), NUMBER, NUMBER[1:], token):
        assert secret.encode() not in raw
    assert len(await rig.h.engine.link_store.all_links()) == 2


@bounded
async def test_key_rotation_keeps_links_working_after_the_old_key_is_dropped(rig: Rig) -> None:
    await rig.h.add_player(PROMOTER_ID, "Promoter", status=None)
    await rig.h.add_player(ANA, "Anastazija", prefs=opted_in(preferred_channel=PreferredChannel.SIGNAL))
    await rig.link_telegram()
    await rig.link_signal()
    key_b = ContactCipher.generate_key()

    # A restart with the new key in front rotates; then one with the old key dropped.
    rotating = rig.h.engine_with(cipher=ContactCipher(f"{key_b},{TEST_KEY}"))
    assert await rotating.linking.rotate_keys() == 2
    only_b = ContactCipher(key_b)
    after = rig.h.engine_with(cipher=only_b)

    assert sorted(only_b.decrypt(enc) for _, _, enc in await after.link_store.all_links()) == sorted(
        [str(CHAT), NUMBER]
    )
    # Delivery decrypts the number with the new key only.
    await after.promote.create(rig.h.actor())
    await after.dispatcher.run_until(local(DAY, 20, 50))
    assert len(rig.signal.messages_to(NUMBER)) == 2  # the code, then the reminder
    # And an incoming chat is still matched by its hash.
    assert await after.linking.unlink_telegram_chat(CHAT) is True


# -- delivery through the emulators ------------------------------------------------------------


@bounded
async def test_blocked_telegram_falls_back_to_signal_then_discord(rig: Rig) -> None:
    prefs = opted_in(preferred_channel=PreferredChannel.TELEGRAM)
    await rig.h.add_player(PROMOTER_ID, "Promoter", status=None)
    ana = await rig.h.add_player(ANA, "Anastazija", prefs=prefs, telegram=str(CHAT), signal=NUMBER)
    bor = await rig.h.add_player(BOR, "Bor", prefs=prefs, telegram=str(CHAT + 1), signal="+38641555666")
    rig.telegram.blocked_chat_ids.update({CHAT, CHAT + 1})
    rig.signal.unregistered_numbers.add("+38641555666")

    await rig.h.engine.promote.create(rig.h.actor())
    await rig.h.run_evening()

    assert rig.telegram.messages_to(CHAT) == [] and rig.telegram.messages_to(CHAT + 1) == []
    assert rig.telegram.method_calls["sendmessage"] == 6  # each of 3 messages tried there first
    assert len(rig.signal.messages_to(NUMBER)) == 3  # reminder, start, follow-up
    assert rig.signal.messages_to("+38641555666") == []
    assert len(rig.h.discord.to(str(BOR))) == 3 and rig.h.discord.to(str(ANA)) == []
    async with rig.h.engine.db.read() as tx:
        rows = await tx.fetchall("SELECT player_id, channel, state FROM ledger ORDER BY player_id, key")
    assert {(r["player_id"], r["channel"], r["state"]) for r in rows} == {
        (ana, "signal", "sent"),
        (bor, "discord", "sent"),
    }


@bounded
async def test_telegram_429_retry_after_is_honoured_exactly_once(rig: Rig) -> None:
    await rig.h.add_player(PROMOTER_ID, "Promoter", status=None)
    await rig.h.add_player(
        ANA, "Anastazija", prefs=opted_in(preferred_channel=PreferredChannel.TELEGRAM), telegram=str(CHAT)
    )
    await rig.h.engine.promote.create(rig.h.actor())
    rig.telegram.rate_limit_next(1, 3)

    await rig.h.engine.dispatcher.run_until(local(DAY, 20, 50))  # the reminder only

    assert sum(rig.h.clock.slept) == 3.0  # waited exactly retry_after, once (in lease check-in steps)
    assert rig.telegram.method_calls["sendmessage"] == 2  # the 429, then the delivery
    [message] = rig.telegram.messages_to(CHAT)
    assert "kicks off in 15 minutes" in message["text"]
    assert rig.h.discord.sent == [] and rig.signal.requests_total == 0


@bounded
async def test_logs_keep_tokens_chat_ids_numbers_and_codes_out(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token, _, _ = await rig.linking.request_telegram_link(rig.actor())
    assert await rig.say(CHAT, f"/start {token}") == ANA_LINKED
    await rig.link_signal()
    code = rig.last_code()
    rig.signal.unregistered_numbers.add("+38641555666")
    await rig.linking.request_signal_link(rig.actor(), "+38641555666")
    assert await rig.say(CHAT, "/stop") == UNLINKED
    logged = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert "services.linking" in logged  # it did log, at DEBUG and above
    for secret in (TOKEN, token, str(CHAT), NUMBER, "38641555666", f"is {code}"):
        assert secret not in logged


# -- answers under an invitation (Telegram) -----------------------------------------------------


async def answered(rig: Rig, data: str) -> dict[str, Any]:
    """Press the newest button with `data` in Ana's chat; return the bot's answerCallbackQuery."""
    query_id = rig.telegram.press_button(CHAT, data)["callback_query"]["id"]
    while (answer := rig.telegram.callback_answer(query_id)) is None:
        await asyncio.sleep(0.005)
    return answer


@bounded
async def test_an_answer_pressed_in_telegram_is_stored_confirmed_and_ticked(rig: Rig) -> None:
    await rig.h.add_player(
        ANA, "Anastazija", prefs=opted_in(preferred_channel=PreferredChannel.TELEGRAM), telegram=str(CHAT)
    )
    campaign_id = (await rig.h.engine.promote.create(rig.h.actor())).campaign.id
    await rig.h.engine.dispatcher.run_until(local(DAY, 20, 46))  # the reminder, with its keyboard
    [reminder] = rig.telegram.messages_to(CHAT)
    assert [b["callback_data"] for b in reminder["reply_markup"]["inline_keyboard"][0]] == [
        f"rsvp:{campaign_id}:in", f"rsvp:{campaign_id}:late", f"rsvp:{campaign_id}:out",
    ]

    answer = await answered(rig, f"rsvp:{campaign_id}:late")
    assert answer["text"] == "Noted: you're running late. No nudge will follow; join when you can."
    while not rig.telegram.edits_of(CHAT, reminder["message_id"]):
        await asyncio.sleep(0.005)
    [edit] = rig.telegram.edits_of(CHAT, reminder["message_id"])
    assert edit.method == "editMessageReplyMarkup"
    assert [b["text"] for b in edit.reply_markup["inline_keyboard"][0]] == ["I'm in", "✓ Running late", "Can't tonight"]
    # The same answer again: confirmed, and no edit Telegram would refuse as "not modified".
    assert (await answered(rig, f"rsvp:{campaign_id}:late"))["text"].startswith("Noted: you're running late")
    await answered(rig, f"rsvp:{campaign_id}:in")
    while len(rig.telegram.edits_of(CHAT, reminder["message_id"])) < 2:
        await asyncio.sleep(0.005)
    edits = rig.telegram.edits_of(CHAT, reminder["message_id"])
    assert [e.reply_markup["inline_keyboard"][0][0]["text"] for e in edits] == ["I'm in", "✓ I'm in"]
    player = await rig.h.engine.player_store.by_discord_id(ANA)
    assert player is not None
    assert await rig.h.engine.rsvp_store.latest(campaign_id) == {player.id: RsvpAnswer.IN}


@bounded
async def test_a_chat_no_longer_linked_is_told_the_invitation_is_not_its_own(rig: Rig) -> None:
    await rig.h.add_player(
        ANA, "Anastazija", prefs=opted_in(preferred_channel=PreferredChannel.TELEGRAM), telegram=str(CHAT)
    )
    campaign_id = (await rig.h.engine.promote.create(rig.h.actor())).campaign.id
    await rig.h.engine.dispatcher.run_until(local(DAY, 20, 46))
    assert await rig.say(CHAT, "/stop") == UNLINKED
    answer = await answered(rig, f"rsvp:{campaign_id}:out")
    assert answer["text"] == "This invitation is not yours, so there is nothing to answer."
    [reminder, _] = rig.telegram.messages_to(CHAT)
    assert rig.telegram.edits_of(CHAT, reminder["message_id"]) == []
    assert await rig.h.engine.rsvp_store.latest(campaign_id) == {}

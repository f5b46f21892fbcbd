"""LinkingService over a real SQLite file with a fake clock and a fake Signal code sender."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pytest

from services.contacts import ContactCipher
from services.delivery.base import OutgoingMessage, SendResult
from services.errors import (
    CodeExpired,
    CodeLocked,
    CodeRefused,
    InvalidInput,
    NoCodePending,
    NotLinked,
    TooManyRequests,
    Unavailable,
    WrongCode,
)
from services.linking import LinkingService
from services.models import Channel, SignalCodeLimits, TelegramLinked, TelegramMoveAsked, Throttle
from tests.emulators import bounded
from tests.support import TEST_KEY, Harness, local, make_harness

DAY = date(2026, 11, 24)
ANA = 501
CHAT = 777000123
NUMBER = "+38640123456"
BOUND = 5


@dataclass
class FakeSignal:
    """The Signal sender: records every code message; answers with `result` (or raises `error`)."""

    result: SendResult = field(default_factory=lambda: SendResult.sent("1"))
    error: Exception | None = None
    texts: list[tuple[str, str]] = field(default_factory=list)
    channel: Channel = Channel.SIGNAL
    supports_dedup: bool = False

    async def send(self, message: OutgoingMessage) -> SendResult:
        self.texts.append((message.address, message.text))
        if self.error is not None:
            raise self.error
        return self.result

    def last_code(self) -> str:
        found = re.search(r"Your Rallypoint code is (\d{6})\b", self.texts[-1][1])
        assert found, self.texts[-1][1]
        return found.group(1)


@pytest.fixture
async def h(tmp_path) -> AsyncIterator[Harness]:
    async with asyncio.timeout(BOUND):
        harness = await make_harness(tmp_path / "rp.sqlite3", local(DAY, 18, 0))
    yield harness
    await harness.engine.db.close()


@pytest.fixture
def signal() -> FakeSignal:
    return FakeSignal()


def make_linking(
    h: Harness,
    signal: FakeSignal | None,
    *,
    cipher: ContactCipher | str | None = "default",
    username: str | None = "rallypoint_bot",
    **tuning: Any,
) -> LinkingService:
    return LinkingService(
        players=h.engine.players,
        link_store=h.engine.link_store,
        link_request_store=h.engine.link_request_store,
        cipher=h.cipher if cipher == "default" else cipher,  # type: ignore[arg-type]
        clock=h.clock,
        telegram_bot_username=username,
        signal=signal,
        discord=h.discord,
        **tuning,
    )


@pytest.fixture
def linking(h: Harness, signal: FakeSignal) -> LinkingService:
    return make_linking(h, signal)


async def raw_rows(h: Harness, table: str) -> list[tuple[Any, ...]]:
    async with h.engine.db.read() as tx:
        return [tuple(r) for r in await tx.fetchall(f"SELECT * FROM {table}")]  # noqa: S608


# -- Telegram ----------------------------------------------------------------------------------


@bounded
async def test_telegram_link_round_trip(h: Harness, linking: LinkingService) -> None:
    token, deep_link, expires_at = await linking.request_telegram_link(h.actor(ANA, "Ana"))
    assert re.fullmatch(r"[A-Za-z0-9_-]{32,64}", token)
    assert deep_link == f"https://t.me/rallypoint_bot?start={token}"
    assert expires_at == h.clock.now() + timedelta(minutes=30)
    stored = await raw_rows(h, "telegram_link_tokens")
    assert len(stored) == 1 and token not in repr(stored)
    assert hashlib.sha256(token.encode()).hexdigest() in stored[0]

    linked = await linking.complete_telegram_link(token, CHAT)
    assert isinstance(linked, TelegramLinked) and linked.previous is None
    player = linked.player
    assert player.discord_user_id == ANA
    [link] = await h.engine.link_store.links(player.id)
    assert link.channel is Channel.TELEGRAM and h.cipher.decrypt(link.address_encrypted) == str(CHAT)
    assert str(CHAT) not in link.address_encrypted
    assert (
        await h.engine.link_store.player_for_address(Channel.TELEGRAM, h.cipher.address_hashes(str(CHAT)))
        == player.id
    )


@bounded
async def test_telegram_token_works_once(h: Harness, linking: LinkingService) -> None:
    token, _, _ = await linking.request_telegram_link(h.actor(ANA, "Ana"))
    assert await linking.complete_telegram_link(token, CHAT) is not None
    assert await linking.complete_telegram_link(token, 999) is None
    assert await h.engine.link_store.player_for_address(Channel.TELEGRAM, h.cipher.address_hashes("999")) is None


@bounded
async def test_telegram_token_expires(h: Harness, linking: LinkingService) -> None:
    token, _, _ = await linking.request_telegram_link(h.actor(ANA, "Ana"))
    h.clock.advance(30 * 60)
    assert await linking.complete_telegram_link(token, CHAT) is None
    assert await h.engine.link_store.all_links() == []


@pytest.mark.parametrize("token", ["", "nope", "x" * 65, "a b", "../../etc", "é" * 10])
@bounded
async def test_unknown_or_malformed_tokens_link_nothing(
    h: Harness, linking: LinkingService, token: str
) -> None:
    await linking.request_telegram_link(h.actor(ANA, "Ana"))
    assert await linking.complete_telegram_link(token, CHAT) is None
    assert await h.engine.link_store.all_links() == []


@bounded
async def test_telegram_stop_unlinks_the_chat(h: Harness, linking: LinkingService) -> None:
    token, _, _ = await linking.request_telegram_link(h.actor(ANA, "Ana"))
    linked = await linking.complete_telegram_link(token, CHAT)
    assert isinstance(linked, TelegramLinked)
    assert await linking.unlink_telegram_chat(CHAT) is True
    assert await h.engine.link_store.links(linked.player.id) == []
    assert await linking.unlink_telegram_chat(CHAT) is False


async def telegram_owner(h: Harness, chat_id: int = CHAT) -> int | None:
    return await h.engine.link_store.player_for_address(Channel.TELEGRAM, h.cipher.address_hashes(str(chat_id)))


@bounded
async def test_a_chat_linked_to_someone_else_is_asked_before_it_moves(h: Harness, linking: LinkingService) -> None:
    ana_token, _, _ = await linking.request_telegram_link(h.actor(ANA, "Ana"))
    mallory_token, _, _ = await linking.request_telegram_link(h.actor(ANA + 1, "Mallory"))
    ana = await linking.complete_telegram_link(ana_token, CHAT)
    assert isinstance(ana, TelegramLinked)

    # Mallory's deep link, opened in Ana's chat: nothing moves yet, and the question names both.
    asked = await linking.complete_telegram_link(mallory_token, CHAT)
    assert isinstance(asked, TelegramMoveAsked)
    assert (asked.current.display_name, asked.player.display_name) == ("Ana", "Mallory")
    assert await telegram_owner(h) == ana.player.id
    assert h.discord.sent == []

    # Another chat cannot answer for this one; "keep" spends Mallory's token and changes nothing.
    assert await linking.move_telegram_chat(asked.token_id, CHAT + 1) is None
    assert await linking.keep_telegram_chat(asked.token_id, CHAT) is True
    assert await telegram_owner(h) == ana.player.id
    assert await linking.move_telegram_chat(asked.token_id, CHAT) is None  # answered already
    assert await linking.complete_telegram_link(mallory_token, CHAT) is None  # spent
    assert h.discord.sent == []


@bounded
async def test_a_chat_that_says_move_moves_and_the_previous_owner_is_told(
    h: Harness, linking: LinkingService
) -> None:
    first, _, _ = await linking.request_telegram_link(h.actor(ANA, "Ana"))
    second, _, _ = await linking.request_telegram_link(h.actor(ANA + 1, "Bor"))
    ana = await linking.complete_telegram_link(first, CHAT)
    asked = await linking.complete_telegram_link(second, CHAT)
    assert isinstance(ana, TelegramLinked) and isinstance(asked, TelegramMoveAsked)
    moved = await linking.move_telegram_chat(asked.token_id, CHAT)
    assert moved is not None and moved.player.display_name == "Bor"
    assert moved.previous is not None and moved.previous.id == ana.player.id
    assert await h.engine.link_store.links(ana.player.id) == []
    assert await telegram_owner(h) == moved.player.id
    [notice] = h.discord.to(str(ANA))
    assert "Telegram chat" in notice.text and "Bor" in notice.text and "/notify link telegram" in notice.text
    assert str(CHAT) not in notice.text
    assert await linking.move_telegram_chat(asked.token_id, CHAT) is None  # once


@bounded
async def test_an_unanswered_question_expires_with_the_token(h: Harness, linking: LinkingService) -> None:
    first, _, _ = await linking.request_telegram_link(h.actor(ANA, "Ana"))
    second, _, expires_at = await linking.request_telegram_link(h.actor(ANA + 1, "Bor"))
    ana = await linking.complete_telegram_link(first, CHAT)
    asked = await linking.complete_telegram_link(second, CHAT)
    assert isinstance(ana, TelegramLinked) and isinstance(asked, TelegramMoveAsked)
    h.clock.set(expires_at)
    assert await linking.move_telegram_chat(asked.token_id, CHAT) is None
    assert await telegram_owner(h) == ana.player.id


@bounded
async def test_relinking_your_own_chat_needs_no_question(h: Harness, linking: LinkingService) -> None:
    first, _, _ = await linking.request_telegram_link(h.actor(ANA, "Ana"))
    again, _, _ = await linking.request_telegram_link(h.actor(ANA, "Ana"))
    assert isinstance(await linking.complete_telegram_link(first, CHAT), TelegramLinked)
    assert isinstance(await linking.complete_telegram_link(again, CHAT), TelegramLinked)


@bounded
async def test_telegram_not_configured_or_no_key_is_unavailable(h: Harness, signal: FakeSignal) -> None:
    with pytest.raises(Unavailable, match="Telegram is not set up"):
        await make_linking(h, signal, username=None).request_telegram_link(h.actor(ANA, "Ana"))
    no_key = make_linking(h, signal, cipher=None)
    with pytest.raises(Unavailable, match="encryption key is not set"):
        await no_key.request_telegram_link(h.actor(ANA, "Ana"))
    assert await no_key.complete_telegram_link("whatever", CHAT) is None
    assert await raw_rows(h, "telegram_link_tokens") == []


@bounded
async def test_non_members_get_no_link(h: Harness, linking: LinkingService) -> None:
    with pytest.raises(NotLinked):
        await linking.request_telegram_link(h.actor(ANA, "Ana", member=False))
    with pytest.raises(NotLinked):
        await linking.request_signal_link(h.actor(ANA, "Ana", member=False), NUMBER)
    assert await h.engine.player_store.by_discord_id(ANA) is None


@bounded
async def test_telegram_requests_are_throttled_per_player(h: Harness, signal: FakeSignal) -> None:
    linking = make_linking(h, signal, throttle=Throttle(limit=3, window=timedelta(hours=1)))
    for _ in range(3):
        await linking.request_telegram_link(h.actor(ANA, "Ana"))
        h.clock.advance(60)
    with pytest.raises(TooManyRequests) as refused:
        await linking.request_telegram_link(h.actor(ANA, "Ana"))
    assert refused.value.retry_after == 3600 - 180
    await linking.request_telegram_link(h.actor(ANA + 1, "Bor"))  # others are unaffected
    h.clock.advance(3600 - 180)
    await linking.request_telegram_link(h.actor(ANA, "Ana"))


# -- Signal ------------------------------------------------------------------------------------


@bounded
async def test_signal_link_round_trip(h: Harness, linking: LinkingService, signal: FakeSignal) -> None:
    expires_at = await linking.request_signal_link(h.actor(ANA, "Ana"), "+386 40 123-456")
    assert expires_at == h.clock.now() + timedelta(minutes=15)
    [(recipient, text)] = signal.texts
    assert recipient == NUMBER and text.startswith("Your Rallypoint code is ")
    code = signal.last_code()
    stored = repr(await raw_rows(h, "signal_verifications"))
    assert code not in stored and NUMBER not in stored

    await linking.confirm_signal_link(h.actor(ANA, "Ana"), f" {code[:3]} {code[3:]} ")
    player = await h.engine.player_store.by_discord_id(ANA)
    assert player is not None
    [link] = await h.engine.link_store.links(player.id)
    assert link.channel is Channel.SIGNAL and h.cipher.decrypt(link.address_encrypted) == NUMBER
    with pytest.raises(NoCodePending, match="No code is waiting"):
        await linking.confirm_signal_link(h.actor(ANA, "Ana"), code)


@pytest.mark.parametrize("number", ["038640123456", "+0123", "+386 40 abc", "+" + "1" * 20, "", "٠١٢٣٤٥٦٧٨"])
@bounded
async def test_bad_numbers_are_refused_before_anything_is_sent(
    h: Harness, linking: LinkingService, signal: FakeSignal, number: str
) -> None:
    with pytest.raises(InvalidInput, match=r"\+38640123456"):
        await linking.request_signal_link(h.actor(ANA, "Ana"), number)
    assert signal.texts == []
    assert await raw_rows(h, "signal_verifications") == []


@bounded
async def test_wrong_codes_lock_the_attempt(h: Harness, linking: LinkingService, signal: FakeSignal) -> None:
    ana = h.actor(ANA, "Ana")
    await linking.request_signal_link(ana, NUMBER)
    right = signal.last_code()
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    messages = []
    for _ in range(5):
        with pytest.raises(CodeRefused) as refused:
            await linking.confirm_signal_link(ana, wrong)
        messages.append(refused.value.message)
    assert messages[0] == "Wrong code; 4 tries left." and "too many wrong codes" in messages[-1]
    with pytest.raises(CodeLocked, match="Too many wrong codes; request a new code"):
        await linking.confirm_signal_link(ana, right)
    assert await h.engine.link_store.all_links() == []
    # A new code starts afresh.
    await linking.request_signal_link(ana, NUMBER)
    await linking.confirm_signal_link(ana, signal.last_code())
    assert len(await h.engine.link_store.all_links()) == 1


@bounded
async def test_malformed_codes_do_not_count_as_tries(
    h: Harness, linking: LinkingService, signal: FakeSignal
) -> None:
    ana = h.actor(ANA, "Ana")
    await linking.request_signal_link(ana, NUMBER)
    for bad in ["", "12345", "1234567", "abcdef", "１２３４５６", "1" * 5000]:
        with pytest.raises(InvalidInput, match="6 digits"):
            await linking.confirm_signal_link(ana, bad)
    await linking.confirm_signal_link(ana, signal.last_code())


@bounded
async def test_expired_code_is_refused(h: Harness, linking: LinkingService, signal: FakeSignal) -> None:
    ana = h.actor(ANA, "Ana")
    await linking.request_signal_link(ana, NUMBER)
    h.clock.advance(15 * 60)
    with pytest.raises(CodeExpired, match="expired"):
        await linking.confirm_signal_link(ana, signal.last_code())
    assert await h.engine.link_store.all_links() == []


@bounded
async def test_a_new_code_replaces_the_old_one(
    h: Harness, linking: LinkingService, signal: FakeSignal
) -> None:
    ana = h.actor(ANA, "Ana")
    await linking.request_signal_link(ana, NUMBER)
    old = signal.last_code()
    await linking.request_signal_link(ana, "+38641999888")
    new = signal.last_code()
    if old != new:
        with pytest.raises(WrongCode, match="Wrong code"):
            await linking.confirm_signal_link(ana, old)
    await linking.confirm_signal_link(ana, new)
    [link] = await h.engine.link_store.all_links()
    assert h.cipher.decrypt(link[2]) == "+38641999888"


@pytest.mark.parametrize(
    ("make_fake", "answered"),
    [
        # Refused for good (not on Signal): the same answer as a code that went out.
        (lambda: FakeSignal(result=SendResult.permanent("recipient is not registered on Signal")), None),
        (lambda: FakeSignal(result=SendResult.retryable("Signal rate limit (429)", retry_after=5)), Unavailable),
        (lambda: FakeSignal(error=RuntimeError("boom")), Unavailable),
    ],
    ids=["unregistered", "rate-limited", "raises"],
)
@bounded
async def test_a_code_that_was_not_sent_cannot_be_confirmed(
    h: Harness, make_fake: Callable[[], FakeSignal], answered: type[Exception] | None
) -> None:
    fake = make_fake()
    linking = make_linking(h, fake)
    ana = h.actor(ANA, "Ana")
    if answered is None:
        assert await linking.request_signal_link(ana, NUMBER) == h.clock.now() + timedelta(minutes=15)
    else:
        with pytest.raises(answered, match="try again in a few minutes"):
            await linking.request_signal_link(ana, NUMBER)
    # Even if the code reached the number after all, it is void: it answers like a wrong one.
    with pytest.raises(WrongCode, match="Wrong code; 4 tries left"):
        await linking.confirm_signal_link(ana, fake.last_code())
    assert await h.engine.link_store.all_links() == []


@bounded
async def test_the_answer_does_not_tell_whether_a_number_is_on_signal(h: Harness) -> None:
    registered, unregistered = FakeSignal(), FakeSignal(result=SendResult.permanent("not registered"))
    answers = []
    for fake in (registered, unregistered):
        answers.append(await make_linking(h, fake).request_signal_link(h.actor(ANA, "Ana"), NUMBER))
        for _ in range(5):  # and typing codes at it reads the same too
            with pytest.raises(CodeRefused) as wrong:
                await make_linking(h, fake).confirm_signal_link(h.actor(ANA, "Ana"), "000000")
        answers.append(wrong.value.message)
    assert answers[0] == answers[2] and answers[1] == answers[3]


@bounded
async def test_the_code_message_names_who_asked_and_where(h: Harness, signal: FakeSignal) -> None:
    linking = make_linking(h, signal, community_name=lambda: "Friday Night Frags")
    await linking.request_signal_link(h.actor(ANA, "Ana"), NUMBER)
    [(number, text)] = signal.texts
    assert number == NUMBER
    assert "for the Discord user Ana on the Discord server Friday Night Frags" in text
    assert "If that was not you, ignore this message" in text
    await make_linking(h, signal).request_signal_link(h.actor(ANA + 1, "Bor"), NUMBER)
    assert "for the Discord user Bor on Discord," in signal.texts[-1][1]  # the server's name not known yet


@bounded
async def test_signal_not_configured_or_no_key_is_unavailable(h: Harness, signal: FakeSignal) -> None:
    with pytest.raises(Unavailable, match="Signal is not set up"):
        await make_linking(h, None).request_signal_link(h.actor(ANA, "Ana"), NUMBER)
    with pytest.raises(Unavailable, match="encryption key is not set"):
        await make_linking(h, signal, cipher=None).request_signal_link(h.actor(ANA, "Ana"), NUMBER)
    assert signal.texts == []


@bounded
async def test_one_player_cannot_lock_a_number_out_for_others(h: Harness, signal: FakeSignal) -> None:
    linking = make_linking(h, signal)  # the defaults: 2 per player and number a day, 6 per number a day
    mallory = h.actor(ANA + 9, "Mallory")
    for _ in range(2):
        await linking.request_signal_link(mallory, NUMBER)
    with pytest.raises(TooManyRequests) as refused:
        await linking.request_signal_link(mallory, NUMBER)
    assert refused.value.retry_after == 24 * 3600
    # Ana, whose number it is, still gets a code and links it.
    await linking.request_signal_link(h.actor(ANA, "Ana"), NUMBER)
    await linking.confirm_signal_link(h.actor(ANA, "Ana"), signal.last_code())
    assert len(await h.engine.link_store.all_links()) == 1


@bounded
async def test_a_number_gets_at_most_six_codes_a_day_whoever_asks(h: Harness, signal: FakeSignal) -> None:
    linking = make_linking(h, signal)
    for i in range(6):
        await linking.request_signal_link(h.actor(ANA + i, f"P{i}"), NUMBER)
    with pytest.raises(TooManyRequests):
        await linking.request_signal_link(h.actor(ANA + 6, "P6"), NUMBER)
    assert len(signal.texts) == 6
    h.clock.advance(24 * 3600)
    await linking.request_signal_link(h.actor(ANA + 6, "P6"), NUMBER)
    assert len(signal.texts) == 7


@bounded
async def test_code_requests_are_throttled_per_player(h: Harness, signal: FakeSignal) -> None:
    limits = SignalCodeLimits(per_player=Throttle(limit=2, window=timedelta(minutes=30)))
    linking = make_linking(h, signal, signal_limits=limits)
    await linking.request_signal_link(h.actor(ANA, "Ana"), NUMBER)
    await linking.request_signal_link(h.actor(ANA, "Ana"), "+38641999888")
    with pytest.raises(TooManyRequests) as refused:
        await linking.request_signal_link(h.actor(ANA, "Ana"), "+38641999777")
    assert refused.value.retry_after == 1800
    assert len(signal.texts) == 2


@bounded
async def test_a_number_confirmed_by_someone_else_moves_and_its_previous_owner_is_told(
    h: Harness, signal: FakeSignal
) -> None:
    linking = make_linking(h, signal)
    for who, name in ((ANA, "Ana"), (ANA + 1, "Bor")):
        await linking.request_signal_link(h.actor(who, name), NUMBER)
        await linking.confirm_signal_link(h.actor(who, name), signal.last_code())
    [(player_id, _, _)] = await h.engine.link_store.all_links()
    bor = await h.engine.player_store.by_discord_id(ANA + 1)
    assert bor is not None and player_id == bor.id
    [notice] = h.discord.to(str(ANA))
    assert "Signal number" in notice.text and "Bor" in notice.text and NUMBER not in notice.text


@bounded
async def test_unlink_by_the_player(h: Harness, linking: LinkingService, signal: FakeSignal) -> None:
    ana = h.actor(ANA, "Ana")
    await linking.request_signal_link(ana, NUMBER)
    await linking.confirm_signal_link(ana, signal.last_code())
    assert await linking.unlink(ana, Channel.SIGNAL) is True
    assert await linking.unlink(ana, Channel.SIGNAL) is False
    assert await linking.unlink(ana, Channel.TELEGRAM) is False
    with pytest.raises(InvalidInput):
        await linking.unlink(ana, Channel.DISCORD)
    assert await h.engine.link_store.all_links() == []


# -- keys and logs -----------------------------------------------------------------------------


@bounded
async def test_key_rotation_keeps_every_address(h: Harness, signal: FakeSignal) -> None:
    key_a, key_b = TEST_KEY, ContactCipher.generate_key()
    ana, bor = h.actor(ANA, "Ana"), h.actor(ANA + 1, "Bor")
    under_a = make_linking(h, signal, cipher=ContactCipher(key_a))
    token, _, _ = await under_a.request_telegram_link(ana)
    await under_a.complete_telegram_link(token, CHAT)
    await under_a.request_signal_link(ana, NUMBER)
    await under_a.confirm_signal_link(ana, signal.last_code())
    await under_a.request_signal_link(bor, "+38641999888")  # pending while the keys change
    pending_code = signal.last_code()

    both = make_linking(h, signal, cipher=ContactCipher(f"{key_b},{key_a}"))
    assert await both.rotate_keys() == 2
    only_b = ContactCipher(key_b)
    after = make_linking(h, signal, cipher=only_b)
    addresses = sorted(only_b.decrypt(enc) for _, _, enc in await h.engine.link_store.all_links())
    assert addresses == sorted([str(CHAT), NUMBER])
    player = await h.engine.player_store.by_discord_id(ANA)
    assert player is not None
    assert (
        await h.engine.link_store.player_for_address(Channel.TELEGRAM, only_b.address_hashes(str(CHAT)))
        == player.id
    )
    assert await h.engine.link_store.player_for_address(Channel.SIGNAL, only_b.address_hashes(NUMBER)) == player.id
    assert await after.unlink_telegram_chat(CHAT) is True
    # The pending request's number was re-encrypted too (its code was hashed under A, so is void now).
    *_, (_, encrypted) = await after.link_request_store.signal_numbers()
    assert only_b.decrypt(encrypted) == "+38641999888"
    with pytest.raises(WrongCode, match="Wrong code"):
        await after.confirm_signal_link(bor, pending_code)


@bounded
async def test_codes_sent_before_a_rotation_still_work_during_it(h: Harness, signal: FakeSignal) -> None:
    key_b = ContactCipher.generate_key()
    await make_linking(h, signal).request_signal_link(h.actor(ANA, "Ana"), NUMBER)
    rotating = make_linking(h, signal, cipher=ContactCipher(f"{key_b},{TEST_KEY}"))
    await rotating.rotate_keys()
    await rotating.confirm_signal_link(h.actor(ANA, "Ana"), signal.last_code())
    [(_, _, encrypted)] = await h.engine.link_store.all_links()
    assert ContactCipher(key_b).decrypt(encrypted) == NUMBER


@bounded
async def test_rotation_refuses_when_an_address_cannot_be_decrypted(h: Harness, signal: FakeSignal) -> None:
    await h.add_player(ANA, "Ana", telegram=str(CHAT))
    stranger = make_linking(h, signal, cipher=ContactCipher(ContactCipher.generate_key()))
    with pytest.raises(ValueError, match="cannot be decrypted"):
        await stranger.rotate_keys()
    [(_, _, encrypted)] = await h.engine.link_store.all_links()
    assert h.cipher.decrypt(encrypted) == str(CHAT)  # untouched
    with pytest.raises(Unavailable):
        await make_linking(h, signal, cipher=None).rotate_keys()


@bounded
async def test_logs_never_show_chat_ids_numbers_tokens_or_codes(
    h: Harness, linking: LinkingService, signal: FakeSignal, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ana = h.actor(ANA, "Ana")
    token, _, _ = await linking.request_telegram_link(ana)
    await linking.complete_telegram_link(token, CHAT)
    await linking.complete_telegram_link(token, CHAT)
    await linking.unlink_telegram_chat(CHAT)
    await linking.request_signal_link(ana, NUMBER)
    code = signal.last_code()
    with pytest.raises(WrongCode):
        await linking.confirm_signal_link(ana, f"{(int(code) + 1) % 1_000_000:06d}")
    await linking.confirm_signal_link(ana, code)
    signal.result = SendResult.permanent("recipient is not registered on Signal")
    await linking.request_signal_link(ana, "+38641999888")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "linked Telegram chat" in logged and "Signal code sent" in logged  # logging did happen
    for secret in (str(CHAT), NUMBER, "38641999888", token, code):
        assert secret not in logged

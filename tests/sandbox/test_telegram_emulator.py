"""The Telegram Bot API emulator, driven by the real python-telegram-bot client and by raw HTTP.

Messages and updates first, then inline keyboards: buttons kept on messages, presses as callback
queries, answerCallbackQuery, editMessageText / editMessageReplyMarkup.
"""

from __future__ import annotations

import os

os.environ.setdefault("PTB_TIMEDELTA", "1")

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, EndPointNotFound, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.sandbox.telegram_emulator import TelegramEmulator
from bot.sandbox.telegram_keyboards import KeyboardError, inline_keyboard
from tests.emulators import running

TOKEN = "123456:sandbox"
BOUND = 5  # seconds any single test may take
CHAT = 4242  # a player who wrote /start to the bot (message 1 of the chat)
TOO_OLD = "Query is too old and response timeout expired or query id is invalid"  # as PTB words it


class FakeClock:
    """The emulator's clock for callback-query deadlines (seconds, like time.monotonic)."""

    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def emulator(clock: FakeClock) -> AsyncIterator[TelegramEmulator]:
    async with running(TelegramEmulator(token=TOKEN, bot_username="rallypoint_bot", clock=clock)) as emu:
        yield emu


@pytest.fixture
async def bot(emulator: TelegramEmulator) -> AsyncIterator[Bot]:
    tg = Bot(TOKEN, base_url=emulator.base_url)
    async with asyncio.timeout(BOUND):
        await tg.initialize()
    try:
        yield tg
    finally:
        await tg.shutdown()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def api(emulator: TelegramEmulator, method: str, token: str = TOKEN) -> str:
    return emulator.base_url.removesuffix("/bot") + f"/bot{token}/{method}"


async def test_base_url_is_ptb_form_on_loopback(emulator: TelegramEmulator) -> None:
    assert emulator.base_url.startswith("http://127.0.0.1:")
    assert emulator.base_url.endswith("/bot")


async def test_get_me_through_ptb(bot: Bot, emulator: TelegramEmulator) -> None:
    async with asyncio.timeout(BOUND):
        me = await bot.get_me()
    assert me.id == 123456
    assert me.is_bot
    assert me.username == "rallypoint_bot"
    assert emulator.method_calls["getme"] >= 1


async def test_send_message_returns_a_real_message(bot: Bot, emulator: TelegramEmulator) -> None:
    async with asyncio.timeout(BOUND):
        first = await bot.send_message(chat_id=4242, text="kick-off in 15 minutes")
        second = await bot.send_message(chat_id=4242, text="we are starting now")
    assert first.chat.id == 4242
    assert first.chat.type == "private"
    assert first.text == "kick-off in 15 minutes"
    assert first.from_user is not None and first.from_user.username == "rallypoint_bot"
    assert first.date is not None
    assert second.message_id == first.message_id + 1
    assert [m["text"] for m in emulator.messages_to(4242)] == [
        "kick-off in 15 minutes",
        "we are starting now",
    ]
    assert emulator.messages_to(1) == []
    assert emulator.sent_total == 2


async def test_send_message_accepts_a_json_body(
    emulator: TelegramEmulator, http: aiohttp.ClientSession
) -> None:
    async with asyncio.timeout(BOUND):
        async with http.post(api(emulator, "sendMessage"), json={"chat_id": 7, "text": "hi"}) as resp:
            body = await resp.json()
    assert resp.status == 200
    assert body["ok"] is True
    assert body["result"]["chat"]["id"] == 7
    assert emulator.messages_to(7)[0]["text"] == "hi"
    async with asyncio.timeout(BOUND):
        async with http.post(api(emulator, "sendMessage"), json={"chat_id": "8", "text": "yo"}) as resp:
            assert resp.status == 200  # the Bot API takes integers as strings too
    assert emulator.messages_to(8)[0]["text"] == "yo"


async def test_get_updates_refuses_a_bad_timeout(
    emulator: TelegramEmulator, http: aiohttp.ClientSession
) -> None:
    for timeout in ("soon", -1, "nan"):
        async with asyncio.timeout(BOUND):
            async with http.post(api(emulator, "getUpdates"), data={"timeout": str(timeout)}) as resp:
                body = await resp.json()
        assert resp.status == 400, timeout
        assert body["ok"] is False


async def test_method_names_are_case_insensitive(
    emulator: TelegramEmulator, http: aiohttp.ClientSession
) -> None:
    async with asyncio.timeout(BOUND), http.get(api(emulator, "GETME")) as resp:
        body = await resp.json()
    assert body["ok"] is True and body["result"]["username"] == "rallypoint_bot"


async def test_wrong_token_is_401(emulator: TelegramEmulator, http: aiohttp.ClientSession) -> None:
    async with asyncio.timeout(BOUND), http.post(api(emulator, "getMe", token="999:wrong")) as resp:
        body = await resp.json()
    assert resp.status == 401
    assert body == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_ptb_rejects_a_wrong_token(emulator: TelegramEmulator) -> None:
    wrong = Bot("999:wrong", base_url=emulator.base_url)
    try:
        async with asyncio.timeout(BOUND):
            with pytest.raises(InvalidToken):
                await wrong.initialize()
    finally:
        await wrong.shutdown()


async def test_unknown_method_is_404(
    bot: Bot, emulator: TelegramEmulator, http: aiohttp.ClientSession
) -> None:
    async with asyncio.timeout(BOUND):
        async with http.post(api(emulator, "sendDice")) as resp:
            body = await resp.json()
        with pytest.raises(EndPointNotFound):
            await bot.do_api_request("noSuchMethod")
    assert resp.status == 404
    assert body == {"ok": False, "error_code": 404, "description": "Not Found"}


async def test_blocked_chat_is_403_forbidden(
    bot: Bot, emulator: TelegramEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.blocked_chat_ids.add(13)
    async with asyncio.timeout(BOUND):
        async with http.post(api(emulator, "sendMessage"), json={"chat_id": 13, "text": "x"}) as resp:
            body = await resp.json()
        with pytest.raises(Forbidden, match="bot was blocked by the user"):
            await bot.send_message(chat_id=13, text="x")
    assert resp.status == 403
    assert body == {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
    assert emulator.messages_to(13) == []


async def test_unknown_chat_is_400_chat_not_found(bot: Bot, emulator: TelegramEmulator) -> None:
    emulator.unknown_chat_ids.add(14)
    async with asyncio.timeout(BOUND):
        with pytest.raises(BadRequest, match="Chat not found"):
            await bot.send_message(chat_id=14, text="x")
        with pytest.raises(BadRequest, match="Chat not found"):
            await bot.send_message(chat_id="@nobody", text="x")


async def test_empty_and_oversized_texts_are_refused(bot: Bot) -> None:
    async with asyncio.timeout(BOUND):
        with pytest.raises(BadRequest, match="Message text is empty"):
            await bot.send_message(chat_id=15, text="   ")
        with pytest.raises(BadRequest, match="Message is too long"):
            await bot.send_message(chat_id=15, text="x" * 4097)


async def test_rate_limit_answers_like_the_bot_api_then_recovers(
    bot: Bot, emulator: TelegramEmulator, http: aiohttp.ClientSession
) -> None:
    emulator.rate_limit_next(2, retry_after=17)
    async with asyncio.timeout(BOUND):
        async with http.post(api(emulator, "sendMessage"), json={"chat_id": 5, "text": "x"}) as resp:
            body = await resp.json()
        with pytest.raises(RetryAfter) as info:
            await bot.send_message(chat_id=5, text="x")
        message = await bot.send_message(chat_id=5, text="x")
    assert resp.status == 429
    assert body == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 17",
        "parameters": {"retry_after": 17},
    }
    assert info.value.retry_after == timedelta(seconds=17)
    assert message.text == "x"
    assert len(emulator.messages_to(5)) == 1


async def test_server_error_is_502_then_recovers(bot: Bot, emulator: TelegramEmulator) -> None:
    emulator.server_error_next(1)
    async with asyncio.timeout(BOUND):
        with pytest.raises(NetworkError, match="Bad Gateway"):
            await bot.send_message(chat_id=6, text="x")
        await bot.send_message(chat_id=6, text="x")
    assert emulator.sent_total == 1


def test_fault_injection_refuses_nonsense() -> None:
    emu = TelegramEmulator()
    with pytest.raises(ValueError):
        emu.rate_limit_next(1, retry_after=0)
    with pytest.raises(ValueError):
        emu.server_error_next(-1)


async def test_queue_message_makes_a_private_command_update(bot: Bot, emulator: TelegramEmulator) -> None:
    emulator.queue_message(777, "/start abc123", username="ana", first_name="Ana")
    async with asyncio.timeout(BOUND):
        updates = await bot.get_updates(timeout=timedelta(seconds=0))
    assert len(updates) == 1
    message = updates[0].message
    assert message is not None
    assert message.chat.id == 777 and message.chat.type == "private"
    assert message.from_user is not None and message.from_user.username == "ana"
    assert message.text == "/start abc123"
    assert [(e.type, e.offset, e.length) for e in message.entities] == [("bot_command", 0, 6)]


def test_command_entity_offsets_count_utf16_units() -> None:
    emu = TelegramEmulator()
    update = emu.queue_message(1, "🎮 /link@rallypoint_bot now, not a/path")
    # The emoji takes two UTF-16 code units; "a/path" is no command.
    assert update["message"]["entities"] == [{"type": "bot_command", "offset": 3, "length": 20}]
    assert "entities" not in emu.queue_message(1, "just chatting")["message"]


async def test_get_updates_offset_confirms_and_forgets(bot: Bot, emulator: TelegramEmulator) -> None:
    for text in ("one", "two", "three"):
        emulator.queue_message(1, text)
    async with asyncio.timeout(BOUND):
        first = await bot.get_updates(limit=2)
        assert [u.message.text for u in first if u.message] == ["one", "two"]
        rest = await bot.get_updates(offset=first[-1].update_id + 1)
        assert [u.message.text for u in rest if u.message] == ["three"]
        await bot.get_updates(offset=rest[-1].update_id + 1, timeout=timedelta(seconds=0))
    assert emulator.pending_updates == 0


async def test_negative_offset_keeps_only_the_last_updates(bot: Bot, emulator: TelegramEmulator) -> None:
    for text in ("one", "two", "three"):
        emulator.queue_message(1, text)
    async with asyncio.timeout(BOUND):
        updates = await bot.get_updates(offset=-1)
    assert [u.message.text for u in updates if u.message] == ["three"]
    assert emulator.pending_updates == 1


async def test_allowed_updates_filters_update_types(bot: Bot, emulator: TelegramEmulator) -> None:
    emulator.queue_message(1, "hello")
    async with asyncio.timeout(BOUND):
        assert await bot.get_updates(allowed_updates=["callback_query"]) == ()
        emulator.queue_message(1, "again")
        # The setting persists, as on Telegram, until changed.
        assert await bot.get_updates() == ()
        emulator.queue_message(1, "third")
        updates = await bot.get_updates(allowed_updates=["message"])
    assert [u.message.text for u in updates if u.message] == ["third"]


async def test_long_poll_returns_as_soon_as_an_update_arrives(bot: Bot, emulator: TelegramEmulator) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        emulator.queue_message(9, "/start late")

    async with asyncio.timeout(BOUND):
        writer = asyncio.create_task(later())
        updates = await bot.get_updates(timeout=timedelta(seconds=30))  # far beyond BOUND
        await writer
    assert [u.message.text for u in updates if u.message] == ["/start late"]


async def test_stop_answers_a_waiting_long_poll(
    emulator: TelegramEmulator, http: aiohttp.ClientSession
) -> None:
    async def poll() -> list[object]:
        async with http.post(api(emulator, "getUpdates"), json={"timeout": 30}) as resp:
            body = await resp.json()
        return body["result"]

    async with asyncio.timeout(BOUND):
        poller = asyncio.create_task(poll())
        while emulator.method_calls["getupdates"] == 0:
            await asyncio.sleep(0.01)
        await emulator.stop()
        assert await poller == []


async def test_webhook_and_command_methods(bot: Bot, emulator: TelegramEmulator) -> None:
    emulator.queue_message(1, "stale")
    async with asyncio.timeout(BOUND):
        info = await bot.get_webhook_info()
        assert info.url == "" and info.pending_update_count == 1
        assert await bot.delete_webhook(drop_pending_updates=True)
        assert await bot.set_my_commands([("start", "link your Telegram account")])
        commands = await bot.get_my_commands()
        assert await bot.close()
    assert emulator.pending_updates == 0
    assert [(c.command, c.description) for c in commands] == [("start", "link your Telegram account")]


async def test_application_long_polling_receives_start_and_stops_cleanly(emulator: TelegramEmulator) -> None:
    """The linking receiver's shape: a PTB Application polling the emulator gets "/start <token>"."""
    received: asyncio.Queue[list[str]] = asyncio.Queue()

    async def on_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        await received.put(list(context.args or []))
        await update.effective_message.reply_text("linked")

    app = Application.builder().token(TOKEN).base_url(emulator.base_url).build()
    app.add_handler(CommandHandler("start", on_start))
    async with asyncio.timeout(BOUND):
        await app.initialize()
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=timedelta(seconds=0.5))
        try:
            emulator.queue_message(555, "/start abc", username="ana")
            assert await received.get() == ["abc"]
        finally:
            async with asyncio.timeout(2):
                await app.updater.stop()
                await app.stop()
                await app.shutdown()
    assert [m["text"] for m in emulator.messages_to(555)] == ["linked"]
    assert emulator.method_calls["deletewebhook"] == 1  # PTB's polling bootstrap
    assert emulator.pending_updates == 0  # the final getUpdates confirmed what was handled


def rsvp_keyboard(campaign: int, chosen: str | None = None) -> InlineKeyboardMarkup:
    labels = {"in": "I'm in", "late": "Running late", "out": "Can't tonight"}
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(("✓ " if key == chosen else "") + label, callback_data=f"rsvp:{campaign}:{key}")
                for key, label in labels.items()
            ]
        ]
    )


@pytest.fixture
def chat(emulator: TelegramEmulator) -> int:
    emulator.queue_message(CHAT, "/start", username="ana", first_name="Ana")
    return CHAT


# ---- inline keyboards: the rules, without HTTP -------------------------------------------------


@pytest.mark.parametrize(
    ("markup", "shown"),
    [
        (None, None),
        ({"inline_keyboard": [[{"text": "a", "callback_data": "x"}]]}, [[{"text": "a", "callback_data": "x"}]]),
        ({"inline_keyboard": [[], [{"text": "a", "url": "https://t.me"}]]}, [[{"text": "a", "url": "https://t.me"}]]),
        ({"inline_keyboard": []}, None),
        ({"keyboard": [[{"text": "1"}]]}, None),  # a reply keyboard is not shown on the message
        ({"remove_keyboard": True}, None),
    ],
)
def test_what_a_message_shows(markup: Any, shown: Any) -> None:
    result = inline_keyboard(markup)
    assert (result["inline_keyboard"] if result else None) == shown


@pytest.mark.parametrize(
    ("markup", "description"),
    [
        ([1], "can't parse reply keyboard markup"),
        ({"other": 1}, "can't parse reply keyboard markup"),
        ({"inline_keyboard": {"text": "a"}}, "must be an Array of Arrays"),
        ({"inline_keyboard": [[{"callback_data": "x"}]]}, 'Field "text"'),
        ({"inline_keyboard": [[{"text": "a"}]]}, "Text buttons are unallowed"),
        ({"inline_keyboard": [[{"text": "a", "callback_data": "x", "url": "https://t.me"}]]}, "exactly one"),
        ({"inline_keyboard": [[{"text": "a", "callback_data": "é" * 33}]]}, "BUTTON_DATA_INVALID"),  # 66 bytes
        ({"inline_keyboard": [[{"text": "a", "callback_data": ""}]]}, "BUTTON_DATA_INVALID"),
    ],
)
def test_keyboards_telegram_refuses(markup: Any, description: str) -> None:
    with pytest.raises(KeyboardError, match=description):
        inline_keyboard(markup)


# ---- inline keyboards through python-telegram-bot ----------------------------------------------


async def test_the_keyboard_stays_on_the_message(chat: int, bot: Bot, emulator: TelegramEmulator) -> None:
    async with asyncio.timeout(BOUND):
        sent = await bot.send_message(CHAT, "Kick-off in 15 minutes", reply_markup=rsvp_keyboard(7))
    assert sent.reply_markup == rsvp_keyboard(7)  # PTB parsed the keyboard back from the answer
    stored = emulator.message(CHAT, sent.message_id)
    assert stored is not None
    assert [b["callback_data"] for b in stored["reply_markup"]["inline_keyboard"][0]] == [
        "rsvp:7:in",
        "rsvp:7:late",
        "rsvp:7:out",
    ]
    with pytest.raises(BadRequest, match="Button_data_invalid"):
        too_long = InlineKeyboardMarkup([[InlineKeyboardButton("a", callback_data="d" * 65)]])
        await bot.send_message(CHAT, "x", reply_markup=too_long)
    assert len(emulator.messages_to(CHAT)) == 1


async def test_an_application_answers_a_press_and_edits_the_message(chat: int, emulator: TelegramEmulator) -> None:
    """The RSVP shape: answerCallbackQuery, then the message edited to show the answer."""
    handled: asyncio.Queue[str] = asyncio.Queue()

    async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None and query.data is not None and query.message is not None
        _, campaign, answer = query.data.split(":")
        await query.answer(f"Noted: {answer}")
        shown = rsvp_keyboard(int(campaign), answer)
        await query.edit_message_text(f"Kick-off in 15 minutes — you said {answer}", reply_markup=shown)
        await handled.put(query.data)

    app = Application.builder().token(TOKEN).base_url(emulator.base_url).build()
    app.add_handler(CallbackQueryHandler(on_press, pattern=r"^rsvp:"))
    async with asyncio.timeout(BOUND):
        await app.initialize()
        sent = await app.bot.send_message(CHAT, "Kick-off in 15 minutes", reply_markup=rsvp_keyboard(7))
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=timedelta(seconds=0.5))
        try:
            update = emulator.press_button(CHAT, "rsvp:7:late")
            assert await handled.get() == "rsvp:7:late"
        finally:
            async with asyncio.timeout(2):
                await app.updater.stop()
                await app.stop()
                await app.shutdown()
    query = update["callback_query"]
    assert query["from"] == {"id": CHAT, "is_bot": False, "first_name": "Ana", "username": "ana", "language_code": "en"}
    assert query["message"]["message_id"] == sent.message_id and query["data"] == "rsvp:7:late"
    assert query["chat_instance"] and isinstance(query["id"], str)
    assert emulator.callback_answer(query["id"]) == {
        "text": "Noted: late",
        "show_alert": False,
        "url": None,
        "cache_time": None,
    }
    [edit] = emulator.edits_of(CHAT, sent.message_id)
    assert edit.method == "editMessageText" and edit.text == "Kick-off in 15 minutes — you said late"
    now = emulator.message(CHAT, sent.message_id)
    assert now is not None and "edit_date" in now
    assert now["reply_markup"]["inline_keyboard"][0][1]["text"] == "✓ Running late"
    assert emulator.pending_updates == 0


async def test_a_query_is_answered_once_and_in_time(
    chat: int, bot: Bot, emulator: TelegramEmulator, clock: FakeClock
) -> None:
    async with asyncio.timeout(BOUND):
        await bot.send_message(CHAT, "Are you in?", reply_markup=rsvp_keyboard(7))
        first = emulator.press_button(CHAT, "rsvp:7:in")["callback_query"]["id"]
        assert await bot.answer_callback_query(first, text="Noted", show_alert=True)
        assert emulator.callback_answer(first) == {"text": "Noted", "show_alert": True, "url": None, "cache_time": None}
        with pytest.raises(BadRequest, match=TOO_OLD):
            await bot.answer_callback_query(first, text="again")
        with pytest.raises(BadRequest, match=TOO_OLD):
            await bot.answer_callback_query("123", text="never pressed")
        late = emulator.press_button(CHAT, "rsvp:7:out")["callback_query"]["id"]
        clock.now += 15.5  # past the deadline
        with pytest.raises(BadRequest, match=TOO_OLD):
            await bot.answer_callback_query(late)
        in_time = emulator.press_button(CHAT, "rsvp:7:out")["callback_query"]["id"]
        with pytest.raises(BadRequest):
            await bot.answer_callback_query(in_time, text="x" * 201)
    assert emulator.callback_answer(late) is None


async def test_edits_follow_the_bot_apis_rules(chat: int, bot: Bot, emulator: TelegramEmulator) -> None:
    async with asyncio.timeout(BOUND):
        sent = await bot.send_message(CHAT, "Are you in?", reply_markup=rsvp_keyboard(7))
        edited = await bot.edit_message_reply_markup(CHAT, sent.message_id, reply_markup=rsvp_keyboard(7, "in"))
        assert isinstance(edited, type(sent)) and edited.reply_markup == rsvp_keyboard(7, "in")
        with pytest.raises(BadRequest, match="Message is not modified"):
            await bot.edit_message_reply_markup(CHAT, sent.message_id, reply_markup=rsvp_keyboard(7, "in"))
        # editMessageText without reply_markup takes the keyboard away, as Telegram does.
        await bot.edit_message_text("You're in. See you at 21:00.", CHAT, sent.message_id)
        with pytest.raises(BadRequest, match="Message to edit not found"):
            await bot.edit_message_text("x", CHAT, 999)
        with pytest.raises(BadRequest, match="Message can't be edited"):
            await bot.edit_message_text("x", CHAT, 1)  # the user's own /start
        with pytest.raises(BadRequest, match="Message text is empty"):
            await bot.edit_message_text(" ", CHAT, sent.message_id)
        await bot.edit_message_reply_markup(CHAT, sent.message_id, reply_markup=rsvp_keyboard(7))
        await bot.edit_message_reply_markup(CHAT, sent.message_id)  # none: the keyboard is removed
    now = emulator.message(CHAT, sent.message_id)
    assert now is not None and now["text"] == "You're in. See you at 21:00." and "reply_markup" not in now
    assert [(e.method, e.reply_markup is None) for e in emulator.edits_of(CHAT, sent.message_id)] == [
        ("editMessageReplyMarkup", False),
        ("editMessageText", True),
        ("editMessageReplyMarkup", False),
        ("editMessageReplyMarkup", True),
    ]
    with pytest.raises(ValueError, match="shows no button"):
        emulator.press_button(CHAT, "rsvp:7:in", message_id=sent.message_id)


async def test_press_button_needs_a_real_button(chat: int, bot: Bot, emulator: TelegramEmulator) -> None:
    async with asyncio.timeout(BOUND):
        old = await bot.send_message(CHAT, "Tuesday?", reply_markup=rsvp_keyboard(6))
        new = await bot.send_message(CHAT, "Wednesday?", reply_markup=rsvp_keyboard(7))
    with pytest.raises(ValueError, match="no message to chat"):
        emulator.press_button(CHAT, "rsvp:8:in")
    with pytest.raises(ValueError, match="sent no message"):
        emulator.press_button(CHAT, "rsvp:7:in", message_id=1)
    assert emulator.press_button(CHAT, "rsvp:6:in")["callback_query"]["message"]["message_id"] == old.message_id
    assert emulator.press_button(CHAT, "rsvp:7:in")["callback_query"]["message"]["message_id"] == new.message_id


async def test_allowed_updates_can_leave_callback_queries_out(chat: int, bot: Bot, emulator: TelegramEmulator) -> None:
    async with asyncio.timeout(BOUND):
        await bot.send_message(CHAT, "Are you in?", reply_markup=rsvp_keyboard(7))
        start = await bot.get_updates(timeout=0)
        emulator.press_button(CHAT, "rsvp:7:in")
        only_messages = await bot.get_updates(offset=start[-1].update_id + 1, timeout=0, allowed_updates=["message"])
        emulator.press_button(CHAT, "rsvp:7:late")
        everything = await bot.get_updates(timeout=0, allowed_updates=[])
    assert only_messages == ()
    assert [u.callback_query.data for u in everything if u.callback_query] == ["rsvp:7:late"]


async def test_form_and_json_bodies_reach_the_same_rules(chat: int, emulator: TelegramEmulator) -> None:
    url = emulator.base_url + TOKEN
    keyboard = {"inline_keyboard": [[{"text": "In", "callback_data": "rsvp:1:in"}]]}
    async with aiohttp.ClientSession() as http, asyncio.timeout(BOUND):
        async with http.post(f"{url}/sendMessage", json={"chat_id": CHAT, "text": "hi", "reply_markup": keyboard}) as r:
            message_id = (await r.json())["result"]["message_id"]
        query = emulator.press_button(CHAT, "rsvp:1:in")["callback_query"]["id"]
        form = {"callback_query_id": query, "show_alert": "true"}
        async with http.post(f"{url}/answerCallbackQuery", data=form) as r:
            assert (r.status, await r.json()) == (200, {"ok": True, "result": True})
        async with http.post(f"{url}/editMessageText", data={"chat_id": str(CHAT), "text": "x"}) as r:
            assert (await r.json())["description"] == "Bad Request: message identifier is not specified"
    assert emulator.callback_answer(query) == {"text": None, "show_alert": True, "url": None, "cache_time": None}
    assert emulator.message(CHAT, message_id) is not None

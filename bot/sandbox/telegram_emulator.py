"""A loopback emulator of the Telegram Bot API, good enough for the real python-telegram-bot client.

It serves `/bot<token>/<method>` on 127.0.0.1 (port chosen by the OS) and answers the way
api.telegram.org does (https://core.telegram.org/bots/api#making-requests):
`{"ok": true, "result": ...}` on success and
`{"ok": false, "error_code": N, "description": "...", "parameters": {...}}` on failure. PTB relies on
the HTTP status (403 → Forbidden, 400 → BadRequest, 401/404 → InvalidToken, other → NetworkError)
and on `parameters.retry_after` (→ RetryAfter), see `telegram/request/_baserequest.py`.

Parameters arrive as PTB sends them (form fields whose non-string values are JSON-encoded) or as a
JSON body, or in the query string, as the Bot API accepts all three.

Fault injection (blocked chats, unknown chats, 429, 5xx, latency) applies to `sendMessage`, the only
method the bot uses to reach people, so that polling and start-up stay unaffected.

Inline keyboards: `sendMessage` keeps a valid `reply_markup` on the message; `press_button` makes the
user press one of its callback buttons (a `callback_query` update through `getUpdates`);
`answerCallbackQuery`, `editMessageText` and `editMessageReplyMarkup` apply the Bot API's rules and
are recorded (`callback_answer`, `edits`, `message`). The rules themselves are in `telegram_keyboards`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot.sandbox.telegram_keyboards import (
    CallbackQueries,
    KeyboardError,
    callback_data,
    inline_keyboard,
)

log = logging.getLogger(__name__)

_MAX_TEXT = 4096  # Bot API: 1-4096 characters after entities parsing
_MAX_POLL_TIMEOUT = 50.0  # a cap, so that a stray huge timeout cannot pin a request handler
_COMMAND = re.compile(r"(?<![\w/@])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{5,32})?(?![\w/])")
_INT_PARAMS = frozenset({"chat_id", "offset", "limit", "timeout", "message_thread_id", "message_id", "cache_time"})
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
# Updates not delivered unless asked for explicitly (Bot API, getUpdates.allowed_updates).
_OPT_IN_TYPES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


class _ApiError(Exception):
    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


def _utf16_len(text: str) -> int:
    # Entity offsets and lengths are counted in UTF-16 code units (Bot API, MessageEntity).
    return len(text.encode("utf-16-le")) // 2


def _command_entities(text: str) -> list[dict[str, Any]]:
    return [
        {"type": "bot_command", "offset": _utf16_len(text[: m.start()]), "length": _utf16_len(m.group())}
        for m in _COMMAND.finditer(text)
    ]


@dataclass(frozen=True, slots=True)
class Edit:
    """One accepted edit of a message the bot sent: the method, and the text and keyboard after it."""

    method: str  # "editMessageText" | "editMessageReplyMarkup"
    chat_id: int
    message_id: int
    text: str
    reply_markup: dict[str, Any] | None


class TelegramEmulator:
    """Emulate the Telegram Bot API for one bot, with a control API for tests and the demo."""

    def __init__(
        self,
        token: str = "123456:sandbox",  # noqa: S107 - the sandbox's well-known fake token
        bot_username: str = "rallypoint_bot",
        *,
        clock: Callable[[], float] = time.monotonic,
        callback_answer_deadline: float = 15.0,
    ) -> None:
        """Create an emulator; a callback query must be answered within `callback_answer_deadline` seconds.

        Telegram publishes no figure for that deadline; bot authors report roughly 10 to 15 seconds.
        """
        self.token = token
        self.bot_username = bot_username
        head = token.split(":", 1)[0]
        self.bot_id = int(head) if head.isdigit() else 123456
        # Fault injection, applied to sendMessage.
        self.blocked_chat_ids: set[int] = set()
        self.unknown_chat_ids: set[int] = set()
        self.latency: float = 0.0
        self.sent_total = 0
        self.method_calls: Counter[str] = Counter()
        # Every parse_mode the bot asked for (sendMessage, editMessageText): its texts are meant to be plain.
        self.parse_modes: list[str] = []
        self.commands: list[dict[str, Any]] = []
        self._rate_limited = 0
        self._retry_after = 0
        self._server_errors = 0
        self._sent: dict[int, list[dict[str, Any]]] = {}
        self._sent_by_id: dict[tuple[int, int], dict[str, Any]] = {}  # (chat, message id) → current state
        self.edits: list[Edit] = []
        self._callbacks = CallbackQueries(clock, callback_answer_deadline)
        self._chats: dict[int, dict[str, Any]] = {}
        self._message_ids: Counter[int] = Counter()
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 1
        self._allowed_updates: frozenset[str] | None = None
        self._new_update = asyncio.Event()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._methods: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {
            "getme": self._get_me,
            "sendmessage": self._send_message,
            "getupdates": self._get_updates,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "answercallbackquery": self._answer_callback_query,
            "editmessagetext": self._edit_message_text,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "close": self._true,
            "logout": self._true,
        }

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a free port."""
        if self._runner is not None:
            raise RuntimeError("the Telegram emulator is already running")
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        # handler_cancellation: a long poll abandoned by the client must not linger until its timeout.
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(runner.addresses[0][1])
        self._runner = runner
        self._stopping.clear()
        self._new_update = asyncio.Event()
        log.info("Telegram emulator listening on 127.0.0.1:%d", self._port)

    async def stop(self) -> None:
        """Answer pending long polls at once, then close the server."""
        self._stopping.set()
        self._new_update.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> TelegramEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """The URL to give PTB as `base_url` (PTB appends the token)."""
        if self._port is None:
            raise RuntimeError("the Telegram emulator is not running")
        return f"http://127.0.0.1:{self._port}/bot"

    # -- control API -------------------------------------------------------------------------

    def queue_message(
        self, chat_id: int, text: str, *, username: str | None = None, first_name: str = "Player"
    ) -> dict[str, Any]:
        """Queue a private message from user `chat_id` to the bot (e.g. "/start <token>").

        Return the update as `getUpdates` will deliver it; bot commands get `bot_command` entities.
        """
        chat: dict[str, Any] = {"id": chat_id, "type": "private", "first_name": first_name}
        if username is not None:
            chat["username"] = username
        self._chats[chat_id] = chat
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat_id),
            "from": self._user_of(chat_id),
            "chat": chat,
            "date": int(time.time()),
            "text": text,
        }
        entities = _command_entities(text)
        if entities:
            message["entities"] = entities
        return self._queue_update("message", message)

    def press_button(self, chat_id: int, data: str, *, message_id: int | None = None) -> dict[str, Any]:
        """Make user `chat_id` press the inline button with callback_data `data` on a message the bot sent.

        Without `message_id`, the newest message to that chat showing such a button. The bot receives a
        `callback_query` update (id, from, message as it is now, chat_instance, data) through getUpdates,
        unless its `allowed_updates` leave callback queries out. Return the update.
        """
        if message_id is None:
            showing = [m for m in self._sent.get(chat_id, ()) if data in callback_data(m)]
            if not showing:
                raise ValueError(f"no message to chat {chat_id} shows a button with callback_data {data!r}")
            message_id = int(showing[-1]["message_id"])
        message = self._sent_by_id.get((chat_id, message_id))
        if message is None:
            raise ValueError(f"the bot sent no message {message_id} to chat {chat_id}")
        if data not in callback_data(message):
            raise ValueError(f"message {message_id} shows no button {data!r}; it shows {callback_data(message)}")
        query = self._callbacks.create(chat_id, message_id, data)
        callback = {
            "id": query.id,
            "from": self._user_of(chat_id),
            "message": copy.deepcopy(message),
            "chat_instance": str((chat_id * 2_654_435_761 + self.bot_id) % 10**19 - 5 * 10**18),
            "data": data,
        }
        return self._queue_update("callback_query", callback)

    def callback_answer(self, query_id: str) -> dict[str, Any] | None:
        """Return the bot's answer to a callback query ({text, show_alert, url, cache_time}), or None yet."""
        query = self._callbacks.queries.get(query_id)
        if query is None:
            raise ValueError(f"no callback query {query_id}")
        return None if query.answer is None else dict(query.answer)

    def messages_to(self, chat_id: int) -> list[dict[str, Any]]:
        """The Message objects the bot sent to `chat_id`, oldest first, as they are now (after edits)."""
        return list(self._sent.get(chat_id, ()))

    def message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """The current state of a message the bot sent (text, reply_markup, edit_date)."""
        return self._sent_by_id.get((chat_id, message_id))

    def edits_of(self, chat_id: int, message_id: int) -> list[Edit]:
        """The accepted edits of one message, oldest first."""
        return [e for e in self.edits if (e.chat_id, e.message_id) == (chat_id, message_id)]

    @property
    def pending_updates(self) -> int:
        return len(self._updates)

    def rate_limit_next(self, n: int, retry_after: int) -> None:
        """Answer the next `n` sendMessage calls with 429 and `parameters.retry_after`."""
        if n < 0 or retry_after < 1:
            raise ValueError("n must be >= 0 and retry_after >= 1 (Telegram never says 0)")
        self._rate_limited, self._retry_after = n, retry_after

    def server_error_next(self, n: int) -> None:
        """Answer the next `n` sendMessage calls with 502 Bad Gateway."""
        if n < 0:
            raise ValueError("n must be >= 0")
        self._server_errors = n

    # -- HTTP --------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return self._error(_ApiError(401, "Unauthorized"))
        method = request.match_info["method"].lower()  # Bot API methods are case-insensitive
        self.method_calls[method] += 1
        handler = self._methods.get(method)
        if handler is None:
            return self._error(_ApiError(404, "Not Found"))
        try:
            params = await self._params(request)
            result = await handler(params)
        except _ApiError as exc:
            return self._error(exc)
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    async def _params(request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError as exc:
                    raise _ApiError(400, "Bad Request: can't parse JSON") from exc
                if not isinstance(body, dict):
                    raise _ApiError(400, "Bad Request: parameters must be a JSON object")
                params.update(body)
            else:
                form = await request.post()
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
        # Form and query values are strings (PTB JSON-encodes everything that is not a string), and
        # the Bot API also takes numbers as strings in JSON bodies.
        for key in list(params):
            value = params[key]
            if not isinstance(value, str):
                continue
            if key in _INT_PARAMS:
                try:
                    # PTB sends a fractional timedelta as seconds with a fraction, e.g. "0.5".
                    params[key] = float(value) if key == "timeout" else int(value)
                except ValueError:
                    if key != "chat_id":  # "@channelname" is a valid chat_id
                        raise _ApiError(400, f"Bad Request: invalid {key} specified") from None
            elif key in {"allowed_updates", "commands", "entities", "reply_markup"}:
                try:
                    params[key] = json.loads(value)
                except ValueError:
                    raise _ApiError(400, f"Bad Request: can't parse {key} JSON array") from None
        return params

    @staticmethod
    def _error(exc: _ApiError) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": exc.status, "description": exc.description}
        if exc.parameters:
            body["parameters"] = exc.parameters
        return web.json_response(body, status=exc.status)

    # -- methods -----------------------------------------------------------------------------

    def _bot_user(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Rallypoint", "username": self.bot_username}

    async def _get_me(self, params: dict[str, Any]) -> Any:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _send_message(self, params: dict[str, Any]) -> Any:
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        if self._server_errors > 0:
            self._server_errors -= 1
            raise _ApiError(502, "Bad Gateway")
        if self._rate_limited > 0:
            self._rate_limited -= 1
            raise _ApiError(
                429,
                f"Too Many Requests: retry after {self._retry_after}",
                {"retry_after": self._retry_after},
            )
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _ApiError(400, "Bad Request: chat_id is empty")
        if not isinstance(chat_id, int) or isinstance(chat_id, bool) or chat_id in self.unknown_chat_ids:
            raise _ApiError(400, "Bad Request: chat not found")
        if chat_id in self.blocked_chat_ids:
            raise _ApiError(403, "Forbidden: bot was blocked by the user")
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(text) > _MAX_TEXT:
            raise _ApiError(400, "Bad Request: message is too long")
        self._note_parse_mode(params)
        keyboard = _keyboard(params)
        chat = self._chats.get(chat_id) or {"id": chat_id, "type": "private", "first_name": "Player"}
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat_id),
            "from": self._bot_user(),
            "chat": chat,
            "date": int(time.time()),
            "text": text,
        }
        if keyboard is not None:
            message["reply_markup"] = keyboard
        self._sent.setdefault(chat_id, []).append(message)
        self._sent_by_id[(chat_id, int(message["message_id"]))] = message
        self.sent_total += 1
        return message

    def _note_parse_mode(self, params: dict[str, Any]) -> None:
        mode = params.get("parse_mode")
        if mode:
            self.parse_modes.append(str(mode))

    async def _answer_callback_query(self, params: dict[str, Any]) -> Any:
        try:
            self._callbacks.answer(
                params.get("callback_query_id"),
                params.get("text"),
                _flag(params.get("show_alert")),
                params.get("url"),
                params.get("cache_time"),
            )
        except KeyboardError as exc:
            raise _ApiError(400, str(exc)) from None
        return True

    async def _edit_message_text(self, params: dict[str, Any]) -> Any:
        message = self._message_to_edit(params)
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(text) > _MAX_TEXT:
            raise _ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        self._note_parse_mode(params)
        # An edit without reply_markup removes the inline keyboard, as on Telegram.
        return self._apply_edit("editMessageText", message, text, _keyboard(params))

    async def _edit_message_reply_markup(self, params: dict[str, Any]) -> Any:
        message = self._message_to_edit(params)
        return self._apply_edit("editMessageReplyMarkup", message, message["text"], _keyboard(params))

    def _message_to_edit(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id, message_id = params.get("chat_id"), params.get("message_id")
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            raise _ApiError(400, "Bad Request: message identifier is not specified")
        if not isinstance(chat_id, int) or isinstance(chat_id, bool):
            raise _ApiError(400, "Bad Request: chat not found")
        message = self._sent_by_id.get((chat_id, message_id))
        if message is None:
            # A message id the user wrote (the id sequence is shared) cannot be edited by the bot.
            if 0 < message_id <= self._message_ids[chat_id]:
                raise _ApiError(400, "Bad Request: message can't be edited")
            raise _ApiError(400, "Bad Request: message to edit not found")
        return message

    def _apply_edit(
        self, method: str, message: dict[str, Any], text: str, keyboard: dict[str, Any] | None
    ) -> dict[str, Any]:
        if text == message["text"] and keyboard == message.get("reply_markup"):
            raise _ApiError(400, _NOT_MODIFIED)
        message["text"] = text
        if keyboard is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = keyboard
        message["edit_date"] = int(time.time())
        chat_id, message_id = int(message["chat"]["id"]), int(message["message_id"])
        self.edits.append(Edit(method, chat_id, message_id, text, copy.deepcopy(keyboard)))
        return message

    async def _get_updates(self, params: dict[str, Any]) -> Any:
        offset = params.get("offset")
        limit = params.get("limit") or 100
        timeout = params.get("timeout") or 0
        if not isinstance(limit, int) or not 1 <= limit <= 100:
            limit = 100
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 <= timeout < math.inf:
            raise _ApiError(400, "Bad Request: invalid timeout specified")
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            # The setting persists across calls; an empty list means "the default set".
            self._allowed_updates = frozenset(str(a) for a in allowed) if allowed else None
        if isinstance(offset, int):
            if offset < 0:
                self._updates = self._updates[offset:]  # keep the last -offset, forget the rest
            else:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
        deadline = asyncio.get_running_loop().time() + min(float(timeout), _MAX_POLL_TIMEOUT)
        while True:
            self._updates = [u for u in self._updates if self._wanted(u)]
            if self._updates or self._stopping.is_set():
                return self._updates[:limit]
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return []
            event = self._new_update
            try:
                async with asyncio.timeout(remaining):
                    await event.wait()
            except TimeoutError:
                return []

    def _wanted(self, update: dict[str, Any]) -> bool:
        kind = next((k for k in update if k != "update_id"), "")
        if self._allowed_updates is None:
            return kind not in _OPT_IN_TYPES
        return kind in self._allowed_updates

    async def _delete_webhook(self, params: dict[str, Any]) -> Any:
        if str(params.get("drop_pending_updates", "")).lower() in {"true", "1"}:
            self._updates.clear()
        return True

    async def _get_webhook_info(self, params: dict[str, Any]) -> Any:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": len(self._updates)}

    async def _set_my_commands(self, params: dict[str, Any]) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _ApiError(400, "Bad Request: can't parse BotCommand array")
        self.commands = [c for c in commands if isinstance(c, dict)]
        return True

    async def _get_my_commands(self, params: dict[str, Any]) -> Any:
        return list(self.commands)

    async def _true(self, params: dict[str, Any]) -> Any:
        return True

    # -- helpers -----------------------------------------------------------------------------

    def _user_of(self, chat_id: int) -> dict[str, Any]:
        # In a private chat the chat id is the user's id; the chat remembers their names.
        chat = self._chats.get(chat_id, {})
        user: dict[str, Any] = {"id": chat_id, "is_bot": False, "first_name": chat.get("first_name", "Player")}
        if "username" in chat:
            user["username"] = chat["username"]
        user["language_code"] = "en"
        return user

    def _queue_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": self._next_update_id, kind: payload}
        self._next_update_id += 1
        self._updates.append(update)
        self._wake_pollers()
        return update

    def _next_message_id(self, chat_id: int) -> int:
        # In private chats both sides share one message id sequence.
        self._message_ids[chat_id] += 1
        return self._message_ids[chat_id]

    def _wake_pollers(self) -> None:
        event, self._new_update = self._new_update, asyncio.Event()
        event.set()


def _keyboard(params: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return inline_keyboard(params.get("reply_markup"))
    except KeyboardError as exc:
        raise _ApiError(400, str(exc)) from None


def _flag(value: Any) -> bool:
    """Read a Bot API boolean (PTB sends JSON "true"/"false" in form fields)."""
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))


__all__ = ["Edit", "TelegramEmulator"]

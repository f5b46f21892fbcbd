"""Inline keyboards and callback queries in the Telegram emulator: the Bot API's rules, without HTTP.

- `inline_keyboard(reply_markup)` checks a `reply_markup` as the Bot API does and returns what a
  Message carries back (`{"inline_keyboard": [[button, ...], ...]}`), or None for reply keyboards,
  their removal, force-reply, or an empty keyboard (none of which a Message shows).
- `CallbackQueries` hands out the callback queries a user's button press creates and applies
  `answerCallbackQuery`'s rule: each query is answered once, within its deadline; otherwise
  "query is too old and response timeout expired or query ID is invalid".

https://core.telegram.org/bots/api#inlinekeyboardmarkup, #callbackquery, #answercallbackquery
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

MAX_CALLBACK_DATA_BYTES = 64  # callback_data: 1-64 bytes
MAX_ANSWER_TEXT = 200  # answerCallbackQuery text: 0-200 characters
# Exactly one of these makes an inline keyboard button do something.
_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"


class KeyboardError(ValueError):
    """A reply_markup the Bot API refuses, with its 400 description."""


def inline_keyboard(reply_markup: Any) -> dict[str, Any] | None:
    """Validate a reply_markup; return the inline keyboard a Message shows, if any."""
    if reply_markup is None:
        return None
    if not isinstance(reply_markup, dict):
        raise KeyboardError("Bad Request: can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in reply_markup:
        if any(k in reply_markup for k in ("keyboard", "remove_keyboard", "force_reply")):
            return None  # a reply keyboard lives in the user's client, not on the message
        raise KeyboardError("Bad Request: can't parse reply keyboard markup JSON object")
    rows = reply_markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise KeyboardError(
            'Bad Request: field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
        )
    for row in rows:
        for button in row:
            _check_button(button)
    kept = [[dict(b) for b in row] for row in rows if row]
    return {"inline_keyboard": kept} if kept else None


def _check_button(button: Any) -> None:
    if not isinstance(button, dict):
        raise KeyboardError("Bad Request: can't parse inline keyboard button: InlineKeyboardButton must be an Object")
    if not isinstance(button.get("text"), str) or not button["text"]:
        raise KeyboardError('Bad Request: can\'t parse inline keyboard button: Field "text" must be of type String')
    actions = [a for a in _BUTTON_ACTIONS if a in button]
    if not actions:
        raise KeyboardError(
            "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        )
    if len(actions) > 1:
        raise KeyboardError("Bad Request: can't parse inline keyboard button: exactly one action field is allowed")
    data = button.get("callback_data")
    if data is not None and (
        not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA_BYTES
    ):
        raise KeyboardError("Bad Request: BUTTON_DATA_INVALID")


def buttons(message: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield the inline buttons a message shows now, row by row."""
    for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
        yield from row


def callback_data(message: dict[str, Any]) -> list[str]:
    """Return the callback_data of a message's buttons, in reading order."""
    return [b["callback_data"] for b in buttons(message) if "callback_data" in b]


@dataclass
class CallbackQuery:
    """One press of a callback button, and the bot's answer to it (None until answered)."""

    id: str
    chat_id: int
    message_id: int
    data: str
    created_at: float
    answer: dict[str, Any] | None = None


@dataclass
class CallbackQueries:
    """Callback queries by id, with the answer rule; `deadline` is how long a query waits for its answer."""

    clock: Callable[[], float]
    deadline: float
    queries: dict[str, CallbackQuery] = field(default_factory=dict)
    _next: int = 4_380_000_000_000_000_000  # Telegram's ids are long decimal strings

    def create(self, chat_id: int, message_id: int, data: str) -> CallbackQuery:
        """Record a new press and return its query."""
        self._next += 7919
        query = CallbackQuery(str(self._next), chat_id, message_id, data, self.clock())
        self.queries[query.id] = query
        return query

    def answer(self, query_id: Any, text: Any, show_alert: bool, url: Any, cache_time: Any) -> None:
        """Apply answerCallbackQuery; raise KeyboardError with Telegram's description when refused."""
        query = self.queries.get(str(query_id)) if query_id is not None else None
        if query is None or query.answer is not None or self.clock() - query.created_at > self.deadline:
            raise KeyboardError(QUERY_TOO_OLD)
        if text is not None and (not isinstance(text, str) or len(text) > MAX_ANSWER_TEXT):
            raise KeyboardError("Bad Request: MESSAGE_TOO_LONG")
        query.answer = {"text": text, "show_alert": show_alert, "url": url, "cache_time": cache_time}

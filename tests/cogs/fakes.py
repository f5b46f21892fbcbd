"""Strict fakes for calling cog callbacks directly: discord.py's own classes as specs, so a typo fails.

The interaction, its response, the member and its roles are `spec_set` fakes of the real discord.py
classes whose coroutine methods check their arguments against the real signatures: an attribute or
keyword argument that discord.py does not have raises at once. The response behaves like Discord's:
it answers once (a second answer raises `InteractionResponded`) and refuses content and embeds over
Discord's size limits, as Discord's HTTP 400 would. Everything else is real: the engine runs over a
real SQLite file (tests/support).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from unittest.mock import NonCallableMagicMock, call
from weakref import WeakKeyDictionary

import discord

from bot.app import promoter_policy
from bot.client import RallypointBot
from bot.config import Settings, load_settings
from services.engine import Engine
from services.models import Channel
from tests.support import PROMOTER_ID, Harness, local, make_harness

GUILD_ID = 4242
OTHER_GUILD_ID = 9999
PROMOTER_ROLE_ID = 5150
PLAIN_ROLE_ID = 6160
DAY = date(2026, 11, 24)  # a Tuesday in winter: Europe/Ljubljana is on CET

# Discord's limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits).
CONTENT_LIMIT = 2000
EMBED_LIMITS = {
    "title": 256,
    "description": 4096,
    "fields": 25,
    "field.name": 256,
    "field.value": 1024,
    "footer.text": 2048,
    "author.name": 256,
    "total": 6000,
}


def settings(**promotion: Any) -> Settings:
    """Real settings, as `config.toml` would give them."""
    return load_settings(
        None,
        discord={
            "guild_id": GUILD_ID,
            "promoter_ids": [PROMOTER_ID],
            "promoter_role_ids": [PROMOTER_ROLE_ID],
        },
        promotion={
            "timezone": "Europe/Ljubljana",
            "reminder_time": "20:45",
            "start_time": "21:00",
            **promotion,
        },
    )


_VIEWS: WeakKeyDictionary[Any, list[tuple[discord.ui.View, int | None]]] = WeakKeyDictionary()


def bot_stub(config: Settings) -> Any:
    """A strict fake of RallypointBot (spec_set: the cogs can use only what the real bot has).

    `settings` are real; `add_view` checks what discord.Client.add_view checks and records the view.
    """
    fake = strict(RallypointBot)
    fake.settings = config
    views: list[tuple[discord.ui.View, int | None]] = []

    def add_view(view: discord.ui.View, *, message_id: int | None = None) -> None:
        if not isinstance(view, discord.ui.View):
            raise TypeError(f"expected an instance of View not {view.__class__.__name__}")
        if not view.is_persistent():
            raise ValueError("View is not persistent.")
        if view.is_finished():
            raise ValueError("View is already finished.")
        views.append((view, message_id))

    fake.add_view = add_view
    _VIEWS[fake] = views
    return fake


def views_of(bot: Any) -> list[tuple[discord.ui.View, int | None]]:
    """The views the cogs registered with the bot stub (persistent ones, as at start-up)."""
    return _VIEWS[bot]


@dataclass
class Rig:
    """The bot stub the cogs see, the engine the app would give them, and the harness behind it."""

    bot: Any
    h: Harness

    @property
    def engine(self) -> Engine:
        return self.h.engine

    async def close(self) -> None:
        await self.h.engine.db.close()


async def make_rig(
    path: Path,
    *,
    hour: int = 18,
    minute: int = 0,
    day: date = DAY,
    channels: frozenset[Channel] = frozenset(Channel),
    **promotion: Any,
) -> Rig:
    """A bot stub over a real engine; its promoter policy comes from the settings, as in bot.app."""
    config = settings(**promotion)
    harness = await make_harness(
        path, local(day, hour, minute), channels=channels, policy=promoter_policy(config)
    )
    return Rig(bot_stub(config), harness)


@functools.cache
def _async_methods(cls: type) -> dict[str, inspect.Signature]:
    """The public coroutine methods of a discord.py class, with their real signatures."""
    return {
        name: inspect.signature(fn)
        for name, fn in inspect.getmembers(cls, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }


class StrictAsync:
    """A discord.py coroutine method's stand-in: checks the arguments against the real signature
    (TypeError, as the real method would raise), records the await, then runs `effect`."""

    def __init__(self, signature: inspect.Signature, effect: Callable[..., Any] | None) -> None:
        self.signature = signature
        self.effect = effect
        self.await_args_list: list[Any] = []

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.signature.bind(None, *args, **kwargs)
        self.await_args_list.append(call(*args, **kwargs))
        return self.effect(*args, **kwargs) if self.effect is not None else None

    def assert_awaited_once_with(self, *args: Any, **kwargs: Any) -> None:
        assert self.await_args_list == [call(*args, **kwargs)], self.await_args_list

    def assert_not_awaited(self) -> None:
        assert self.await_args_list == [], self.await_args_list


def strict(cls: type, effects: dict[str, Callable[..., Any]] | None = None) -> Any:
    """A spec_set fake of `cls` whose coroutine methods check their arguments against the real ones.

    (`create_autospec` does the same but costs 5-15 ms a fake; this keeps the suite fast.)
    `effects` give a coroutine method its behaviour; by default it returns None.
    """
    fake = NonCallableMagicMock(spec_set=cls)
    for name, signature in _async_methods(cls).items():
        setattr(fake, name, StrictAsync(signature, (effects or {}).get(name)))
    return fake


def role(role_id: int) -> Any:
    fake = strict(discord.Role)
    fake.id = role_id
    return fake


def member(user_id: int = PROMOTER_ID, name: str = "Promoter", roles: tuple[int, ...] = ()) -> Any:
    """A guild member as a slash interaction carries it (display_name: nickname, else global name)."""
    fake = strict(discord.Member)
    fake.id = user_id
    fake.display_name = name
    fake.roles = [role(r) for r in roles]
    fake.mention = f"<@{user_id}>"
    return fake


def user(user_id: int, name: str = "Stranger") -> Any:
    """A user who is not a member (a DM, or a guild the bot does not know)."""
    fake = strict(discord.User)
    fake.id = user_id
    fake.display_name = name
    fake.mention = f"<@{user_id}>"
    return fake


def check_discord_limits(content: str | None, embeds: list[discord.Embed]) -> list[str]:
    """What Discord would refuse with HTTP 400 (an empty list when the message is acceptable)."""
    problems = []
    if content is not None and len(content) > CONTENT_LIMIT:
        problems.append(f"content is {len(content)} characters (limit {CONTENT_LIMIT})")
    for embed in embeds:
        total = 0
        for key, text in (
            ("title", embed.title),
            ("description", embed.description),
            ("footer.text", embed.footer.text),
            ("author.name", embed.author.name),
        ):
            n = len(text or "")
            total += n
            if n > EMBED_LIMITS[key]:
                problems.append(f"{key} is {n} characters (limit {EMBED_LIMITS[key]})")
        if len(embed.fields) > EMBED_LIMITS["fields"]:
            problems.append(f"{len(embed.fields)} fields (limit {EMBED_LIMITS['fields']})")
        for f in embed.fields:
            name, value = str(f.name or ""), str(f.value or "")
            total += len(name) + len(value)
            if not name.strip() or not value.strip():
                problems.append(f"field {name!r} has an empty name or value")
            if len(name) > EMBED_LIMITS["field.name"]:
                problems.append(f"field name {name[:20]!r}… is {len(name)} characters")
            if len(value) > EMBED_LIMITS["field.value"]:
                problems.append(
                    f"field {name!r} value is {len(value)} characters (limit {EMBED_LIMITS['field.value']})"
                )
        if total > EMBED_LIMITS["total"]:
            problems.append(f"embed is {total} characters in all (limit {EMBED_LIMITS['total']})")
    return problems


MISSING: Any = discord.utils.MISSING


def given(value: Any) -> bool:
    """Whether an argument was passed with a value (not left out, not None)."""
    return value is not None and value is not MISSING


@dataclass(frozen=True)
class Reply:
    """One answer to an interaction, normalised from the call's arguments.

    For `edit_message`, MISSING means "left as it was" and None means "removed", as in discord.py.
    """

    method: str
    content: str | None
    embed: discord.Embed | None
    view: discord.ui.View | None
    ephemeral: bool

    def texts(self) -> Iterator[str]:
        """Every piece of text the user reads (content, title, description, fields, footer)."""
        if given(self.content):
            yield self.content
        if given(self.embed):
            e = self.embed
            yield from (t for t in (e.title, e.description, e.footer.text) if t)
            for f in e.fields:
                yield str(f.name)
                yield str(f.value)

    def field(self, name: str) -> str:
        assert given(self.embed), f"no embed in {self}"
        values = [str(f.value) for f in self.embed.fields if f.name == name]
        assert len(values) == 1, f"expected one field {name!r} in {[f.name for f in self.embed.fields]}"
        return values[0]


_REPLIES: WeakKeyDictionary[Any, list[Reply]] = WeakKeyDictionary()


def interaction(who: Any = None, *, guild_id: int | None = GUILD_ID, command: Any = None) -> Any:
    """A slash-command or button interaction whose response answers once, within Discord's limits.

    Every answer (whatever the method) is recorded as a Reply; a second answer raises
    InteractionResponded, as discord.py does.
    """
    fake = strict(discord.Interaction)
    fake.user = who if who is not None else member()
    fake.guild_id = guild_id
    fake.command = command
    replies: list[Reply] = []

    def record(method: str) -> Callable[..., None]:
        signature = _async_methods(discord.InteractionResponse)[method]

        def answer(*args: Any, **kwargs: Any) -> None:
            if replies:
                raise discord.InteractionResponded(fake)
            bound = signature.bind(None, *args, **kwargs)
            bound.apply_defaults()
            a = bound.arguments
            content, embed, view = a.get("content", MISSING), a.get("embed", MISSING), a.get("view", MISSING)
            assert not given(content) or isinstance(content, str), f"content {content!r} is not a str"
            assert not given(embed) or isinstance(embed, discord.Embed), f"{embed!r} is not an Embed"
            assert not given(view) or isinstance(view, discord.ui.View), f"{view!r} is not a View"
            problems = check_discord_limits(
                content if given(content) else None, [embed] if given(embed) else []
            )
            assert not problems, f"Discord would refuse this {method}: {problems}"
            if method != "edit_message":  # MISSING only means "keep" when editing
                content, embed, view = (None if x is MISSING else x for x in (content, embed, view))
            replies.append(Reply(method, content, embed, view, bool(a.get("ephemeral"))))

        return answer

    response = strict(
        discord.InteractionResponse,
        {name: record(name) for name in _async_methods(discord.InteractionResponse)},
    )
    response.is_done.side_effect = lambda: bool(replies)
    fake.response = response
    fake.followup = strict(discord.Webhook)
    _REPLIES[fake] = replies  # spec_set forbids adding an attribute to the fake itself
    return fake


def replies_of(fake: Any) -> list[Reply]:
    return _REPLIES[fake]


def only_reply(fake: Any) -> Reply:
    """The single answer to `fake`; fails if there was none, several, or a follow-up instead."""
    replies = replies_of(fake)
    assert len(replies) == 1, f"expected one answer, got {replies}"
    fake.followup.send.assert_not_awaited()
    return replies[0]


def no_reply(fake: Any) -> None:
    assert replies_of(fake) == []
    fake.followup.send.assert_not_awaited()


async def press(view: discord.ui.View, item: discord.ui.Item[Any], fake: Any) -> None:
    """What discord.py does on a click: interaction_check, then the callback; errors go to on_error."""
    try:
        if await view.interaction_check(fake):
            await item.callback(fake)
    except Exception as exc:
        await view.on_error(fake, exc, item)

"""Interactions in the Discord emulator: what a user's click or slash command sends, what the bot answers.

`build_*` functions turn "user X runs /promote schedule with these options" into the INTERACTION_CREATE
payload Discord would dispatch (typed options, resolved users/roles/channels, member permissions).
`InteractionRecord` collects the bot's answers (callback, follow-ups, edits) so tests can wait on them;
`apply_callback` / `execute_followup` / `edit_response` / `delete_response` apply Discord's rules
(one callback, within the deadline; follow-ups only after it; a follow-up after a "thinking" defer
replaces the loading message).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.sandbox.discord_state import (
    DM_CHANNEL,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    ApiError,
    ChannelRecord,
    DiscordWorld,
    GuildRecord,
    Notifier,
    iter_components,
)

# Interaction types.
APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3
AUTOCOMPLETE = 4
MODAL_SUBMIT = 5

# Callback types each interaction type may answer with.
_ALLOWED_CALLBACKS: dict[int, frozenset[int]] = {
    APPLICATION_COMMAND: frozenset({4, 5, 9}),
    MESSAGE_COMPONENT: frozenset({4, 5, 6, 7, 9}),
    AUTOCOMPLETE: frozenset({8}),
    MODAL_SUBMIT: frozenset({4, 5, 6, 7}),
}

_TOKEN_LIFETIME = 15 * 60.0
_SNOWFLAKE_OPTION_TYPES = frozenset({6, 7, 8, 9})


@dataclass(frozen=True, slots=True)
class InteractionEvent:
    """One answer from the bot: the callback, a follow-up, an edit or a deletion, with its body."""

    kind: str  # "callback" | "followup" | "edit" | "delete"
    data: dict[str, Any]
    callback_type: int | None = None
    message_id: int | None = None


class InteractionRecord:
    """An interaction the emulator dispatched, and everything the bot answered to it, in order."""

    def __init__(
        self,
        world: DiscordWorld,
        notifier: Notifier,
        payload: dict[str, Any],
        *,
        component_message_id: int | None = None,
    ) -> None:
        self._world = world
        self._notifier = notifier
        self.payload = payload
        self.id = int(payload["id"])
        self.token: str = payload["token"]
        self.type: int = payload["type"]
        self.channel_id = int(payload["channel_id"])
        self.created_at = world.clock()
        self.component_message_id = component_message_id
        self.original_message_id: int | None = None
        self.followup_message_ids: list[int] = []
        self.responses: list[InteractionEvent] = []
        self.modal: dict[str, Any] | None = None
        self.choices: list[dict[str, Any]] | None = None

    def __repr__(self) -> str:
        kinds = [e.kind if e.callback_type is None else f"callback:{e.callback_type}" for e in self.responses]
        return f"<InteractionRecord id={self.id} type={self.type} responses={kinds}>"

    @property
    def acknowledged(self) -> bool:
        """Whether the bot has sent the interaction callback."""
        return any(e.kind == "callback" for e in self.responses)

    def add_event(self, event: InteractionEvent) -> None:
        """Append one of the bot's answers and wake waiters (used by the REST handlers)."""
        self.responses.append(event)
        self._notifier.notify()

    # ---- waiting ------------------------------------------------------------------------------

    async def wait_for(
        self,
        predicate: Callable[[InteractionEvent], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - bounded waits are the point of these test helpers
        what: str = "a matching response",
    ) -> InteractionEvent:
        """Return the first answer matching predicate, waiting up to timeout seconds."""

        def find() -> InteractionEvent | None:
            return next((e for e in self.responses if predicate(e)), None)

        return await self._notifier.wait_until(find, timeout, f"{what} to interaction {self.id}")

    async def wait_response(self, timeout: float = 5.0) -> InteractionEvent:  # noqa: ASYNC109
        """Return the interaction callback once the bot has sent it."""
        return await self.wait_for(lambda e: e.kind == "callback", timeout, "the callback")

    async def wait_message(self, timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
        """Return the message the user finally sees (waits past a "thinking…" defer)."""

        def visible() -> dict[str, Any] | None:
            message = self.last_message()
            if message is None or int(message.get("flags", 0)) & FLAG_LOADING:
                return None
            return message

        return await self._notifier.wait_until(visible, timeout, f"a visible answer to interaction {self.id}")

    # ---- reading the answers ------------------------------------------------------------------

    def messages(self) -> list[dict[str, Any]]:
        """Return the current state of every message this interaction created (original first)."""
        ids = ([self.original_message_id] if self.original_message_id else []) + self.followup_message_ids
        return [self._world.messages[mid] for mid in ids if mid in self._world.messages]

    def last_message(self) -> dict[str, Any] | None:
        """Return the current state of the message touched by the bot's latest answer."""
        for event in reversed(self.responses):
            if event.message_id is not None and event.kind != "delete":
                return self._world.messages.get(event.message_id)
        return None

    def last_content(self) -> str | None:
        """Return the text of the latest answer's message."""
        message = self.last_message()
        return None if message is None else message.get("content", "")

    def last_embeds(self) -> list[dict[str, Any]]:
        """Return the embeds of the latest answer's message."""
        message = self.last_message()
        return [] if message is None else list(message.get("embeds") or [])

    def components(self) -> list[str]:
        """Return the custom ids of the interactive components on the latest answer's message."""
        message = self.last_message()
        if message is None:
            return []
        return [c["custom_id"] for c in iter_components(message.get("components") or []) if "custom_id" in c]

    def ephemeral_texts(self) -> list[str]:
        """Return the texts of the messages only the user saw (an ephemeral reply or follow-up), oldest first."""
        return [m.get("content", "") for m in self.messages() if int(m.get("flags", 0)) & FLAG_EPHEMERAL]

    def is_ephemeral(self) -> bool:
        """Whether the latest answer is visible only to the user who interacted."""
        message = self.last_message()
        return message is not None and bool(int(message.get("flags", 0)) & FLAG_EPHEMERAL)

    # ---- rules used by the REST handlers ------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """Return the interaction_metadata attached to messages this interaction created."""
        user = self.payload.get("member", {}).get("user") or self.payload.get("user")
        owners = self.payload.get("authorizing_integration_owners", {})
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "user": user,
            "authorizing_integration_owners": owners,
        }
        if self.type == APPLICATION_COMMAND:
            data["name"] = self.payload["data"]["name"]
        return data

    def check_token_alive(self) -> None:
        """Raise Discord's error once the 15-minute interaction token has expired."""
        if self._world.clock() - self.created_at > _TOKEN_LIFETIME:
            raise ApiError(401, 50027, "Invalid Webhook Token")

    def resolve_message_ref(self, ref: str) -> int:
        """Map "@original" or a message id to a message this interaction owns."""
        if ref == "@original":
            message_id = self.original_message_id
        else:
            try:
                message_id = int(ref)
            except ValueError:
                raise ApiError(404, 10008, "Unknown Message") from None
            if message_id not in self.followup_message_ids and message_id != self.original_message_id:
                message_id = None
        if message_id is None or message_id not in self._world.messages:
            raise ApiError(404, 10008, "Unknown Message")
        return message_id


class InteractionRegistry:
    """Every interaction dispatched so far, by id and by token."""

    def __init__(self) -> None:
        self._by_id: dict[int, InteractionRecord] = {}
        self._by_token: dict[str, InteractionRecord] = {}

    def add(self, record: InteractionRecord) -> None:
        """Remember a dispatched interaction."""
        self._by_id[record.id] = record
        self._by_token[record.token] = record

    def by_id_and_token(self, interaction_id: str, token: str) -> InteractionRecord:
        """Return the interaction a callback URL names, or Discord's 10062 error."""
        try:
            record = self._by_id[int(interaction_id)]
        except (KeyError, ValueError):
            raise ApiError(404, 10062, "Unknown interaction") from None
        if not secrets.compare_digest(record.token, token):
            raise ApiError(401, 50027, "Invalid Webhook Token")
        return record

    def by_token(self, token: str) -> InteractionRecord:
        """Return the interaction a follow-up webhook token names, or Discord's 10015 error."""
        try:
            return self._by_token[token]
        except KeyError:
            raise ApiError(404, 10015, "Unknown Webhook") from None

    def __len__(self) -> int:
        return len(self._by_id)


# ---- applying the bot's answers -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying an answer produced: the JSON body to return and the messages it created/edited."""

    body: dict[str, Any] | None
    created: dict[str, Any] | None = None
    edited: dict[str, Any] | None = None


def apply_callback(
    world: DiscordWorld, record: InteractionRecord, body: dict[str, Any], deadline: float
) -> Applied:
    """Apply POST /interactions/{id}/{token}/callback."""
    if record.acknowledged:
        raise ApiError(400, 40060, "Interaction has already been acknowledged.")
    if world.clock() - record.created_at > deadline:
        raise ApiError(404, 10062, "Unknown interaction")
    callback_type = body.get("type")
    if callback_type not in _ALLOWED_CALLBACKS[record.type]:
        raise ApiError(
            400,
            50035,
            "Invalid Form Body",
            {
                "type": {
                    "_errors": [
                        {
                            "code": "INTERACTION_RESPONSE_TYPE_INVALID",
                            "message": "Invalid interaction response type",
                        }
                    ]
                }
            },
        )
    data = body.get("data") or {}
    channel = world.channels[record.channel_id]
    created = edited = None
    if callback_type == 4:
        created = world.create_message(
            channel, data, message_type=_reply_type(record), interaction=record.metadata()
        )
        record.original_message_id = int(created["id"])
    elif callback_type == 5:
        loading = {"content": "", "flags": int(data.get("flags") or 0) & FLAG_EPHEMERAL}
        created = world.create_message(
            channel,
            loading,
            message_type=_reply_type(record),
            extra_flags=FLAG_LOADING,
            interaction=record.metadata(),
        )
        record.original_message_id = int(created["id"])
    elif callback_type in (6, 7):
        if record.component_message_id is None:
            raise ApiError(400, 40060, "Interaction has no message to update")
        record.original_message_id = record.component_message_id
        if callback_type == 7:
            edited = world.edit_message(record.component_message_id, data)
    elif callback_type == 8:
        record.choices = list(data.get("choices") or [])
    elif callback_type == 9:
        record.modal = data
    message = created or edited
    if message is None and callback_type == 6:
        message = world.messages.get(record.component_message_id or 0)
    message_id = int(message["id"]) if message else None
    record.add_event(InteractionEvent("callback", body, callback_type, message_id))
    answer: dict[str, Any] = {
        "interaction": {
            "id": str(record.id),
            "type": record.type,
            "response_message_id": message["id"] if message else None,
            "response_message_loading": callback_type == 5,
            "response_message_ephemeral": bool(message and int(message["flags"]) & FLAG_EPHEMERAL),
        }
    }
    if callback_type in (4, 5, 7) and message is not None:
        answer["resource"] = {"type": callback_type, "message": message}
    return Applied(answer, created=created, edited=edited)


def execute_followup(world: DiscordWorld, record: InteractionRecord, body: dict[str, Any]) -> Applied:
    """Apply POST /webhooks/{app}/{token}: a follow-up, or the answer that replaces a "thinking" defer."""
    record.check_token_alive()
    if not record.acknowledged:
        raise ApiError(404, 10015, "Unknown Webhook")
    original = world.messages.get(record.original_message_id or 0)
    if original is not None and int(original["flags"]) & FLAG_LOADING:
        edited = world.edit_message(int(original["id"]), {k: v for k, v in body.items() if k != "flags"})
        record.add_event(InteractionEvent("followup", body, None, int(edited["id"])))
        return Applied(edited, edited=edited)
    channel = world.channels[record.channel_id]
    created = world.create_message(
        channel, body, message_type=_reply_type(record), interaction=record.metadata()
    )
    record.followup_message_ids.append(int(created["id"]))
    record.add_event(InteractionEvent("followup", body, None, int(created["id"])))
    return Applied(created, created=created)


def edit_response(world: DiscordWorld, record: InteractionRecord, ref: str, body: dict[str, Any]) -> Applied:
    """Apply PATCH /webhooks/{app}/{token}/messages/{ref}."""
    record.check_token_alive()
    message_id = record.resolve_message_ref(ref)
    edited = world.edit_message(message_id, body)
    record.add_event(InteractionEvent("edit", body, None, message_id))
    return Applied(edited, edited=edited)


def delete_response(world: DiscordWorld, record: InteractionRecord, ref: str) -> dict[str, Any]:
    """Apply DELETE /webhooks/{app}/{token}/messages/{ref}; return the deleted message."""
    record.check_token_alive()
    message_id = record.resolve_message_ref(ref)
    message = world.messages[message_id]
    world.delete_message(message_id)
    record.add_event(InteractionEvent("delete", {}, None, message_id))
    return message


def _reply_type(record: InteractionRecord) -> int:
    # 20 = CHAT_INPUT_COMMAND for slash-command answers; component answers are plain messages.
    return 20 if record.type == APPLICATION_COMMAND else 0


# ---- building what a user sends -------------------------------------------------------------


def _base_payload(
    world: DiscordWorld,
    interaction_type: int,
    guild_id: int | None,
    user_id: int,
    channel: ChannelRecord,
    locale: str,
) -> dict[str, Any]:
    if user_id not in world.users:
        raise ValueError(f"unknown user {user_id}")
    payload: dict[str, Any] = {
        "id": str(world.snowflakes.next()),
        "application_id": str(world.application_id),
        "type": interaction_type,
        "token": "aW50ZXJhY3Rpb24." + secrets.token_urlsafe(48),
        "version": 1,
        "locale": locale,
        "attachment_size_limit": 10 * 1024 * 1024,
        "entitlements": [],
        "channel_id": str(channel.id),
    }
    if guild_id is None:
        payload.update(
            context=1,
            user=world.users[user_id].payload(),
            authorizing_integration_owners={"0": "0"},  # guild install, used in the bot's DM
            app_permissions=str(_dm_permissions()),
            channel={**channel.payload(world), "permissions": str(_dm_permissions())},
        )
        return payload
    guild = world.guild(guild_id)
    if user_id not in guild.members:
        raise ValueError(f"user {user_id} is not a member of guild {guild_id}")
    member_perms = world.member_permissions(guild, user_id)
    payload.update(
        context=0,
        guild_id=str(guild_id),
        guild_locale="en-US",
        guild={"id": str(guild_id), "locale": "en-US", "features": []},
        member=world.member_payload(guild, user_id, with_permissions=True),
        authorizing_integration_owners={"0": str(guild_id)},
        app_permissions=str(world.member_permissions(guild, world.bot_user.id)),
        channel={**channel.payload(world), "permissions": str(member_perms)},
    )
    return payload


def _dm_permissions() -> int:
    return (1 << 6) | (1 << 10) | (1 << 11) | (1 << 14) | (1 << 15) | (1 << 16) | (1 << 18) | (1 << 31)


def _interaction_channel(
    world: DiscordWorld, guild_id: int | None, user_id: int, channel_id: int | None
) -> ChannelRecord:
    if guild_id is None:
        return world.dm_channel(user_id)
    guild = world.guild(guild_id)
    if channel_id is None:
        text = [cid for cid in guild.channel_ids if world.channels[cid].type == 0]
        if not text:
            raise ValueError(f"guild {guild_id} has no text channel to run the command in")
        channel_id = text[0]
    channel = world.channels.get(channel_id)
    if channel is None or channel.guild_id != guild_id:
        raise ValueError(f"channel {channel_id} is not in guild {guild_id}")
    return channel


def _walk_command(
    command: dict[str, Any], path: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Follow subcommand groups/subcommands; return (the chain of sub-options, the leaf's options)."""
    chain: list[dict[str, Any]] = []
    options = command.get("options") or []
    for name in path:
        sub = next((o for o in options if o.get("name") == name and o.get("type") in (1, 2)), None)
        if sub is None:
            raise LookupError(f"/{command['name']} has no subcommand or group {name!r}")
        chain.append(sub)
        options = sub.get("options") or []
    if any(o.get("type") in (1, 2) for o in options):
        names = " ".join([command["name"], *path])
        raise ValueError(f"/{names} is a group: name one of its subcommands")
    return chain, options


def build_command_interaction(
    world: DiscordWorld,
    guild_id: int | None,
    user_id: int,
    command_path: str,
    options: Mapping[str, Any],
    *,
    channel_id: int | None,
    locale: str,
    validate: bool,
    focused: str | None = None,
) -> dict[str, Any]:
    """Build a type-2 (or, with `focused`, type-4 autocomplete) interaction for a synced command."""
    names = command_path.strip().lstrip("/").split()
    if not names:
        raise ValueError("empty command path")
    command = world.find_command(guild_id, names[0])
    if command is None:
        scope = f"guild {guild_id}" if guild_id is not None else "global scope"
        raise LookupError(f"command /{names[0]} has not been synced to {scope}")
    chain, schema = _walk_command(command, names[1:])
    guild = world.guild(guild_id) if guild_id is not None else None
    by_name = {o["name"]: o for o in schema}
    unknown = sorted(set(options) - set(by_name))
    if unknown:
        raise ValueError(f"/{command_path} has no option(s) {unknown}; it has {sorted(by_name)}")
    if focused is not None and focused not in options:
        raise ValueError(f"focused option {focused!r} needs a (partial) value in options")
    if validate and focused is None:
        missing = [o["name"] for o in schema if o.get("required") and o["name"] not in options]
        if missing:
            raise ValueError(f"/{command_path} needs the required option(s) {missing}")
    resolved: dict[str, dict[str, Any]] = {}
    typed: list[dict[str, Any]] = []
    perms = world.member_permissions(guild, user_id) if guild is not None else _dm_permissions()
    for option in schema:  # in declaration order, as Discord sends them
        if option["name"] not in options:
            continue
        value = options[option["name"]]
        if option["name"] == focused:
            typed.append(
                {"name": option["name"], "type": option["type"], "value": str(value), "focused": True}
            )
            continue
        typed.append(_typed_option(world, guild, option, value, resolved, perms, validate=validate))
    for sub in reversed(chain):
        typed = [{"name": sub["name"], "type": sub["type"], "options": typed}]
    data: dict[str, Any] = {
        "id": command["id"],
        "name": command["name"],
        "type": command["type"],
        "options": typed,
    }
    if command.get("guild_id"):
        data["guild_id"] = command["guild_id"]
    if resolved:
        data["resolved"] = resolved
    channel = _interaction_channel(world, guild_id, user_id, channel_id)
    kind = AUTOCOMPLETE if focused is not None else APPLICATION_COMMAND
    payload = _base_payload(world, kind, guild_id, user_id, channel, locale)
    payload["data"] = data
    return payload


def _typed_option(
    world: DiscordWorld,
    guild: GuildRecord | None,
    option: dict[str, Any],
    value: Any,
    resolved: dict[str, dict[str, Any]],
    member_permissions: int,
    *,
    validate: bool,
) -> dict[str, Any]:
    name, option_type = option["name"], option["type"]
    if option_type == 3:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise TypeError(f"option {name!r} is a string; got {value!r}")
        value = str(value)
        if validate:
            lo, hi = option.get("min_length", 0), option.get("max_length", 6000)
            if not lo <= len(value) <= hi:
                raise ValueError(f"option {name!r} must be {lo}..{hi} characters long")
    elif option_type == 4:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"option {name!r} is an integer; got {value!r}")
        if not -(2**53) < value < 2**53:
            raise ValueError(f"option {name!r}: Discord integers are between -2^53 and 2^53")
    elif option_type == 5:
        if not isinstance(value, bool):
            raise TypeError(f"option {name!r} is a boolean; got {value!r}")
    elif option_type == 10:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"option {name!r} is a number; got {value!r}")
        value = float(value)
    elif option_type in _SNOWFLAKE_OPTION_TYPES:
        value = _resolve_snowflake(
            world, guild, option, value, resolved, member_permissions, validate=validate
        )
    else:
        raise ValueError(f"option {name!r} has type {option_type}, which the emulator does not build")
    if validate and option_type in (4, 10):
        lo, hi = option.get("min_value"), option.get("max_value")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ValueError(f"option {name!r} must be within [{lo}, {hi}]")
    if validate and option.get("choices") and value not in [c["value"] for c in option["choices"]]:
        raise ValueError(f"option {name!r} must be one of {[c['value'] for c in option['choices']]}")
    return {"name": name, "type": option_type, "value": value}


def _resolve_snowflake(
    world: DiscordWorld,
    guild: GuildRecord | None,
    option: dict[str, Any],
    value: Any,
    resolved: dict[str, dict[str, Any]],
    member_permissions: int,
    *,
    validate: bool,
) -> str:
    name, option_type = option["name"], option["type"]
    try:
        snowflake = int(value)
    except (TypeError, ValueError):
        raise TypeError(f"option {name!r} takes an id; got {value!r}") from None
    key = str(snowflake)
    if option_type in (6, 9) and snowflake in world.users:
        resolved.setdefault("users", {})[key] = world.users[snowflake].payload()
        if guild is not None and snowflake in guild.members:
            resolved.setdefault("members", {})[key] = world.member_payload(
                guild, snowflake, with_user=False, with_permissions=True
            )
        return key
    if option_type in (8, 9) and guild is not None and snowflake in guild.roles:
        resolved.setdefault("roles", {})[key] = guild.roles[snowflake].payload()
        return key
    if option_type == 7 and snowflake in world.channels:
        channel = world.channels[snowflake]
        allowed = option.get("channel_types")
        if validate and allowed and channel.type not in allowed:
            raise ValueError(f"option {name!r} accepts channel types {allowed}, not {channel.type}")
        data = channel.payload(world)
        data["permissions"] = str(member_permissions)
        resolved.setdefault("channels", {})[key] = data
        return key
    raise ValueError(
        f"option {name!r}: no {('user', 'channel', 'role', 'user or role')[option_type - 6]} {value}"
    )


def find_component(message: dict[str, Any], custom_id: str) -> dict[str, Any]:
    """Return the component with custom_id on a message, or raise ValueError."""
    for component in iter_components(message.get("components") or []):
        if component.get("custom_id") == custom_id:
            return component
    ids = [c["custom_id"] for c in iter_components(message.get("components") or []) if "custom_id" in c]
    raise ValueError(f"message {message['id']} has no component {custom_id!r}; it has {ids}")


def build_component_interaction(
    world: DiscordWorld,
    guild_id: int | None,
    user_id: int,
    message: dict[str, Any],
    custom_id: str,
    *,
    values: list[str] | None,
    locale: str,
    validate: bool,
) -> dict[str, Any]:
    """Build a type-3 interaction: a click on a button (or a choice in a select menu) of a stored message."""
    component = find_component(message, custom_id)
    component_type = int(component["type"])
    if validate and component.get("disabled"):
        raise ValueError(f"component {custom_id!r} is disabled")
    if component_type == 2 and values is not None:
        raise ValueError(f"{custom_id!r} is a button; it takes no values")
    if component_type != 2 and values is None:
        raise ValueError(f"{custom_id!r} is a select menu (type {component_type}); pass values")
    if validate and component_type == 3 and values is not None:
        allowed = [o["value"] for o in component.get("options") or []]
        bad = [v for v in values if v not in allowed]
        if bad or not component.get("min_values", 1) <= len(values) <= component.get("max_values", 1):
            raise ValueError(f"select {custom_id!r} accepts {allowed}; got {values}")
    channel = world.channels[int(message["channel_id"])]
    if guild_id is not None and channel.guild_id != guild_id:
        raise ValueError(f"message {message['id']} is not in guild {guild_id}")
    if guild_id is None and channel.type != DM_CHANNEL:
        raise ValueError(f"message {message['id']} is in a guild; pass its guild_id")
    if guild_id is None and channel.recipient_id != user_id:
        raise ValueError(f"message {message['id']} is in another user's DM, not user {user_id}'s")
    payload = _base_payload(world, MESSAGE_COMPONENT, guild_id, user_id, channel, locale)
    data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
    if values is not None:
        data["values"] = list(values)
    payload["data"] = data
    payload["message"] = message
    return payload


def build_modal_submit(
    world: DiscordWorld, record: InteractionRecord, user_id: int, values: Mapping[str, str]
) -> dict[str, Any]:
    """Build a type-5 interaction submitting the modal the bot opened on `record`."""
    if record.modal is None:
        raise ValueError(f"interaction {record.id} did not open a modal")
    modal = record.modal
    guild_id = int(record.payload["guild_id"]) if record.payload.get("guild_id") else None
    channel = world.channels[record.channel_id]
    inputs = [c["custom_id"] for c in iter_components(modal.get("components") or []) if c.get("type") == 4]
    unknown = sorted(set(values) - set(inputs))
    if unknown:
        raise ValueError(f"modal {modal.get('custom_id')!r} has no text input(s) {unknown}; it has {inputs}")

    def answer(component: dict[str, Any]) -> dict[str, Any]:
        kind = component.get("type")
        if kind == 1:
            return {"type": 1, "components": [answer(c) for c in component.get("components") or []]}
        if kind == 18:
            return {"type": 18, "component": answer(component["component"])}
        if kind == 4:
            return {
                "type": 4,
                "custom_id": component["custom_id"],
                "value": values.get(component["custom_id"], ""),
            }
        return {"type": kind}

    payload = _base_payload(
        world, MODAL_SUBMIT, guild_id, user_id, channel, record.payload.get("locale", "en-US")
    )
    payload["data"] = {
        "custom_id": modal.get("custom_id"),
        "components": [answer(c) for c in modal.get("components") or []],
    }
    if record.type == MESSAGE_COMPONENT and "message" in record.payload:
        payload["message"] = world.messages.get(record.component_message_id or 0, record.payload["message"])
    return payload

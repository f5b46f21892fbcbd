"""docs/configuration.md is generated from the settings model; config.example.toml has exactly its keys.

The reference is rendered from `bot.config.Settings.model_fields` (section, key, type, default, the
environment variable) with the description taken from the key's comment in config.example.toml (or,
for keys without one there, from NOTES below). Regenerate it after changing either file:

    .venv/bin/python -m tests.unit.test_config_reference          # rewrites docs/configuration.md
    .venv/bin/python -m tests.unit.test_config_reference --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import AfterValidator, BaseModel, SecretStr
from pydantic.fields import FieldInfo

from bot.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"
REFERENCE = ROOT / "docs" / "configuration.md"
REGENERATE = ".venv/bin/python -m tests.unit.test_config_reference"

# What each section is for (every section of the model needs one).
SECTIONS: dict[str, str] = {
    "discord": "The bot account, the community's guild, who may promote, and the optional website login.",
    "promotion": "When campaigns run and how they are delivered.",
    "storage": "Where the SQLite database lives.",
    "api": "The HTTP API for the website backend (`GET /healthz` needs no authentication).",
    "telegram": "Telegram delivery and linking; off while `token` is empty. See docs/telegram-signal.md.",
    "signal": "Signal delivery through signal-cli-rest-api; off while `api_url` or `number` is empty. "
    "See docs/telegram-signal.md.",
    "security": "Keys. Telegram and Signal stay off until `contact_encryption_key` is set.",
}

# Descriptions for keys that have no comment in config.example.toml, and additions to some that do.
NOTES: dict[str, str] = {
    "discord.token": "Prefer the environment variable to the file.",
    "discord.guild_id": "Developer Mode → right-click the server icon → Copy Server ID.",
    "discord.oauth_client_secret": "OAuth2 client secret of the application (Developer Portal → OAuth2).",
    "discord.oauth_redirect_uri": "Must also be listed under OAuth2 → Redirects in the Developer Portal. "
    "With `https` the login's cookies are marked Secure.",
    "discord.global_rate_per_second": "Every request counts, discord.py's own retries included; answers to "
    "slash commands and buttons do not (Discord does not count them either). Raise it only if Discord raised "
    "your bot's limit. See docs/delivery.md.",
    "discord.dm_open_rate_per_second": "A DM channel is opened once per player and stored; only first DMs "
    "wait for this pace.",
    "discord.invalid_requests_pause_at": "While paused, Telegram and Signal go on; Discord sends wait until "
    "older answers leave the 10-minute window.",
    "promotion.max_lateness_minutes": "See the send-by deadlines in docs/delivery.md.",
    "promotion.standing_decision_minutes": "At quorum it creates the campaign (its reminder keeps the usual "
    "lead), below it posts one note to `discord.followup_channel_id`. 0: decided at the start itself. Each "
    "date's decision is scheduled ahead and keeps its time: a change applies from the date after the one "
    "already scheduled. See docs/design.md.",
    "storage.path": "SQLite database file (WAL mode: `-wal` and `-shm` files appear beside it). A relative "
    "path is relative to the working directory; the directory is created if missing.",
    "api.enabled": "Serve the HTTP API (false: the bot runs without it).",
    "api.host": "Address to listen on; 127.0.0.1 keeps the API local (put a reverse proxy in front).",
    "api.port": "TCP port to listen on.",
    "api.metrics": "Scrape with `authorization: {credentials: <token>}` in Prometheus; see docs/self-hosting.md.",
    "api.trusted_proxies": "Addresses or networks (`10.0.0.0/8`). The client address is what the per-address "
    "login throttle counts and the access log shows; see docs/self-hosting.md.",
    "security.contact_encryption_key": "A value of only spaces and commas is refused (leave it empty instead). "
    "Rotation: docs/telegram-signal.md.",
}

# Labels for the validators that give a plain `str` its meaning.
VALIDATED_STRINGS: dict[str, str] = {
    "_hhmm": "time `HH:MM` (24-hour)",
    "_known_timezone": "IANA time zone name",
    "_e164": "E.164 phone number or empty",
    "_http_url": "http(s) URL or empty",
    "_ws_url": "ws(s) URL or empty",
    "_absolute_http_url": "http(s) URL or empty",
}

SNOWFLAKE_BOUNDS = (0, None, None, 2**64)  # ge, gt, le, lt of bot.config.Snowflake


# -- rendering ------------------------------------------------------------------------------------


def example_comments(text: str) -> dict[str, str]:
    """Map `section.key` to the comment on its line in config.example.toml, with indented follow-ups."""
    comments: dict[str, str] = {}
    section = ""
    last: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section, last = line[1:-1].strip(), None
        elif line.startswith("#"):
            # An indented comment line continues the previous key's comment; others are prose.
            if last is not None and raw[:1].isspace():
                more = line.lstrip("#").strip()
                comments[last] = f"{comments[last]}; {more}" if comments.get(last) else more
            else:
                last = None
        elif "=" in line and section:
            key, _, rest = line.partition("=")
            last = f"{section}.{key.strip()}"
            comment = _comment_of(rest)
            if comment:
                comments[last] = comment
        else:
            last = None
    return comments


def _comment_of(value_part: str) -> str:
    """The text after the first `#` outside a string in a TOML value, or ""."""
    quote: str | None = None
    escaped = False
    for i, char in enumerate(value_part):
        if quote:
            if escaped:
                escaped = False
            elif char == "\\" and quote == '"':
                escaped = True
            elif char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#":
            return value_part[i + 1 :].strip()
    return ""


def _bounds(metadata: list[Any]) -> tuple[Any, Any, Any, Any]:
    found = {name: None for name in ("ge", "gt", "le", "lt")}
    for item in metadata:
        for name in found:
            if getattr(item, name, None) is not None:
                found[name] = getattr(item, name)
    return found["ge"], found["gt"], found["le"], found["lt"]


def _field_validators(model: type[BaseModel], key: str) -> list[str]:
    decorators = model.__pydantic_decorators__.field_validators.values()
    return [d.func.__name__ for d in decorators if key in d.info.fields]


def type_label(model: type[BaseModel], key: str, field: FieldInfo) -> str:
    """A reader's name for the field's type; a TypeError for a type this renderer does not know yet."""
    return _label(field.annotation, list(field.metadata), _field_validators(model, key), f"{key}")


def _label(annotation: Any, metadata: list[Any], validators: list[str], where: str) -> str:
    if typing.get_origin(annotation) is typing.Annotated:
        inner, *extra = typing.get_args(annotation)
        for item in extra:
            metadata = [*metadata, *getattr(item, "metadata", [item])]
        return _label(inner, metadata, validators, where)
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        label = _label(item, [], [], where)
        return "list of Discord ids" if label == "Discord id" else f"list of {label}s"
    if annotation is SecretStr:
        return "secret string"
    if annotation is bool:
        return "boolean"
    if annotation is Path:
        return "path"
    if annotation is int:
        bounds = _bounds(metadata)
        if bounds == SNOWFLAKE_BOUNDS:
            return "Discord id"
        ge, gt, le, lt = bounds
        low = ge if ge is not None else (gt + 1 if gt is not None else None)
        high = le if le is not None else (lt - 1 if lt is not None else None)
        if low is not None and high is not None:
            return f"integer {low}–{high}"
        return "integer" if low is None else f"integer ≥ {low}"
    if annotation is float:
        ge, gt, le, lt = _bounds(metadata)
        low = f"≥ {ge:g}" if ge is not None else (f"> {gt:g}" if gt is not None else "")
        high = f"≤ {le:g}" if le is not None else (f"< {lt:g}" if lt is not None else "")
        return " and ".join(["number " + low if low else "number", *([high] if high else [])])
    if annotation is str:
        names = validators + [getattr(getattr(m, "func", None), "__name__", "") for m in metadata]
        for name in names:
            if name in VALIDATED_STRINGS:
                return VALIDATED_STRINGS[name]
        if any(isinstance(m, AfterValidator) for m in metadata) or validators:
            raise TypeError(f"{where}: add its validator to VALIDATED_STRINGS")
        return "string"
    raise TypeError(f"{where}: no label for {annotation!r}; teach type_label() about it")


def toml_literal(value: Any) -> str:
    """The default as it would be written in config.toml."""
    if isinstance(value, SecretStr):
        return '""' if not value.get_secret_value() else '"(set)"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str | Path):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    raise TypeError(f"no TOML literal for {value!r}")


def reference_rows() -> dict[str, list[dict[str, str]]]:
    """Per section, one row per key: key, type, default, env, description."""
    comments = example_comments(EXAMPLE.read_text(encoding="utf-8"))
    sections: dict[str, list[dict[str, str]]] = {}
    for section, section_field in Settings.model_fields.items():
        model = section_field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"Settings.{section} is not a section model")
        rows = []
        for key, field in model.model_fields.items():
            name = f"{section}.{key}"
            parts = [field.description or comments.get(name, ""), NOTES.get(name, "")]
            rows.append(
                {
                    "key": key,
                    "type": type_label(model, key, field),
                    "default": toml_literal(field.get_default(call_default_factory=True)),
                    "env": f"RALLYPOINT_{section.upper()}__{key.upper()}",
                    "description": " ".join(_sentence(p) for p in parts if p),
                }
            )
        sections[section] = rows
    return sections


def _sentence(text: str) -> str:
    """The comment as written (a command line in it as code), ending with a full stop."""
    text = re.sub(r'(python -c "[^"]*")', r"`\1`", text.strip())
    return text if text.endswith((".", "!", "?")) else text + "."


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    """The whole of docs/configuration.md."""
    out = [
        "# Configuration reference",
        "",
        f"<!-- Generated from bot/config.py and config.example.toml by `{REGENERATE}`. Do not edit. -->",
        "",
        "Rallypoint reads one TOML file at start-up: `--config PATH`, else `$RALLYPOINT_CONFIG`, else",
        "`./config.toml` if it exists (without any, the defaults below apply). `config.example.toml` holds",
        "every key with its default; copy it and fill in what you use.",
        "",
        "- **Environment variables override the file**: `RALLYPOINT_<SECTION>__<KEY>` (two underscores),",
        "  for example `RALLYPOINT_DISCORD__TOKEN`. Lists are JSON:",
        "  `RALLYPOINT_DISCORD__ADMIN_IDS='[1, 2]'` (`1,2` is refused, naming the variable); booleans are",
        "  `true`/`false`. A `RALLYPOINT_*` variable that matches no section (a typo such as",
        "  `RALLYPOINT_DISCROD__TOKEN`) is ignored with a warning.",
        "- **Unknown keys are errors**, as are values of the wrong type or out of range: the bot does not",
        "  start, prints one line naming the key (`rallypoint: invalid config key promotion.timezone: ...`)",
        "  and exits with code 2.",
        "- **`python -m bot check-config`** makes exactly the checks `run` makes before it connects (a",
        "  token and guild id, a usable database file), prints the effective configuration (file +",
        "  environment) as JSON, then warnings: no promoters, no follow-up channel, players preferring a",
        "  channel this server does not offer, half-configured Signal or login.",
        "- **Secrets** (type *secret string*) never appear in logs or in `check-config`'s output.",
        "- Changes take effect at the next start.",
        "- Discord ids are the numbers Discord's Developer Mode copies (User Settings → Advanced →",
        "  Developer Mode, then right-click → Copy ID); see docs/discord-application.md.",
        "",
    ]
    for section, rows in reference_rows().items():
        out += [f"## [{section}]", "", SECTIONS[section], ""]
        out += ["| key | type | default | environment variable | description |", "|---|---|---|---|---|"]
        for r in rows:
            cells = [f"`{r['key']}`", r["type"], f"`{r['default']}`", f"`{r['env']}`", r["description"]]
            out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        out.append("")
    return "\n".join(out)


def write_reference() -> Path:
    REFERENCE.write_text(render(), encoding="utf-8")
    return REFERENCE


# -- tests ----------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("RALLYPOINT_"):
            monkeypatch.delenv(name)


def model_keys() -> set[str]:
    return {
        f"{section}.{key}"
        for section, field in Settings.model_fields.items()
        for key in typing.cast(type[BaseModel], field.annotation).model_fields
    }


def example_keys() -> set[str]:
    with EXAMPLE.open("rb") as handle:
        data = tomllib.load(handle)
    keys = set()
    for section, values in data.items():
        assert isinstance(values, dict), f"config.example.toml: {section} is not a [section]"
        keys |= {f"{section}.{key}" for key in values}
    return keys


def test_example_has_every_key_of_the_model() -> None:
    missing = sorted(model_keys() - example_keys())
    assert not missing, f"in bot/config.py but not in config.example.toml: {missing}"


def test_example_has_no_key_the_model_lacks() -> None:
    unknown = sorted(example_keys() - model_keys())
    assert not unknown, f"in config.example.toml but not in bot/config.py: {unknown}"


def test_example_loads_and_holds_the_defaults() -> None:
    assert load_settings(EXAMPLE).model_dump() == load_settings(None).model_dump()


def test_every_section_and_key_is_described() -> None:
    assert set(SECTIONS) == set(Settings.model_fields)
    undocumented = [
        f"{section}.{row['key']}"
        for section, rows in reference_rows().items()
        for row in rows
        if not row["description"]
    ]
    assert not undocumented, f"describe these in config.example.toml (a comment) or in NOTES: {undocumented}"
    stale = sorted(set(NOTES) - model_keys())
    assert not stale, f"NOTES for keys that no longer exist: {stale}"


def test_type_labels() -> None:
    rows = {f"{s}.{r['key']}": r for s, section in reference_rows().items() for r in section}
    assert rows["discord.token"]["type"] == "secret string"
    assert rows["discord.guild_id"]["type"] == "Discord id"
    assert rows["discord.admin_ids"]["type"] == "list of Discord ids"
    assert rows["api.service_tokens"]["type"] == "list of secret strings"
    assert rows["promotion.max_attempts"]["type"] == "integer 1–100"
    assert rows["discord.invalid_requests_pause_at"]["type"] == "integer 1–4999"
    assert rows["discord.dm_open_rate_per_second"]["type"] == "number > 0 and ≤ 10000"
    assert rows["promotion.reminder_time"]["type"] == "time `HH:MM` (24-hour)"
    assert rows["promotion.timezone"]["type"] == "IANA time zone name"
    assert rows["signal.number"]["type"] == "E.164 phone number or empty"
    assert rows["storage.path"]["default"] == '"data/rallypoint.sqlite3"'
    assert rows["api.enabled"]["default"] == "true"
    assert rows["discord.token"]["env"] == "RALLYPOINT_DISCORD__TOKEN"


def test_comments_are_read_from_the_example() -> None:
    comments = example_comments(
        '[a]\nx = "#not a comment" # the comment\ny = 1\n  # continued\nz = []  # z\n  # more z\n# prose\n'
    )
    assert comments == {"a.x": "the comment", "a.y": "continued", "a.z": "z; more z"}


def test_reference_names_every_key() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    for section, rows in reference_rows().items():
        assert f"## [{section}]" in text, f"docs/configuration.md lacks [{section}]; run {REGENERATE}"
        body = text.split(f"## [{section}]", 1)[1].split("\n## ", 1)[0]
        for row in rows:
            assert f"| `{row['key']}` |" in body, f"docs/configuration.md lacks {section}.{row['key']}"
            assert row["env"] in body


def test_reference_is_up_to_date() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == render(), f"docs/configuration.md is stale: run {REGENERATE}"


if __name__ == "__main__":
    if "--check" in sys.argv[1:]:
        current = REFERENCE.read_text(encoding="utf-8") if REFERENCE.exists() else ""
        if current != render():
            print(f"{REFERENCE.relative_to(ROOT)} is out of date: run {REGENERATE}", file=sys.stderr)
            sys.exit(1)
        print(f"{REFERENCE.relative_to(ROOT)} is up to date")
    else:
        print(f"wrote {write_reference().relative_to(ROOT)}")

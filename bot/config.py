"""Settings: a TOML file plus `RALLYPOINT_<SECTION>__<KEY>` environment overrides.

Every configuration key (docs/configuration.md) lives here, validated once at start-up. Secrets are
`SecretStr` so that they never reach a log line or `check-config` unmasked.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import json
import os
import typing
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from services.contacts import ContactCipher
from services.phone import is_e164
from services.quiet_hours import parse_hhmm
from services.schedule import validate_timezone

ENV_PREFIX = "RALLYPOINT_"
CONFIG_ENV = "RALLYPOINT_CONFIG"
DEFAULT_CONFIG_PATH = Path("config.toml")

Snowflake = Annotated[int, Field(ge=0, lt=2**64)]


def _hhmm(value: str) -> str:
    parse_hhmm(value)
    return value


HHMM = Annotated[str, AfterValidator(_hhmm)]


def check_url(value: str, schemes: tuple[str, ...]) -> str:
    """Return `value` if it is empty or an absolute URL with one of `schemes`, else raise ValueError."""
    if value:
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(f"must be a {' or '.join(schemes)} URL such as {schemes[0]}://127.0.0.1:8000/…")
    return value


def _http_url(value: str) -> str:
    return check_url(value, ("http", "https"))


def _ws_url(value: str) -> str:
    return check_url(value, ("ws", "wss"))


HttpUrl = Annotated[str, AfterValidator(_http_url)]
WsUrl = Annotated[str, AfterValidator(_ws_url)]


class _Section(BaseModel):
    # A typo in a key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", frozen=True)


class DiscordSettings(_Section):
    token: SecretStr = SecretStr("")
    guild_id: Snowflake = 0
    promoter_ids: list[Snowflake] = []
    admin_ids: list[Snowflake] = []
    promoter_role_ids: list[Snowflake] = []
    followup_channel_id: Snowflake = 0
    voice_channel_ids: list[Snowflake] = []
    api_base_url: HttpUrl = ""
    gateway_url: WsUrl = ""
    oauth_client_id: str = ""
    oauth_client_secret: SecretStr = SecretStr("")
    oauth_redirect_uri: str = ""
    # Discord allows 50 requests/s per bot across all routes; the proactive limit stays below it.
    global_rate_per_second: int = Field(45, ge=2, le=10_000)
    # First DMs to many players at once look like a spam run to Discord: open new DM channels gently.
    dm_open_rate_per_second: float = Field(10.0, gt=0, le=10_000)
    # Discord bans the bot's IP for about an hour past 10,000 401/403/429 answers in 10 minutes.
    invalid_requests_pause_at: int = Field(4000, ge=1, lt=5000)

    @field_validator("oauth_redirect_uri")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        if value:
            scheme, _, rest = value.partition("://")
            if scheme.lower() not in ("http", "https") or not rest.split("/", 1)[0]:
                raise ValueError("must be an absolute http(s) URL such as https://example.org/auth/callback")
        return value

    @property
    def login_configured(self) -> bool:
        """The browser login is on: client id, client secret and redirect URI are all set."""
        return bool(self.oauth_client_id and self.oauth_client_secret.get_secret_value() and self.oauth_redirect_uri)


class PromotionSettings(_Section):
    timezone: str = "Europe/Ljubljana"
    reminder_time: HHMM = "20:45"
    start_time: HHMM = Field("21:00", validate_default=True)  # checked against the reminder even when unset
    voice_check_delay_seconds: int = Field(30, ge=0, le=3600)
    global_cooldown: bool = False
    dry_run_default: bool = False
    dry_run_daily_limit: int = Field(5, ge=0, le=100)
    max_attempts: int = Field(5, ge=1, le=100)
    job_lease_seconds: int = Field(60, ge=5, le=3600)
    # Send-by deadlines: the start ping and the follow-ups go out at most this many minutes after
    # their due time (the reminder only before the start); later ones are skipped, not sent late.
    max_lateness_minutes: int = Field(30, ge=1, le=24 * 60)
    # A standing session is decided this many minutes before its start (its date's reminder is later).
    standing_decision_minutes: int = Field(30, ge=0, le=24 * 60)
    # Concurrent sends per channel within one job.
    send_concurrency: int = Field(16, ge=1, le=256)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return validate_timezone(value)

    @field_validator("start_time")
    @classmethod
    def _after_the_reminder(cls, value: str, info: ValidationInfo) -> str:
        # Otherwise every campaign would silently move its start to just after the reminder.
        reminder = info.data.get("reminder_time")  # absent when the reminder itself was invalid
        if reminder is not None and parse_hhmm(value) <= parse_hhmm(reminder):
            raise ValueError(f"{value} must be after reminder_time {reminder}")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def reminder(self) -> time:
        return parse_hhmm(self.reminder_time)

    @property
    def start(self) -> time:
        return parse_hhmm(self.start_time)


class StorageSettings(_Section):
    path: Path = Path("data/rallypoint.sqlite3")


class ApiSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    service_tokens: list[SecretStr] = []
    metrics: bool = True
    # What one slow or hostile client may hold: docs/self-hosting.md, "Exposing the API".
    max_connections: int = Field(256, ge=1, le=65536)
    header_timeout_seconds: int = Field(10, ge=1, le=300)
    body_timeout_seconds: int = Field(10, ge=1, le=300)
    keepalive_seconds: int = Field(15, ge=1, le=3600)
    trusted_proxies: list[str] = []

    @field_validator("trusted_proxies")
    @classmethod
    def _ip_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network such as 10.0.0.0/8") from None
        return value

    @property
    def proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """`trusted_proxies` as networks: the peers whose X-Forwarded-For is believed."""
        return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in self.trusted_proxies)


class TelegramSettings(_Section):
    token: SecretStr = SecretStr("")
    api_base_url: HttpUrl = ""
    bot_username: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.token.get_secret_value())


class SignalSettings(_Section):
    api_url: HttpUrl = ""
    number: str = ""

    @field_validator("number")
    @classmethod
    def _e164(cls, value: str) -> str:
        if value and not is_e164(value):
            raise ValueError("must be an E.164 number such as +38640123456")
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.api_url and self.number)


MIN_SESSION_SECRET_BYTES = 32


class SecuritySettings(_Section):
    contact_encryption_key: SecretStr = SecretStr("")
    session_secret: SecretStr = SecretStr("")

    @field_validator("contact_encryption_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if not text:
            return value  # not set: Telegram and Signal stay off
        # A value of only spaces and commas is a mistake (an editor, a template that lost its
        # variable), not a wish to turn Telegram and Signal off.
        if not any(part.strip() for part in text.split(",")):
            raise ValueError("holds only whitespace: leave it empty, or set one or more Fernet keys")
        try:
            ContactCipher(text)
        except ValueError:
            raise ValueError(
                "must be one or more Fernet keys (44 url-safe base64 characters), comma-separated, newest "
                "first; see docs/telegram-signal.md to generate one"
            ) from None
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RALLYPOINT_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    discord: DiscordSettings = DiscordSettings()
    promotion: PromotionSettings = PromotionSettings()
    storage: StorageSettings = StorageSettings()
    api: ApiSettings = ApiSettings()
    telegram: TelegramSettings = TelegramSettings()
    signal: SignalSettings = SignalSettings()
    security: SecuritySettings = SecuritySettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = settings_cls.model_config.get("toml_file")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


class ConfigError(Exception):
    """A configuration problem, phrased for a one-line message (exit code 2)."""


def require_strong_login(settings: Settings) -> None:
    """With the browser login on, the session secret must be long enough that cookies cannot be forged.

    A short or empty secret would not switch the login off quietly: it stops the start (exit 2).
    """
    if not settings.discord.login_configured:
        return
    secret = settings.security.session_secret.get_secret_value().encode()
    if len(secret) < MIN_SESSION_SECRET_BYTES:
        raise ConfigError(
            f"invalid config key security.session_secret: the Discord login (discord.oauth_*) needs a secret of "
            f"at least {MIN_SESSION_SECRET_BYTES} bytes to sign its cookies, got {len(secret)}; generate one with "
            '`python -c "import secrets; print(secrets.token_urlsafe(48))"`'
        )


def resolve_config_path(cli_path: str | None) -> Path | None:
    """Return the config file to read: --config, else $RALLYPOINT_CONFIG, else ./config.toml if present."""
    if cli_path:
        return Path(cli_path)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None


def load_settings(path: Path | None, **overrides: Any) -> Settings:
    """Load settings from `path` (TOML) and the environment, or raise ConfigError."""
    if path is not None and not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    _check_environment(os.environ)

    class _FileSettings(Settings):
        model_config = SettingsConfigDict(toml_file=path)

    try:
        settings = _FileSettings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, os.environ)) from None
    except (ValueError, OSError) as exc:  # malformed TOML or unreadable file
        raise ConfigError(f"cannot read {path}: {exc}") from None
    require_strong_login(settings)
    return settings


def _describe(exc: ValidationError, environ: Mapping[str, str]) -> str:
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    variable = _env_name(*key.split(".", 1)) if "." in key else None
    source = f" (from {variable})" if variable is not None and _getenv(environ, variable) is not None else ""
    message = first["msg"].removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"invalid config key {key}{source}: {message}{more}"


# -- the environment ---------------------------------------------------------------------------


def _env_name(section: str, key: str | None = None) -> str:
    return f"{ENV_PREFIX}{section.upper()}" + (f"__{key.upper()}" if key else "")


def _sections() -> dict[str, type[BaseModel]]:
    return {name: typing.cast(type[BaseModel], field.annotation) for name, field in Settings.model_fields.items()}


def environment_names() -> list[str]:
    """Every variable the settings read: RALLYPOINT_CONFIG, each section (as JSON) and each key."""
    names = [CONFIG_ENV]
    for section, model in _sections().items():
        names.append(_env_name(section))
        names += [_env_name(section, key) for key in model.model_fields]
    return names


def _getenv(environ: Mapping[str, str], name: str) -> str | None:
    # pydantic-settings matches names case-insensitively; so do we.
    for candidate, value in environ.items():
        if candidate.upper() == name:
            return value
    return None


def _rallypoint_variables(environ: Mapping[str, str]) -> list[str]:
    return sorted(name for name in environ if name.upper().startswith(ENV_PREFIX))


def _suggestion(name: str) -> str:
    # Compared without the shared prefix, which would make every name look alike.
    known = [known.removeprefix(ENV_PREFIX) for known in environment_names()]
    close = difflib.get_close_matches(name.upper().removeprefix(ENV_PREFIX), known, n=1, cutoff=0.8)
    return f" (did you mean {ENV_PREFIX}{close[0]}?)" if close else ""


def _check_environment(environ: Mapping[str, str]) -> None:
    """Name the variable when its value cannot be what its key needs (before pydantic blurs it)."""
    sections = _sections()
    for name in _rallypoint_variables(environ):
        section, _, key = name.upper().removeprefix(ENV_PREFIX).lower().partition("__")
        if section not in sections:
            continue  # a variable that names no section: a warning (unknown_environment), not an error
        value = environ[name]
        if not key:
            if not isinstance(_json(value), dict):
                raise ConfigError(f'environment variable {name} must be a JSON object such as {{"key": "value"}}')
            continue
        field = sections[section].model_fields.get(key)
        if field is None:
            raise ConfigError(f"invalid config key {section}.{key} (from {name}): no such key{_suggestion(name)}")
        if typing.get_origin(field.annotation) is list and not isinstance(_json(value), list):
            (item,) = typing.get_args(field.annotation)
            example = '["first", "second"]' if item is SecretStr or item is str else "[1, 2]"
            raise ConfigError(f"environment variable {name} must be a JSON list such as {example}")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def unknown_environment(environ: Mapping[str, str]) -> list[str]:
    """Warnings for RALLYPOINT_* variables that no setting reads (a typo is otherwise silently ignored)."""
    sections = _sections()
    return [
        f"environment variable {name} matches no config key and is ignored{_suggestion(name)}"
        for name in _rallypoint_variables(environ)
        if name.upper() != CONFIG_ENV
        and name.upper().removeprefix(ENV_PREFIX).lower().partition("__")[0] not in sections
    ]


def masked_dump(settings: Settings) -> dict[str, Any]:
    """Return the effective settings with every secret replaced by a marker."""

    def mask(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return "********" if value.get_secret_value() else ""
        if isinstance(value, dict):
            return {k: mask(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mask(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    sections = {name: dict(getattr(settings, name)) for name in type(settings).model_fields}
    return {name: mask(values) for name, values in sections.items()}


def token_matches(presented: str, configured: SecretStr) -> bool:
    """Compare a bearer token in constant time; `sha256:<hex>` entries hold only the digest.

    `presented` comes from a request header: bytes that are not UTF-8 arrive as surrogate escapes,
    which compare as the bytes they stand for (and so never match a configured token).
    """
    import hmac

    secret = configured.get_secret_value()
    if not secret or not presented:
        return False
    try:
        raw = presented.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no byte stands for: not a token anyone was given
        return False
    if secret.startswith("sha256:"):
        digest = hashlib.sha256(raw).hexdigest()
        return hmac.compare_digest(digest, secret.removeprefix("sha256:").lower())
    return hmac.compare_digest(raw, secret.encode())

"""Configuration loading (bot/config.py): TOML plus RALLYPOINT_* overrides, one-line errors, masking."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.config import (
    CONFIG_ENV,
    ConfigError,
    Settings,
    environment_names,
    load_settings,
    masked_dump,
    resolve_config_path,
    token_matches,
    unknown_environment,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FERNET_KEY = "9Wq5mzQvV1k0cGZlN3d4T0JlYWhSc2c5WnQ4bUx2b1k="  # a syntactically valid Fernet key

SECRETS = {
    "discord_token": "MTIzNDU2Nzg5MDEyMzQ1Njc4.discord-token-value",
    "oauth_secret": "oauth-client-secret-value",
    "service_token": "service-token-value-1",
    "telegram_token": "123456:telegram-token-value",
    "session_secret": "session-secret-value-0123456789",
}

FULL_CONFIG = f"""
[discord]
token = "{SECRETS["discord_token"]}"
guild_id = 900000000000000001
promoter_role_ids = [900000000000000100]
oauth_client_id = "1200000000000000001"
oauth_client_secret = "{SECRETS["oauth_secret"]}"

[promotion]
timezone = "America/New_York"
reminder_time = "19:45"
start_time = "20:00"

[api]
service_tokens = ["{SECRETS["service_token"]}", "sha256:{"ab" * 32}"]

[telegram]
token = "{SECRETS["telegram_token"]}"
bot_username = "rallypoint_bot"

[signal]
api_url = "http://127.0.0.1:8081"
number = "+38640123456"

[security]
contact_encryption_key = "{FERNET_KEY}"
session_secret = "{SECRETS["session_secret"]}"
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No RALLYPOINT_* variable from the developer's shell, and no ./config.toml, leaks into a test."""
    for name in list(os.environ):
        if name.startswith("RALLYPOINT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- loading ------------------------------------------------------------------------------------


def test_defaults_without_a_file() -> None:
    settings = load_settings(None)
    assert settings.discord.guild_id == 0
    assert settings.promotion.timezone == "Europe/Ljubljana"
    assert settings.promotion.reminder_time == "20:45"
    assert settings.storage.path == Path("data/rallypoint.sqlite3")
    assert settings.telegram.enabled is False
    assert settings.signal.enabled is False


def test_toml_file_is_read(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, FULL_CONFIG))
    assert settings.discord.token.get_secret_value() == SECRETS["discord_token"]
    assert settings.discord.guild_id == 900000000000000001
    assert settings.discord.promoter_role_ids == [900000000000000100]
    assert settings.promotion.zone.key == "America/New_York"
    assert (settings.promotion.reminder.hour, settings.promotion.reminder.minute) == (19, 45)
    assert settings.telegram.enabled and settings.signal.enabled


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RALLYPOINT_DISCORD__TOKEN", "from-the-environment")
    monkeypatch.setenv("RALLYPOINT_PROMOTION__START_TIME", "21:30")
    settings = load_settings(write(tmp_path, FULL_CONFIG))
    assert settings.discord.token.get_secret_value() == "from-the-environment"
    assert settings.promotion.start_time == "21:30"
    assert settings.discord.guild_id == 900000000000000001  # untouched keys still come from the file


def test_environment_lists_are_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RALLYPOINT_DISCORD__ADMIN_IDS", "[1, 2]")
    monkeypatch.setenv("RALLYPOINT_API__SERVICE_TOKENS", '["a", "sha256:00"]')
    monkeypatch.setenv("RALLYPOINT_PROMOTION__GLOBAL_COOLDOWN", "true")
    monkeypatch.setenv("RALLYPOINT_API__PORT", "9090")
    settings = load_settings(None)
    assert settings.discord.admin_ids == [1, 2]
    assert [t.get_secret_value() for t in settings.api.service_tokens] == ["a", "sha256:00"]
    assert settings.promotion.global_cooldown is True
    assert settings.api.port == 9090


def test_an_environment_list_that_is_not_json_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RALLYPOINT_DISCORD__ADMIN_IDS", "1,2")
    with pytest.raises(ConfigError):
        load_settings(None)


def test_config_path_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_config_path(None) is None  # nothing given, no ./config.toml
    write(tmp_path, "")
    assert resolve_config_path(None) == Path("config.toml")
    monkeypatch.setenv(CONFIG_ENV, "/etc/rallypoint/config.toml")
    assert resolve_config_path(None) == Path("/etc/rallypoint/config.toml")
    assert resolve_config_path("other.toml") == Path("other.toml")  # --config wins


# -- errors name the key --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "key", "words"),
    [
        ('[discord]\ntokn = "x"\n', "discord.tokn", "extra inputs are not permitted"),
        ('[discrod]\ntoken = "x"\n', "discrod", "extra inputs are not permitted"),
        ('[promotion]\ntimezone = "Mars/Olympus"\n', "promotion.timezone", "unknown timezone"),
        ('[promotion]\nreminder_time = "25:00"\n', "promotion.reminder_time", "hh:mm"),
        ('[promotion]\nstart_time = "9pm"\n', "promotion.start_time", "hh:mm"),
        ('[signal]\nnumber = "0038640123456"\n', "signal.number", "e.164"),
        ('[signal]\nnumber = "+386"\n', "signal.number", "e.164"),
        ("[promotion]\nsend_concurrency = 0\n", "promotion.send_concurrency", "greater than or equal to 1"),
        ("[api]\nport = 70000\n", "api.port", "less than or equal to 65535"),
        ("[discord]\nguild_id = -1\n", "discord.guild_id", "greater than or equal to 0"),
        ('[discord]\noauth_redirect_uri = "/auth/callback"\n', "discord.oauth_redirect_uri", "absolute http(s) url"),
        ('[discord]\noauth_redirect_uri = "ftp://x/cb"\n', "discord.oauth_redirect_uri", "absolute http(s) url"),
        ("[api]\nmax_connections = 0\n", "api.max_connections", "greater than or equal to 1"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_the_key(tmp_path: Path, toml: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, toml))
    message = str(caught.value)
    assert message.startswith(f"invalid config key {key}:"), message
    assert words in message.lower()
    assert "\n" not in message


def test_an_unknown_environment_key_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RALLYPOINT_DISCORD__TOKN", "x")
    with pytest.raises(ConfigError, match=r"invalid config key discord\.tokn"):
        load_settings(None)


def test_several_problems_are_counted_on_one_line(tmp_path: Path) -> None:
    text = '[promotion]\ntimezone = "Nowhere/Land"\nreminder_time = "99:99"\n'
    with pytest.raises(ConfigError, match=r"\(and 1 more\)$"):
        load_settings(write(tmp_path, text))


def test_a_missing_file_and_malformed_toml_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(write(tmp_path, "[discord\ntoken = \n"))


@pytest.mark.parametrize("number", ["+٣٨٦٤٠١٢٣٤٥٦", "+08640123456", "+38640 123456"])
def test_signal_number_is_strict_e164(tmp_path: Path, number: str) -> None:
    with pytest.raises(ConfigError, match=r"signal\.number"):
        load_settings(write(tmp_path, f'[signal]\nnumber = "{number}"\n'))


# -- secrets --------------------------------------------------------------------------------------


def test_masked_dump_never_contains_a_secret(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, FULL_CONFIG))
    dumped = json.dumps(masked_dump(settings))
    for secret in [*SECRETS.values(), FERNET_KEY, "ab" * 32]:
        assert secret not in dumped
    assert secret_free_repr(settings)
    view = masked_dump(settings)
    assert view["discord"]["token"] == "********"
    assert view["discord"]["oauth_client_secret"] == "********"
    assert view["api"]["service_tokens"] == ["********", "********"]
    assert view["security"]["contact_encryption_key"] == "********"
    # Not secret, so shown: what an operator needs to check the configuration.
    assert view["discord"]["guild_id"] == 900000000000000001
    assert view["signal"]["number"] == "+38640123456"
    assert view["storage"]["path"] == "data/rallypoint.sqlite3"


def secret_free_repr(settings: Settings) -> bool:
    """repr() and str() of the settings (what ends up in a traceback or a log line) hide secrets too."""
    text = repr(settings) + str(settings)
    return not any(secret in text for secret in SECRETS.values())


def test_masked_dump_leaves_unset_secrets_empty() -> None:
    view = masked_dump(load_settings(None))
    assert view["discord"]["token"] == ""
    assert view["security"]["session_secret"] == ""
    assert view["api"]["service_tokens"] == []


def test_masked_dump_covers_every_section() -> None:
    assert set(masked_dump(load_settings(None))) == set(Settings.model_fields)


@pytest.mark.parametrize(
    ("presented", "configured", "expected"),
    [
        ("letmein", "letmein", True),
        ("letmein", "letmeout", False),
        ("letmein", "letmein ", False),
        ("", "letmein", False),
        ("letmein", "", False),
        ("", "", False),
        ("letmein", "sha256:" + hashlib.sha256(b"letmein").hexdigest(), True),
        ("letmein", "sha256:" + hashlib.sha256(b"letmein").hexdigest().upper(), True),
        ("letmeout", "sha256:" + hashlib.sha256(b"letmein").hexdigest(), False),
        # The digest itself is not a password: presenting it must not match.
        (hashlib.sha256(b"letmein").hexdigest(), "sha256:" + hashlib.sha256(b"letmein").hexdigest(), False),
        ("sha256:" + hashlib.sha256(b"x").hexdigest(), "sha256:" + hashlib.sha256(b"x").hexdigest(), False),
    ],
)
def test_token_matches(presented: str, configured: str, expected: bool) -> None:
    assert token_matches(presented, SecretStr(configured)) is expected


# -- python -m bot check-config -------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RALLYPOINT_")}
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "bot", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_config_prints_the_masked_configuration(tmp_path: Path) -> None:
    result = run_cli("check-config", "--config", str(write(tmp_path, FULL_CONFIG)))
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["discord"]["token"] == "********"
    assert shown["promotion"]["timezone"] == "America/New_York"
    for secret in [*SECRETS.values(), FERNET_KEY]:
        assert secret not in result.stdout
        assert secret not in result.stderr


def test_check_config_with_a_bad_key_exits_2_with_one_line(tmp_path: Path) -> None:
    result = run_cli("check-config", "--config", str(write(tmp_path, '[promotion]\ntimezone = "Mars/Olympus"\n')))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines == ["rallypoint: invalid config key promotion.timezone: unknown timezone 'Mars/Olympus'"]
    assert "Traceback" not in result.stderr


LOGIN = """
[discord]
oauth_client_id = "1200000000000000001"
oauth_client_secret = "oauth-client-secret-value"
oauth_redirect_uri = "HTTPS://rallypoint.example/auth/callback"
"""


@pytest.mark.parametrize("secret", ["", "x", "short-but-not-empty-0123456789"], ids=["empty", "one byte", "30 bytes"])
def test_a_login_with_a_weak_session_secret_exits_2_naming_the_key(tmp_path: Path, secret: str) -> None:
    config = write(tmp_path, LOGIN + f'[security]\nsession_secret = "{secret}"\n')
    with pytest.raises(ConfigError, match=r"^invalid config key security\.session_secret: .*at least 32 bytes"):
        load_settings(config)
    result = run_cli("check-config", "--config", str(config))
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("rallypoint: invalid config key security.session_secret:")
    assert not secret or secret not in result.stderr


def test_a_login_with_a_strong_session_secret_loads(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, LOGIN + f'[security]\nsession_secret = "{"s" * 32}"\n'))
    assert settings.discord.login_configured
    # Without the login the session secret is not used, and not required.
    without_login = load_settings(write(tmp_path, '[security]\nsession_secret = "x"\n', "other.toml"))
    assert not without_login.discord.login_configured


def test_check_config_with_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = run_cli("check-config", "--config", str(tmp_path / "missing.toml"))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "config file not found" in result.stderr
    assert "Traceback" not in result.stderr


# -- the environment names its variable -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("RALLYPOINT_DISCORD__ADMIN_IDS", "1,2", "must be a JSON list such as [1, 2]"),
        ("RALLYPOINT_DISCORD__PROMOTER_ROLE_IDS", "123", "must be a JSON list such as [1, 2]"),
        ("RALLYPOINT_API__SERVICE_TOKENS", "token-a,token-b", 'must be a JSON list such as ["first", "second"]'),
        ("RALLYPOINT_DISCORD", "token=x", "must be a JSON object"),
        ("RALLYPOINT_DISCORD__GUILD_ID", "my-guild", "valid integer"),
        ("RALLYPOINT_PROMOTION__GLOBAL_COOLDOWN", "maybe", "valid boolean"),
        ("RALLYPOINT_DISCORD__TOKN", "x", "no such key (did you mean RALLYPOINT_DISCORD__TOKEN?)"),
        ("rallypoint_api__port", "eighty", "valid integer"),  # matched case-insensitively, as pydantic does
    ],
)
def test_a_bad_environment_variable_is_named_with_the_expected_form(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, words: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(None)
    message = str(caught.value)
    assert name.upper() in message and words in message, message
    assert "\n" not in message
    if "TOKENS" in name:
        assert value not in message  # a secret's value is never echoed


def test_unknown_rallypoint_variables_are_warned_about_not_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {"RALLYPOINT_DISCROD__TOKEN": "x", "RALLYPOINT_CONFIG": "c.toml", "RALLYPOINT_DISCORD__TOKEN": "t"}
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    load_settings(None)  # no error: the typo is not a key of a known section
    assert unknown_environment(environ) == [
        "environment variable RALLYPOINT_DISCROD__TOKEN matches no config key and is ignored "
        "(did you mean RALLYPOINT_DISCORD__TOKEN?)"
    ]
    assert unknown_environment({"RALLYPOINT_ZZZ": "1", "OTHER": "2"}) == [
        "environment variable RALLYPOINT_ZZZ matches no config key and is ignored"
    ]


def test_every_variable_a_setting_reads_is_known() -> None:
    names = environment_names()
    assert {"RALLYPOINT_CONFIG", "RALLYPOINT_DISCORD", "RALLYPOINT_DISCORD__TOKEN", "RALLYPOINT_API__METRICS"} <= set(
        names
    )
    assert unknown_environment(dict.fromkeys(names, "")) == []


# -- values run would refuse are refused when loading -----------------------------------------------


@pytest.mark.parametrize(
    ("toml", "key", "words"),
    [
        ('[promotion]\nreminder_time = "21:30"\n', "promotion.start_time", "21:00 must be after reminder_time 21:30"),
        ('[promotion]\nreminder_time = "21:00"\n', "promotion.start_time", "must be after"),
        ('[promotion]\nstart_time = "20:00"\n', "promotion.start_time", "must be after reminder_time 20:45"),
        ('[security]\ncontact_encryption_key = "notakey"\n', "security.contact_encryption_key", "fernet keys"),
        (f'[security]\ncontact_encryption_key = "{FERNET_KEY},oops"\n', "security.contact_encryption_key", "fernet"),
        ('[discord]\napi_base_url = "ws://127.0.0.1:9/api"\n', "discord.api_base_url", "http or https url"),
        ('[discord]\ngateway_url = "http://127.0.0.1:9/gateway"\n', "discord.gateway_url", "ws or wss url"),
        ('[signal]\napi_url = "127.0.0.1:8081"\n', "signal.api_url", "http or https url"),
        ('[telegram]\napi_base_url = "api.telegram.org"\n', "telegram.api_base_url", "http or https url"),
    ],
)
def test_values_that_cannot_run_are_refused_when_loading(tmp_path: Path, toml: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, toml))
    assert str(caught.value).startswith(f"invalid config key {key}:"), caught.value
    assert words in str(caught.value).lower()
    assert "notakey" not in str(caught.value)


def test_a_valid_key_list_and_urls_load(tmp_path: Path) -> None:
    other = "x" * 43 + "="  # 32 bytes of url-safe base64 like a generated key
    settings = load_settings(
        write(tmp_path, f'[security]\ncontact_encryption_key = "{FERNET_KEY}, {other}"\n'
              '[discord]\napi_base_url = "https://discord.com/api/v10"\ngateway_url = "wss://gateway.discord.gg"\n')
    )
    assert settings.security.contact_encryption_key.get_secret_value().startswith(FERNET_KEY)

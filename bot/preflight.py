"""The checks `run` makes before it connects, shared with `check-config` so that both judge alike.

`check_run` raises ConfigError (one line naming the key, exit code 2) for what stops the bot and
returns warnings for what runs but probably not as meant. What needs Discord itself (a token it
rejects, a guild the bot cannot see) is known only at login; `run` reports those the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.config import ConfigError, Settings, unknown_environment
from storage.db import StorageError
from storage.facts import DatabaseFacts, database_facts


def check_run(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """Raise ConfigError if `run` would refuse these settings; return the warnings."""
    d = settings.discord
    if not d.token.get_secret_value():
        raise ConfigError("invalid config key discord.token: the bot token is required to run")
    if not d.guild_id:
        raise ConfigError("invalid config key discord.guild_id: the community's guild id is required")
    return [*warnings(settings, storage_facts(settings)), *unknown_environment(environ)]


def storage_facts(settings: Settings) -> DatabaseFacts:
    try:
        return database_facts(settings.storage.path)
    except StorageError as exc:
        raise ConfigError(f"invalid config key storage.path: {exc}") from None


def warnings(settings: Settings, facts: DatabaseFacts) -> list[str]:
    """What is allowed but probably not meant, in the words an operator acts on."""
    d, security = settings.discord, settings.security
    found: list[str] = []
    if not (d.promoter_ids or d.admin_ids or d.promoter_role_ids or facts.promoter_tiers):
        found.append(
            "no promoters configured (discord.promoter_ids, discord.admin_ids and discord.promoter_role_ids "
            'are empty): every /promote will answer "Only promoters can do that."'
        )
    if not d.followup_channel_id:
        found.append("discord.followup_channel_id is not set: the voice-check summary is posted nowhere")
    keyless = not security.contact_encryption_key.get_secret_value()
    telegram = settings.telegram.enabled and not keyless
    signal = settings.signal.enabled and not keyless
    if keyless and (settings.telegram.enabled or settings.signal.enabled):
        found.append("security.contact_encryption_key is not set: Telegram and Signal stay off until it is")
    if bool(settings.signal.api_url) != bool(settings.signal.number):
        found.append("signal.api_url and signal.number are both needed: Signal is off")
    for channel, on in (("telegram", telegram), ("signal", signal)):
        count = facts.preferred_channels.get(channel, 0)
        if count and not on:
            found.append(
                f"{count} player(s) prefer {channel.capitalize()}, which is not configured here: "
                "they are reached on their next channel"
            )
    # With all three set the login is on (and a weak session secret stops the start when loading).
    if any((d.oauth_client_id, d.oauth_client_secret.get_secret_value(), d.oauth_redirect_uri)) and not (
        d.login_configured
    ):
        found.append(
            "the website login needs discord.oauth_client_id, oauth_client_secret and oauth_redirect_uri: it is off"
        )
    api = settings.api
    if api.enabled and api.metrics and not api.service_tokens:
        found.append("api.service_tokens is empty: nobody can read GET /metrics (it needs a service token)")
    return found

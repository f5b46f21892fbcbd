"""Player profiles (created on first use), their status and their promotion preferences."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from services.clock import Clock
from services.contacts import ContactCipher, mask_chat_id
from services.errors import DateOutOfRange, EmptyQuietHours, InvalidInput, NotLinked
from services.models import (
    UNSET,
    Actor,
    AvailabilityEntry,
    Board,
    Channel,
    Link,
    Player,
    PlayerStatus,
    Preferences,
    PreferencesView,
    PreferredChannel,
    Profile,
    QuietHours,
    StatusSet,
    Unset,
)
from services.phone import mask_number
from services.recipients import ask_consent
from services.schedule import campaign_date, local_datetime, validate_timezone
from storage.changes import Changes, Memo
from storage.discord_dms import DiscordDMStore
from storage.links import LinkStore
from storage.players import PlayerStore

log = logging.getLogger(__name__)

# How far from today a status may be set: yesterday (late-night sessions) to four weeks ahead.
PAST_DAYS: Final = 1
FUTURE_DAYS: Final = 28


class PlayerService:
    """The one owner of player profiles: every service asks here for the acting player."""

    def __init__(
        self,
        *,
        player_store: PlayerStore,
        link_store: LinkStore,
        discord_dm_store: DiscordDMStore,
        zone: ZoneInfo,
        clock: Clock,
        changes: Changes,
        cipher: ContactCipher | None = None,
    ) -> None:
        self.player_store = player_store
        self.link_store = link_store
        self.discord_dm_store = discord_dm_store
        self.zone = zone
        self.clock = clock
        self.cipher = cipher
        # A page polling the API asks for the same profile over and over: read it once per change.
        self._profiles: Memo[int, Profile | None] = Memo(changes)

    def today(self) -> date:
        """Today in the promotion timezone (rule 3)."""
        return campaign_date(self.clock.now(), self.zone)

    def next_day(self) -> datetime:
        """When `today()` turns over: the next midnight in the promotion timezone."""
        return local_datetime(self.today() + timedelta(days=1), time(0), self.zone)

    async def player_for(self, actor: Actor) -> Player:
        """The actor's player profile, created on first use; non-members never get one.

        Every command, button and API call of a player passes through here: this is where their
        Discord DMs count as open again after a 50007 (see `_arrive`).
        """
        return (await self._arrive(actor)).player

    async def _arrive(self, actor: Actor) -> Profile:
        """The actor's profile as found (created on first use); arriving clears a closed-DM mark."""
        if not actor.is_member:
            raise NotLinked()
        name = (actor.display_name.strip() or str(actor.discord_user_id))[:100]
        # Most calls are reads by a known player (a page polling the API asks again and again: read once
        # per change): only a new player, a new name or a closed-DM mark costs a write.
        found = await self._profiles.get_or_load(
            actor.discord_user_id, lambda: self.player_store.profile(actor.discord_user_id)
        )
        if found is not None and found.discord_dms_closed_at is not None:
            # The player is here: they may have opened their DMs since Discord refused one, and
            # the next message tries Discord again (one 50007 at most if they have not).
            await self.discord_dm_store.reopen(found.player.id)
            log.info("player %d is back: their Discord DMs will be tried again", found.player.id)
        if found is not None and found.player.display_name == name:
            return found
        player = await self.player_store.upsert(actor.discord_user_id, name, self.clock.now())
        return Profile(player, found.discord_dms_closed_at if found is not None else None)

    async def player(self, player_id: int) -> Player | None:
        return await self.player_store.get(player_id)

    def resolve_day(self, day: date | None) -> date:
        today = self.today()
        if day is None:
            return today
        if not today - timedelta(days=PAST_DAYS) <= day <= today + timedelta(days=FUTURE_DAYS):
            raise DateOutOfRange(
                f"date must be between {today - timedelta(days=PAST_DAYS)} and "
                f"{today + timedelta(days=FUTURE_DAYS)}"
            )
        return day

    async def set_status(self, actor: Actor, status: PlayerStatus | None, day: date | None = None) -> StatusSet:
        """Set or clear (None) the acting player's status for `day` (default today)."""
        player = await self.player_for(actor)
        when = self.resolve_day(day)
        await self.player_store.set_availability(player.id, when, status, self.clock.now())
        prefs = await self.player_store.preferences(player.id)
        return StatusSet(AvailabilityEntry(player, when, status), ask_consent(status, prefs))

    async def board(self, day: date | None = None) -> Board:
        when = self.resolve_day(day)
        return Board(when, tuple(await self.player_store.availability_board(when)))

    async def preferences(self, actor: Actor) -> PreferencesView:
        profile = await self._arrive(actor)
        prefs = await self.player_store.preferences(profile.player.id)
        return await self._view(profile, prefs)

    async def _view(self, profile: Profile, prefs: Preferences) -> PreferencesView:
        links = tuple(await self.link_store.links(profile.player.id))
        return PreferencesView(profile.player, prefs, links, self._masked(links), profile.discord_dms_closed_at)

    def _masked(self, links: tuple[Link, ...]) -> dict[Channel, str]:
        """Handles for display: decrypted only to be masked at once (never returned whole)."""
        if self.cipher is None:
            return {}
        masked: dict[Channel, str] = {}
        for link in links:
            try:
                address = self.cipher.decrypt(link.address_encrypted)
            except ValueError:
                continue
            masked[link.channel] = mask_number(address) if link.channel is Channel.SIGNAL else mask_chat_id(address)
        return masked

    async def update_preferences(
        self,
        actor: Actor,
        *,
        allow_promotions: bool | Unset = UNSET,
        preferred_channel: PreferredChannel | Unset = UNSET,
        quiet_hours: QuietHours | Unset | None = UNSET,
        timezone: str | Unset | None = UNSET,
    ) -> PreferencesView:
        """Change only the fields given; the others stay as they are."""
        if isinstance(quiet_hours, QuietHours) and quiet_hours.start == quiet_hours.end:
            raise EmptyQuietHours()  # before anything is stored, the profile included
        profile = await self._arrive(actor)
        player = profile.player
        prefs = await self.player_store.preferences(player.id)
        if not isinstance(allow_promotions, Unset):
            # The player's own choice, yes or no: the only way promotions are ever turned on.
            prefs = replace(prefs, allow_promotions=allow_promotions, promotions_chosen=True)
        if not isinstance(preferred_channel, Unset):
            prefs = replace(prefs, preferred_channel=preferred_channel)
        if not isinstance(quiet_hours, Unset):
            prefs = replace(prefs, quiet_hours=quiet_hours)
        if not isinstance(timezone, Unset):
            if timezone is not None:
                try:
                    validate_timezone(timezone)
                except ValueError as exc:
                    raise InvalidInput(str(exc)) from None
            prefs = replace(prefs, timezone=timezone)
        await self.player_store.save_preferences(player.id, prefs, self.clock.now())
        return await self._view(profile, prefs)

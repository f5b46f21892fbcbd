"""Players, their availability, preferences and permission tiers."""

from __future__ import annotations

import functools
import sqlite3
from datetime import date, datetime, time

from services.models import (
    AvailabilityEntry,
    Candidate,
    Channel,
    DeliveryContext,
    PermissionTier,
    Player,
    PlayerStatus,
    Preferences,
    PreferredChannel,
    Profile,
    QuietHours,
)
from storage.db import Database, from_db_time, json_ids, to_db_hhmm, to_db_time


def player_from_row(row: sqlite3.Row) -> Player:
    return Player(id=row["id"], discord_user_id=row["discord_user_id"], display_name=row["display_name"])


_DEFAULT_PREFERENCES = Preferences()


def preferences_from_row(row: sqlite3.Row | None) -> Preferences:
    if row is None or row["allow_promotions"] is None:
        return _DEFAULT_PREFERENCES
    return _preferences(
        row["allow_promotions"],
        row["preferred_channel"],
        row["quiet_start"],
        row["quiet_end"],
        row["timezone"],
        row["promotions_chosen_at"] is not None,
    )


# A preview reads thousands of rows holding a few dozen distinct preferences: each (frozen) value is
# built once.
@functools.lru_cache(maxsize=4096)
def _preferences(
    allow: int, channel: str, quiet_start: str | None, quiet_end: str | None, timezone: str | None, chosen: bool
) -> Preferences:
    quiet = None
    if quiet_start is not None and quiet_end is not None:
        quiet = QuietHours(time.fromisoformat(quiet_start), time.fromisoformat(quiet_end))
    return Preferences(
        allow_promotions=bool(allow),
        preferred_channel=PreferredChannel(channel),
        quiet_hours=quiet,
        timezone=timezone,
        promotions_chosen=chosen,
    )


_NO_CHANNELS: frozenset[Channel] = frozenset()


@functools.lru_cache(maxsize=64)
def _channels(value: str | None) -> frozenset[Channel]:
    return frozenset(Channel(c) for c in value.split(",")) if value else _NO_CHANNELS


class PlayerStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def upsert(self, discord_user_id: int, display_name: str, now: datetime) -> Player:
        """Create the player on first use, or refresh their display name."""
        async with self.db.transaction() as tx:
            row = await tx.fetchone(
                """
                INSERT INTO players (discord_user_id, display_name, created_at, updated_at)
                VALUES (?, ?, ?, ?)
                ON CONFLICT (discord_user_id) DO UPDATE SET
                    display_name = excluded.display_name,
                    updated_at = CASE WHEN display_name = excluded.display_name
                                      THEN updated_at ELSE excluded.updated_at END
                RETURNING id, discord_user_id, display_name
                """,
                (discord_user_id, display_name, to_db_time(now), to_db_time(now)),
            )
        if row is None:
            raise RuntimeError("row vanished inside its own transaction")
        return player_from_row(row)

    async def by_discord_id(self, discord_user_id: int) -> Player | None:
        async with self.db.read() as tx:
            row = await tx.fetchone(
                "SELECT id, discord_user_id, display_name FROM players WHERE discord_user_id = ?",
                (discord_user_id,),
            )
        return player_from_row(row) if row else None

    async def profile(self, discord_user_id: int) -> Profile | None:
        """The player with this Discord id as they arrive, with their Discord DM mark (one read)."""
        async with self.db.read() as tx:
            row = await tx.fetchone(
                "SELECT id, discord_user_id, display_name, discord_dms_closed_at FROM players"
                " WHERE discord_user_id = ?",
                (discord_user_id,),
            )
        if row is None:
            return None
        closed = row["discord_dms_closed_at"]
        return Profile(player_from_row(row), from_db_time(closed) if closed is not None else None)

    async def get(self, player_id: int) -> Player | None:
        async with self.db.read() as tx:
            row = await tx.fetchone(
                "SELECT id, discord_user_id, display_name FROM players WHERE id = ?", (player_id,)
            )
        return player_from_row(row) if row else None

    # -- permission tiers -------------------------------------------------------------------

    async def tier(self, discord_user_id: int) -> PermissionTier | None:
        async with self.db.read() as tx:
            row = await tx.fetchone(
                "SELECT tier FROM permissions WHERE discord_user_id = ?", (discord_user_id,)
            )
        return PermissionTier(row["tier"]) if row else None

    async def set_tier(self, discord_user_id: int, tier: PermissionTier, now: datetime) -> None:
        async with self.db.transaction() as tx:
            await tx.execute(
                """
                INSERT INTO permissions (discord_user_id, tier, granted_at) VALUES (?, ?, ?)
                ON CONFLICT (discord_user_id) DO UPDATE SET tier = excluded.tier,
                                                            granted_at = excluded.granted_at
                """,
                (discord_user_id, tier.value, to_db_time(now)),
            )

    # -- availability -----------------------------------------------------------------------

    async def set_availability(
        self, player_id: int, day: date, status: PlayerStatus | None, now: datetime
    ) -> None:
        """Set (or with None, clear) a player's status for a date."""
        async with self.db.transaction() as tx:
            if status is None:
                await tx.execute(
                    "DELETE FROM availability WHERE player_id = ? AND date = ?",
                    (player_id, day.isoformat()),
                )
                return
            await tx.execute(
                """
                INSERT INTO availability (player_id, date, status, updated_at) VALUES (?, ?, ?, ?)
                ON CONFLICT (player_id, date) DO UPDATE SET status = excluded.status,
                                                            updated_at = excluded.updated_at
                """,
                (player_id, day.isoformat(), status.value, to_db_time(now)),
            )

    async def availability(self, player_id: int, day: date) -> PlayerStatus | None:
        async with self.db.read() as tx:
            row = await tx.fetchone(
                "SELECT status FROM availability WHERE player_id = ? AND date = ?",
                (player_id, day.isoformat()),
            )
        return PlayerStatus(row["status"]) if row else None

    async def availability_board(self, day: date) -> list[AvailabilityEntry]:
        """Every player with a status on `day`, ordered by status then name."""
        async with self.db.read() as tx:
            rows = await tx.fetchall(
                """
                SELECT p.id, p.discord_user_id, p.display_name, a.status
                FROM availability a JOIN players p ON p.id = a.player_id
                WHERE a.date = ?
                ORDER BY a.status, p.display_name COLLATE NOCASE, p.id
                """,
                (day.isoformat(),),
            )
        return [AvailabilityEntry(player_from_row(r), day, PlayerStatus(r["status"])) for r in rows]

    # -- preferences ------------------------------------------------------------------------

    async def preferences(self, player_id: int) -> Preferences:
        async with self.db.read() as tx:
            row = await tx.fetchone("SELECT * FROM preferences WHERE player_id = ?", (player_id,))
        return preferences_from_row(row)

    async def save_preferences(self, player_id: int, prefs: Preferences, now: datetime) -> None:
        quiet = prefs.quiet_hours
        async with self.db.transaction() as tx:
            await tx.execute(
                """
                INSERT INTO preferences (player_id, allow_promotions, promotions_chosen_at, preferred_channel,
                                         quiet_start, quiet_end, timezone, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (player_id) DO UPDATE SET
                    allow_promotions = excluded.allow_promotions,
                    -- When the answer last changed: kept while it stays the same, cleared if unanswered.
                    promotions_chosen_at = CASE
                        WHEN excluded.promotions_chosen_at IS NULL THEN NULL
                        WHEN preferences.promotions_chosen_at IS NULL
                          OR preferences.allow_promotions <> excluded.allow_promotions
                        THEN excluded.promotions_chosen_at
                        ELSE preferences.promotions_chosen_at END,
                    preferred_channel = excluded.preferred_channel,
                    quiet_start = excluded.quiet_start,
                    quiet_end = excluded.quiet_end,
                    timezone = excluded.timezone,
                    updated_at = excluded.updated_at
                """,
                (
                    player_id,
                    int(prefs.allow_promotions),
                    to_db_time(now) if prefs.promotions_chosen else None,
                    prefs.preferred_channel.value,
                    to_db_hhmm(quiet.start) if quiet else None,
                    to_db_hhmm(quiet.end) if quiet else None,
                    prefs.timezone,
                    to_db_time(now),
                ),
            )

    # -- recipient selection ----------------------------------------------------------------

    async def candidates(self, day: date, statuses: frozenset[PlayerStatus]) -> list[Candidate]:
        """Players with one of `statuses` on `day` who turned promotions on, with their verified channels."""
        wanted = sorted(s.value for s in statuses)
        marks = ",".join("?" * len(wanted))
        async with self.db.read() as tx:
            rows = await tx.fetchall(
                f"""
                SELECT p.id, p.discord_user_id, p.display_name, a.status,
                       pr.allow_promotions, pr.preferred_channel, pr.quiet_start, pr.quiet_end,
                       pr.timezone, pr.promotions_chosen_at,
                       (SELECT group_concat(l.channel) FROM channel_links l
                         WHERE l.player_id = p.id) AS channels
                FROM availability a
                JOIN players p ON p.id = a.player_id
                JOIN preferences pr ON pr.player_id = p.id AND pr.allow_promotions = 1
                WHERE a.date = ? AND a.status IN ({marks})
                """,  # noqa: S608 - only placeholders are interpolated
                (day.isoformat(), *wanted),
            )
        # Built positionally: this runs once per eligible player on every preview.
        by_value = {s.value: s for s in PlayerStatus}
        return [
            Candidate(
                player=Player(r[0], r[1], r[2]),
                status=by_value[r[3]],
                preferences=preferences_from_row(r),
                verified_channels=_channels(r[10]),
            )
            for r in rows
        ]

    async def not_opted_in(self, day: date, statuses: frozenset[PlayerStatus]) -> int:
        """How many players with one of `statuses` on `day` never chose whether to get promotions."""
        wanted = sorted(s.value for s in statuses)
        marks = ",".join("?" * len(wanted))
        async with self.db.read() as tx:
            row = await tx.fetchone(
                f"""
                SELECT count(*) AS n FROM availability a
                LEFT JOIN preferences pr ON pr.player_id = a.player_id
                WHERE a.date = ? AND a.status IN ({marks}) AND pr.promotions_chosen_at IS NULL
                """,  # noqa: S608 - only placeholders are interpolated
                (day.isoformat(), *wanted),
            )
        return int(row["n"]) if row else 0

    async def delivery_contexts(self, player_ids: list[int]) -> dict[int, DeliveryContext]:
        """Current preferences and encrypted addresses of the given players, in one query."""
        async with self.db.read() as tx:
            rows = await tx.fetchall(
                """
                SELECT p.id, p.discord_user_id, p.display_name, p.discord_dms_closed_at,
                       pr.allow_promotions, pr.preferred_channel, pr.quiet_start, pr.quiet_end,
                       pr.timezone, pr.promotions_chosen_at,
                       (SELECT address_encrypted FROM channel_links l
                         WHERE l.player_id = p.id AND l.channel = 'telegram') AS telegram,
                       (SELECT address_encrypted FROM channel_links l
                         WHERE l.player_id = p.id AND l.channel = 'signal') AS signal
                FROM json_each(?) ids
                JOIN players p ON p.id = ids.value
                LEFT JOIN preferences pr ON pr.player_id = p.id
                """,
                (json_ids(player_ids),),
            )
        return {
            r["id"]: DeliveryContext(
                player=player_from_row(r),
                preferences=preferences_from_row(r),
                encrypted_addresses={
                    ch: r[ch.value]
                    for ch in (Channel.TELEGRAM, Channel.SIGNAL)
                    if r[ch.value] is not None
                },
                discord_dms_closed=r["discord_dms_closed_at"] is not None,
            )
            for r in rows
        }


"""Players' Discord DM state: the DM channel Discord gave each of them and whether their DMs are closed.

Discord keeps a bot's DM channel with a user stable, so it is opened once and stored here (a restart
or the next campaign opens none again). A 50007 answer ("cannot send messages to this user") marks
the player's DMs closed; the fan-out skips Discord for them until the player next uses Rallypoint,
which clears the mark (`PlayerService`). Rows are keyed by Discord user id, the DM sender's address.
"""

from __future__ import annotations

from datetime import datetime

from storage.db import Database, to_db_time


class DiscordDMStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def channel_id(self, discord_user_id: int) -> int | None:
        """The stored DM channel with this user, if one was opened before."""
        async with self.db.read() as tx:
            row = await tx.fetchone(
                "SELECT discord_dm_channel_id FROM players WHERE discord_user_id = ?", (discord_user_id,)
            )
        return None if row is None or row[0] is None else int(row[0])

    async def channels(self) -> dict[int, int]:
        """Every stored DM channel: Discord user id → channel id (read once by the DM sender)."""
        async with self.db.read() as tx:
            rows = await tx.fetchall(
                "SELECT discord_user_id, discord_dm_channel_id FROM players WHERE discord_dm_channel_id IS NOT NULL"
            )
        return {int(r[0]): int(r[1]) for r in rows}

    async def remember_channel(self, discord_user_id: int, channel_id: int) -> bool:
        """Store the DM channel just opened; False when the user is no player (nothing to keep it on)."""
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE players SET discord_dm_channel_id = ? WHERE discord_user_id = ?",
                (channel_id, discord_user_id),
            )
        return changed > 0

    async def forget_channel(self, discord_user_id: int) -> None:
        """Drop a stored channel Discord no longer knows (the next send opens a new one)."""
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE players SET discord_dm_channel_id = NULL WHERE discord_user_id = ?", (discord_user_id,)
            )

    async def mark_closed(self, discord_user_id: int, now: datetime) -> bool:
        """Remember that Discord refused this user a DM (50007); False when the user is no player."""
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE players SET discord_dms_closed_at = ? WHERE discord_user_id = ?",
                (to_db_time(now), discord_user_id),
            )
        return changed > 0

    async def reopen(self, player_id: int) -> None:
        """Clear the closed mark: the player interacted, so Discord is tried again."""
        async with self.db.transaction() as tx:
            await tx.execute("UPDATE players SET discord_dms_closed_at = NULL WHERE id = ?", (player_id,))

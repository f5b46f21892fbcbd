-- 0006: keep each player's Discord DM channel (stable: opened once, not per message) and when Discord last refused them a DM (50007), so neither costs a request again.

ALTER TABLE players ADD COLUMN discord_dm_channel_id INTEGER;
-- Set on a 50007 answer; cleared when the player next uses Rallypoint. While set, Discord is skipped.
ALTER TABLE players ADD COLUMN discord_dms_closed_at TEXT;
-- A DM channel belongs to exactly one user.
CREATE UNIQUE INDEX players_by_dm_channel ON players (discord_dm_channel_id)
    WHERE discord_dm_channel_id IS NOT NULL;

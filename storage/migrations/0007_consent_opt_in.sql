-- 0007: consent is opt-in (promotions stay off until the player turns them on) and quiet hours need a start that is not their end.

-- SQLite cannot change a column's default or add a CHECK to a table: the table is rebuilt.
CREATE TABLE preferences_v4 (
    player_id            INTEGER PRIMARY KEY REFERENCES players(id) ON DELETE CASCADE,
    allow_promotions     INTEGER NOT NULL DEFAULT 0 CHECK (allow_promotions IN (0, 1)),
    -- When the player's answer last changed, yes or no (NULL: never answered; they are offered "Ping me tonight").
    promotions_chosen_at TEXT,
    preferred_channel    TEXT    NOT NULL DEFAULT 'any'
                         CHECK (preferred_channel IN ('any', 'discord', 'telegram', 'signal')),
    quiet_start          TEXT,
    quiet_end            TEXT,
    timezone             TEXT,
    updated_at           TEXT    NOT NULL,
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL)),
    -- A window from 22:00 to 22:00 silences nobody: it is refused, never stored.
    CHECK (quiet_start IS NULL OR quiet_start <> quiet_end),
    -- Nobody is promoted to without having said yes.
    CHECK (allow_promotions = 0 OR promotions_chosen_at IS NOT NULL)
);

-- A stored "on" was the old default, indistinguishable from a choice: it becomes "not chosen yet".
-- A stored "off" was always the player's own choice and is kept as one. An empty quiet window is dropped.
INSERT INTO preferences_v4 (player_id, allow_promotions, promotions_chosen_at, preferred_channel, quiet_start,
                            quiet_end, timezone, updated_at)
SELECT player_id,
       0,
       CASE WHEN allow_promotions = 0 THEN updated_at END,
       preferred_channel,
       CASE WHEN quiet_start <> quiet_end THEN quiet_start END,
       CASE WHEN quiet_start <> quiet_end THEN quiet_end END,
       timezone,
       updated_at
FROM preferences;

DROP TABLE preferences;
ALTER TABLE preferences_v4 RENAME TO preferences;

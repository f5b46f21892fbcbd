-- 0009: RSVP answers from the messages themselves (an audit, the last answer counts) and "we need N more" (who was asked, once per player and day).

-- Every answer is a row, like the send log: which campaign, who, what, on which channel, when.
CREATE TABLE rsvps (
    id          INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    player_id   INTEGER NOT NULL REFERENCES players(id),
    answer      TEXT    NOT NULL CHECK (answer IN ('in', 'late', 'out')),
    channel     TEXT    NOT NULL CHECK (channel IN ('discord', 'telegram', 'signal')),
    at          TEXT    NOT NULL
);
-- The current answer of a player is their newest row.
CREATE INDEX rsvps_by_campaign_player ON rsvps (campaign_id, player_id, id);

-- Each "we need N more" call: by whom, how many were wanted.
CREATE TABLE needs (
    id          INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    player_id   INTEGER NOT NULL REFERENCES players(id),
    count       INTEGER NOT NULL CHECK (count >= 1),
    asked       INTEGER NOT NULL CHECK (asked >= 0),
    created_at  TEXT    NOT NULL
);
CREATE INDEX needs_by_campaign ON needs (campaign_id, id);

-- The players a "need" asked (outside the snapshot), with the channel chosen for them then. A
-- player is asked at most once per day, whichever campaign asks: `campaign_date` makes that a
-- constraint (the ledger key PROMOTE:NEED:<date> keeps the message itself to one as well).
CREATE TABLE need_recipients (
    campaign_id      INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    player_id        INTEGER NOT NULL REFERENCES players(id),
    need_id          INTEGER NOT NULL REFERENCES needs(id) ON DELETE CASCADE,
    campaign_date    TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    selected_channel TEXT    NOT NULL,
    PRIMARY KEY (campaign_id, player_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX need_recipients_once_a_day ON need_recipients (player_id, campaign_date);

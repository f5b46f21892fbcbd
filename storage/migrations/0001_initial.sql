-- 0001: the initial schema: players, availability, preferences, links, permissions, campaigns, jobs, ledger, send log.

CREATE TABLE players (
    id              INTEGER PRIMARY KEY,
    discord_user_id INTEGER NOT NULL UNIQUE,
    display_name    TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL
);

-- One entry per player per date.
CREATE TABLE availability (
    player_id  INTEGER NOT NULL REFERENCES players(id) ON DELETE CASCADE,
    date       TEXT    NOT NULL,
    status     TEXT    NOT NULL CHECK (status IN ('LOOKING', 'AVAILABLE', 'MAYBE', 'NOT_PLAYING')),
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (player_id, date)
) WITHOUT ROWID;
CREATE INDEX availability_by_date_status ON availability (date, status, player_id);

CREATE TABLE preferences (
    player_id         INTEGER PRIMARY KEY REFERENCES players(id) ON DELETE CASCADE,
    allow_promotions  INTEGER NOT NULL DEFAULT 1 CHECK (allow_promotions IN (0, 1)),
    preferred_channel TEXT    NOT NULL DEFAULT 'any'
                      CHECK (preferred_channel IN ('any', 'discord', 'telegram', 'signal')),
    quiet_start       TEXT,
    quiet_end         TEXT,
    timezone          TEXT,
    updated_at        TEXT    NOT NULL,
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
);

-- Verified Telegram / Signal addresses. The address is Fernet-encrypted; address_hash is a keyed
-- hash so that an incoming chat can be matched to a player without decrypting every row.
CREATE TABLE channel_links (
    player_id         INTEGER NOT NULL REFERENCES players(id) ON DELETE CASCADE,
    channel           TEXT    NOT NULL CHECK (channel IN ('telegram', 'signal')),
    address_encrypted TEXT    NOT NULL,
    address_hash      TEXT    NOT NULL,
    verified_at       TEXT    NOT NULL,
    PRIMARY KEY (player_id, channel)
) WITHOUT ROWID;
CREATE UNIQUE INDEX channel_links_by_address ON channel_links (channel, address_hash);

CREATE TABLE permissions (
    discord_user_id INTEGER PRIMARY KEY,
    tier            TEXT NOT NULL CHECK (tier IN ('user', 'promoter', 'admin', 'root')),
    granted_at      TEXT NOT NULL
);

CREATE TABLE campaigns (
    id                  INTEGER PRIMARY KEY,
    campaign_date       TEXT    NOT NULL,
    initiator_player_id INTEGER NOT NULL REFERENCES players(id),
    status              TEXT    NOT NULL CHECK (status IN
                        ('scheduled', 'running', 'sent', 'partial', 'failed', 'followup_sent', 'cancelled')),
    dry_run             INTEGER NOT NULL CHECK (dry_run IN (0, 1)),
    -- 1 when the global cooldown was on at creation: at most one such campaign per date.
    global_slot         INTEGER CHECK (global_slot IS NULL OR global_slot = 1),
    include_available   INTEGER NOT NULL,
    include_maybe       INTEGER NOT NULL,
    timezone            TEXT    NOT NULL,
    recipient_count     INTEGER NOT NULL,
    count_discord       INTEGER NOT NULL,
    count_telegram      INTEGER NOT NULL,
    count_signal        INTEGER NOT NULL,
    created_at          TEXT    NOT NULL,
    cancelled_at        TEXT
);
-- Rule 6 lives here, not in an if statement: concurrent creates yield exactly one campaign.
CREATE UNIQUE INDEX one_campaign_per_promoter_per_day
    ON campaigns (initiator_player_id, campaign_date)
    WHERE dry_run = 0 AND status <> 'cancelled';
CREATE UNIQUE INDEX one_campaign_per_day_with_global_cooldown
    ON campaigns (campaign_date)
    WHERE dry_run = 0 AND global_slot = 1 AND status <> 'cancelled';
CREATE INDEX campaigns_by_date ON campaigns (campaign_date, dry_run, id);

-- The recipient snapshot taken at creation (never served by the API).
CREATE TABLE campaign_recipients (
    campaign_id      INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    player_id        INTEGER NOT NULL REFERENCES players(id),
    status           TEXT    NOT NULL,
    selected_channel TEXT    NOT NULL,
    PRIMARY KEY (campaign_id, player_id)
) WITHOUT ROWID;

CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    campaign_id  INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    job_type     TEXT    NOT NULL,
    seq          INTEGER NOT NULL,
    run_at       TEXT    NOT NULL,
    due_at       TEXT    NOT NULL,   -- the original due time; run_at moves on job-level retries
    status       TEXT    NOT NULL CHECK (status IN ('pending', 'running', 'sent', 'skipped', 'failed', 'cancelled')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    lease_owner  TEXT,
    lease_until  TEXT,
    last_error   TEXT,
    started_at   TEXT,
    finished_at  TEXT,
    UNIQUE (campaign_id, job_type)
);
CREATE INDEX jobs_pending_by_time ON jobs (run_at) WHERE status = 'pending';
CREATE INDEX jobs_running_by_lease ON jobs (lease_until) WHERE status = 'running';

-- The delivery ledger: a player receives at most one message per key, whatever the channel
-- and whichever campaign. state 'claimed' with no outcome after a crash is ambiguous.
CREATE TABLE ledger (
    player_id           INTEGER NOT NULL REFERENCES players(id),
    key                 TEXT    NOT NULL,
    campaign_id         INTEGER NOT NULL REFERENCES campaigns(id),
    job_id              INTEGER NOT NULL REFERENCES jobs(id),
    state               TEXT    NOT NULL CHECK (state IN ('claimed', 'sent', 'skipped', 'failed', 'unknown')),
    channel             TEXT,
    provider_message_id TEXT,
    claimed_at          TEXT    NOT NULL,
    finished_at         TEXT,
    PRIMARY KEY (player_id, key)
) WITHOUT ROWID;
CREATE INDEX ledger_by_job ON ledger (job_id, state);

-- Posts that are not to a player (the voice-check summary), keyed by their target.
CREATE TABLE post_ledger (
    key                 TEXT PRIMARY KEY,
    campaign_id         INTEGER NOT NULL REFERENCES campaigns(id),
    state               TEXT NOT NULL CHECK (state IN ('claimed', 'sent', 'failed', 'unknown')),
    provider_message_id TEXT,
    claimed_at          TEXT NOT NULL,
    finished_at         TEXT
);

-- Every send attempt (rule 9). `final` marks the row that holds the outcome of its
-- (job, player) pair; the status counts read only those.
CREATE TABLE send_log (
    id                  INTEGER PRIMARY KEY,
    at                  TEXT    NOT NULL,
    campaign_id         INTEGER NOT NULL REFERENCES campaigns(id),
    job_id              INTEGER NOT NULL REFERENCES jobs(id),
    job_type            TEXT    NOT NULL,
    player_id           INTEGER REFERENCES players(id),
    channel             TEXT    NOT NULL,
    status              TEXT    NOT NULL CHECK (status IN ('sent', 'skipped', 'failed', 'unknown')),
    reason              TEXT    NOT NULL DEFAULT '',
    provider_message_id TEXT,
    final               INTEGER NOT NULL DEFAULT 0 CHECK (final IN (0, 1))
);
CREATE INDEX send_log_by_campaign ON send_log (campaign_id, final, status);
CREATE UNIQUE INDEX send_log_one_final_per_pair ON send_log (job_id, player_id)
    WHERE final = 1 AND player_id IS NOT NULL;

-- 0011: standing weekly sessions, each decided per date by a durable `standing_decision` job that belongs to no campaign.

CREATE TABLE standing_sessions (
    id                INTEGER PRIMARY KEY,
    weekday           TEXT    NOT NULL CHECK (weekday IN ('mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun')),
    -- Local wall-clock time in the promotion timezone (HH:MM).
    start_time        TEXT    NOT NULL
                      CHECK (length(start_time) = 5 AND start_time GLOB '[0-2][0-9]:[0-5][0-9]' AND start_time <= '23:59'),
    quorum            INTEGER NOT NULL CHECK (quorum BETWEEN 1 AND 1000),
    include_available INTEGER NOT NULL CHECK (include_available IN (0, 1)),
    include_maybe     INTEGER NOT NULL CHECK (include_maybe IN (0, 1)),
    title             TEXT    CHECK (title IS NULL OR length(title) BETWEEN 1 AND 100),
    creator_player_id INTEGER NOT NULL REFERENCES players(id),
    created_at        TEXT    NOT NULL,
    -- Removed sessions are kept: the campaigns they created and their decisions still name them.
    removed_at        TEXT
);
-- Two sessions on the same weekday at the same time would compete for one evening.
CREATE UNIQUE INDEX one_standing_session_per_slot
    ON standing_sessions (weekday, start_time) WHERE removed_at IS NULL;

ALTER TABLE campaigns ADD COLUMN standing_session_id INTEGER REFERENCES standing_sessions(id);
-- A session creates at most one campaign per date: a decision run again after a crash finds it.
CREATE UNIQUE INDEX one_campaign_per_standing_session_per_day
    ON campaigns (standing_session_id, campaign_date) WHERE standing_session_id IS NOT NULL;

-- A job with no campaign (a standing decision) needs jobs.campaign_id nullable, and SQLite changes a
-- column only by rebuilding the table. The ledger and the send log refer to jobs: their references are
-- checked at COMMIT, once every job row is back under the same id.
PRAGMA defer_foreign_keys = ON;
CREATE TEMP TABLE jobs_before AS SELECT * FROM jobs;
DROP TABLE jobs;
CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    -- NULL only for a standing decision: it decides whether a campaign is created at all.
    campaign_id  INTEGER REFERENCES campaigns(id) ON DELETE CASCADE,
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
    UNIQUE (campaign_id, job_type),
    CHECK ((campaign_id IS NULL) = (job_type = 'standing_decision'))
);
INSERT INTO jobs (id, campaign_id, job_type, seq, run_at, due_at, status, attempts, max_attempts, lease_owner,
                  lease_until, last_error, started_at, finished_at)
SELECT id, campaign_id, job_type, seq, run_at, due_at, status, attempts, max_attempts, lease_owner,
       lease_until, last_error, started_at, finished_at
FROM jobs_before;
DROP TABLE jobs_before;
CREATE INDEX jobs_pending_by_time ON jobs (run_at) WHERE status = 'pending';
CREATE INDEX jobs_running_by_lease ON jobs (lease_until) WHERE status = 'running';

-- One decision per session and date, whatever restarts in between: the job is created ahead with
-- this row, and the outcome is written once (a run after a crash finds it and does nothing again).
CREATE TABLE standing_decisions (
    job_id       INTEGER PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    session_id   INTEGER NOT NULL REFERENCES standing_sessions(id),
    session_date TEXT    NOT NULL,
    outcome      TEXT    CHECK (outcome IN ('created', 'below_quorum', 'refused', 'taken', 'too_late', 'failed')),
    eligible     INTEGER,
    campaign_id  INTEGER REFERENCES campaigns(id),
    detail       TEXT    NOT NULL DEFAULT '',
    decided_at   TEXT,
    UNIQUE (session_id, session_date),
    CHECK ((outcome IS NULL) = (decided_at IS NULL))
);

-- The note a decision below quorum posts is a post of no campaign: the post ledger (once per key)
-- and the send log (every attempt) take rows without one. Nothing refers to either table.
CREATE TEMP TABLE post_ledger_before AS SELECT * FROM post_ledger;
DROP TABLE post_ledger;
CREATE TABLE post_ledger (
    key                 TEXT PRIMARY KEY,
    campaign_id         INTEGER REFERENCES campaigns(id),  -- NULL: a standing decision's note
    state               TEXT NOT NULL CHECK (state IN ('claimed', 'sent', 'failed', 'unknown')),
    provider_message_id TEXT,
    claimed_at          TEXT NOT NULL,
    finished_at         TEXT
);
INSERT INTO post_ledger (key, campaign_id, state, provider_message_id, claimed_at, finished_at)
SELECT key, campaign_id, state, provider_message_id, claimed_at, finished_at FROM post_ledger_before;
DROP TABLE post_ledger_before;

CREATE TEMP TABLE send_log_before AS SELECT * FROM send_log;
DROP TABLE send_log;
CREATE TABLE send_log (
    id                  INTEGER PRIMARY KEY,
    at                  TEXT    NOT NULL,
    campaign_id         INTEGER REFERENCES campaigns(id),  -- NULL: a standing decision's note
    job_id              INTEGER NOT NULL REFERENCES jobs(id),
    job_type            TEXT    NOT NULL,
    player_id           INTEGER REFERENCES players(id),
    channel             TEXT    NOT NULL,
    status              TEXT    NOT NULL CHECK (status IN ('sent', 'skipped', 'failed', 'unknown')),
    reason              TEXT    NOT NULL DEFAULT '',
    provider_message_id TEXT,
    final               INTEGER NOT NULL DEFAULT 0 CHECK (final IN (0, 1)),
    CHECK (campaign_id IS NOT NULL OR player_id IS NULL)
);
INSERT INTO send_log (id, at, campaign_id, job_id, job_type, player_id, channel, status, reason,
                      provider_message_id, final)
SELECT id, at, campaign_id, job_id, job_type, player_id, channel, status, reason, provider_message_id, final
FROM send_log_before;
DROP TABLE send_log_before;
CREATE INDEX send_log_by_campaign ON send_log (campaign_id, final, status);
CREATE UNIQUE INDEX send_log_one_final_per_pair ON send_log (job_id, player_id)
    WHERE final = 1 AND player_id IS NOT NULL;

-- 0002: pending Telegram link tokens and Signal verification codes, stored hashed, for account linking.

-- A single-use deep-link token. Only its SHA-256 is kept: a database leak must not let anyone link
-- their own Telegram chat to somebody else's player.
CREATE TABLE telegram_link_tokens (
    id         INTEGER PRIMARY KEY,
    player_id  INTEGER NOT NULL REFERENCES players(id) ON DELETE CASCADE,
    token_hash TEXT    NOT NULL UNIQUE,
    created_at TEXT    NOT NULL,
    expires_at TEXT    NOT NULL,
    used_at    TEXT,
    CHECK (expires_at > created_at)
);
CREATE INDEX telegram_link_tokens_by_player ON telegram_link_tokens (player_id, created_at);
CREATE INDEX telegram_link_tokens_by_age ON telegram_link_tokens (created_at);

-- One code sent to a Signal number. The number is Fernet-encrypted (number_hash is the keyed hash
-- used to throttle codes per number); the code is kept only as an HMAC under the contact key with a
-- per-row salt, because six digits are too few to survive a plain hash. cancelled_at marks a code
-- that could not be sent.
CREATE TABLE signal_verifications (
    id               INTEGER PRIMARY KEY,
    player_id        INTEGER NOT NULL REFERENCES players(id) ON DELETE CASCADE,
    number_encrypted TEXT    NOT NULL,
    number_hash      TEXT    NOT NULL,
    code_salt        TEXT    NOT NULL,
    code_hash        TEXT    NOT NULL,
    created_at       TEXT    NOT NULL,
    expires_at       TEXT    NOT NULL,
    failed_attempts  INTEGER NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    locked           INTEGER NOT NULL DEFAULT 0 CHECK (locked IN (0, 1)),
    used_at          TEXT,
    cancelled_at     TEXT,
    CHECK (expires_at > created_at)
);
CREATE INDEX signal_verifications_by_player ON signal_verifications (player_id, id);
CREATE INDEX signal_verifications_by_number ON signal_verifications (number_hash, created_at);
CREATE INDEX signal_verifications_by_age ON signal_verifications (created_at);

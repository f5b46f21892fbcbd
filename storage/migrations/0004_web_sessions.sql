-- 0004: browser sessions kept server-side, so that logging out (or expiry) ends a session whatever its cookie says.

-- The cookie carries a random session id; only its SHA-256 is stored, so a copy of the database
-- holds no cookie that would work. Logout deletes the row; rows past expires_at are purged.
CREATE TABLE web_sessions (
    id_hash         TEXT    PRIMARY KEY,
    discord_user_id INTEGER NOT NULL,
    created_at      TEXT    NOT NULL,
    expires_at      TEXT    NOT NULL,
    CHECK (expires_at > created_at)
) WITHOUT ROWID;
CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_at);

-- 0010: a campaign keeps the start time it was scheduled for and an optional title, which its messages, summary and status show.

-- The local wall-clock start as asked (HH:MM); NULL for campaigns scheduled before it was kept.
ALTER TABLE campaigns ADD COLUMN start_time TEXT
    CHECK (start_time IS NULL
           OR (length(start_time) = 5 AND start_time GLOB '[0-2][0-9]:[0-5][0-9]' AND start_time <= '23:59'));
-- Shown as typed, escaped where it is shown; the services refuse line breaks and control characters.
ALTER TABLE campaigns ADD COLUMN title TEXT CHECK (title IS NULL OR length(title) BETWEEN 1 AND 100);

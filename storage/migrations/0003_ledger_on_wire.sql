-- 0003: mark when a send without upstream dedup is handed to the platform, so a crash before that moment is resent, not written off.
ALTER TABLE ledger ADD COLUMN on_wire_at TEXT;

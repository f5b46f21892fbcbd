-- 0005: a Telegram link opened in a chat already linked to another player waits for that chat's confirmation.

-- The keyed hash of the chat asked to confirm moving its link to the token's player; the token is
-- spent only when that chat answers (either way).
ALTER TABLE telegram_link_tokens ADD COLUMN confirm_chat_hash TEXT;

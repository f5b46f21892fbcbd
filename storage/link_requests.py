"""Pending account links: single-use Telegram tokens and Signal verification codes.

Nothing here holds a secret in the clear: tokens and codes arrive hashed, numbers encrypted. The
checks that must not race (the request throttle, single use, the wrong-code counter) are each one
transaction or one conditional UPDATE, so concurrent requests cannot slip past them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from services.models import SignalCodeLimits, SignalVerification, TelegramLinkToken, Throttle, Throttled
from storage.db import Database, Transaction, from_db_time, to_db_time


def _opt_time(value: str | None) -> datetime | None:
    return None if value is None else from_db_time(value)


def _token(row: sqlite3.Row) -> TelegramLinkToken:
    return TelegramLinkToken(
        id=int(row["id"]),
        player_id=int(row["player_id"]),
        token_hash=str(row["token_hash"]),
        created_at=from_db_time(row["created_at"]),
        expires_at=from_db_time(row["expires_at"]),
        used_at=_opt_time(row["used_at"]),
    )


def _verification(row: sqlite3.Row) -> SignalVerification:
    return SignalVerification(
        id=int(row["id"]),
        player_id=int(row["player_id"]),
        number_encrypted=str(row["number_encrypted"]),
        number_hash=str(row["number_hash"]),
        code_salt=str(row["code_salt"]),
        code_hash=str(row["code_hash"]),
        created_at=from_db_time(row["created_at"]),
        expires_at=from_db_time(row["expires_at"]),
        failed_attempts=int(row["failed_attempts"]),
        locked=bool(row["locked"]),
        used_at=_opt_time(row["used_at"]),
        cancelled_at=_opt_time(row["cancelled_at"]),
    )


async def _throttled(
    tx: Transaction, sql: str, params: tuple[object, ...], now: datetime, throttle: Throttle
) -> Throttled | None:
    """Refuse when `sql` (creation times inside the window, oldest first) counts `limit` or more."""
    rows = await tx.fetchall(sql, params)
    if len(rows) < throttle.limit:
        return None
    # The request that must age out of the window before the count drops below the limit.
    oldest_blocking = from_db_time(rows[len(rows) - throttle.limit]["created_at"])
    return Throttled(max(now, oldest_blocking + throttle.window))


class LinkRequestStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- Telegram ------------------------------------------------------------------------------

    async def create_telegram_token(
        self,
        player_id: int,
        token_hash: str,
        *,
        now: datetime,
        expires_at: datetime,
        throttle: Throttle,
    ) -> TelegramLinkToken | Throttled:
        """Store a new token unless the player already asked for `throttle.limit` in the window."""
        since = to_db_time(now - throttle.window)
        async with self.db.transaction() as tx:
            refused = await _throttled(
                tx,
                "SELECT created_at FROM telegram_link_tokens WHERE player_id = ? AND created_at > ?"
                " ORDER BY created_at",
                (player_id, since),
                now,
                throttle,
            )
            if refused is not None:
                return refused
            row_id = await tx.insert(
                "INSERT INTO telegram_link_tokens (player_id, token_hash, created_at, expires_at)"
                " VALUES (?, ?, ?, ?)",
                (player_id, token_hash, to_db_time(now), to_db_time(expires_at)),
            )
            row = await tx.fetchone("SELECT * FROM telegram_link_tokens WHERE id = ?", (row_id,))
        if row is None:
            raise RuntimeError("the new link token vanished")
        return _token(row)

    async def use_telegram_token(self, token_hash: str, now: datetime) -> int | None:
        """Mark a valid token used and return its player; None if unknown, used or expired."""
        async with self.db.transaction() as tx:
            row = await tx.fetchone(
                """
                UPDATE telegram_link_tokens SET used_at = :now
                WHERE token_hash = :hash AND used_at IS NULL AND expires_at > :now
                RETURNING player_id
                """,
                {"now": to_db_time(now), "hash": token_hash},
            )
        return int(row["player_id"]) if row is not None else None

    async def open_telegram_token(self, token_hash: str, now: datetime) -> TelegramLinkToken | None:
        """The token if it can still be used (unused, unexpired); it stays unused."""
        async with self.db.read() as tx:
            row = await tx.fetchone(
                "SELECT * FROM telegram_link_tokens WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?",
                (token_hash, to_db_time(now)),
            )
        return _token(row) if row is not None else None

    async def ask_telegram_confirmation(self, token_id: int, chat_hash: str, now: datetime) -> bool:
        """Hold an open token for the chat (its keyed hash) asked to confirm; False if no longer open."""
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                """
                UPDATE telegram_link_tokens SET confirm_chat_hash = :chat
                WHERE id = :id AND used_at IS NULL AND expires_at > :now
                """,
                {"chat": chat_hash, "id": token_id, "now": to_db_time(now)},
            )
        return changed > 0

    async def use_confirmed_telegram_token(
        self, token_id: int, chat_hashes: Sequence[str], now: datetime
    ) -> int | None:
        """Spend a token the chat (any of its hashes) was asked about; its player, or None if not open."""
        if not chat_hashes:
            return None
        marks = ",".join("?" * len(chat_hashes))
        async with self.db.transaction() as tx:
            row = await tx.fetchone(
                f"""
                UPDATE telegram_link_tokens SET used_at = ?
                WHERE id = ? AND confirm_chat_hash IN ({marks}) AND used_at IS NULL AND expires_at > ?
                RETURNING player_id
                """,  # noqa: S608 - placeholders only
                (to_db_time(now), token_id, *chat_hashes, to_db_time(now)),
            )
        return int(row["player_id"]) if row is not None else None

    async def telegram_token(self, token_hash: str) -> TelegramLinkToken | None:
        async with self.db.read() as tx:
            row = await tx.fetchone("SELECT * FROM telegram_link_tokens WHERE token_hash = ?", (token_hash,))
        return _token(row) if row is not None else None

    # -- Signal --------------------------------------------------------------------------------

    async def create_signal_verification(
        self,
        player_id: int,
        *,
        number_encrypted: str,
        number_hashes: Sequence[str],
        code_salt: str,
        code_hash: str,
        now: datetime,
        expires_at: datetime,
        limits: SignalCodeLimits,
    ) -> SignalVerification | Throttled:
        """Store a code attempt unless the player, the player and number, or the number is over its limit.

        `number_hashes` are the number's hashes under every configured key (the first, the primary
        one, is stored), so that codes sent before a key rotation still count for the number.
        """
        if not number_hashes:
            raise ValueError("number_hashes must not be empty")
        marks = ",".join("?" * len(number_hashes))
        by_number = f"number_hash IN ({marks})"
        checks: list[tuple[str, tuple[object, ...], Throttle]] = [
            ("player_id = ?", (player_id,), limits.per_player),
            (f"player_id = ? AND {by_number}", (player_id, *number_hashes), limits.per_player_and_number),
            (by_number, tuple(number_hashes), limits.per_number),
        ]
        async with self.db.transaction() as tx:
            refusals = [
                await _throttled(
                    tx,
                    f"SELECT created_at FROM signal_verifications WHERE {where} AND created_at > ?"  # noqa: S608
                    " ORDER BY created_at",
                    (*params, to_db_time(now - throttle.window)),
                    now,
                    throttle,
                )
                for where, params, throttle in checks
            ]
            refused = [r for r in refusals if r is not None]
            if refused:
                return max(refused, key=lambda r: r.retry_at)
            row_id = await tx.insert(
                """
                INSERT INTO signal_verifications
                    (player_id, number_encrypted, number_hash, code_salt, code_hash, created_at, expires_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
                (
                    player_id,
                    number_encrypted,
                    number_hashes[0],
                    code_salt,
                    code_hash,
                    to_db_time(now),
                    to_db_time(expires_at),
                ),
            )
            row = await tx.fetchone("SELECT * FROM signal_verifications WHERE id = ?", (row_id,))
        if row is None:
            raise RuntimeError("the new verification vanished")
        return _verification(row)

    async def latest_signal_verification(self, player_id: int) -> SignalVerification | None:
        """The player's newest attempt, whatever its state: a newer request supersedes older codes."""
        async with self.db.read() as tx:
            row = await tx.fetchone(
                "SELECT * FROM signal_verifications WHERE player_id = ? ORDER BY id DESC LIMIT 1",
                (player_id,),
            )
        return _verification(row) if row is not None else None

    async def record_wrong_code(self, verification_id: int, max_attempts: int) -> SignalVerification | None:
        """Count a wrong code, locking the attempt at `max_attempts`; None if it was no longer open.

        A withdrawn attempt counts wrong codes too: to whoever types them it looks like any other.
        """
        async with self.db.transaction() as tx:
            row = await tx.fetchone(
                """
                UPDATE signal_verifications
                SET failed_attempts = failed_attempts + 1,
                    locked = CASE WHEN failed_attempts + 1 >= :max THEN 1 ELSE 0 END
                WHERE id = :id AND locked = 0 AND used_at IS NULL
                RETURNING *
                """,
                {"id": verification_id, "max": max_attempts},
            )
        return _verification(row) if row is not None else None

    async def use_signal_verification(self, verification_id: int, now: datetime) -> bool:
        """Mark an open, unexpired attempt used; False if it was locked, used, cancelled or expired."""
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                """
                UPDATE signal_verifications SET used_at = :now
                WHERE id = :id AND locked = 0 AND used_at IS NULL AND cancelled_at IS NULL
                  AND expires_at > :now
                """,
                {"id": verification_id, "now": to_db_time(now)},
            )
        return changed > 0

    async def cancel_signal_verification(self, verification_id: int, now: datetime) -> None:
        """Withdraw an attempt whose code could not be sent; it still counts for the throttle."""
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE signal_verifications SET cancelled_at = ? WHERE id = ? AND cancelled_at IS NULL",
                (to_db_time(now), verification_id),
            )

    async def signal_numbers(self) -> list[tuple[int, str]]:
        """Every attempt's (id, encrypted number), for key rotation."""
        async with self.db.read() as tx:
            rows = await tx.fetchall("SELECT id, number_encrypted FROM signal_verifications ORDER BY id")
        return [(int(r["id"]), str(r["number_encrypted"])) for r in rows]

    async def rewrite_signal_numbers(self, rows: Sequence[tuple[int, str, str]]) -> None:
        """Replace (id, encrypted number, number hash) of attempts in one transaction."""
        async with self.db.transaction() as tx:
            await tx.executemany(
                "UPDATE signal_verifications SET number_encrypted = ?, number_hash = ? WHERE id = ?",
                [(enc, h, vid) for vid, enc, h in rows],
            )

    async def purge(self, before: datetime) -> int:
        """Delete tokens and attempts created before `before`; return how many went."""
        cutoff = to_db_time(before)
        async with self.db.transaction() as tx:
            tokens = await tx.execute("DELETE FROM telegram_link_tokens WHERE created_at < ?", (cutoff,))
            codes = await tx.execute("DELETE FROM signal_verifications WHERE created_at < ?", (cutoff,))
        return tokens + codes

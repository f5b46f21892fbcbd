"""The delivery ledger (one row per player and key) and the send log (one row per attempt)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from services.models import (
    Attempt,
    Channel,
    DeliveryOutcome,
    DeliveryStatus,
    JobType,
    LedgerEntry,
    LedgerState,
    PostClaim,
    SendLogEntry,
)
from storage.db import Database, from_db_time, json_ids, to_db_time


class LedgerStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(
        self,
        *,
        key: str,
        campaign_id: int,
        job_id: int,
        first_channels: dict[int, Channel],
        now: datetime,
    ) -> set[int]:
        """Claim (player, key) rows before sending; return the players this job may now send to.

        A row left `skipped` or `failed` by another job is claimed again (nothing reached the
        player for that key); a row that is `sent`, `unknown` or in flight is never taken over.
        """
        if not first_channels:
            return set()
        async with self.db.transaction() as tx:
            rows = await tx.fetchall(
                _UPSERT_LEDGER,
                {
                    "key": key,
                    "campaign": campaign_id,
                    "job": job_id,
                    "now": to_db_time(now),
                    "pairs": "[" + ",".join(
                        f'[{int(p)},"{c.value}"]' for p, c in first_channels.items()
                    ) + "]",
                },
            )
        return {r["player_id"] for r in rows}

    async def decide(
        self,
        *,
        key: str,
        campaign_id: int,
        job_id: int,
        job_type: JobType,
        decided: Sequence[DeliveryOutcome],
        resolved: Sequence[DeliveryOutcome],
        notes: Sequence[Attempt],
        now: datetime,
    ) -> None:
        """Record outcomes reached without a send, in one transaction.

        `decided` rows are new (skips): inserted with their final state under the same conflict
        rule as a claim, so that a crash can never leave a skip looking like an interrupted send.
        `resolved` rows are this job's own interrupted claims, now given an outcome.
        """
        at = to_db_time(now)
        async with self.db.transaction() as tx:
            inserted: set[int] = set()
            if decided:
                rows = await tx.fetchall(
                    _UPSERT_LEDGER,
                    {
                        "key": key, "campaign": campaign_id, "job": job_id, "now": at,
                        "pairs": "[" + ",".join(
                            f'[{int(o.player_id)},"{o.channel.value}","{o.status.value}"]' for o in decided
                        ) + "]",
                    },
                )
                inserted = {r["player_id"] for r in rows}
            if resolved:
                await tx.executemany(
                    """
                    UPDATE ledger SET state = ?, channel = ?, finished_at = ?
                    WHERE player_id = ? AND key = ? AND job_id = ? AND state = 'claimed'
                    """,
                    [(o.status.value, o.channel.value, at, o.player_id, key, job_id) for o in resolved],
                )
            attempts = [a for o in decided if o.player_id in inserted for a in o.attempts]
            attempts += [a for o in resolved for a in o.attempts]
            attempts += list(notes)
            await tx.executemany(
                _INSERT_LOG, [_log_row(at, campaign_id, job_id, job_type, a) for a in attempts]
            )

    async def entries(self, key: str, player_ids: Sequence[int]) -> dict[int, LedgerEntry]:
        if not player_ids:
            return {}
        async with self.db.read() as tx:
            rows = await tx.fetchall(
                """
                SELECT l.* FROM json_each(?) ids
                JOIN ledger l ON l.player_id = ids.value AND l.key = ?
                """,
                (json_ids(list(player_ids)), key),
            )
        return {
            r["player_id"]: LedgerEntry(
                r["player_id"],
                r["key"],
                r["campaign_id"],
                r["job_id"],
                LedgerState(r["state"]),
                Channel(r["channel"]) if r["channel"] else None,
                r["on_wire_at"] is not None,
            )
            for r in rows
        }

    async def mark_on_wire(self, key: str, player_id: int, channel: Channel, now: datetime) -> None:
        """Record that a send on `channel` (no upstream dedup) is being handed to the platform."""
        async with self.db.transaction() as tx:
            await tx.execute(
                """
                UPDATE ledger SET channel = ?, on_wire_at = coalesce(on_wire_at, ?)
                WHERE player_id = ? AND key = ? AND state = 'claimed'
                """,
                (channel.value, to_db_time(now), player_id, key),
            )

    async def note_channel(self, key: str, player_id: int, channel: Channel) -> None:
        """Record the channel now in flight, so that a crash-ambiguous send is judged rightly."""
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE ledger SET channel = ? WHERE player_id = ? AND key = ? AND state = 'claimed'",
                (channel.value, player_id, key),
            )

    async def record(
        self,
        *,
        key: str | None,
        campaign_id: int | None,
        job_id: int,
        job_type: JobType,
        outcomes: Sequence[DeliveryOutcome],
        extra_attempts: Sequence[Attempt] = (),
        now: datetime,
    ) -> None:
        """Write outcomes to the ledger and every attempt to the send log, in one transaction."""
        at = to_db_time(now)
        log_rows = [
            _log_row(at, campaign_id, job_id, job_type, a)
            for a in [*(a for o in outcomes for a in o.attempts), *extra_attempts]
        ]
        async with self.db.transaction() as tx:
            if key is not None and outcomes:
                await tx.executemany(
                    """
                    UPDATE ledger SET state = ?, channel = ?, provider_message_id = ?, finished_at = ?
                    WHERE player_id = ? AND key = ? AND job_id = ?
                    """,
                    [
                        (o.status.value, o.channel.value, o.provider_message_id, at, o.player_id,
                         key, job_id)
                        for o in outcomes
                    ],
                )
            if log_rows:
                await tx.executemany(_INSERT_LOG, log_rows)

    # -- posts that are not to a player (the summary, a standing session's note) --------------

    async def claim_post(self, key: str, campaign_id: int | None, now: datetime) -> PostClaim | None:
        """Claim a post key; return None if newly claimed, else who holds it and how far they got.

        `campaign_id` None: a post of no campaign (a standing decision's note)."""
        async with self.db.transaction() as tx:
            row = await tx.fetchone(
                """
                INSERT INTO post_ledger (key, campaign_id, state, claimed_at)
                VALUES (?, ?, 'claimed', ?)
                ON CONFLICT (key) DO NOTHING RETURNING key
                """,
                (key, campaign_id, to_db_time(now)),
            )
            if row is not None:
                return None
            existing = await tx.fetchone("SELECT campaign_id, state FROM post_ledger WHERE key = ?", (key,))
        if existing is None:
            raise RuntimeError("row vanished inside its own transaction")
        return PostClaim(existing["campaign_id"], LedgerState(existing["state"]))

    async def record_post(
        self,
        key: str,
        *,
        state: LedgerState,
        provider_message_id: str | None,
        campaign_id: int | None,
        job_id: int,
        job_type: JobType,
        attempts: Sequence[Attempt],
        now: datetime,
    ) -> None:
        at = to_db_time(now)
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE post_ledger SET state = ?, provider_message_id = ?, finished_at = ? WHERE key = ?",
                (state.value, provider_message_id, at, key),
            )
            await tx.executemany(
                """
                INSERT INTO send_log (at, campaign_id, job_id, job_type, player_id, channel, status,
                                      reason, provider_message_id, final)
                VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, 0)
                """,
                [
                    (at, campaign_id, job_id, job_type.value, a.channel.value,
                     a.status.value, a.reason, a.provider_message_id)
                    for a in attempts
                ],
            )

    async def final_counts(self, job_id: int) -> dict[DeliveryStatus, int]:
        """Final outcomes of a job's (player) deliveries, whichever run recorded them."""
        async with self.db.read() as tx:
            rows = await tx.fetchall(
                """
                SELECT status, count(*) AS n FROM send_log
                WHERE job_id = ? AND final = 1 AND player_id IS NOT NULL GROUP BY status
                """,
                (job_id,),
            )
        counts = {s: 0 for s in DeliveryStatus}
        for r in rows:
            counts[DeliveryStatus(r["status"])] = r["n"]
        return counts

    async def send_log(self, campaign_id: int) -> list[SendLogEntry]:
        """The campaign's send log, oldest first (for the demo transcript and tests)."""
        async with self.db.read() as tx:
            rows = await tx.fetchall(
                "SELECT * FROM send_log WHERE campaign_id = ? ORDER BY id", (campaign_id,)
            )
        return [
            SendLogEntry(
                id=r["id"],
                at=from_db_time(r["at"]),
                campaign_id=r["campaign_id"],
                job_id=r["job_id"],
                job_type=JobType(r["job_type"]),
                player_id=r["player_id"],
                channel=Channel(r["channel"]),
                status=DeliveryStatus(r["status"]),
                reason=r["reason"],
                provider_message_id=r["provider_message_id"],
                final=bool(r["final"]),
            )
            for r in rows
        ]


# Claim (player, key) rows from a JSON list of [player_id, channel] (state 'claimed') or
# [player_id, channel, final state]. A row left `skipped` or `failed` by another job is taken
# again; `sent`, `unknown` and in-flight rows never are.
_UPSERT_LEDGER = """
    INSERT INTO ledger (player_id, key, campaign_id, job_id, state, channel, claimed_at, finished_at)
    SELECT json_extract(e.value, '$[0]'), :key, :campaign, :job,
           coalesce(json_extract(e.value, '$[2]'), 'claimed'), json_extract(e.value, '$[1]'), :now,
           CASE WHEN json_extract(e.value, '$[2]') IS NULL THEN NULL ELSE :now END
    FROM json_each(:pairs) e WHERE true
    ON CONFLICT (player_id, key) DO UPDATE SET
        campaign_id = excluded.campaign_id, job_id = excluded.job_id, state = excluded.state,
        channel = excluded.channel, provider_message_id = NULL, on_wire_at = NULL,
        claimed_at = excluded.claimed_at, finished_at = excluded.finished_at
    WHERE ledger.state IN ('skipped', 'failed') AND ledger.job_id <> excluded.job_id
    RETURNING player_id
"""

_INSERT_LOG = """
    INSERT INTO send_log (at, campaign_id, job_id, job_type, player_id, channel, status, reason,
                          provider_message_id, final)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (job_id, player_id) WHERE final = 1 AND player_id IS NOT NULL DO NOTHING
"""


def _log_row(
    at: str, campaign_id: int | None, job_id: int, job_type: JobType, a: Attempt
) -> tuple[object, ...]:
    return (at, campaign_id, job_id, job_type.value, a.player_id, a.channel.value, a.status.value,
            a.reason, a.provider_message_id, int(a.final))

"""RSVP answers (one row per answer, the newest counts) and who may answer a campaign."""

from __future__ import annotations

from datetime import date, datetime

from services.models import Campaign, Channel, Invitation, Player, PlayerStatus, RsvpAnswer
from storage.db import Database, to_db_time

# The newest answer of each player of a campaign (ids grow with time: the largest is the last).
_LATEST = """
    SELECT r.player_id, r.answer FROM rsvps r
    WHERE r.campaign_id = :campaign
      AND r.id = (SELECT max(o.id) FROM rsvps o WHERE o.campaign_id = r.campaign_id AND o.player_id = r.player_id)
"""


class RsvpStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def invitation(self, campaign: Campaign, player: Player) -> Invitation | None:
        """How `player` is invited to `campaign` (its snapshot first, else a "need" ask), or None."""
        async with self.db.read() as tx:
            row = await tx.fetchone(
                """
                SELECT status, selected_channel, 1 AS in_snapshot FROM campaign_recipients
                 WHERE campaign_id = :campaign AND player_id = :player
                UNION ALL
                SELECT status, selected_channel, 0 FROM need_recipients
                 WHERE campaign_id = :campaign AND player_id = :player
                ORDER BY in_snapshot DESC LIMIT 1
                """,
                {"campaign": campaign.id, "player": player.id},
            )
        if row is None:
            return None
        return Invitation(
            campaign, player, PlayerStatus(row["status"]), Channel(row["selected_channel"]), bool(row["in_snapshot"])
        )

    async def newest_invited(self, player_id: int, day: date) -> int | None:
        """The newest campaign of `day` (not cancelled) that invites the player, by its snapshot or a "need"."""
        async with self.db.read() as tx:
            row = await tx.fetchone(
                """
                SELECT max(c.id) AS id FROM campaigns c
                WHERE c.campaign_date = :day AND c.status <> 'cancelled'
                  AND (EXISTS (SELECT 1 FROM campaign_recipients r WHERE r.campaign_id = c.id AND r.player_id = :player)
                       OR EXISTS (SELECT 1 FROM need_recipients n
                                   WHERE n.campaign_id = c.id AND n.player_id = :player))
                """,
                {"day": day.isoformat(), "player": player_id},
            )
        return int(row["id"]) if row is not None and row["id"] is not None else None

    async def record(
        self,
        invitation: Invitation,
        answer: RsvpAnswer,
        channel: Channel,
        now: datetime,
        *,
        status: PlayerStatus | None,
        join: bool,
    ) -> bool:
        """Store an answer with its effects, in one transaction; True if it added the player to the snapshot.

        `status`: the player's status for the campaign date from now on (None: unchanged). `join`: a
        player asked by "we need N more" joins the snapshot (with the channel chosen when asked), so
        the campaign's later messages reach them; its counts follow.
        """
        campaign, player = invitation.campaign, invitation.player
        at = to_db_time(now)
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO rsvps (campaign_id, player_id, answer, channel, at) VALUES (?, ?, ?, ?, ?)",
                (campaign.id, player.id, answer.value, channel.value, at),
            )
            if status is not None:
                await tx.execute(
                    """
                    INSERT INTO availability (player_id, date, status, updated_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT (player_id, date) DO UPDATE SET status = excluded.status,
                                                                updated_at = excluded.updated_at
                    """,
                    (player.id, campaign.campaign_date.isoformat(), status.value, at),
                )
            if not join:
                return False
            joined = await tx.execute(
                """
                INSERT INTO campaign_recipients (campaign_id, player_id, status, selected_channel)
                VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING
                """,
                (campaign.id, player.id, invitation.status.value, invitation.selected_channel.value),
            )
            if joined:
                column = {c: f"count_{c.value}" for c in Channel}[invitation.selected_channel]
                await tx.execute(
                    f"UPDATE campaigns SET recipient_count = recipient_count + 1, {column} = {column} + 1"  # noqa: S608
                    " WHERE id = ?",
                    (campaign.id,),
                )
        return joined == 1

    async def latest(self, campaign_id: int) -> dict[int, RsvpAnswer]:
        """Each answering player's current answer (their newest)."""
        async with self.db.read() as tx:
            rows = await tx.fetchall(_LATEST, {"campaign": campaign_id})
        return {r["player_id"]: RsvpAnswer(r["answer"]) for r in rows}

    async def latest_of(self, campaign_id: int, player_id: int) -> RsvpAnswer | None:
        async with self.db.read() as tx:
            row = await tx.fetchone(
                "SELECT answer FROM rsvps WHERE campaign_id = ? AND player_id = ? ORDER BY id DESC LIMIT 1",
                (campaign_id, player_id),
            )
        return RsvpAnswer(row["answer"]) if row is not None else None

    async def counts(self, campaign_id: int) -> dict[RsvpAnswer, int]:
        """How many players currently answer in, late and out."""
        async with self.db.read() as tx:
            rows = await tx.fetchall(
                f"SELECT answer, count(*) AS n FROM ({_LATEST}) GROUP BY answer",  # noqa: S608 - a constant
                {"campaign": campaign_id},
            )
        counts = {a: 0 for a in RsvpAnswer}
        for r in rows:
            counts[RsvpAnswer(r["answer"])] = r["n"]
        return counts

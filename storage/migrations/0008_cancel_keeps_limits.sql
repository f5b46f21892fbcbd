-- 0008: a campaign cancelled after its first message went out keeps counting toward the anti-spam limits.

-- When the campaign's first message went out (sent, or handed to a platform without dedup).
ALTER TABLE campaigns ADD COLUMN delivered_at TEXT;

UPDATE campaigns SET delivered_at = (
    SELECT min(coalesce(l.finished_at, l.on_wire_at, l.claimed_at)) FROM ledger l
     WHERE l.campaign_id = campaigns.id AND (l.state = 'sent' OR l.on_wire_at IS NOT NULL)
) WHERE status <> 'cancelled';

-- A cancelled campaign that delivered starts counting again, unless another campaign already holds
-- its place (a live one, or an earlier delivered cancelled one): the indexes below must hold.
UPDATE campaigns AS c SET delivered_at = (
    SELECT min(coalesce(l.finished_at, l.on_wire_at, l.claimed_at)) FROM ledger l
     WHERE l.campaign_id = c.id AND (l.state = 'sent' OR l.on_wire_at IS NOT NULL)
) WHERE c.status = 'cancelled' AND c.dry_run = 0
    AND NOT EXISTS (
        SELECT 1 FROM campaigns o
         WHERE o.id <> c.id AND o.dry_run = 0 AND o.campaign_date = c.campaign_date
           AND (o.initiator_player_id = c.initiator_player_id OR (o.global_slot = 1 AND c.global_slot = 1))
           AND (o.status <> 'cancelled'
                OR (o.id < c.id AND EXISTS (SELECT 1 FROM ledger l
                                             WHERE l.campaign_id = o.id
                                               AND (l.state = 'sent' OR l.on_wire_at IS NOT NULL)))));

-- Rule 6 still lives in the indexes, now counting delivered cancelled campaigns too.
DROP INDEX one_campaign_per_promoter_per_day;
CREATE UNIQUE INDEX one_campaign_per_promoter_per_day
    ON campaigns (initiator_player_id, campaign_date)
    WHERE dry_run = 0 AND (status <> 'cancelled' OR delivered_at IS NOT NULL);
DROP INDEX one_campaign_per_day_with_global_cooldown;
CREATE UNIQUE INDEX one_campaign_per_day_with_global_cooldown
    ON campaigns (campaign_date)
    WHERE dry_run = 0 AND global_slot = 1 AND (status <> 'cancelled' OR delivered_at IS NOT NULL);

-- The mark is the database's own: whichever code records a sent (or on-the-wire) delivery, the
-- campaign is marked. OR IGNORE: if a new campaign took the place of a cancelled one in the instant
-- between the cancel and the recording of a send still in flight, the record must not fail.
CREATE TRIGGER campaign_delivered
AFTER UPDATE OF state, on_wire_at ON ledger
WHEN NEW.state = 'sent' OR NEW.on_wire_at IS NOT NULL
BEGIN
    UPDATE OR IGNORE campaigns SET delivered_at = coalesce(NEW.finished_at, NEW.on_wire_at, NEW.claimed_at)
     WHERE id = NEW.campaign_id AND delivered_at IS NULL;
END;

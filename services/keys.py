"""Idempotency keys of the delivery ledger (rule 7) and Discord nonces."""

from __future__ import annotations

import hashlib
from datetime import date

from services.models import JobType

_KEY_PART: dict[JobType, str] = {
    JobType.REMINDER: "T-15",
    JobType.START: "T0",
    JobType.VOICE_CHECK: "FOLLOWUP",
    JobType.NEED: "NEED",  # "we need N more": one ask per player and day, whichever campaign asks
}

NONCE_MAX_LENGTH = 25


def ledger_key(job_type: JobType, day: date, *, dry_run_campaign_id: int | None = None) -> str:
    """`PROMOTE:T-15:<date>` and friends; a dry run gets keys of its own that never collide.

    A real key is shared by every campaign of the day, so a player gets at most one reminder
    whichever promoter scheduled it. A dry-run key names its campaign so that rehearsals neither
    consume nor are blocked by the real evening's keys.
    """
    return _own_if_dry(f"PROMOTE:{_KEY_PART[job_type]}:{day.isoformat()}", dry_run_campaign_id)


def summary_key(day: date, target: str, *, dry_run_campaign_id: int | None = None) -> str:
    """`PROMOTE:SUMMARY:<channel id>:<date>`: one summary per target and day, whichever campaign posts it.

    A second campaign of the day posts no second public summary (it would count only its own
    follow-ups). A dry run's summary goes to its initiator's DM, under a key of its own.
    """
    return _own_if_dry(f"PROMOTE:SUMMARY:{target}:{day.isoformat()}", dry_run_campaign_id)


def _own_if_dry(key: str, dry_run_campaign_id: int | None) -> str:
    return key if dry_run_campaign_id is None else f"DRYRUN:{dry_run_campaign_id}:{key}"


def standing_note_key(session_id: int, day: date) -> str:
    """The "not enough players" note of standing session `session_id` for `day`: posted once, whatever
    restarts in between."""
    return f"STANDING:NOTE:{session_id}:{day.isoformat()}"


def job_failed_key(job_id: int) -> str:
    """The DM telling a campaign's initiator that a job failed: one per job, whichever process sends it."""
    return f"ALERT:JOB-FAILED:{job_id}"


def message_nonce(campaign_id: int, key: str, player_id: int) -> str:
    """A deterministic nonce of at most 25 characters for (campaign, key, player)."""
    digest = hashlib.blake2b(f"{campaign_id}|{key}|{player_id}".encode(), digest_size=12).hexdigest()
    return f"rp{digest}"[:NONCE_MAX_LENGTH]

"""The DM that tells a campaign's initiator a job failed: the reason in words, never the raw error."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from services.messages import INTERRUPTED_ATTEMPTS, failure_in_words, job_failed_text
from services.models import JobType

ZONE = ZoneInfo("Europe/Ljubljana")
START = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)  # 21:00 CET
LOG = "; the bot's log has the details"


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (INTERRUPTED_ATTEMPTS, "the bot was stopped or crashed during every attempt"),
        ("OperationalError: database is locked", "the database stayed locked by another program"),
        ("OperationalError: database or disk is full", "the server's disk is full"),
        ("OperationalError: disk I/O error", "the server's disk failed to read or write"),
        ("RuntimeError: player 4711 has no address", f"an unexpected error (RuntimeError){LOG}"),
        ("KeyError: 900000000000000001", f"an unexpected error (KeyError){LOG}"),
        ("  : something odd", f"an unexpected error{LOG}"),
        ("", f"an unexpected error{LOG}"),
    ],
)
def test_failures_in_words(error: str, words: str) -> None:
    assert failure_in_words(error) == words


@pytest.mark.parametrize(
    ("job_type", "attempts", "dry_run", "text"),
    [
        (JobType.REMINDER, 5, False, "⚠️ The reminder of your game night at 21:00 CET failed after 5 attempts: "),
        (JobType.START, 1, False, "⚠️ The start ping of your game night at 21:00 CET failed after 1 attempt: "),
        (JobType.VOICE_CHECK, 3, True, "[dry run] ⚠️ The voice check of your game night at 21:00 CET failed after 3 "),
    ],
)
def test_the_text_names_the_job_and_the_evening(job_type: JobType, attempts: int, dry_run: bool, text: str) -> None:
    message = job_failed_text(
        job_type=job_type, start=START, zone=ZONE, attempts=attempts, error="KeyError: 4711", dry_run=dry_run
    )
    assert message.startswith(text)
    assert "4711" not in message and message.endswith("Please tell whoever runs the bot.")

"""The promote engine end to end over a real SQLite file, with recording senders and a fake clock."""

from __future__ import annotations

import asyncio
from datetime import date, time, timedelta

import pytest

from services.delivery.base import SendResult
from services.errors import CampaignExists, NoRecipients, NotLinked, NotPromoter
from services.fanout_plan import NO_START_PING
from services.models import (
    CampaignLimit,
    CampaignStatus,
    Channel,
    DeliveryStatus,
    JobStatus,
    JobType,
    PermissionTier,
    PlayerStatus,
    Preferences,
    PreferredChannel,
    QuietHours,
)
from tests.support import FOLLOWUP_CHANNEL, PROMOTER_ID, Harness, local, make_harness, opted_in, promotion_config

DAY = date(2026, 11, 24)


@pytest.fixture
async def h(tmp_path):
    harness = await make_harness(tmp_path / "rp.sqlite3", local(DAY, 18, 0))
    await harness.add_player(PROMOTER_ID, "Promoter", status=None)
    yield harness
    await harness.engine.db.close()


async def test_whole_evening_reaches_each_recipient_once_on_their_channel(h: Harness) -> None:
    await h.add_player(
        1, "Ana", prefs=opted_in(preferred_channel=PreferredChannel.TELEGRAM), telegram="5001"
    )
    await h.add_player(
        2, "Bor", prefs=opted_in(preferred_channel=PreferredChannel.SIGNAL), signal="+38640111222"
    )
    await h.add_player(3, "Cene")  # Discord only
    await h.add_player(4, "Dora", status=PlayerStatus.AVAILABLE)  # not included by default
    await h.add_player(5, "Eva", prefs=Preferences(allow_promotions=False))
    h.voice.ids = {3}

    created = await h.engine.promote.create(h.actor())
    assert created.campaign.recipient_count == 3
    assert created.campaign.channels_summary.as_dict() == {"discord": 1, "telegram": 1, "signal": 1}
    assert created.schedule.reminder == local(DAY, 20, 45)
    assert created.schedule.voice_check == local(DAY, 21, 0, 30)

    await h.run_evening()

    assert next(m.text for m in h.telegram.to("5001")).startswith("⏰")
    assert len(h.telegram.to("5001")) == 3  # reminder, start, follow-up
    assert len(h.signal.to("+38640111222")) == 3
    assert len(h.discord.to("3")) == 2  # in voice: no follow-up
    assert h.discord.to("4") == [] and h.discord.to("5") == []
    assert "21:00 CET" in h.telegram.to("5001")[1].text
    campaign = await h.engine.campaign_store.get(created.campaign.id)
    assert campaign.status is CampaignStatus.FOLLOWUP_SENT
    [(channel_id, summary, _)] = h.poster.posts
    assert channel_id == FOLLOWUP_CHANNEL
    assert "In voice (1): Cene" in summary and "Waiting on (2): Ana, Bor" in summary
    assert "Follow-ups sent: 2 of 2" in summary
    counts = await h.engine.campaign_store.delivery_counts(created.campaign.id)
    assert counts == {
        DeliveryStatus.SENT: 8,
        DeliveryStatus.SKIPPED: 0,
        DeliveryStatus.FAILED: 0,
        DeliveryStatus.UNKNOWN: 0,
    }
    assert all(j.status is JobStatus.SENT for j in await h.engine.campaign_store.jobs(created.campaign.id))


async def test_jobs_start_on_time_and_in_order(h: Harness) -> None:
    await h.add_player(1, "Ana")
    started: list[tuple[str, object]] = []
    h.discord.on_send = lambda m: started.append((m.text[:2], h.clock.now()))
    await h.engine.promote.create(h.actor())
    await h.run_evening()
    times = [t for _, t in started]
    assert times == [local(DAY, 20, 45), local(DAY, 21, 0), local(DAY, 21, 0, 30)]


async def test_permanent_failure_falls_back_along_the_chain(h: Harness) -> None:
    await h.add_player(
        1,
        "Ana",
        prefs=opted_in(preferred_channel=PreferredChannel.TELEGRAM),
        telegram="5001",
        signal="+38640111222",
    )
    h.telegram.always["5001"] = SendResult.permanent("telegram: bot was blocked by the user")
    h.signal.always["+38640111222"] = SendResult.permanent("signal: unregistered number")
    created = await h.engine.promote.create(h.actor())
    await h.run_evening()
    assert len(h.discord.to("1")) == 3
    log = await h.engine.ledger_store.send_log(created.campaign.id)
    reminder = [r for r in log if r.job_type == JobType.REMINDER and r.player_id is not None]
    assert [(r.channel, r.status, r.final) for r in reminder] == [
        ("telegram", "failed", 0),
        ("signal", "failed", 0),
        ("discord", "sent", 1),
    ]
    assert (await h.engine.campaign_store.get(created.campaign.id)).status is CampaignStatus.FOLLOWUP_SENT


async def test_retry_after_is_honoured_then_sent(h: Harness) -> None:
    await h.add_player(
        1, "Ana", prefs=opted_in(preferred_channel=PreferredChannel.TELEGRAM), telegram="5001"
    )
    h.telegram.script["5001"] = [SendResult.retryable("429 Too Many Requests", retry_after=7.0)]
    tried_at: list[object] = []
    h.telegram.on_send = lambda m: tried_at.append(h.clock.now())
    await h.engine.promote.create(h.actor())
    await h.engine.dispatcher.run_until(local(DAY, 20, 46))
    assert tried_at == [local(DAY, 20, 45), local(DAY, 20, 45, 7)]  # waited exactly retry_after
    assert len(h.telegram.to("5001")) == 1


async def test_all_channels_failing_marks_start_failed(h: Harness) -> None:
    await h.add_player(1, "Ana")
    await h.add_player(2, "Bor")
    h.discord.always["1"] = SendResult.permanent("discord: cannot send messages to this user (50007)")
    created = await h.engine.promote.create(h.actor())
    await h.engine.dispatcher.run_until(local(DAY, 21, 0, 10))
    assert (await h.engine.campaign_store.get(created.campaign.id)).status is CampaignStatus.PARTIAL
    h.discord.always["2"] = h.discord.always["1"]


async def test_start_with_every_send_failing_is_failed(h: Harness) -> None:
    await h.add_player(1, "Ana")
    h.discord.always["1"] = SendResult.permanent("discord: 50007")
    created = await h.engine.promote.create(h.actor())
    await h.engine.dispatcher.run_until(local(DAY, 21, 0, 10))
    assert (await h.engine.campaign_store.get(created.campaign.id)).status is CampaignStatus.FAILED


async def test_quiet_hours_skip_and_are_logged(h: Harness) -> None:
    quiet = opted_in(quiet_hours=QuietHours(time(20, 50), time(7, 0)))
    await h.add_player(1, "Ana", prefs=quiet)
    created = await h.engine.promote.create(h.actor())
    await h.run_evening()
    assert len(h.discord.to("1")) == 1  # only the 20:45 reminder, before the window
    log = await h.engine.ledger_store.send_log(created.campaign.id)
    skipped = [r for r in log if r.status == "skipped"]
    # No start ping, so no follow-up either (it would say "we started" to someone who never heard).
    assert [r.reason for r in skipped] == ["quiet hours", NO_START_PING]
    # A quiet recipient missing from voice is still listed in the summary.
    assert "Waiting on (1): Ana" in h.poster.posts[0][1]
    assert "Follow-ups sent: 0 of 1" in h.poster.posts[0][1]
    assert (await h.engine.campaign_store.get(created.campaign.id)).status is CampaignStatus.FOLLOWUP_SENT


async def test_quiet_hours_use_the_recipients_own_timezone(h: Harness) -> None:
    # 20:45 in Ljubljana is 14:45 in New York: outside a 20:00-23:00 window there.
    prefs = opted_in(quiet_hours=QuietHours(time(20, 0), time(23, 0)), timezone="America/New_York")
    await h.add_player(1, "Ana", prefs=prefs)
    await h.engine.promote.create(h.actor())
    await h.run_evening()
    assert len(h.discord.to("1")) == 3


async def test_one_campaign_per_promoter_per_day_under_concurrency(h: Harness) -> None:
    await h.add_player(1, "Ana")
    results = await asyncio.gather(
        *(h.engine.promote.create(h.actor()) for _ in range(20)), return_exceptions=True
    )
    created = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, CampaignExists)]
    assert len(created) == 1 and len(refused) == 19


async def test_database_refuses_a_second_campaign_even_without_the_service_check(h: Harness) -> None:
    await h.add_player(1, "Ana")
    first = await h.engine.promote.create(h.actor())
    # Even the storage layer alone (no service pre-check) cannot insert a duplicate.
    refused = await h.engine.campaign_store.create(
        day=DAY,
        initiator=first.campaign.initiator,
        dry_run=False,
        global_guard=False,
        include_available=False,
        include_maybe=False,
        timezone="Europe/Ljubljana",
        recipients=[],
        schedule=first.schedule,
        max_attempts=5,
        now=h.clock.now(),
    )
    assert refused is CampaignLimit.PER_PROMOTER
    async with h.engine.db.read() as tx:
        row = await tx.fetchone("SELECT count(*) AS campaigns, (SELECT count(*) FROM jobs) AS jobs FROM campaigns")
    assert row is not None and (row["campaigns"], row["jobs"]) == (1, 3)


async def test_global_cooldown_allows_one_campaign_per_day_for_everyone(tmp_path) -> None:
    h = await make_harness(
        tmp_path / "g.sqlite3", local(DAY, 18, 0), config=promotion_config(global_cooldown=True)
    )
    await h.add_player(PROMOTER_ID, "Promoter", status=None)
    await h.engine.player_store.set_tier(2000, PermissionTier.ADMIN, h.clock.now())
    await h.add_player(2000, "Admin", status=None)
    await h.add_player(1, "Ana")
    await h.engine.promote.create(h.actor())
    with pytest.raises(CampaignExists, match="already been promoted"):
        await h.engine.promote.create(h.actor(2000, "Admin"))
    await h.engine.db.close()


async def test_dry_run_reaches_only_the_initiator_and_does_not_block_the_real_campaign(h: Harness) -> None:
    await h.add_player(
        1, "Ana", prefs=opted_in(preferred_channel=PreferredChannel.TELEGRAM), telegram="5001"
    )
    dry = await h.engine.promote.create(h.actor(), dry_run=True)
    assert dry.campaign.recipient_count == 1 and dry.campaign.dry_run
    real = await h.engine.promote.create(h.actor())
    second_dry = await h.engine.promote.create(h.actor(), dry_run=True)
    assert second_dry.campaign.id != dry.campaign.id
    await h.run_evening()
    # The initiator got the rehearsal twice (two dry runs), and the real campaign did not skip Ana.
    assert len([m for m in h.discord.to(str(PROMOTER_ID)) if m.text.startswith("[dry run] ⏰")]) == 2
    assert len(h.telegram.to("5001")) == 3
    # Only the real campaign posts to the public channel; the dry runs' summaries go to the initiator.
    assert len(h.poster.posts) == 1
    assert len([m for m in h.discord.to(str(PROMOTER_ID)) if "Voice check" in m.text]) == 2
    status = await h.engine.promote.status(h.actor())
    assert status.campaign.id == real.campaign.id


async def test_dry_run_is_allowed_after_the_real_campaign(h: Harness) -> None:
    await h.add_player(1, "Ana")
    await h.engine.promote.create(h.actor())
    dry = await h.engine.promote.create(h.actor(), dry_run=True)
    assert dry.campaign.dry_run


async def test_cancel_stops_pending_jobs(h: Harness) -> None:
    await h.add_player(1, "Ana")
    created = await h.engine.promote.create(h.actor())
    await h.engine.dispatcher.run_until(local(DAY, 20, 50))
    view = await h.engine.promote.cancel(h.actor())
    assert view.campaign.status is CampaignStatus.CANCELLED
    await h.run_evening()
    assert len(h.discord.to("1")) == 1
    jobs = {j.job_type: j.status for j in await h.engine.campaign_store.jobs(created.campaign.id)}
    assert jobs == {
        JobType.REMINDER: JobStatus.SENT,
        JobType.START: JobStatus.CANCELLED,
        JobType.VOICE_CHECK: JobStatus.CANCELLED,
    }
    # The reminder went out: the cancelled campaign still counts (rule 6), so no second voice check
    # and no messages to players the first one never reached.
    with pytest.raises(CampaignExists):
        await h.engine.promote.create(h.actor())


async def test_a_campaign_cancelled_before_anything_went_out_frees_the_day(h: Harness) -> None:
    await h.add_player(1, "Ana")
    await h.engine.promote.create(h.actor())
    await h.engine.promote.cancel(h.actor())
    again = await h.engine.promote.create(h.actor())
    await h.run_evening()
    assert (await h.engine.campaign_store.get(again.campaign.id)).status is CampaignStatus.FOLLOWUP_SENT


async def test_refusals(h: Harness) -> None:
    with pytest.raises(NoRecipients):
        await h.engine.promote.create(h.actor())
    await h.add_player(1, "Ana")
    with pytest.raises(NotPromoter):
        await h.engine.promote.create(h.actor(1, "Ana"))
    with pytest.raises(NotLinked):
        await h.engine.promote.preview(h.actor(PROMOTER_ID, member=False))
    assert await h.engine.promote.status(h.actor(1, "Ana")) is None


async def test_a_second_campaign_the_same_day_does_not_message_twice(h: Harness) -> None:
    await h.engine.player_store.set_tier(2000, PermissionTier.ROOT, h.clock.now())
    await h.add_player(2000, "Root", status=None)
    ana = await h.add_player(1, "Ana")
    first = await h.engine.promote.create(h.actor())
    second = await h.engine.promote.create(h.actor(2000, "Root"))
    await h.run_evening()
    assert len(h.discord.to("1")) == 3
    # Both campaigns' jobs ran at the same moments; per key, one delivered and the other skipped.
    finals = [
        r
        for c in (first, second)
        for r in await h.engine.ledger_store.send_log(c.campaign.id)
        if r.player_id == ana and r.final
    ]
    assert sorted(r.status for r in finals) == ["sent"] * 3 + ["skipped"] * 3
    assert all("already handled" in r.reason for r in finals if r.status == "skipped")


async def test_past_times_are_shifted(tmp_path) -> None:
    h = await make_harness(tmp_path / "late.sqlite3", local(DAY, 21, 5))
    await h.add_player(PROMOTER_ID, "Promoter", status=None)
    await h.add_player(1, "Ana")
    created = await h.engine.promote.create(h.actor())
    now = h.clock.now()
    assert created.schedule.reminder == now + timedelta(seconds=10)
    assert created.schedule.start == now + timedelta(seconds=20)
    assert created.schedule.voice_check == now + timedelta(seconds=50)
    await h.run_evening()
    assert "21:05 CET" in h.discord.to("1")[1].text  # the real start time, not a hard-coded 21:00
    await h.engine.db.close()


async def test_campaign_date_is_the_promotion_timezones_date(tmp_path) -> None:
    # 23:30 UTC on the 24th is already the 25th in Ljubljana.
    h = await make_harness(tmp_path / "tz.sqlite3", local(date(2026, 11, 25), 0, 30))
    await h.add_player(PROMOTER_ID, "Promoter", status=None)
    await h.add_player(1, "Ana", day=date(2026, 11, 25))
    created = await h.engine.promote.create(h.actor())
    assert created.campaign.campaign_date == date(2026, 11, 25)
    await h.engine.db.close()


async def test_a_stalled_channel_does_not_hold_back_the_others(h: Harness) -> None:
    # More Telegram recipients than one chunk, listed before the Discord one: if channels shared
    # one queue, the Discord reminder would wait behind every Telegram send.
    from services.fanout import CHUNK_SIZE

    prefs = opted_in(preferred_channel=PreferredChannel.TELEGRAM)
    for i in range(1, CHUNK_SIZE + 2):
        await h.add_player(i, f"T{i:04d}", prefs=prefs, telegram=str(5000 + i))
    await h.add_player(CHUNK_SIZE + 10, "Zed")  # Discord only
    discord_done = asyncio.Event()
    h.discord.on_send = lambda m: discord_done.set()
    original = h.telegram.send

    async def stalled_until_discord(message):  # Telegram is stuck until Discord has been served
        await discord_done.wait()
        return await original(message)

    h.telegram.send = stalled_until_discord  # type: ignore[method-assign]
    await h.engine.promote.create(h.actor())
    async with asyncio.timeout(20):
        await h.engine.dispatcher.run_until(local(DAY, 20, 46))
    assert len(h.discord.to(str(CHUNK_SIZE + 10))) == 1
    assert len(h.telegram.sent) == CHUNK_SIZE + 1


async def summary_log(h: Harness, campaign_id: int) -> list[tuple[str, str]]:
    rows = await h.engine.ledger_store.send_log(campaign_id)
    return [(str(r.status), str(r.reason)) for r in rows if r.player_id is None]


async def test_the_summary_is_retried_like_any_send_honouring_retry_after(h: Harness) -> None:
    await h.add_player(1, "Ana")
    h.poster.script = [
        SendResult.retryable("discord: server error (503)"),
        SendResult.retryable("discord: rate limited for 7.0 s", retry_after=7.0),
    ]
    created = await h.engine.promote.create(h.actor())
    await h.run_evening()

    assert len(h.poster.posts) == 1
    log = await summary_log(h, created.campaign.id)
    assert [status for status, _ in log] == ["failed", "failed", "sent"]
    assert log[0][1].startswith("summary: discord: server error (503); retrying in ")
    assert log[1][1] == "summary: discord: rate limited for 7.0 s; retrying in 7.0s"
    assert log[2][1] == "summary"
    campaign = await h.engine.campaign_store.get(created.campaign.id)
    assert campaign is not None and campaign.status is CampaignStatus.FOLLOWUP_SENT


async def test_a_summary_refused_for_good_is_not_retried_and_never_reposted(h: Harness) -> None:
    await h.add_player(1, "Ana")
    h.poster.script = [SendResult.permanent("discord: forbidden (403, code 50013)")]
    created = await h.engine.promote.create(h.actor())
    await h.run_evening()

    assert h.poster.posts == []
    assert await summary_log(h, created.campaign.id) == [("failed", "summary: discord: forbidden (403, code 50013)")]
    async with h.engine.db.read() as tx:
        row = await tx.fetchone("SELECT state FROM post_ledger WHERE campaign_id = ?", (created.campaign.id,))
    assert row is not None and row["state"] == "failed"
    campaign = await h.engine.campaign_store.get(created.campaign.id)
    assert campaign is not None and campaign.status is CampaignStatus.FOLLOWUP_SENT


async def test_the_channels_a_campaign_uses_are_the_senders_channels(tmp_path) -> None:
    h = await make_harness(
        tmp_path / "no-telegram.sqlite3", local(DAY, 18, 0), channels=frozenset({Channel.DISCORD, Channel.SIGNAL})
    )
    try:
        await h.add_player(PROMOTER_ID, "Promoter", status=None)
        prefs = opted_in(preferred_channel=PreferredChannel.TELEGRAM)
        await h.add_player(1, "Ana", prefs=prefs, telegram="5001", signal="+38640111222")
        await h.add_player(2, "Bor", prefs=prefs, telegram="5002")
        preview = await h.engine.promote.preview(h.actor())
        assert preview.unavailable_channels == frozenset({Channel.TELEGRAM})
        assert [(r.player.display_name, r.chain) for r in preview.recipients] == [
            ("Ana", (Channel.SIGNAL, Channel.DISCORD)),
            ("Bor", (Channel.DISCORD,)),
        ]
        await h.engine.promote.create(h.actor())
        await h.run_evening()
        assert h.telegram.attempts == []
        assert len(h.signal.to("+38640111222")) == 3 and len(h.discord.to("2")) == 3
        # Telegram and Signal cannot run without the contact key: no address could be read.
        with pytest.raises(ValueError, match="contact encryption key"):
            h.engine_with(cipher=None)
    finally:
        await h.engine.db.close()

"""The pure rules of RSVP and "we need N more": how answers are named, read and what they change."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.messages import (
    SIGNAL_RSVP_PROMPT,
    followup_text,
    need_text,
    reminder_text,
    rsvp_label,
    start_text,
    summary_text,
)
from services.models import (
    Campaign,
    CampaignStatus,
    Candidate,
    Channel,
    ChannelsSummary,
    Invitation,
    Player,
    PlayerStatus,
    Preferences,
    PreferredChannel,
    RsvpAnswer,
)
from services.recipients import select_need_recipients
from services.rsvp import (
    DISCORD_TEMPLATE,
    TELEGRAM_TEMPLATE,
    discord_custom_id,
    parse_answer,
    signal_answer,
    status_after,
    takes_a_seat,
    telegram_callback_data,
)
from tests.support import ZONE, local, opted_in

DAY = date(2026, 11, 24)
BIGGEST_ID = 2**63 - 1  # SQLite's largest rowid


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("rp:rsvp:7:in", (7, RsvpAnswer.IN)),
        ("rp:rsvp:12:late", (12, RsvpAnswer.LATE)),
        ("rp:rsvp:123456789012345678:out", (123456789012345678, RsvpAnswer.OUT)),
        ("rp:rsvp:7:IN", None),
        ("rp:rsvp:7:maybe", None),
        ("rp:rsvp:0:in", None),  # no campaign has id 0
        ("rp:rsvp:07:in", None),
        ("rp:rsvp:-7:in", None),
        ("rp:rsvp:7:in ", None),
        ("rp:rsvp:7:in:x", None),
        ("rp:rsvp::in", None),
        ("rp:rsvp:1234567890123456789:in", None),  # more digits than any id the buttons carry
        ("rsvp:7:in", None),  # Telegram's spelling is not Discord's
        ("rp:consent:yes", None),
        ("", None),
    ],
)
def test_discord_custom_ids(value: str, expected: tuple[int, RsvpAnswer] | None) -> None:
    assert parse_answer(DISCORD_TEMPLATE, value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("rsvp:7:in", (7, RsvpAnswer.IN)),
        ("rsvp:99:out", (99, RsvpAnswer.OUT)),
        ("rp:rsvp:7:in", None),
        ("link:move:7", None),
        ("rsvp:7:late\n", None),
        ("rsvp:x:late", None),
    ],
)
def test_telegram_callback_data(value: str, expected: tuple[int, RsvpAnswer] | None) -> None:
    assert parse_answer(TELEGRAM_TEMPLATE, value) == expected


@pytest.mark.parametrize("answer", list(RsvpAnswer))
def test_the_ids_the_buttons_carry_read_back_and_fit_the_platforms_limits(answer: RsvpAnswer) -> None:
    campaign = 123456789012345678
    assert parse_answer(DISCORD_TEMPLATE, discord_custom_id(campaign, answer)) == (campaign, answer)
    assert parse_answer(TELEGRAM_TEMPLATE, telegram_callback_data(campaign, answer)) == (campaign, answer)
    assert len(discord_custom_id(BIGGEST_ID, answer)) <= 100  # Discord's custom_id limit
    assert len(telegram_callback_data(BIGGEST_ID, answer).encode()) <= 64  # Telegram's callback_data limit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", RsvpAnswer.IN),
        ("2", RsvpAnswer.LATE),
        ("3", RsvpAnswer.OUT),
        (" 2\n", RsvpAnswer.LATE),
        ("4", None),
        ("0", None),
        ("12", None),
        ("1.", None),
        ("one", None),
        ("yes 1", None),
        ("١", None),  # an Arabic-Indic one is not a bare 1
        ("", None),
    ],
)
def test_a_signal_answer_is_a_bare_digit(text: str, expected: RsvpAnswer | None) -> None:
    assert signal_answer(text) is expected


def campaign(*, dry_run: bool = False) -> Campaign:
    return Campaign(
        id=7, campaign_date=DAY, initiator=Player(1, 1000, "Promoter"), status=CampaignStatus.SCHEDULED,
        dry_run=dry_run, include_available=False, include_maybe=False, timezone=ZONE.key, recipient_count=1,
        channels_summary=ChannelsSummary(1, 0, 0), created_at=datetime(2026, 11, 24, 17, tzinfo=UTC),
    )


def invitation(
    *, in_snapshot: bool = True, status: PlayerStatus = PlayerStatus.LOOKING, dry_run: bool = False
) -> Invitation:
    return Invitation(campaign(dry_run=dry_run), Player(2, 2000, "Ana"), status, Channel.DISCORD, in_snapshot)


@pytest.mark.parametrize(
    ("answer", "previous", "status", "dry_run", "expected"),
    [
        (RsvpAnswer.OUT, None, PlayerStatus.LOOKING, False, PlayerStatus.NOT_PLAYING),
        (RsvpAnswer.OUT, RsvpAnswer.OUT, PlayerStatus.LOOKING, False, PlayerStatus.NOT_PLAYING),
        (RsvpAnswer.IN, None, PlayerStatus.LOOKING, False, None),
        (RsvpAnswer.LATE, RsvpAnswer.IN, PlayerStatus.LOOKING, False, None),
        # "out" taken back: the status the snapshot (or the ask) saw.
        (RsvpAnswer.IN, RsvpAnswer.OUT, PlayerStatus.LOOKING, False, PlayerStatus.LOOKING),
        (RsvpAnswer.LATE, RsvpAnswer.OUT, PlayerStatus.MAYBE, False, PlayerStatus.MAYBE),
        # A rehearsal never changes anybody's status.
        (RsvpAnswer.OUT, None, PlayerStatus.LOOKING, True, None),
        (RsvpAnswer.IN, RsvpAnswer.OUT, PlayerStatus.LOOKING, True, None),
    ],
)
def test_the_status_an_answer_leaves(
    answer: RsvpAnswer, previous: RsvpAnswer | None, status: PlayerStatus, dry_run: bool, expected: PlayerStatus | None
) -> None:
    assert status_after(answer, previous, invitation(status=status, dry_run=dry_run)) is expected


@pytest.mark.parametrize(
    ("answer", "in_snapshot", "expected"),
    [
        (RsvpAnswer.IN, False, True),
        (RsvpAnswer.LATE, False, True),  # coming, a little late: a seat too
        (RsvpAnswer.OUT, False, False),
        (RsvpAnswer.IN, True, False),  # already in the snapshot
    ],
)
def test_who_takes_a_seat(answer: RsvpAnswer, in_snapshot: bool, expected: bool) -> None:
    assert takes_a_seat(answer, invitation(in_snapshot=in_snapshot)) is expected


def candidate(pid: int, status: PlayerStatus, prefs: Preferences | None = None) -> Candidate:
    return Candidate(Player(pid, pid * 10, f"P{pid}"), status, prefs or opted_in(), frozenset({Channel.TELEGRAM}))


def test_need_asks_available_and_maybe_players_who_allow_promotions_and_were_not_taken_or_asked() -> None:
    candidates = [
        candidate(1, PlayerStatus.AVAILABLE),
        candidate(2, PlayerStatus.MAYBE, opted_in(preferred_channel=PreferredChannel.TELEGRAM)),
        candidate(3, PlayerStatus.LOOKING),  # looking players are the snapshot's, not the need's
        candidate(4, PlayerStatus.NOT_PLAYING),
        candidate(5, PlayerStatus.AVAILABLE, Preferences(allow_promotions=False, promotions_chosen=True)),
        candidate(6, PlayerStatus.AVAILABLE),  # in the snapshot
        candidate(7, PlayerStatus.MAYBE),  # asked already today
    ]
    chosen = select_need_recipients(candidates, left_out={6, 7}, enabled_channels=tuple(Channel))
    assert [(r.player.id, r.selected_channel) for r in chosen] == [(1, Channel.TELEGRAM), (2, Channel.TELEGRAM)]
    assert select_need_recipients(candidates, left_out=set(), enabled_channels=(Channel.DISCORD,))[0].chain == (
        Channel.DISCORD,
    )


START = local(DAY, 21, 0)
NOW = local(DAY, 20, 45)


@pytest.mark.parametrize("channel", list(Channel))
@pytest.mark.parametrize("dry_run", [False, True])
def test_invitations_read_cleanly_and_only_signal_asks_for_a_digit(channel: Channel, dry_run: bool) -> None:
    texts = [
        reminder_text(START, NOW, ZONE, channel, dry_run),
        start_text(START, ZONE, channel, dry_run),
        need_text(2, START, ZONE, channel, dry_run),
    ]
    for text in texts:
        assert "21:00 CET" in text
        assert "((" not in text and "))" not in text and text.count("(") <= 1, text
        assert text.endswith(SIGNAL_RSVP_PROMPT) is (channel is Channel.SIGNAL), text
        assert ("<t:" in text) is (channel is Channel.DISCORD)
    follow_up = followup_text(START, ZONE, channel, dry_run)
    assert SIGNAL_RSVP_PROMPT not in follow_up  # a follow-up asks nobody anything


def test_the_start_ping_says_when_once() -> None:
    assert start_text(START, ZONE, Channel.DISCORD, False) == (
        f"🎮 We are starting now, at 21:00 CET (<t:{int(START.timestamp())}:t> your time). Jump into the voice channel!"
    )
    assert start_text(START, ZONE, Channel.TELEGRAM, False) == (
        "🎮 We are starting now, at 21:00 CET. Jump into the voice channel!"
    )
    assert need_text(1, START, ZONE, Channel.TELEGRAM, False) == (
        "🙋 Tonight's game needs 1 more player: it starts at 21:00 CET. Can you join?"
    )


@pytest.mark.parametrize(
    ("answer", "chosen", "label"),
    [
        (RsvpAnswer.IN, None, "I'm in"),
        (RsvpAnswer.IN, RsvpAnswer.IN, "✓ I'm in"),
        (RsvpAnswer.LATE, RsvpAnswer.IN, "Running late"),
        (RsvpAnswer.OUT, RsvpAnswer.OUT, "✓ Can't tonight"),
    ],
)
def test_a_button_ticks_the_current_answer(answer: RsvpAnswer, chosen: RsvpAnswer | None, label: str) -> None:
    assert rsvp_label(answer, chosen) == label


def test_the_summary_lists_who_is_late_and_who_cannot_come_apart_from_whom_we_wait_on() -> None:
    text = summary_text(
        start=START, zone=ZONE, in_voice=["Ana"], missing=["Cene", "Dora"], followups_sent=2, dry_run=False,
        late=["Bor"], declined=["@everyone"],
    )
    assert text.splitlines() == [
        "📋 Voice check for the 21:00 CET start",
        "In voice (1): Ana",
        "Running late (1): Bor",
        "Can't tonight (1): @\u200beveryone",
        "Waiting on (2): Cene, Dora",
        "Follow-ups sent: 2 of 2 missing.",
    ]
    quiet = summary_text(start=START, zone=ZONE, in_voice=[], missing=[], followups_sent=0, dry_run=False)
    assert "Running late (0): nobody" in quiet and "Can't tonight (0): nobody" in quiet


def test_a_long_summary_still_fits_discord_with_every_list_cut_short() -> None:
    names = [f"Player number {i}" for i in range(300)]
    text = summary_text(
        start=START, zone=ZONE, in_voice=names, missing=names, followups_sent=300, dry_run=False,
        late=names, declined=names,
    )
    assert len(text) <= 2000
    lines = text.splitlines()
    assert [line.split(" (")[0] for line in lines[1:5]] == ["In voice", "Running late", "Can't tonight", "Waiting on"]
    assert all(line.endswith("more") for line in lines[1:5]), lines

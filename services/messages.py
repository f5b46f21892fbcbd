"""The texts players and the follow-up channel read. Times are the real local start time."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from services.models import Channel, JobType, RsvpAnswer, RsvpRecorded, RsvpRefusal

DISCORD_LIMIT = 2000
# The error a job records when its runs keep dying (the dispatcher writes it, the promoter's DM reads it).
INTERRUPTED_ATTEMPTS = "too many interrupted attempts"

# Formatting characters; "(" and ")" need no escape once "[" and "]" have one (no link can form).
_MARKDOWN = re.compile(r"([\\*_~`|>#\-\[\]])")
_MENTION = re.compile(r"@(everyone|here|[!&]?[0-9]{17,20})")


def discord_literal(text: str) -> str:
    """`text` as Discord should show it, as typed: Markdown escaped, mentions broken by a zero-width space.

    Player names are user input. A name like `**x**` would format and `@everyone` would ping
    (allowed_mentions stops the ping; this keeps it from even looking like one).
    """
    return _MENTION.sub("@\u200b\\1", _MARKDOWN.sub(r"\\\1", text))


def local_time_label(when: datetime, zone: ZoneInfo) -> str:
    """`21:00 CET` — HH:MM in the promotion timezone with its abbreviation."""
    local = when.astimezone(zone)
    return f"{local:%H:%M} {local.tzname()}"


def _discord_stamp(when: datetime, channel: Channel) -> str:
    # Discord renders <t:UNIX:t> in each reader's own timezone; other channels get plain text.
    return f" (<t:{int(when.timestamp())}:t> your time)" if channel is Channel.DISCORD else ""


# The three answers every invitation offers (button labels on Discord and Telegram).
RSVP_LABELS = {RsvpAnswer.IN: "I'm in", RsvpAnswer.LATE: "Running late", RsvpAnswer.OUT: "Can't tonight"}
# Signal has no buttons: its texts end with this, and a bare digit answers.
SIGNAL_RSVP_PROMPT = "Reply 1 = I'm in, 2 = running late, 3 = can't tonight"
RSVP_CONFIRMATIONS = {
    RsvpAnswer.IN: "You're in. See you in voice!",
    RsvpAnswer.LATE: "Noted: you're running late. No nudge will follow; join when you can.",
    RsvpAnswer.OUT: "Noted: you can't make it tonight. No more messages about this session.",
}
RSVP_REFUSALS = {
    RsvpRefusal.NOT_YOURS: "This invitation is not yours, so there is nothing to answer.",
    RsvpRefusal.CANCELLED: "This session was called off; there is nothing to answer.",
    RsvpRefusal.NO_INVITATION: "You have no invitation today to answer.",
}


def rsvp_label(answer: RsvpAnswer, chosen: RsvpAnswer | None) -> str:
    """A button's label: the answer, ticked when it is the player's current one."""
    return f"✓ {RSVP_LABELS[answer]}" if answer is chosen else RSVP_LABELS[answer]


def rsvp_reply_text(result: RsvpRecorded | RsvpRefusal) -> str:
    """What a player reads after answering (an ephemeral reply, a Telegram toast, a Signal text)."""
    if isinstance(result, RsvpRefusal):
        return RSVP_REFUSALS[result]
    return RSVP_CONFIRMATIONS[result.answer]


def _answers(channel: Channel) -> str:
    # Discord and Telegram show the answers as buttons under the text.
    return f"\n{SIGNAL_RSVP_PROMPT}" if channel is Channel.SIGNAL else ""


def shown_title(title: str | None, channel: Channel) -> str | None:
    """A campaign's title as `channel` shows it: escaped for Discord, as typed for Telegram and Signal."""
    if title is None:
        return None
    return discord_literal(title) if channel is Channel.DISCORD else title


def _lead(title: str | None, channel: Channel, sentence: str) -> str:
    """`Raid night: we …` with a title, `We …` without."""
    shown = shown_title(title, channel)
    return f"{shown}: {sentence}" if shown else sentence[:1].upper() + sentence[1:]


def reminder_text(
    start: datetime, now: datetime, zone: ZoneInfo, channel: Channel, dry_run: bool, title: str | None = None
) -> str:
    minutes = max(1, round((start - now).total_seconds() / 60))
    prefix = "[dry run] " if dry_run else ""
    return (
        f"{prefix}⏰ {shown_title(title, channel) or 'Game night'} kicks off in {minutes} "
        f"minute{'s' if minutes != 1 else ''}, at {local_time_label(start, zone)}{_discord_stamp(start, channel)}. "
        f"See you in voice!{_answers(channel)}"
    )


def start_text(start: datetime, zone: ZoneInfo, channel: Channel, dry_run: bool, title: str | None = None) -> str:
    prefix = "[dry run] " if dry_run else ""
    return (
        f"{prefix}🎮 {_lead(title, channel, 'we are starting now')}, at {local_time_label(start, zone)}"
        f"{_discord_stamp(start, channel)}. Jump into the voice channel!{_answers(channel)}"
    )


def need_text(
    count: int, start: datetime, zone: ZoneInfo, channel: Channel, dry_run: bool, title: str | None = None
) -> str:
    """"We need N more": the ask to players outside the snapshot, with the answers."""
    prefix = "[dry run] " if dry_run else ""
    players = "player" if count == 1 else "players"
    evening = shown_title(title, channel) or "Tonight's game"
    return (
        f"{prefix}🙋 {evening} needs {count} more {players}: it starts at "
        f"{local_time_label(start, zone)}{_discord_stamp(start, channel)}. Can you join?{_answers(channel)}"
    )


def followup_text(
    start: datetime, zone: ZoneInfo, channel: Channel, dry_run: bool, title: str | None = None
) -> str:
    prefix = "[dry run] " if dry_run else ""
    return (
        f"{prefix}👋 {_lead(title, channel, f'we started at {local_time_label(start, zone)}')} "
        "and you are not in voice yet. Join us when you can!"
    )


def summary_text(
    *,
    start: datetime,
    zone: ZoneInfo,
    in_voice: Sequence[str],
    missing: Sequence[str],
    followups_sent: int,
    dry_run: bool,
    start_failed: bool = False,
    title: str | None = None,
    late: Sequence[str] = (),
    declined: Sequence[str] = (),
    limit: int = DISCORD_LIMIT,
) -> str:
    """One message: who is in voice, who said they are late or cannot come, whom we wait on, and
    follow-ups sent out of those waited on; fits `limit`."""
    prefix = "[dry run] " if dry_run else ""
    evening = f"{discord_literal(title)}, " if title else ""
    head = f"{prefix}📋 Voice check for {evening}the {local_time_label(start, zone)} start"
    if start_failed:
        tail = "The start ping failed, so no follow-ups were sent."
    else:
        tail = f"Follow-ups sent: {followups_sent} of {len(missing)} missing."
    lists = (("In voice", in_voice), ("Running late", late), ("Can't tonight", declined), ("Waiting on", missing))
    # Share the room left among the name lists; each list ends with "and N more" if cut.
    room = limit - len(head) - len(tail) - 40 * len(lists)
    lines = []
    for i, (label, names) in enumerate(lists):
        shown = _name_list([discord_literal(n) for n in names], room // (len(lists) - i))
        room -= len(shown)
        lines.append(f"{label} ({len(names)}): {shown}")
    return "\n".join([head, *lines, tail])[:limit]


def below_quorum_text(label: str, eligible: int, quorum: int, title: str | None = None) -> str:
    """The one note a standing session below its quorum posts: `Not enough players for Tuesday 21:00: 3 of 6
    looking` (to the follow-up channel, on Discord)."""
    what = f"{discord_literal(title)} ({label})" if title else label
    return f"Not enough players for {what}: {eligible} of {quorum} looking. No pings go out for it."


def _name_list(names: Sequence[str], room: int) -> str:
    if not names:
        return "nobody"
    shown: list[str] = []
    used = 0
    for i, name in enumerate(names):
        rest = len(names) - i - 1
        suffix = f", and {rest} more" if rest else ""
        piece = (", " if shown else "") + name
        if used + len(piece) + len(suffix) > room:
            left = len(names) - len(shown)
            return (", ".join(shown) + f", and {left} more") if shown else f"{left} players"
        shown.append(name)
        used += len(piece)
    return ", ".join(shown)


def moved_away_text(channel: Channel, new_owner: str) -> str:
    """The Discord DM to a player whose Telegram chat or Signal number was just linked to someone else."""
    what = "Telegram chat" if channel is Channel.TELEGRAM else "Signal number"
    return (
        f"Your {what} was just linked to the Discord account {new_owner} and no longer gets your Rallypoint "
        f"promotions. If that was not you, link it again with /notify link {channel.value}."
    )


def signal_code_text(code: str, asked_by: str, community: str | None, minutes: int) -> str:
    """The Signal message with a linking code: who asked for it, where, and what to do if it was not you."""
    who = " ".join(asked_by.split())[:64] or "someone"
    where = f"on the Discord server {' '.join(community.split())[:100]}" if community else "on Discord"
    return (
        f"Your Rallypoint code is {code}, for the Discord user {who} {where}, to link this number. "
        f"It expires in {minutes} minutes. If that was not you, ignore this message: nothing is linked without it."
    )


_JOB_IN_WORDS = {
    JobType.REMINDER: "the reminder",
    JobType.START: "the start ping",
    JobType.VOICE_CHECK: "the voice check",
    JobType.STANDING_DECISION: "the decision whether to promote",
    JobType.NEED: "the \"we need more\" message",
}

# What a job's stored error means, for the promoter (the log keeps the exact error for the operator).
_FAILURES_IN_WORDS: tuple[tuple[str, str], ...] = (
    (INTERRUPTED_ATTEMPTS, "the bot was stopped or crashed during every attempt"),
    ("database is locked", "the database stayed locked by another program"),
    ("database or disk is full", "the server's disk is full"),
    ("disk I/O error", "the server's disk failed to read or write"),
    ("unable to open database", "the database file could not be opened"),
)


def failure_in_words(error: str) -> str:
    """Say why a job failed without its exception text (which may hold ids and belongs in the log)."""
    for marker, words in _FAILURES_IN_WORDS:
        if marker in error:
            return words
    kind = error.split(":", 1)[0].strip()
    if kind.isidentifier():
        return f"an unexpected error ({kind}); the bot's log has the details"
    return "an unexpected error; the bot's log has the details"


def job_failed_text(
    *, job_type: JobType, start: datetime, zone: ZoneInfo, attempts: int, error: str, dry_run: bool,
    title: str | None = None,
) -> str:
    """The DM to a campaign's initiator (or a standing session's creator) when one of its jobs ends
    `failed` (sent once per job)."""
    prefix = "[dry run] " if dry_run else ""
    joint = " " if job_type is JobType.STANDING_DECISION else " of "
    evening = discord_literal(title) if title else "your game night"
    return (
        f"{prefix}⚠️ {_JOB_IN_WORDS[job_type].capitalize()}{joint}{evening} at {local_time_label(start, zone)} "
        f"failed after {attempts} attempt{'s' if attempts != 1 else ''}: {failure_in_words(error)}. "
        "Please tell whoever runs the bot."
    )

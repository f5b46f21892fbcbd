"""Pure renderers: engine results in, discord.Embed out (no I/O, easy to test)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import discord

from services.messages import RSVP_LABELS, discord_literal, local_time_label
from services.models import (
    Board,
    CampaignCreated,
    CampaignStatusView,
    Channel,
    DeliveryStatus,
    Evening,
    NeedAsked,
    PlayerStatus,
    PreferencesView,
    Preview,
    RsvpAnswer,
    StandingDecision,
    StandingSession,
    StandingView,
)
from services.quiet_hours import format_hhmm
from services.sessions import session_label

COLOUR = discord.Colour.from_rgb(88, 101, 242)
FIELD_LIMIT = 1024  # Discord refuses an embed whose field value is longer
EMBED_FIELDS = 25  # … and an embed with more fields
EMBED_TOTAL = 6000  # … and a message whose embeds hold more text in all
LISTED_TITLE = 40  # characters of a title a list shows (the full title is in each message)
STATUS_EMOJI = {
    PlayerStatus.LOOKING: "🟢",
    PlayerStatus.AVAILABLE: "🔵",
    PlayerStatus.MAYBE: "🟡",
    PlayerStatus.NOT_PLAYING: "⚪",
}


def _fit_lines(items: list[str], *, separator: str, limit: int = FIELD_LIMIT) -> str:
    """Join as many items as fit in one embed field, ending with "… and N more" when cut."""
    shown: list[str] = []
    used = 0
    for i, item in enumerate(items):
        more = f"{separator}… and {len(items) - i} more"
        cost = len(item) + (len(separator) if shown else 0)
        # Keep room for the "and N more" tail unless this is the last item.
        tail = len(more) if i < len(items) - 1 else 0
        if used + cost + tail > limit:
            return separator.join(shown) + (more if shown else more.removeprefix(separator))
        shown.append(item)
        used += cost
    return separator.join(shown)


def _escape(name: str) -> str:
    # Player names are user input: never let them format (or mention) anything.
    return discord_literal(name)


def _when(at: datetime, zone: ZoneInfo) -> str:
    return f"{local_time_label(at, zone)} (<t:{int(at.timestamp())}:R>)"


def _channels_line(counts: dict[str, int]) -> str:
    return " · ".join(f"{name}: {n}" for name, n in counts.items())


def _title(title: str, limit: int | None = None) -> str:
    """A title as typed (escaped); cut to `limit` characters with "…" where a list shows many."""
    if limit is not None and len(title) > limit:
        title = title[: limit - 1] + "…"
    return _escape(title)


def _add_title(embed: discord.Embed, title: str | None) -> None:
    if title is not None:
        embed.add_field(name="Title", value=_title(title), inline=False)


def preview_embed(preview: Preview, zone: ZoneInfo) -> discord.Embed:
    title = "Promotion preview" + (" (dry run)" if preview.dry_run else "")
    embed = discord.Embed(title=title, colour=COLOUR)
    embed.add_field(name="Date", value=preview.campaign_date.isoformat())
    embed.add_field(name="Reminder", value=_when(preview.schedule.reminder, zone))
    embed.add_field(name="Start", value=_when(preview.schedule.start, zone))
    embed.add_field(name="Recipients", value=str(preview.recipient_count))
    _add_title(embed, preview.title)
    embed.add_field(name="Channels", value=_channels_line(preview.channels_summary.as_dict()), inline=False)
    lines = _fit_lines(
        [f"{STATUS_EMOJI[r.status]} {_escape(r.player.display_name)} → {r.selected_channel.value}"
         for r in preview.recipients],
        separator="\n",
    )
    embed.add_field(name="Who", value=lines or "Nobody is looking yet.", inline=False)
    if preview.not_opted_in:
        n = preview.not_opted_in
        embed.add_field(
            name="Left out",
            value=f"{n} player{'s' if n != 1 else ''} with that status never turned promotions on: "
            "they get nothing until they do (they are offered a one-tap \"Ping me tonight\").",
            inline=False,
        )
    if preview.unavailable_channels:
        off = ", ".join(sorted(c.value for c in preview.unavailable_channels))
        embed.set_footer(text=f"Not configured here: {off} (those players are reached on Discord).")
    return embed


def created_embed(created: CampaignCreated, zone: ZoneInfo) -> discord.Embed:
    c = created.campaign
    title = f"Campaign {c.id} scheduled" + (" (dry run: only you)" if c.dry_run else "")
    embed = discord.Embed(title=title, colour=discord.Colour.green())
    embed.add_field(name="Reminder", value=_when(created.schedule.reminder, zone))
    embed.add_field(name="Start", value=_when(created.schedule.start, zone))
    embed.add_field(name="Voice check", value=_when(created.schedule.voice_check, zone))
    embed.add_field(name="Recipients", value=str(c.recipient_count))
    _add_title(embed, c.title)
    embed.add_field(name="Channels", value=_channels_line(c.channels_summary.as_dict()), inline=False)
    return embed


def status_embed(view: CampaignStatusView, zone: ZoneInfo, joined: list[str] | None = None) -> discord.Embed:
    """The campaign in counts; `joined`, for a promoter, names who said yes to "we need N more"."""
    c = view.campaign
    embed = discord.Embed(
        title=f"Campaign {c.id} · {c.campaign_date.isoformat()}" + (" (dry run)" if c.dry_run else ""),
        colour=COLOUR,
        description=f"Status: **{c.status.value}** · started by {_escape(c.initiator.display_name)}",
    )
    embed.add_field(name="Recipients", value=str(c.recipient_count))
    if view.start is not None:
        embed.add_field(name="Starts", value=local_time_label(view.start, zone))
    _add_title(embed, c.title)
    if view.standing is not None:
        embed.add_field(name="From", value=_standing_name(view.standing), inline=False)
    embed.add_field(
        name="Delivery",
        value=" · ".join(f"{s.value}: {view.delivery[s]}" for s in DeliveryStatus),
        inline=False,
    )
    embed.add_field(
        name="Answers",
        value=" · ".join(f"{RSVP_LABELS[a]}: {view.rsvp[a]}" for a in RsvpAnswer),
        inline=False,
    )
    if view.need.asked:
        said_yes = f"{view.need.joined} said yes"
        if joined:
            said_yes += ": " + _fit_lines([_escape(n) for n in joined], separator=", ", limit=FIELD_LIMIT - 60)
        embed.add_field(name="We need more", value=f"Asked {view.need.asked} · {said_yes}", inline=False)
    embed.add_field(
        name="Jobs",
        value="\n".join(
            f"`{j.job_type.value}` {local_time_label(j.run_at, zone)} — {j.status.value}"
            f" ({j.attempts}/{j.max_attempts})"
            for j in view.jobs
        ),
        inline=False,
    )
    return embed


def need_text(asked: NeedAsked) -> str:
    """The promoter's answer to /promote need."""
    if not asked.messaged:
        return (
            f"Nobody else can be asked for campaign {asked.campaign.id}: every AVAILABLE or MAYBE player who allows "
            "promotions is in it already or was asked today."
        )
    players = "player" if asked.messaged == 1 else "players"
    return (
        f"Asking {asked.messaged} {players} to join campaign {asked.campaign.id} (you need {asked.count} more). "
        "Those who say they are in get the start ping; `/promote status` shows who said yes."
    )


def board_embed(board: Board, evening: Evening, zone: ZoneInfo) -> discord.Embed:
    """The board, with what is on that evening: the campaign promoted, or the standing sessions to come."""
    counts = board.counts()
    embed = discord.Embed(
        title=f"Who's playing tonight? · {board.day.isoformat()}",
        colour=COLOUR,
        description=_evening_lines(evening, zone),
    )
    for status in PlayerStatus:
        names = [_escape(e.player.display_name) for e in board.entries if e.status is status]
        shown = _fit_lines(names, separator=", ")
        embed.add_field(
            name=f"{STATUS_EMOJI[status]} {status.value.replace('_', ' ').title()} ({counts[status]})",
            value=shown or "—",
            inline=False,
        )
    embed.set_footer(text="Press a button to set your status for tonight.")
    return embed


def _evening_lines(evening: Evening, zone: ZoneInfo) -> str | None:
    campaign, start = evening.campaign, evening.start
    if campaign is not None:
        name = f"**{_title(campaign.title)}**" if campaign.title else "Tonight's session"
        at = f" starts at {local_time_label(start, zone)}" if start is not None else " is on"
        return f"{name}{at}: it is promoted."
    lines = []
    for view in evening.standing:
        s, decision = view.session, view.next
        if decision is None:
            continue
        name = f"**{_title(s.title, LISTED_TITLE)}** ({format_hhmm(s.start_time)})" if s.title else (
            f"A session at {format_hhmm(s.start_time)}"
        )
        lines.append(
            f"{name} happens if {s.quorum} player{'s' if s.quorum != 1 else ''} "
            f"{'are' if s.quorum != 1 else 'is'} up for it at {local_time_label(decision.due_at, zone)}."
        )
    return "\n".join(lines) or None


def _standing_name(session: StandingSession) -> str:
    name = f"standing session {session.id} ({session_label(session.weekday, session.start_time)})"
    return name + (" — removed" if session.removed_at is not None else "")


def _counted(session: StandingSession) -> str:
    statuses = ["LOOKING"]
    if session.include_available:
        statuses.append("AVAILABLE")
    if session.include_maybe:
        statuses.append("MAYBE")
    return " + ".join(statuses)


def _next_line(decision: StandingDecision | None, zone: ZoneInfo) -> str:
    if decision is None:
        return "Next decision: none"
    decided_on = decision.due_at.astimezone(zone).date()
    on = "" if decided_on == decision.session_date else f"{decided_on.isoformat()} "  # just after midnight
    return (
        f"Next: {decision.session_date.isoformat()}, decided {on}at {local_time_label(decision.due_at, zone)} "
        f"(<t:{int(decision.due_at.timestamp())}:R>)"
    )


def _last_line(decision: StandingDecision | None) -> str:
    if decision is None:
        return "Last decision: none yet"
    return f"Last decision ({decision.session_date.isoformat()}): {_escape(decision.detail)}"


def _standing_lines(view: StandingView, zone: ZoneInfo, title_limit: int | None = None) -> list[str]:
    s = view.session
    lines = [f"“{_title(s.title, title_limit)}”"] if s.title else []
    lines += [
        f"Quorum {s.quorum} · counts {_counted(s)} · added by {_escape(s.creator.display_name)}",
        _next_line(view.next, zone),
        _last_line(view.last),
    ]
    return lines


def standing_embed(view: StandingView, zone: ZoneInfo) -> discord.Embed:
    """One standing session, as /promote standing add answers."""
    s = view.session
    embed = discord.Embed(
        title=f"Standing session {s.id}: {session_label(s.weekday, s.start_time)} every week",
        colour=discord.Colour.green(),
        description="\n".join(_standing_lines(view, zone)),
    )
    embed.set_footer(text="At the decision, at quorum the campaign is created as you would; below it, one note "
                     "goes to the follow-up channel.")
    return embed


def standing_list_embed(views: list[StandingView], zone: ZoneInfo) -> discord.Embed:
    """Every standing session, one field each, within Discord's limits (`… and N more` when they run out)."""
    embed = discord.Embed(title="Standing sessions", colour=COLOUR)
    if not views:
        embed.description = "None yet: `/promote standing add` adds one."
        return embed
    used = len(embed.title or "") + 200  # room kept for the footer
    for i, view in enumerate(views):
        name = f"#{view.session.id} · {session_label(view.session.weekday, view.session.start_time)}"
        value = "\n".join(_standing_lines(view, zone, LISTED_TITLE))[:FIELD_LIMIT]
        if i == EMBED_FIELDS or used + len(name) + len(value) > EMBED_TOTAL:
            embed.set_footer(text=f"… and {len(views) - i} more (the API lists them all).")
            break
        embed.add_field(name=name, value=value, inline=False)
        used += len(name) + len(value)
    return embed


def preferences_embed(view: PreferencesView) -> discord.Embed:
    p = view.preferences
    embed = discord.Embed(title="Your promotion settings", colour=COLOUR)
    if p.allow_promotions:
        promotions = "on"
    elif p.promotions_chosen:
        promotions = "off"
    else:
        promotions = "off: you never turned them on, so you get no pings (`/notify settings allow_promotions:True`)"
    embed.add_field(name="Promotions", value=promotions)
    embed.add_field(name="Preferred channel", value=p.preferred_channel.value)
    quiet = p.quiet_hours
    embed.add_field(
        name="Quiet hours",
        value=f"{format_hhmm(quiet.start)}–{format_hhmm(quiet.end)}" if quiet else "none",
    )
    embed.add_field(name="Timezone", value=p.timezone or "the server's")
    linked = {link.channel: link for link in view.links}
    embed.add_field(
        name="Linked",
        value="\n".join(
            f"{c.value}: " + ("yes" if c is Channel.DISCORD or c in linked else "no") for c in Channel
        ),
        inline=False,
    )
    if view.discord_dms_closed_at is not None:
        embed.add_field(name="Discord DMs", value=dms_closed_notice(view.discord_dms_closed_at), inline=False)
    return embed


def dms_closed_notice(closed_at: datetime) -> str:
    """What a player reads after Discord refused them a DM: why they got none, and what happens now."""
    return (
        f"Discord refused our DM to you <t:{int(closed_at.timestamp())}:R> (your DMs are closed), so Rallypoint "
        "stopped messaging you there. Now that you are back we will try Discord again with the next message; "
        "allow direct messages from this server's members (Server → Privacy Settings) to get it."
    )

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
    NeedAsked,
    PlayerStatus,
    PreferencesView,
    Preview,
    RsvpAnswer,
)
from services.quiet_hours import format_hhmm

COLOUR = discord.Colour.from_rgb(88, 101, 242)
FIELD_LIMIT = 1024  # Discord refuses an embed whose field value is longer
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


def preview_embed(preview: Preview, zone: ZoneInfo) -> discord.Embed:
    title = "Promotion preview" + (" (dry run)" if preview.dry_run else "")
    embed = discord.Embed(title=title, colour=COLOUR)
    embed.add_field(name="Date", value=preview.campaign_date.isoformat())
    embed.add_field(name="Reminder", value=_when(preview.schedule.reminder, zone))
    embed.add_field(name="Start", value=_when(preview.schedule.start, zone))
    embed.add_field(name="Recipients", value=str(preview.recipient_count))
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


def board_embed(board: Board) -> discord.Embed:
    counts = board.counts()
    embed = discord.Embed(title=f"Who's playing tonight? · {board.day.isoformat()}", colour=COLOUR)
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

"""Recipient selection (rules 2 and 5): who is promoted to, on which channel."""

from __future__ import annotations

from collections.abc import Collection, Iterable

from services.models import Candidate, Channel, Player, PlayerStatus, Preferences, Recipient
from services.routing import fallback_chain

# The statuses a campaign may reach (LOOKING always, AVAILABLE and MAYBE when asked).
PROMOTABLE: frozenset[PlayerStatus] = frozenset({PlayerStatus.LOOKING, PlayerStatus.AVAILABLE, PlayerStatus.MAYBE})
# Whom "we need N more" asks: the players who might play, not those already looking (the snapshot took them).
NEED_STATUSES: frozenset[PlayerStatus] = frozenset({PlayerStatus.AVAILABLE, PlayerStatus.MAYBE})


def ask_consent(status: PlayerStatus | None, preferences: Preferences) -> bool:
    """Whether to offer "Ping me tonight": a status a campaign could reach, from a player who never chose.

    A player who said no (or yes) once is not asked again; /notify settings changes their mind.
    """
    return status in PROMOTABLE and not preferences.promotions_chosen


def wanted_statuses(include_available: bool, include_maybe: bool) -> frozenset[PlayerStatus]:
    statuses = {PlayerStatus.LOOKING}
    if include_available:
        statuses.add(PlayerStatus.AVAILABLE)
    if include_maybe:
        statuses.add(PlayerStatus.MAYBE)
    return frozenset(statuses)


def select_recipients(
    candidates: Iterable[Candidate],
    *,
    include_available: bool,
    include_maybe: bool,
    enabled_channels: Iterable[Channel] = tuple(Channel),
) -> list[Recipient]:
    """Snapshot the players to promote to: wanted status, promotions allowed, a usable channel."""
    return _choose(candidates, wanted_statuses(include_available, include_maybe), enabled_channels)


def select_need_recipients(
    candidates: Iterable[Candidate], *, left_out: Collection[int], enabled_channels: Iterable[Channel] = tuple(Channel)
) -> list[Recipient]:
    """Whom "we need N more" asks: AVAILABLE and MAYBE players who allow promotions, but for the
    `left_out` player ids (the snapshot, and whoever was asked already that day)."""
    return _choose((c for c in candidates if c.player.id not in left_out), NEED_STATUSES, enabled_channels)


def _choose(
    candidates: Iterable[Candidate], statuses: frozenset[PlayerStatus], enabled_channels: Iterable[Channel]
) -> list[Recipient]:
    enabled = tuple(enabled_channels)
    chosen: list[Recipient] = []
    for c in candidates:
        if c.status not in statuses or not c.preferences.allow_promotions:
            continue
        chain = fallback_chain(c.preferences.preferred_channel, c.verified_channels, enabled)
        chosen.append(Recipient(c.player, c.status, chain[0], chain))
    chosen.sort(key=lambda r: (r.player.display_name.casefold(), r.player.id))
    return chosen


def dry_run_recipients(initiator: Player, status: PlayerStatus | None) -> list[Recipient]:
    """A dry run reaches the initiator alone, on Discord, whatever their status or preferences."""
    return [
        Recipient(initiator, status or PlayerStatus.LOOKING, Channel.DISCORD, (Channel.DISCORD,)),
    ]

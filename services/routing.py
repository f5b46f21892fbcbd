"""Channel fallback chains over verified links: each preference's order of channels to try."""

from __future__ import annotations

import functools
from collections.abc import Iterable

from services.models import Channel, PreferredChannel

FALLBACK: dict[PreferredChannel, tuple[Channel, ...]] = {
    PreferredChannel.TELEGRAM: (Channel.TELEGRAM, Channel.SIGNAL, Channel.DISCORD),
    PreferredChannel.SIGNAL: (Channel.SIGNAL, Channel.TELEGRAM, Channel.DISCORD),
    PreferredChannel.DISCORD: (Channel.DISCORD, Channel.TELEGRAM, Channel.SIGNAL),
    PreferredChannel.ANY: (Channel.TELEGRAM, Channel.SIGNAL, Channel.DISCORD),
}


def fallback_chain(
    preferred: PreferredChannel,
    verified: Iterable[Channel],
    enabled: Iterable[Channel] = tuple(Channel),
) -> tuple[Channel, ...]:
    """Return the channels to try in order (see `_chain`); cached, as a campaign asks it per player."""
    return _chain(preferred, frozenset(verified), frozenset(enabled))


@functools.cache
def _chain(
    preferred: PreferredChannel, verified: frozenset[Channel], enabled: frozenset[Channel]
) -> tuple[Channel, ...]:
    """Return the channels to try in order: the preference's chain, keeping usable channels only.

    A channel is usable when it is configured on this instance (`enabled`) and the player has a
    verified link for it; Discord always counts as linked. The chain is never empty because
    Discord is always enabled.
    """
    usable = set(verified) | {Channel.DISCORD}
    on = set(enabled) | {Channel.DISCORD}
    return tuple(c for c in FALLBACK[preferred] if c in usable and c in on)

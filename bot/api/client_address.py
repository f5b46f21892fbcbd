"""Who is on the other end of a request: the TCP peer, or behind trusted proxies the client they name.

`X-Forwarded-For` is anyone's to write, so it is read only when the peer is one of the configured
`api.trusted_proxies`, and then from the right: each trusted proxy appends the address it saw, so
the first address from the right that is not a trusted proxy is the client. Without trusted proxies
(the default) the header is ignored and the client is the peer — behind a reverse proxy, the proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN = "-"


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str:
    """The client's address as a string (`-` when the peer is unknown, e.g. on a Unix socket)."""
    if not peer:
        return UNKNOWN
    if not trusted or not _trusted(peer, trusted):
        return peer
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        try:
            address = str(ipaddress.ip_address(hop))
        except ValueError:
            # A trusted proxy wrote something that is not an address: trust nothing further left.
            return peer
        if not _trusted(address, trusted):
            return address
    # Every hop is a trusted proxy (or there is no header): the leftmost one is the best we know.
    return str(ipaddress.ip_address(hops[0])) if hops else peer

"""Who the client is: X-Forwarded-For counts only from trusted proxies, read from the right."""

from __future__ import annotations

import ipaddress

import pytest

from bot.api.client_address import client_address
from bot.config import ApiSettings, ConfigError, load_settings

PROXY = ("127.0.0.1/32", "10.0.0.0/8", "::1/128")
TRUSTED = tuple(ipaddress.ip_network(n) for n in PROXY)


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "client"),
    [
        # Without trusted proxies the header is anyone's to write: ignored.
        ("203.0.113.7", ["198.51.100.1"], (), "203.0.113.7"),
        ("127.0.0.1", ["198.51.100.1"], (), "127.0.0.1"),
        # A peer that is not a trusted proxy cannot speak for anyone else.
        ("203.0.113.7", ["198.51.100.1"], TRUSTED, "203.0.113.7"),
        # Through one trusted proxy: the address it appended.
        ("127.0.0.1", ["198.51.100.1"], TRUSTED, "198.51.100.1"),
        # A client that sends its own X-Forwarded-For: the proxy appends the real address after it.
        ("127.0.0.1", ["6.6.6.6, 198.51.100.1"], TRUSTED, "198.51.100.1"),
        ("127.0.0.1", ["6.6.6.6", "198.51.100.1"], TRUSTED, "198.51.100.1"),
        # Two trusted proxies in a row.
        ("127.0.0.1", ["198.51.100.1, 10.1.2.3"], TRUSTED, "198.51.100.1"),
        # Garbage from the right is where trust ends: the proxy itself.
        ("127.0.0.1", ["198.51.100.1, not-an-address"], TRUSTED, "127.0.0.1"),
        # A trusted proxy without the header (a health check from the proxy host).
        ("127.0.0.1", [], TRUSTED, "127.0.0.1"),
        # Only trusted hops: the leftmost.
        ("127.0.0.1", ["10.9.9.9, 10.1.1.1"], TRUSTED, "10.9.9.9"),
        ("::1", ["2001:db8::5"], TRUSTED, "2001:db8::5"),
        (None, ["198.51.100.1"], TRUSTED, "-"),
    ],
)
def test_client_address(
    peer: str | None, forwarded: list[str], trusted: tuple[ipaddress.IPv4Network, ...], client: str
) -> None:
    assert client_address(peer, forwarded, trusted) == client


def test_trusted_proxies_are_addresses_or_networks(tmp_path) -> None:
    assert ApiSettings(trusted_proxies=["127.0.0.1", "10.0.0.0/8", "::1"]).proxy_networks == (
        ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")
    )
    config = tmp_path / "c.toml"
    config.write_text('[api]\ntrusted_proxies = ["127.0.0.1", "proxy.local"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"api\.trusted_proxies.*'proxy\.local' is not an IP address"):
        load_settings(config)

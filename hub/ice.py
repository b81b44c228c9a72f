"""Where WebRTC media may flow: ``CITYHUB_WEBRTC_NETWORKS`` at both ends of ICE, for every aiortc
peer of the process (live talk, hotline agents, video tiles).

``restrict_host_addresses`` makes aioice gather only local addresses inside the networks (loopback
included when listed: aioice leaves 127.0.0.1 out by default); ``filter_candidates`` drops a
browser offer's candidates outside them (and mDNS ``.local`` names) before aiortc sees the offer.
An empty list: no limit.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import aioice.ice
import ifaddr

Networks = Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]


def parse_networks(texts: Sequence[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(t.strip(), strict=False) for t in texts if t.strip()]


def _inside(address: str, networks: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False  # a hostname (mDNS ``.local``): not resolvable to a known network
    return any(ip in n for n in networks)


def restrict_host_addresses(networks: Networks) -> None:
    """Make aioice (every peer connection of this process) gather only local addresses inside
    ``networks``; an empty list restores aioice's own choice."""
    original = getattr(aioice.ice, "_cityhub_original", aioice.ice.get_host_addresses)
    aioice.ice._cityhub_original = original  # type: ignore[attr-defined]
    if not networks:
        aioice.ice.get_host_addresses = original
        return

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        found: list[str] = []
        for adapter in ifaddr.get_adapters():
            for ip in adapter.ips:
                address = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
                wanted = use_ipv4 if isinstance(ip.ip, str) else use_ipv6
                if wanted and _inside(address, networks) and address not in found:
                    found.append(address)
        return found

    aioice.ice.get_host_addresses = host_addresses


def filter_candidates(sdp: str, networks: Networks) -> str:
    """The offer without ICE candidates outside ``networks`` (unchanged when there is no limit)."""
    if not networks:
        return sdp
    lines = sdp.replace("\r\n", "\n").split("\n")
    kept = []
    for line in lines:
        if line.startswith("a=candidate:"):
            parts = line.split()
            if len(parts) < 5 or not _inside(parts[4], networks):
                continue
        kept.append(line)
    return "\r\n".join(kept)

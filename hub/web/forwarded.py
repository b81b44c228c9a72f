"""The client's address behind trusted reverse proxies (pure: no request objects, no settings).

``X-Forwarded-For`` is whatever the client wrote, with each proxy appending the address it received
the request from. So it is believed only when the direct peer is one of the configured trusted
proxies (``CITYHUB_TRUSTED_PROXIES``: addresses or CIDR networks), and then read from the right: the
first address that is not itself a trusted proxy is the client. Everything left of it was written by
the client and is never looked at. A header that is malformed where it is read (an entry that is not
an IP address, an empty entry, more than ``MAX_HOPS`` trusted hops) is ignored as a whole: the
direct peer is the client. Several ``X-Forwarded-For`` headers count as one, joined in order.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_HOPS = 16  # entries read from the right at most


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """``"10.0.0.5"``, ``"10.1.0.0/16"``, ``"::1"``… as networks; ValueError names a bad entry."""
    out: list[IPNetwork] = []
    for entry in entries:
        text = entry.strip()
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"not an IP address or network: {text!r}") from None
        if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
            mapped = net.network_address.ipv4_mapped
            if mapped is not None:  # ::ffff:a.b.c.d/n is the IPv4 network a.b.c.d/(n - 96)
                net = ipaddress.IPv4Network((mapped, net.prefixlen - 96), strict=False)
        out.append(net)
    return tuple(out)


@functools.lru_cache(maxsize=16)
def trusted_networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """``parse_networks`` for a settings value, parsed once."""
    return parse_networks(entries)


def parse_address(text: str) -> IPAddress | None:
    """An IP address as proxies write it: ``1.2.3.4``, ``1.2.3.4:5678``, ``2001:db8::1``,
    ``[2001:db8::1]``, ``[2001:db8::1]:443``; IPv4-mapped IPv6 becomes IPv4. None if it is not one."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        text = host
    elif text.count(":") == 1:  # IPv4 with a port
        host, _, port = text.partition(":")
        if not port.isdigit():
            return None
        text = host
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _is_trusted(ip: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(ip.version == net.version and ip in net for net in trusted)


def client_address(peer: str, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]) -> str:
    """The client's address given the direct ``peer``, the ``X-Forwarded-For`` header values in
    order and the trusted proxies (see the module docstring). Addresses come back normalised
    (``str`` of the address; IPv4-mapped IPv6 as IPv4); a peer that is no IP address verbatim."""
    peer_ip = parse_address(peer)
    if peer_ip is None:
        return peer
    if not forwarded_for or not _is_trusted(peer_ip, trusted):
        return str(peer_ip)
    entries = ",".join(forwarded_for).rsplit(",", MAX_HOPS)
    complete = len(entries) <= MAX_HOPS  # else entries[0] still holds the rest of the header
    if not complete:
        entries = entries[1:]
    leftmost: IPAddress | None = None
    for raw in reversed(entries):
        ip = parse_address(raw)
        if ip is None:
            return str(peer_ip)  # malformed: ignore the header
        if not _is_trusted(ip, trusted):
            return str(ip)
        leftmost = ip
    # Every hop read is a trusted proxy: the earliest one is the client, if the header ended there.
    return str(leftmost) if complete and leftmost is not None else str(peer_ip)

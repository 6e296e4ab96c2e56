"""Which addresses a webhook may reach (the SSRF guard).

Only public unicast addresses: loopback, private, link-local (cloud metadata at
169.254.169.254 and fd00:ec2::254 included), CGNAT, multicast, reserved and unspecified
ranges are refused, IPv4 and IPv6 alike, and an IPv6 address embedding an IPv4 one
(IPv4-mapped, 6to4, Teredo, NAT64) is judged by the IPv4 address too. Names are judged by
every address they resolve to; the delivery worker then connects to an address it checked
(server/delivery.py), so a name that re-resolves elsewhere (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


class AddressRefused(Exception):
    """A webhook URL whose host is, or resolves to, an address it may not reach."""


def _embedded(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    out = []
    if ip.ipv4_mapped is not None:
        out.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        out.append(ip.sixtofour)
    if ip.teredo is not None:
        out.extend(ip.teredo)
    if ip in _NAT64:
        out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return out


def refusal(address: str) -> str | None:
    """Why address may not be reached, or None when it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        candidates.extend(_embedded(ip))
    for a in candidates:
        for name, bad in (
            ("loopback", a.is_loopback),
            ("unspecified", a.is_unspecified),
            ("link-local", a.is_link_local),
            ("multicast", a.is_multicast),
            ("private", a.is_private),
            ("reserved", a.is_reserved),
            ("shared (CGNAT)", isinstance(a, ipaddress.IPv4Address) and a in _CGNAT),
            ("not globally routable", not a.is_global),
        ):
            if bad:
                return f"{address} is not a public address ({name})"
    return None


def resolve(host: str, port: int) -> list[str]:
    """Every address host resolves to, each one allowed; AddressRefused otherwise."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise AddressRefused(f"{host} does not resolve ({e})") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    for address in addresses:
        why = refusal(address)
        if why is not None:
            raise AddressRefused(f"{host} resolves to {why}" if host != address else why)
    if not addresses:
        raise AddressRefused(f"{host} does not resolve")
    return addresses

"""A link's ``allowed_ips``: IPs and CIDRs, normalised when stored, matched per request."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

MAX_ENTRIES = 20

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def normalise(value: str) -> str:
    """``192.0.2.7`` stays an address, ``10.1.2.3/8`` becomes ``10.0.0.0/8`` (host bits
    dropped), IPv6 is compressed; anything else (a zone id included) is a ValueError (the
    API's 400)."""
    text = value.strip()
    try:
        if "%" in text:  # an IPv6 zone ("%eth0") names a local interface, not a client
            raise ValueError
        if "/" not in text:
            return str(ipaddress.ip_address(text))
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise ValueError(f"not an IP address or CIDR: {value[:50]!r}") from None


def normalise_all(values: Iterable[str]) -> list[str]:
    """Each entry normalised, duplicates dropped, order kept."""
    return list(dict.fromkeys(normalise(v) for v in values))


def allows(allowed: list[str] | None, client_ip: str | None) -> bool:
    """No list allows everyone; with one, the client address must fall in an entry. An
    IPv4-mapped IPv6 peer (``::ffff:192.0.2.7``) counts as its IPv4 address."""
    if allowed is None:
        return True
    if not client_ip:
        return False
    try:
        ip = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    networks: list[Network] = [ipaddress.ip_network(entry, strict=False) for entry in allowed]
    return any(ip.version == net.version and ip in net for net in networks)

"""Outbound requests to addresses a user chose (knowledge links): only public hosts, every hop.

A link a manager pastes is fetched by our server, so it must never reach what only the server can
reach: loopback, private networks, link-local (cloud metadata at 169.254.169.254 included),
carrier-grade NAT, multicast, unspecified and reserved ranges, in any spelling (decimal, octal,
hex and short IPv4 forms, IPv6-mapped IPv4). Names are checked after resolution, and the
connection is made to exactly the addresses that passed (`PublicResolver`), so a name that
resolves to a public address for the check and a private one for the connection (DNS rebinding)
gets nowhere. Redirects are not followed by the HTTP client; the caller checks each hop with
`check_url` first. An operator can trust named internal hosts (`KNOWLEDGE_URL_ALLOW_HOSTS`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

from core.errors import InvalidInput

# Not in the stdlib's idea of "not global" on every Python: spelled out so the rule is explicit.
_EXTRA_BLOCKED = [ipaddress.ip_network(n) for n in (
    "100.64.0.0/10",   # carrier-grade NAT (Alibaba's metadata service lives at 100.100.100.200)
    "192.0.0.0/24",    # IETF protocol assignments
    "198.18.0.0/15",   # benchmarking
    "fd00:ec2::/32",   # AWS metadata over IPv6 (also inside fc00::/7)
)]


class EgressRefused(InvalidInput):
    """A user-given URL points where the server must not go; the message says why."""

    code = "url_refused"


def address_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why connecting to `ip` is refused, or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    checks = (("a loopback address", ip.is_loopback), ("an unspecified address", ip.is_unspecified),
              ("a link-local address (such as cloud metadata)", ip.is_link_local),
              ("a multicast address", ip.is_multicast), ("a private network address", ip.is_private),
              ("a reserved address", ip.is_reserved),
              ("a carrier-grade NAT or special-purpose address", any(ip in n for n in _EXTRA_BLOCKED
                                                                      if n.version == ip.version)),
              ("not a public address", not ip.is_global))
    return next((why for why, hit in checks if hit), None)


@dataclass(frozen=True)
class EgressPolicy:
    """Where user-given URLs may lead: http(s) on `ports` to public addresses, or `allow_hosts`."""

    allow_hosts: frozenset[str] = field(default_factory=frozenset)
    ports: frozenset[int] = frozenset({80, 443})

    @classmethod
    def of(cls, allow_hosts: list[str] | None = None, ports: list[int] | None = None) -> EgressPolicy:
        return cls(frozenset(h.strip().lower().rstrip(".") for h in allow_hosts or [] if h.strip()),
                   frozenset(ports or (80, 443)))

    def trusted(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.allow_hosts


def split_url(url: str, policy: EgressPolicy) -> tuple[str, int]:
    """(host, port) of `url` if its form is allowed; raises `EgressRefused` saying why not."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise EgressRefused(f"{url[:200]!r} is not a valid link") from None
    if parts.scheme not in ("http", "https"):
        raise EgressRefused("only http:// and https:// links can be imported")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise EgressRefused(f"{url[:200]!r} names no host")
    if parts.username or parts.password:
        raise EgressRefused("links with a user name or password in them are not imported")
    port = port or (443 if parts.scheme == "https" else 80)
    if not policy.trusted(host) and port not in policy.ports:
        raise EgressRefused(f"port {port} is not allowed for imported links (only {', '.join(map(str, sorted(policy.ports)))}; "
                            "KNOWLEDGE_URL_ALLOWED_PORTS changes it)")
    return host, port


async def public_addresses(host: str, port: int, policy: EgressPolicy) -> list[ResolveResult]:
    """Every address `host` resolves to, if all of them are public (or the host is trusted)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        raise EgressRefused(f"the host {host!r} cannot be found") from None
    results: list[ResolveResult] = []
    for family, _, proto, _, sockaddr in infos:
        ip = ipaddress.ip_address(sockaddr[0].split("%")[0])
        why = None if policy.trusted(host) else address_problem(ip)
        if why is not None:
            shown = host if host == str(ip) else f"{host} ({ip})"
            raise EgressRefused(f"{shown} is {why}; links must point to a public web site "
                                "(an operator can allow an internal host with KNOWLEDGE_URL_ALLOW_HOSTS)")
        results.append(ResolveResult(hostname=host, host=str(ip), port=port, family=family, proto=proto,
                                     flags=socket.AI_NUMERICHOST))
    if not results:
        raise EgressRefused(f"the host {host!r} cannot be found")
    return results


async def check_url(url: str, policy: EgressPolicy) -> None:
    """Refuse `url` (raises `EgressRefused`) unless the server may fetch it now."""
    host, port = split_url(url, policy)
    await public_addresses(host, port, policy)


class PublicResolver(AbstractResolver):
    """aiohttp resolver that hands the connector only addresses that passed the policy, so the
    address connected to is the address checked."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        return await public_addresses(host, port, self.policy)

    async def close(self) -> None:
        return None

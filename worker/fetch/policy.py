"""Which addresses a stranger's URL may reach: resolved once, every address checked.

Whatever the resolver returns is vetted here and the fetch connects to exactly what was vetted, so a
rebinding DNS server never gets a second question.
"""
from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Any, Callable

from server.checks.urls import ParsedUrl
from worker.fetch.common import FetchLimits, FetchRefused, IPNetwork
from worker.fetch.deadline import Deadline

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


def _nets(*specs: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(net), label) for net, label in specs)


# Explicit lists, because ``is_global`` differs between Python versions (3.11 calls some
# multicast global) and the reason shown to people should name the range.
_V4_BLOCKS = _nets(
    ("0.0.0.0/32", "the unspecified address"),
    ("0.0.0.0/8", "a 'this network' address"),
    ("127.0.0.0/8", "a loopback address"),
    ("10.0.0.0/8", "a private address"),
    ("172.16.0.0/12", "a private address"),
    ("192.168.0.0/16", "a private address"),
    ("100.64.0.0/10", "a carrier-grade NAT (shared) address"),
    ("169.254.169.254/32", "the cloud metadata address (link-local)"),
    ("169.254.0.0/16", "a link-local address"),
    ("192.0.0.0/24", "an IETF protocol address"),
    ("192.0.2.0/24", "a documentation address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("192.88.99.0/24", "a 6to4 relay address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("224.0.0.0/4", "a multicast address"),
    ("255.255.255.255/32", "the broadcast address"),
    ("240.0.0.0/4", "a reserved address"),
)
# Tunnelled forms carry an IPv4 address inside; they are refused outright rather than
# trusting that the gateway in between would refuse a private one.
_V6_BLOCKS = _nets(
    ("::/128", "the unspecified address"),
    ("::1/128", "a loopback address"),
    ("::ffff:0:0:0/96", "an IPv4-translated address (tunnelled)"),
    ("::/96", "an IPv4-compatible address (tunnelled)"),
    ("64:ff9b::/96", "a NAT64 address (tunnelled)"),
    ("64:ff9b:1::/48", "a local NAT64 address (tunnelled)"),
    ("100::/64", "a discard-only address"),
    ("2001::/32", "a Teredo address (tunnelled)"),
    ("2001:db8::/32", "a documentation address"),
    ("3fff::/20", "a documentation address"),
    ("2002::/16", "a 6to4 address (tunnelled)"),
    ("5f00::/16", "a segment-routing address"),
    ("fc00::/7", "a unique-local (private) address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
    ("::/8", "a reserved address"),
)


_LOW32_EMBEDDERS = tuple(ipaddress.IPv6Network(n) for n in ("64:ff9b::/96", "::/96", "::ffff:0:0:0/96"))


def _embedded_v4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address a tunnelled IPv6 form points at, so the reason can name it."""
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr.teredo is not None:
        return addr.teredo[1]
    if any(addr in net for net in _LOW32_EMBEDDERS):
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return None


def _blocked_reason(addr: IPAddress) -> str | None:
    """Plain words for why ``addr`` may not be fetched, or None when it is a public address."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id:
            return "a scoped (interface-bound) IPv6 address"
        mapped = addr.ipv4_mapped
        if mapped is not None:
            inner = _blocked_reason(mapped)
            return f"an IPv4-mapped address for {mapped}, {inner}" if inner else None
        for net, label in _V6_BLOCKS:
            if addr in net:
                v4 = _embedded_v4(addr)
                return f"{label} embedding {v4}" if v4 is not None and "tunnelled" in label else label
    else:
        for net, label in _V4_BLOCKS:
            if addr in net:
                return label
    # Belt and braces for anything the tables miss.
    if addr.is_multicast:
        return "a multicast address"
    if addr.is_loopback:
        return "a loopback address"
    if addr.is_unspecified:
        return "the unspecified address"
    if addr.is_link_local:
        return "a link-local address"
    if addr.is_private:
        return "a private address"
    if addr.is_reserved:
        return "a reserved address"
    if isinstance(addr, ipaddress.IPv6Address) and addr.is_site_local:
        return "a site-local address"
    if not addr.is_global:
        return "a non-public address"
    return None


def _exempt(addr: IPAddress, allow_networks: tuple[IPNetwork, ...]) -> bool:
    candidates: list[IPAddress] = [addr]
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        candidates.append(addr.ipv4_mapped)
    return any(a in net for a in candidates for net in allow_networks)


def _vet(ip: str, allow_networks: tuple[IPNetwork, ...]) -> tuple[str | None, str | None]:
    """(address to connect to, None) when allowed, else (None, reason)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None, "not an IP address"
    # Connect to the IPv4 address itself, not its mapped form, so the check and the
    # connection are about the same thing.
    target: IPAddress = addr
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None and not addr.scope_id:
        target = addr.ipv4_mapped
    if _exempt(addr, allow_networks):
        return str(target), None
    reason = _blocked_reason(addr)
    return (None, reason) if reason else (str(target), None)


def _show(ip: str) -> str:
    """An address as people write it (Python 3.11 prints ::ffff:127.0.0.1 as ::ffff:7f00:1)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None and not addr.scope_id:
        return f"::ffff:{addr.ipv4_mapped}"
    return str(addr)


def check_address(ip: str, allow_networks: tuple[IPNetwork, ...] | list[IPNetwork] = ()) -> None:
    """Refuse an address a stranger's URL must not reach (internal, tunnelled, non-unicast).

    ``allow_networks`` exists so tests can reach their own loopback servers; it is empty in
    production.
    """
    _, reason = _vet(ip, tuple(allow_networks))
    if reason:
        raise FetchRefused(f"refused: {ip} is {reason}", "blocked-address")


def system_resolver(host: str, port: int) -> list[str]:
    """The OS resolver, asked once per hop; fetch() connects to what this returned."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        ip = str(sockaddr[0])
        if ip not in seen:
            seen.append(ip)
    return seen


def _resolve(resolver: Resolver, host: str, port: int, deadline: Deadline) -> list[str]:
    """Run the resolver under the deadline; getaddrinfo itself has no timeout."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["ips"] = resolver(host, port)
        except BaseException as exc:  # handed to the caller below
            box["exc"] = exc

    thread = threading.Thread(target=run, name="credence-dns", daemon=True)
    thread.start()
    thread.join(deadline.remaining())
    if thread.is_alive():
        raise deadline.refusal(f"looking up {host}")
    exc = box.get("exc")
    if isinstance(exc, FetchRefused):
        raise exc
    if isinstance(exc, (OSError, UnicodeError, ValueError)):
        raise FetchRefused(f"could not look up {host}: {exc}", "dns") from exc
    if exc is not None:
        raise exc
    ips = [str(ip) for ip in box.get("ips") or []]
    if not ips:
        raise FetchRefused(f"could not look up {host}: it has no addresses", "dns")
    return list(dict.fromkeys(ips))


def addresses(target: ParsedUrl, limits: FetchLimits, resolver: Resolver, deadline: Deadline) -> list[str]:
    """Every address the host has, all checked; one bad address refuses the host."""
    if target.literal is not None:
        connect_ip, reason = _vet(target.literal, limits.allow_networks)
        if reason:
            shown = _show(target.literal)
            if target.written.lower() in (target.literal, shown):
                raise FetchRefused(f"refused: {shown} is {reason}", "blocked-address")
            # 2130706433, 0x7f.1 and friends: say what the disguise meant.
            raise FetchRefused(f"refused: {target.written} means {shown}, {reason}", "blocked-address")
        return [connect_ip] if connect_ip else []
    allowed: list[str] = []
    for ip in _resolve(resolver, target.host, target.port, deadline):
        connect_ip, reason = _vet(ip, limits.allow_networks)
        if reason or connect_ip is None:
            raise FetchRefused(f"refused: {target.host} resolves to {ip}, {reason}", "blocked-address")
        allowed.append(connect_ip)
    return list(dict.fromkeys(allowed))

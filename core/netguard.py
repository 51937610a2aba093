"""SSRF guard for callbacks: refuse addresses a client must not make the service call.

A callback URL is checked when it is submitted and again by the delivery job, at the moment
it connects: `GuardedBackend` resolves the host, refuses it if any address is loopback,
private, link-local, a cloud metadata address or otherwise not publicly routable, and then
connects to the address it checked (so a DNS answer that changes in between cannot slip
through). `CALLBACK_ALLOW_PRIVATE=true` turns the refusal off (tests, intranet receivers).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpcore

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Cloud metadata endpoints (AWS/GCP/Azure/OpenStack, AWS IPv6, Alibaba): named in refusals.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address) for address in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)


class RefusedAddressError(ValueError):
    """The callback host is, or resolves to, an address the guard refuses."""


class UnresolvableHostError(OSError):
    """The callback host does not resolve (now)."""


def refusal(address: IPAddress) -> str | None:
    """Why `address` is refused, or None when it is publicly routable."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for reason, flagged in (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if flagged:
            return f"a {reason} address"
    if not address.is_global:
        return "not a publicly routable address"
    return None


def check_addresses(host: str, addresses: Iterable[str]) -> None:
    """Raise RefusedAddressError if any of `host`'s addresses is refused."""
    for text in addresses:
        reason = refusal(ipaddress.ip_address(text.split("%", 1)[0]))
        if reason:
            shown = host if host == text else f"{host} ({text})"
            raise RefusedAddressError(f"{shown} is {reason}; set CALLBACK_ALLOW_PRIVATE=true to allow it")


def literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def addresses_from(infos: Iterable[tuple[Any, ...]]) -> list[str]:
    """Unique addresses, in resolver order, from `getaddrinfo` results."""
    seen: dict[str, None] = {}
    for info in infos:
        seen.setdefault(str(info[4][0]), None)
    return list(seen)


def resolve(host: str, port: int) -> list[str]:
    literal = literal_address(host)
    if literal is not None:
        return [str(literal)]
    try:
        return addresses_from(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    except socket.gaierror as exc:
        raise UnresolvableHostError(f"{host} does not resolve: {exc.strerror}") from None


def vet(host: str, port: int, allow_private: bool) -> list[str]:
    """The addresses to connect to for `host`, after the guard's check."""
    addresses = resolve(host, port)
    if not allow_private:
        check_addresses(host, addresses)
    return addresses


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, connecting only to addresses the guard passed."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        last_error: Exception | None = None
        for address in vet(host, port, self.allow_private):
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

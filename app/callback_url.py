"""Checking a submitted `callback_url`: callbacks enabled, and an address the SSRF guard accepts."""

from __future__ import annotations

import asyncio
import socket
from typing import Any
from urllib.parse import urlsplit

from app.errors import ValidationFailedError
from core import meta, netguard
from core.settings import Settings
from jobs.builtin import callbacks

LOC = ["callback_url"]


async def callback_meta(url: str | None, settings: Settings) -> dict[str, Any]:
    """The job meta that asks for a callback to `url` (none when `url` is None); 422 when it cannot be had."""
    if url is None:
        return {}
    if not settings.callback_secret.get_secret_value():
        raise ValidationFailedError.field(LOC, "callbacks are not enabled on this server (CALLBACK_SECRET is unset)")
    if not settings.callback_allow_private:
        await check_address(url, settings)
    return {meta.CALLBACK_URL: url, meta.CALLBACK: callbacks.initial_state()}


async def check_address(url: str, settings: Settings) -> None:
    """Resolve the URL's host without blocking the event loop; refuse it where the worker would (422)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    literal = netguard.literal_address(host)
    try:
        if literal is not None:
            addresses = [str(literal)]
        else:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM),
                settings.redis_connect_timeout + settings.redis_socket_timeout,
            )
            addresses = netguard.addresses_from(infos)
        netguard.check_addresses(host, addresses)
    except netguard.RefusedAddressError as exc:
        raise ValidationFailedError.field(LOC, str(exc)) from None
    except (OSError, TimeoutError):
        raise ValidationFailedError.field(LOC, f"the host {host!r} does not resolve") from None

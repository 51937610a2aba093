"""Start-up check: does the Redis in use keep queued jobs across a restart, and never evict them?

Jobs survive a Redis restart only with an append-only file (snapshots alone lose what was
accepted since the last one) and are never dropped under memory pressure only with
`maxmemory-policy noeviction`. Web and workers log each warning returned here at start-up.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis


def warnings_for(settings: dict[str, str]) -> list[str]:
    """Warnings for a server whose `appendonly`, `save` and `maxmemory-policy` are given (missing = unknown)."""
    found: list[str] = []
    appendonly = settings.get("appendonly")
    save = settings.get("save")
    if appendonly is None:
        found.append("could not verify Redis persistence (CONFIG and INFO refused); make sure appendonly is on")
    elif appendonly != "yes":
        if save == "":
            found.append(
                "Redis has no persistence (appendonly no, no snapshots): every queued job is lost if it restarts; "
                "turn on appendonly"
            )
        else:
            found.append(
                "Redis persists by snapshots only (appendonly no): jobs accepted since the last snapshot are lost "
                "if it restarts; turn on appendonly"
            )
    policy = settings.get("maxmemory-policy")
    if policy is not None and policy != "noeviction":
        found.append(
            f"Redis maxmemory-policy is {policy!r}: it may evict job data under memory pressure; use noeviction"
        )
    return found


def _from_config(pairs: Any) -> dict[str, str]:
    return {_as_str(key): _as_str(value) for key, value in dict(pairs).items()}


def _from_info(persistence: dict[str, Any], memory: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    if "aof_enabled" in persistence:
        found["appendonly"] = "yes" if int(persistence["aof_enabled"]) else "no"
    if "maxmemory_policy" in memory:
        found["maxmemory-policy"] = _as_str(memory["maxmemory_policy"])
    return found


def _as_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


_PARAMETERS = ("appendonly", "save", "maxmemory-policy")


def check(client: redis.Redis) -> list[str]:
    """Warnings about `client`'s server (blocking client: workers)."""
    try:
        settings = _from_config({k: v for name in _PARAMETERS for k, v in client.config_get(name).items()})
    except redis.ResponseError:  # CONFIG is disabled on most managed servers; INFO is not
        try:
            settings = _from_info(client.info("persistence"), client.info("memory"))
        except redis.ResponseError:
            settings = {}
    return warnings_for(settings)


async def check_async(client: aioredis.Redis) -> list[str]:
    """Warnings about `client`'s server (asyncio client: the web process)."""
    try:
        pairs: dict[Any, Any] = {}
        for name in _PARAMETERS:
            pairs.update(await client.config_get(name))
        settings = _from_config(pairs)
    except redis.ResponseError:
        try:
            settings = _from_info(await client.info("persistence"), await client.info("memory"))
        except redis.ResponseError:
            settings = {}
    return warnings_for(settings)

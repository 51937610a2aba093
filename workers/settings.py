"""Settings module for `rq worker -c workers.settings` (RQ reads its UPPERCASE names)."""

from __future__ import annotations

from typing import Any

from core.connection import rq_cli_connection
from core.logs import configure_logging
from core.queues import QUEUE_NAMES
from core.settings import get_settings

# RQ reads this module before it sets up its own log handlers; it then finds ours and adds none.
configure_logging(get_settings())

_connection = rq_cli_connection(get_settings())

#: The rq CLI's own connection (ghost cleanup, queues it builds): REDIS_URL with the TLS options, or,
#: with REDIS_SENTINELS, RQ's SENTINEL settings (REDIS_URL is then None, as RQ would prefer it).
REDIS_URL: str | None = _connection["REDIS_URL"]
SENTINEL: dict[str, Any] | None = _connection["SENTINEL"]

#: Highest priority first; a worker always drains `high` before `default` before `low`.
QUEUES = list(QUEUE_NAMES)

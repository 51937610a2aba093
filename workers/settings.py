"""Settings module for `rq worker -c workers.settings` (RQ reads its UPPERCASE names)."""

from __future__ import annotations

from jobs.connection import url_with_tls_options
from jobs.queues import QUEUE_NAMES
from jobs.settings import get_settings

#: The rq CLI's own connection (ghost cleanup, queues it builds) gets the TLS options too.
REDIS_URL = url_with_tls_options(get_settings())

#: Highest priority first; a worker always drains `high` before `default` before `low`.
QUEUES = list(QUEUE_NAMES)

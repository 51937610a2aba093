"""Settings module for `rq worker -c workers.settings` (RQ reads its UPPERCASE names)."""

from __future__ import annotations

from core.connection import url_with_tls_options
from core.logs import configure_logging
from core.queues import QUEUE_NAMES
from core.settings import get_settings

# RQ reads this module before it sets up its own log handlers; it then finds ours and adds none.
configure_logging(get_settings())

#: The rq CLI's own connection (ghost cleanup, queues it builds) gets the TLS options too.
REDIS_URL = url_with_tls_options(get_settings())

#: Highest priority first; a worker always drains `high` before `default` before `low`.
QUEUES = list(QUEUE_NAMES)

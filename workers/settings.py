"""Settings module for `rq worker -c workers.settings` (RQ reads its UPPERCASE names)."""

from __future__ import annotations

from jobs.logs import configure_logging
from jobs.queues import QUEUE_NAMES
from jobs.settings import get_settings

_settings = get_settings()
# RQ reads this module before it sets up its own log handlers; it then finds ours and adds none.
configure_logging(_settings)


def _url_with_tls_options(url: str, cert_reqs: str) -> str:
    if not url.startswith("rediss://") or "ssl_cert_reqs=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}ssl_cert_reqs={cert_reqs}"


REDIS_URL = _url_with_tls_options(_settings.redis_url, _settings.redis_ssl_cert_reqs)

#: Highest priority first; a worker always drains `high` before `default` before `low`.
QUEUES = list(QUEUE_NAMES)
